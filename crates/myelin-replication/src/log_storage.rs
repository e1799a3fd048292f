//! `LogStorage`: raft-rs's `Storage` over the raft column family of `myelin-storage`. It decodes
//! entries and states with raft's own protobuf codec and caches what raft asks for most (hard and
//! conf state, last index and term).

use std::sync::Arc;

use myelin_storage::Store;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};

use crate::error::StartError;

pub(crate) struct LogStorage {
    store: Arc<Store>,
    group: u32,
    hard_state: HardState,
    conf_state: ConfState,
    last_index: u64,
    last_term: u64,
    /// The last compacted entry (index, term); entries after it are stored.
    truncated: (u64, u64),
}

impl LogStorage {
    /// Loads a group's log; a group that was never started gets `voters` as its configuration.
    pub(crate) fn open(
        store: Arc<Store>,
        group: u32,
        voters: &[u64],
    ) -> Result<LogStorage, StartError> {
        let state = store.raft_log_state(group)?;
        let hard_state = match &state.hard_state {
            Some(bytes) => HardState::parse_from_bytes(bytes)
                .map_err(|e| StartError::Corrupt(e.to_string()))?,
            None => HardState::default(),
        };
        let conf_state = match &state.conf_state {
            Some(bytes) => ConfState::parse_from_bytes(bytes)
                .map_err(|e| StartError::Corrupt(e.to_string()))?,
            None => {
                let mut cs = ConfState::default();
                cs.set_voters(voters.to_vec());
                let bytes = cs
                    .write_to_bytes()
                    .map_err(|e| StartError::Corrupt(e.to_string()))?;
                store.raft_append(group, &[], 0, None, Some(&bytes))?;
                cs
            }
        };
        let mut storage = LogStorage {
            store,
            group,
            hard_state,
            conf_state,
            last_index: state.last_index,
            last_term: 0,
            truncated: state.truncated,
        };
        storage.last_term = storage
            .read_term(state.last_index)
            .map_err(|e| StartError::Corrupt(e.to_string()))?;
        Ok(storage)
    }

    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Durably appends entries and the hard state (one synced write).
    pub(crate) fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), String> {
        let mut encoded = Vec::with_capacity(entries.len());
        for e in entries {
            encoded.push((e.index, e.write_to_bytes().map_err(|e| e.to_string())?));
        }
        let hs = match hard_state {
            Some(hs) => Some(hs.write_to_bytes().map_err(|e| e.to_string())?),
            None => None,
        };
        self.store
            .raft_append(self.group, &encoded, self.last_index, hs.as_deref(), None)
            .map_err(|e| e.to_string())?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
            self.last_term = last.term;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Durably records the configuration a conf change entry produced.
    pub(crate) fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), String> {
        let bytes = conf_state.write_to_bytes().map_err(|e| e.to_string())?;
        self.store
            .raft_append(self.group, &[], self.last_index, None, Some(&bytes))
            .map_err(|e| e.to_string())?;
        self.conf_state = conf_state;
        Ok(())
    }

    /// Records a new commit index (unsynced; see `Store::raft_save_hard_state`).
    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<(), String> {
        self.hard_state.commit = commit;
        let bytes = self
            .hard_state
            .write_to_bytes()
            .map_err(|e| e.to_string())?;
        self.store
            .raft_save_hard_state(self.group, &bytes)
            .map_err(|e| e.to_string())
    }

    /// The last compacted index.
    pub(crate) fn truncated_index(&self) -> u64 {
        self.truncated.0
    }

    /// Drops entries up to `index` (inclusive), which must be applied and needed by no peer.
    pub(crate) fn compact(&mut self, index: u64) -> Result<(), String> {
        if index <= self.truncated.0 {
            return Ok(());
        }
        let term = self.read_term(index).map_err(|e| e.to_string())?;
        self.store
            .raft_compact(self.group, index, term)
            .map_err(|e| e.to_string())?;
        self.truncated = (index, term);
        Ok(())
    }

    fn read_term(&self, index: u64) -> raft::Result<u64> {
        if index == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if index < self.truncated.0 {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        let entries = self
            .store
            .raft_entries(self.group, index, index + 1, u64::MAX)
            .map_err(storage_error)?;
        match entries.first() {
            Some(bytes) => Ok(Entry::parse_from_bytes(bytes)
                .map_err(raft::Error::CodecError)?
                .term),
            None => Err(raft::Error::Store(RaftStorageError::Unavailable)),
        }
    }
}

fn storage_error(e: myelin_storage::StorageError) -> raft::Error {
    raft::Error::Store(RaftStorageError::Other(Box::new(e)))
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let raw = self
            .store
            .raft_entries(self.group, low, high, max)
            .map_err(storage_error)?;
        if raw.is_empty() && low < high {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        raw.iter()
            .map(|bytes| Entry::parse_from_bytes(bytes).map_err(raft::Error::CodecError))
            .collect()
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.last_index {
            return Ok(self.last_term);
        }
        if index > self.last_index {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        self.read_term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Only single-member groups compact their log, so no peer ever needs a snapshot.
        Err(raft::Error::Store(
            RaftStorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
