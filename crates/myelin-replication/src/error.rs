//! Replication errors, in replication's own terms.

use myelin_storage::StorageError;

/// Why a proposal got no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicationError {
    #[error("this node is not the leader of replication group {group} (leader: {leader:?})")]
    NotLeader { group: u32, leader: Option<u64> },
    #[error("no leader for replication group {group} after waiting {waited_ms} ms")]
    NoLeader { group: u32, waited_ms: u64 },
    #[error("replication group {group} did not commit the proposal within {waited_ms} ms; its outcome is unknown")]
    Timeout { group: u32, waited_ms: u64 },
    #[error("replication group {0} is shutting down")]
    ShuttingDown(u32),
    #[error("replication group {group} failed: {detail}")]
    Failed { group: u32, detail: String },
    #[error("leadership of replication group {0} changed before the proposal committed; its outcome is unknown")]
    LeadershipLost(u32),
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("corrupt raft state: {0}")]
    Corrupt(String),
    #[error("cannot start the replication thread: {0}")]
    Thread(#[from] std::io::Error),
}
