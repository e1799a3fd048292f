//! The raft log of each replication group, kept as opaque bytes in the `raft` column family:
//! entries by index, hard state and configuration state. The replication crate encodes and decodes
//! them; here they are only stored, and every append is one synced write.

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::error::StorageError;
use crate::keys;
use crate::store::{Store, CF_RAFT};

/// What a group's log holds at start-up.
#[derive(Debug, Default, Clone)]
pub struct RaftLogState {
    pub hard_state: Option<Vec<u8>>,
    pub conf_state: Option<Vec<u8>>,
    /// Index of the last entry, stored or compacted away; 0 if none.
    pub last_index: u64,
    /// The last entry removed by compaction, as (index, term); (0, 0) if none.
    pub truncated: (u64, u64),
}

impl Store {
    /// Reads a group's persisted raft state.
    pub fn raft_log_state(&self, group: u32) -> Result<RaftLogState, StorageError> {
        let cf = self.cf(CF_RAFT);
        let hard_state = self
            .db()
            .get_cf(cf, keys::raft_state_key(group, keys::RAFT_HARD_STATE))?;
        let conf_state = self
            .db()
            .get_cf(cf, keys::raft_state_key(group, keys::RAFT_CONF_STATE))?;
        let mut iter = self.db().raw_iterator_cf(cf);
        iter.seek_for_prev(keys::raft_entry_key(group, u64::MAX));
        let mut last_index = 0;
        if let Some(key) = iter.key() {
            if key.starts_with(&keys::raft_entry_key(group, 0)[..5]) {
                last_index = keys::raft_index_of_entry_key(key)
                    .ok_or_else(|| StorageError::corrupt("raft entry key", "short key"))?;
            }
        }
        iter.status()?;
        let truncated = match self
            .db()
            .get_cf(cf, keys::raft_state_key(group, keys::RAFT_TRUNCATED))?
        {
            Some(bytes) if bytes.len() == 16 => {
                let (index, term) = bytes.split_at(8);
                let number = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                (number(index), number(term))
            }
            Some(bytes) => {
                return Err(StorageError::corrupt(
                    "raft truncation",
                    format!("{} bytes", bytes.len()),
                ))
            }
            None => (0, 0),
        };
        Ok(RaftLogState {
            hard_state,
            conf_state,
            last_index: last_index.max(truncated.0),
            truncated,
        })
    }

    /// Durably appends entries `(index, bytes)` (consecutive indexes), dropping any stored entries
    /// after them (raft overwrites a conflicting tail), and the hard and conf state if given.
    /// One synced write: when this returns, all of it survives a crash.
    pub fn raft_append(
        &self,
        group: u32,
        entries: &[(u64, Vec<u8>)],
        previous_last_index: u64,
        hard_state: Option<&[u8]>,
        conf_state: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        let cf = self.cf(CF_RAFT);
        let mut batch = WriteBatch::default();
        if let Some((last, _)) = entries.last() {
            if *last < previous_last_index {
                batch.delete_range_cf(
                    cf,
                    keys::raft_entry_key(group, last + 1),
                    keys::raft_entry_key(group, previous_last_index + 1),
                );
            }
        }
        for (index, bytes) in entries {
            batch.put_cf(cf, keys::raft_entry_key(group, *index), bytes);
        }
        if let Some(hs) = hard_state {
            batch.put_cf(cf, keys::raft_state_key(group, keys::RAFT_HARD_STATE), hs);
        }
        if let Some(cs) = conf_state {
            batch.put_cf(cf, keys::raft_state_key(group, keys::RAFT_CONF_STATE), cs);
        }
        let mut write = WriteOptions::default();
        write.set_sync(true);
        self.db().write_opt(batch, &write)?;
        Ok(())
    }

    /// Saves a group's hard state without syncing. Used for the commit index right before the
    /// entries it commits are applied: RocksDB's WAL keeps write order, so after a crash the commit
    /// index is never behind what was applied.
    pub fn raft_save_hard_state(&self, group: u32, hard_state: &[u8]) -> Result<(), StorageError> {
        let key = keys::raft_state_key(group, keys::RAFT_HARD_STATE);
        self.db().put_cf(self.cf(CF_RAFT), key, hard_state)?;
        Ok(())
    }

    /// Removes entries up to and including `index` (already applied, and needed by no peer), and
    /// remembers `(index, term)` so raft can still match the log after it. Not synced: losing it
    /// only means the entries come back, and the WAL keeps it behind the applies it follows.
    pub fn raft_compact(&self, group: u32, index: u64, term: u64) -> Result<(), StorageError> {
        let cf = self.cf(CF_RAFT);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf,
            keys::raft_entry_key(group, 0),
            keys::raft_entry_key(group, index + 1),
        );
        let mut truncated = index.to_be_bytes().to_vec();
        truncated.extend_from_slice(&term.to_be_bytes());
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_TRUNCATED),
            truncated,
        );
        self.db().write(batch)?;
        Ok(())
    }

    /// Entries with index in `[low, high)`, stopping early once `max_bytes` is reached (at least one
    /// entry is always returned when the range is not empty).
    pub fn raft_entries(
        &self,
        group: u32,
        low: u64,
        high: u64,
        max_bytes: u64,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let cf = self.cf(CF_RAFT);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::raft_entry_key(group, high).to_vec());
        let start = keys::raft_entry_key(group, low);
        let mut out = Vec::new();
        let mut total = 0u64;
        let entries =
            self.db()
                .iterator_cf_opt(cf, opts, IteratorMode::From(&start, Direction::Forward));
        for (expected, item) in (low..).zip(entries) {
            let (key, value) = item?;
            let index = keys::raft_index_of_entry_key(&key)
                .ok_or_else(|| StorageError::corrupt("raft entry key", "short key"))?;
            if index != expected {
                return Err(StorageError::corrupt(
                    "raft log",
                    format!("missing entry {expected}"),
                ));
            }
            total += value.len() as u64;
            if !out.is_empty() && total > max_bytes {
                break;
            }
            out.push(value.into_vec());
        }
        Ok(out)
    }
}
