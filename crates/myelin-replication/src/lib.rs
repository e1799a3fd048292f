//! Myelin's replication layer: each replication group is a raft-rs `RawNode` driven by one thread,
//! with its log in `myelin-storage` and its committed entries applied by `Store::apply`. A single
//! node is a one-member group, so it takes exactly the write path a cluster takes.

mod error;
mod group;
mod log_storage;
mod slog_bridge;
mod transport;

pub use error::{ReplicationError, StartError};
pub use group::{GroupConfig, GroupStatus, ReplicationGroup, Role};
pub use transport::{
    decode_message, encode_message, snapshot_checkpoint, snapshot_position, with_checkpoint,
    NoTransport, RaftMessage, SnapshotReport, Transport,
};
