//! Storage errors, in storage's own terms; the server maps them to Axon error codes.

/// What can go wrong reading or writing a node's durable state.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("cannot create storage directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}

impl StorageError {
    /// A stored event that no longer decodes.
    pub fn corrupt_event(detail: impl ToString) -> Self {
        StorageError::corrupt("stored event", detail)
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        StorageError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
