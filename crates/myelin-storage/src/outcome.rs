//! What applying one log entry did. Outcomes are deterministic: every node that applies the same
//! entry reaches the same outcome, so a rejection is an answer, not a failure.

/// The result of applying one committed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// An entry with nothing to do (a leader's empty entry, a configuration change).
    Noop,
    /// A transaction's events now hold tokens `first_token..first_token + count`.
    Appended {
        context: String,
        first_token: u64,
        count: u64,
    },
    SnapshotStored,
    Scheduled,
    /// `existed` is false when the schedule had already fired or been cancelled.
    Cancelled {
        existed: bool,
    },
    /// A scheduled event was appended (or had gone already: `token` is `None`).
    Published {
        context: String,
        token: Option<u64>,
    },
    Rejected(Rejection),
}

/// Why an entry was rejected. Nothing of a rejected entry is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("Invalid sequence number {got} for aggregate {aggregate_id}, expected {expected}")]
    InvalidSequence {
        aggregate_id: String,
        got: i64,
        expected: u64,
    },
    #[error(
        "Invalid sequence number {got} for snapshot of aggregate {aggregate_id}: the aggregate's highest sequence number is {highest}"
    )]
    SnapshotAhead {
        aggregate_id: String,
        got: i64,
        highest: i64,
    },
    #[error("unknown context {0:?}")]
    UnknownContext(String),
    #[error("malformed {0}")]
    Malformed(String),
}
