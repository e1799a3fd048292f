//! Myelin's storage layer: one node's durable state in RocksDB — events by global token, the
//! aggregate index, snapshots, scheduled events, the raft log (as opaque bytes) and applied indexes.
//!
//! `Store::apply` is the state machine: it executes one committed log entry deterministically, so
//! every node reaches the same state from the same log. Knows nothing of Raft or gRPC; the
//! replication crate above drives it, the server reads from it.

mod cluster;
mod error;
mod keys;
mod outcome;
mod raft_log;
mod store;

pub use cluster::InstalledRaftState;
pub use error::StorageError;
pub use outcome::{ApplyOutcome, Rejection};
pub use raft_log::RaftLogState;
pub use store::{Context, Store, StoredSchedule, ADMIN_CONTEXT, DEFAULT_CONTEXT};
