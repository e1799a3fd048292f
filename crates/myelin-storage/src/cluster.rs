//! What storage keeps for a cluster: this node's raft id, the replicated address book, and raft
//! snapshots — a RocksDB checkpoint of the node's data taken between two applies, and its
//! installation on a node that fell behind. Storage sees raft state only as bytes here too.

use std::path::Path;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::error::StorageError;
use crate::keys;
use crate::store::{decode_u64, Store, CF_AGGREGATES, CF_EVENTS, CF_META, CF_RAFT, CF_SNAPSHOTS};

/// Sub-directories of a checkpoint: the main database, and the snapshot database when separate.
const CHECKPOINT_MAIN: &str = "main";
const CHECKPOINT_SNAPSHOTS: &str = "snapshots";
/// Bytes copied per write while a snapshot is installed.
const INSTALL_BATCH_BYTES: usize = 4 << 20;
/// Every key of a family sorts below this.
const KEY_SPACE_END: [u8; 64] = [0xFF; 64];

/// The raft state a snapshot installs with its data, as the replication crate encoded it.
pub struct InstalledRaftState<'a> {
    pub index: u64,
    pub term: u64,
    pub conf_state: &'a [u8],
    pub hard_state: &'a [u8],
}

impl Store {
    /// This node's raft id: chosen at random the first time, then kept. A node whose data is
    /// wiped comes back with a new id, so the cluster never mistakes it for its old self.
    pub fn local_node_id(&self) -> Result<u64, StorageError> {
        let cf = self.cf(CF_RAFT);
        if let Some(bytes) = self.db().get_cf(cf, keys::LOCAL_NODE_ID)? {
            return decode_u64(&bytes, "node id");
        }
        // Data written before nodes had their own ids belongs to a node alone, which was node 1.
        let earlier_release = self
            .db()
            .get_cf(cf, keys::raft_state_key(0, keys::RAFT_CONF_STATE))?
            .is_some();
        let id = if earlier_release {
            1
        } else {
            random_nonzero_u64()
        };
        let mut write = WriteOptions::default();
        write.set_sync(true);
        self.db()
            .put_cf_opt(cf, keys::LOCAL_NODE_ID, id.to_be_bytes(), &write)?;
        Ok(id)
    }

    /// The address book: every registered node's id and encoded info.
    pub fn cluster_nodes(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let prefix = keys::cluster_node_prefix();
        let mut nodes = Vec::new();
        let iter = self.db().iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let Some(id) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            nodes.push((decode_u64(id, "node id")?, value.into_vec()));
        }
        Ok(nodes)
    }

    /// One entry of the replicated `_admin` state.
    pub fn admin_entry(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db().get_cf(self.cf(CF_META), keys::admin_key(key))?)
    }

    /// Every `_admin` entry whose key starts with `prefix`, in key order.
    pub fn admin_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let start = keys::admin_key(prefix);
        let base = keys::admin_key("").len();
        let mut entries = Vec::new();
        let iter = self.db().iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&start) {
                break;
            }
            let name = String::from_utf8_lossy(&key[base..]).into_owned();
            entries.push((name, value.into_vec()));
        }
        Ok(entries)
    }

    /// Writes a consistent checkpoint of all data (hard links where possible) into `dir`, which
    /// must not exist. Call it between two applies: the checkpoint is then exactly the state at
    /// the applied index.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory {
            path: dir.display().to_string(),
            source,
        })?;
        Checkpoint::new(self.db())?.create_checkpoint(dir.join(CHECKPOINT_MAIN))?;
        if let Some(snapshots) = self.separate_snapshot_db() {
            Checkpoint::new(snapshots)?.create_checkpoint(dir.join(CHECKPOINT_SNAPSHOTS))?;
        }
        Ok(())
    }

    /// The applied index of `group` recorded in a checkpoint.
    pub fn checkpoint_applied_index(dir: &Path, group: u32) -> Result<u64, StorageError> {
        let db = open_checkpoint(&dir.join(CHECKPOINT_MAIN), &[CF_RAFT])?;
        let cf = family(&db, CF_RAFT)?;
        match db.get_cf(cf, keys::raft_state_key(group, keys::RAFT_APPLIED))? {
            Some(bytes) => decode_u64(&bytes, "applied index"),
            None => Ok(0),
        }
    }

    /// Replaces this node's data with a checkpoint's and resets `group`'s raft log to start after
    /// the snapshot. A crash part-way leaves a marker that `interrupted_install` reports.
    pub fn install_checkpoint(
        &self,
        dir: &Path,
        group: u32,
        raft: InstalledRaftState<'_>,
    ) -> Result<(), StorageError> {
        let main = open_checkpoint(
            &dir.join(CHECKPOINT_MAIN),
            &[CF_RAFT, CF_EVENTS, CF_AGGREGATES, CF_SNAPSHOTS, CF_META],
        )?;
        let separate = dir.join(CHECKPOINT_SNAPSHOTS);
        let snapshots = if separate.exists() {
            Some(open_checkpoint(&separate, &[CF_SNAPSHOTS])?)
        } else {
            None
        };

        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        self.db()
            .put_cf_opt(self.cf(CF_RAFT), keys::LOCAL_INSTALLING, [1], &synced)?;

        // This node's data is a prefix of the leader's (both applied the same log), and events,
        // the aggregate index and snapshots are only ever added: writing the leader's keys over
        // them never makes a stored key disappear for a reader. The meta family also loses keys
        // (fired schedules), so it is replaced.
        for name in [CF_EVENTS, CF_AGGREGATES] {
            copy_family(&main, name, self.db(), self.cf(name), Copy::Merge)?;
        }
        copy_family(&main, CF_META, self.db(), self.cf(CF_META), Copy::Replace)?;
        let (target_db, target_cf) = self.snapshot_cf();
        copy_family(
            snapshots.as_ref().unwrap_or(&main),
            CF_SNAPSHOTS,
            target_db,
            target_cf,
            Copy::Merge,
        )?;
        target_db.flush_wal(true)?;

        let cf = self.cf(CF_RAFT);
        let mut batch = self.without_log_entries(group);
        let mut truncated = raft.index.to_be_bytes().to_vec();
        truncated.extend_from_slice(&raft.term.to_be_bytes());
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_TRUNCATED),
            truncated,
        );
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_CONF_STATE),
            raft.conf_state,
        );
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_HARD_STATE),
            raft.hard_state,
        );
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_APPLIED),
            raft.index.to_be_bytes(),
        );
        batch.delete_cf(cf, keys::LOCAL_INSTALLING);
        self.db().write_opt(batch, &synced)?;
        self.reload_contexts()
    }

    /// A batch that drops every stored entry of `group`'s log.
    fn without_log_entries(&self, group: u32) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(CF_RAFT),
            keys::raft_entry_key(group, 0),
            keys::raft_entry_key(group, u64::MAX),
        );
        batch
    }

    /// True when a snapshot installation was cut short: the data is partial.
    pub fn interrupted_install(&self) -> Result<bool, StorageError> {
        Ok(self
            .db()
            .get_cf(self.cf(CF_RAFT), keys::LOCAL_INSTALLING)?
            .is_some())
    }

    /// Empties all data and `group`'s log (keeping `hard_state`, which the caller rewrote), so the
    /// node starts over and gets a fresh snapshot from the leader.
    pub fn wipe_group(&self, group: u32, hard_state: &[u8]) -> Result<(), StorageError> {
        for name in [CF_EVENTS, CF_AGGREGATES, CF_META] {
            self.db()
                .delete_range_cf(self.cf(name), [].as_slice(), KEY_SPACE_END.as_slice())?;
        }
        let (snap_db, snap_cf) = self.snapshot_cf();
        snap_db.delete_range_cf(snap_cf, [].as_slice(), KEY_SPACE_END.as_slice())?;
        let cf = self.cf(CF_RAFT);
        let mut batch = self.without_log_entries(group);
        for tag in [
            keys::RAFT_TRUNCATED,
            keys::RAFT_CONF_STATE,
            keys::RAFT_APPLIED,
        ] {
            batch.delete_cf(cf, keys::raft_state_key(group, tag));
        }
        batch.put_cf(
            cf,
            keys::raft_state_key(group, keys::RAFT_HARD_STATE),
            hard_state,
        );
        batch.delete_cf(cf, keys::LOCAL_INSTALLING);
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        self.db().write_opt(batch, &synced)?;
        self.reload_contexts()
    }
}

fn open_checkpoint(path: &Path, families: &[&str]) -> Result<DB, StorageError> {
    Ok(DB::open_cf_for_read_only(
        &Options::default(),
        path,
        families,
        false,
    )?)
}

fn family<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name)
        .ok_or_else(|| StorageError::corrupt("checkpoint", format!("no column family {name}")))
}

/// How a family is brought to the checkpoint's contents.
enum Copy {
    /// Write the checkpoint's keys over what is there.
    Merge,
    /// Drop what is there first.
    Replace,
}

/// Writes the keys of the source's family `name` into `target_cf`.
fn copy_family(
    source: &DB,
    name: &str,
    target: &DB,
    target_cf: &rocksdb::ColumnFamily,
    how: Copy,
) -> Result<(), StorageError> {
    if let Copy::Replace = how {
        target.delete_range_cf(target_cf, [].as_slice(), KEY_SPACE_END.as_slice())?;
    }
    let mut batch = WriteBatch::default();
    let mut bytes = 0;
    for item in source.iterator_cf(family(source, name)?, IteratorMode::Start) {
        let (key, value) = item?;
        bytes += key.len() + value.len();
        batch.put_cf(target_cf, key, value);
        if bytes >= INSTALL_BATCH_BYTES {
            target.write(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    target.write(batch)?;
    Ok(())
}

/// A random id from the standard library's per-process hash keys and the clock.
fn random_nonzero_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(now);
        hasher.write_u32(std::process::id());
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myelin_protocol::log::{log_command::Command, AppendEvents, LogCommand, RegisterNode};
    use prost::Message as _;

    fn append(store: &Store, index: u64, aggregate: &str, seq: i64) {
        let event = myelin_protocol::grpc::event::Event {
            aggregate_identifier: aggregate.to_string(),
            aggregate_sequence_number: seq,
            aggregate_type: "T".to_string(),
            ..Default::default()
        }
        .encode_to_vec();
        let command = LogCommand {
            command: Some(Command::AppendEvents(AppendEvents {
                context: "default".to_string(),
                events: vec![event],
            })),
        }
        .encode_to_vec();
        store.apply(0, index, &command).expect("apply");
    }

    #[test]
    fn node_id_is_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = {
            let store = Store::open(dir.path(), dir.path()).expect("open");
            store.local_node_id().expect("id")
        };
        let store = Store::open(dir.path(), dir.path()).expect("reopen");
        assert_eq!(store.local_node_id().expect("id"), first);
        assert_ne!(first, 0);
    }

    #[test]
    fn checkpoint_installs_data_and_address_book_on_another_store() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let leader = Store::open(leader_dir.path(), leader_dir.path()).expect("open");
        append(&leader, 1, "a", 0);
        append(&leader, 2, "a", 1);
        let register = LogCommand {
            command: Some(Command::RegisterNode(RegisterNode {
                node_id: 7,
                info: b"node seven".to_vec(),
            })),
        }
        .encode_to_vec();
        leader.apply(0, 3, &register).expect("register");
        let checkpoint = leader_dir.path().join("cp");
        leader.checkpoint(&checkpoint).expect("checkpoint");
        assert_eq!(
            Store::checkpoint_applied_index(&checkpoint, 0).expect("applied"),
            3
        );

        let follower_dir = tempfile::tempdir().expect("tempdir");
        let follower = Store::open(follower_dir.path(), follower_dir.path()).expect("open");
        // A follower holds a prefix of what the leader applied.
        append(&follower, 1, "a", 0);
        follower
            .install_checkpoint(
                &checkpoint,
                0,
                InstalledRaftState {
                    index: 3,
                    term: 2,
                    conf_state: b"cs",
                    hard_state: b"hs",
                },
            )
            .expect("install");
        let context = follower.context("default").expect("context");
        assert_eq!(
            context.next_token(),
            2,
            "the leader's two events, not the stale one"
        );
        assert_eq!(follower.applied_index(0).expect("applied"), 3);
        assert_eq!(
            follower.cluster_nodes().expect("nodes"),
            vec![(7, b"node seven".to_vec())]
        );
        let state = follower.raft_log_state(0).expect("raft state");
        assert_eq!(state.truncated, (3, 2));
        assert_eq!(state.last_index, 3);
        assert_eq!(state.conf_state.as_deref(), Some(b"cs".as_slice()));
        assert!(!follower.interrupted_install().expect("flag"));
        assert_eq!(
            follower.highest_sequence(&context, "stale").expect("seq"),
            None
        );
    }
}
