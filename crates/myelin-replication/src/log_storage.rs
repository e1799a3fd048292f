//! `LogStorage`: raft-rs's `Storage` over the raft column family of `myelin-storage`. It decodes
//! entries and states with raft's own protobuf codec and caches what raft asks for most (hard and
//! conf state, last index and term). Raft snapshots are RocksDB checkpoints: `snapshot` takes one
//! at the applied index (on the group's thread, between two applies), `install_snapshot` puts a
//! received one in place.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use myelin_storage::{InstalledRaftState, Store};
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
    checkpoint_dir: PathBuf,
    /// The newest checkpoint taken for a peer: (applied index, directory).
    checkpoint: RefCell<Option<(u64, PathBuf)>>,
}

impl LogStorage {
    /// Loads a group's log; a group that was never started gets `voters` as its configuration.
    pub(crate) fn open(
        store: Arc<Store>,
        group: u32,
        voters: &[u64],
        checkpoint_dir: PathBuf,
    ) -> Result<LogStorage, StartError> {
        let mut state = store.raft_log_state(group)?;
        let mut hard_state = match &state.hard_state {
            Some(bytes) => HardState::parse_from_bytes(bytes)
                .map_err(|e| StartError::Corrupt(e.to_string()))?,
            None => HardState::default(),
        };
        if store.interrupted_install()? {
            // The data is partial. Start empty (keeping term and vote) and let the leader send a
            // new snapshot; this node stays in the leader's configuration.
            tracing::warn!(
                group,
                "a raft snapshot install was cut short; starting over empty"
            );
            hard_state.commit = 0;
            let bytes = hard_state
                .write_to_bytes()
                .map_err(|e| StartError::Corrupt(e.to_string()))?;
            store.wipe_group(group, &bytes)?;
            state = store.raft_log_state(group)?;
        }
        // Stale checkpoints of an earlier run are of no use.
        let _ = std::fs::remove_dir_all(&checkpoint_dir);
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
            checkpoint_dir,
            checkpoint: RefCell::new(None),
        };
        storage.last_term = storage
            .read_term(state.last_index)
            .map_err(|e| StartError::Corrupt(e.to_string()))?;
        Ok(storage)
    }

    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Durably appends entries and the hard state (one synced write). When raft says nothing
    /// needs syncing (no entries, term and vote unchanged: only the commit index moved), the hard
    /// state is written without a sync; returns whether it synced.
    pub(crate) fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        must_sync: bool,
    ) -> Result<bool, String> {
        if entries.is_empty() && !must_sync {
            if let Some(hs) = hard_state {
                let bytes = hs.write_to_bytes().map_err(|e| e.to_string())?;
                self.store
                    .raft_save_hard_state(self.group, &bytes)
                    .map_err(|e| e.to_string())?;
                self.hard_state = hs.clone();
            }
            return Ok(false);
        }
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
        Ok(true)
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

    /// Replaces the data with the checkpoint a `MsgSnapshot` named (staged on this node) and
    /// starts the log after it. The staged directory is removed afterwards.
    pub(crate) fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        hard_state: Option<&HardState>,
    ) -> Result<(), String> {
        let meta = snapshot.get_metadata();
        let dir = std::str::from_utf8(snapshot.get_data())
            .map(PathBuf::from)
            .map_err(|e| format!("snapshot data is not a path: {e}"))?;
        let mut hs = hard_state
            .cloned()
            .unwrap_or_else(|| self.hard_state.clone());
        hs.commit = hs.commit.max(meta.index);
        let conf_state = meta.get_conf_state().clone();
        let cs_bytes = conf_state.write_to_bytes().map_err(|e| e.to_string())?;
        let hs_bytes = hs.write_to_bytes().map_err(|e| e.to_string())?;
        tracing::info!(
            group = self.group,
            index = meta.index,
            term = meta.term,
            "installing a raft snapshot"
        );
        self.store
            .install_checkpoint(
                &dir,
                self.group,
                InstalledRaftState {
                    index: meta.index,
                    term: meta.term,
                    conf_state: &cs_bytes,
                    hard_state: &hs_bytes,
                },
            )
            .map_err(|e| format!("installing snapshot {}: {e}", meta.index))?;
        let _ = std::fs::remove_dir_all(&dir);
        self.truncated = (meta.index, meta.term);
        self.last_index = meta.index;
        self.last_term = meta.term;
        self.conf_state = conf_state;
        self.hard_state = hs;
        Ok(())
    }

    /// A checkpoint of the data at the applied index, reused while nothing new was applied.
    fn checkpoint_at_applied(&self) -> raft::Result<(u64, PathBuf)> {
        let applied = self
            .store
            .applied_index(self.group)
            .map_err(storage_error)?;
        if let Some((index, dir)) = self.checkpoint.borrow().as_ref() {
            if *index == applied && dir.exists() {
                return Ok((applied, dir.clone()));
            }
        }
        let dir = self
            .checkpoint_dir
            .join(format!("out-{}-{applied}", self.group));
        if let Some((_, old)) = self.checkpoint.borrow_mut().take() {
            // A transfer still reading it keeps its open files.
            let _ = std::fs::remove_dir_all(old);
        }
        let _ = std::fs::remove_dir_all(&dir);
        self.store.checkpoint(&dir).map_err(|e| {
            tracing::warn!(group = self.group, "cannot take a checkpoint: {e}");
            raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable)
        })?;
        tracing::info!(group = self.group, index = applied, dir = %dir.display(), "checkpoint taken for a raft snapshot");
        *self.checkpoint.borrow_mut() = Some((applied, dir.clone()));
        Ok((applied, dir))
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

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let (index, dir) = self.checkpoint_at_applied()?;
        if index < request_index || index == 0 {
            return Err(raft::Error::Store(
                RaftStorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_data(path_bytes(&dir).into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = self.read_term(index)?;
        meta.set_conf_state(self.conf_state.clone());
        tracing::debug!(group = self.group, to, index, "raft snapshot prepared");
        Ok(snapshot)
    }
}

fn path_bytes(path: &Path) -> Vec<u8> {
    path.display().to_string().into_bytes()
}
