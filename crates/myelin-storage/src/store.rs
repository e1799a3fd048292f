//! `Store`: the RocksDB database of one node, its column families, the state machine (`apply`) and
//! the reads the services make (events by token, aggregate streams, snapshots, schedules).
//!
//! Writes come only from `apply`, called by the one task that drives a replication group, in log
//! order. Reads come from anywhere: everything they can see was written by a whole `apply`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use myelin_protocol::headers::EventHeader;
use myelin_protocol::log::{log_command::Command, LogCommand, ScheduledEventRecord};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
};

use crate::error::StorageError;
use crate::keys::{self, ContextId};
use crate::outcome::{ApplyOutcome, Rejection};

/// The context every node has.
pub const DEFAULT_CONTEXT: &str = "default";
/// The cluster's configuration pseudo-context: it holds no events.
pub const ADMIN_CONTEXT: &str = "_admin";

/// The id of a context other than `default` (0): FNV-1a of its name, never 0 and never the
/// cluster pseudo-context's id.
fn context_id_of(name: &str) -> ContextId {
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash.clamp(1, u32::MAX - 1)
}

pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const CF_EVENTS: &str = "events";
pub(crate) const CF_AGGREGATES: &str = "aggregates";
pub(crate) const CF_SNAPSHOTS: &str = "snapshots";
pub(crate) const CF_META: &str = "meta";

/// Field number of `Event.timestamp`, used to restamp a scheduled event at publication.
const EVENT_TIMESTAMP_FIELD: u32 = 5;

/// A context as storage knows it: its key prefix and its next global token.
#[derive(Debug)]
pub struct Context {
    name: String,
    id: ContextId,
    next_token: AtomicU64,
}

impl Context {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token the next appended event will get; every token below it is readable.
    pub fn next_token(&self) -> u64 {
        self.next_token.load(Ordering::Acquire)
    }
}

/// A scheduled event waiting for its instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    pub schedule_token: String,
    pub instant_ms: i64,
}

/// One node's durable state.
pub struct Store {
    db: Arc<DB>,
    /// Snapshots live here: the main database, unless `snapshot.storage` names another directory.
    snapshot_db: Option<DB>,
    contexts: HashMap<String, Arc<Context>>,
}

impl Store {
    /// Opens (or creates) the database in `event_dir`, and a separate snapshot database in
    /// `snapshot_dir` when it is a different directory.
    pub fn open(event_dir: &Path, snapshot_dir: &Path) -> Result<Store, StorageError> {
        create_dir(event_dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        let families = [CF_RAFT, CF_EVENTS, CF_AGGREGATES, CF_SNAPSHOTS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, event_dir, families)?;

        let snapshot_db = if same_dir(event_dir, snapshot_dir) {
            None
        } else {
            create_dir(snapshot_dir)?;
            let families = [ColumnFamilyDescriptor::new(
                CF_SNAPSHOTS,
                Options::default(),
            )];
            Some(DB::open_cf_descriptors(&opts, snapshot_dir, families)?)
        };

        let mut store = Store {
            db: Arc::new(db),
            snapshot_db,
            contexts: HashMap::new(),
        };
        store.load_context(DEFAULT_CONTEXT, 0)?;
        Ok(store)
    }

    /// Opens the store with contexts beyond `default` (`_admin` is not an event context and is
    /// skipped). A context's id is derived from its name, so every node and every restart agrees
    /// on it without coordination.
    pub fn open_with_contexts(
        event_dir: &Path,
        snapshot_dir: &Path,
        contexts: &[String],
    ) -> Result<Store, StorageError> {
        let mut store = Store::open(event_dir, snapshot_dir)?;
        for name in contexts {
            if name == DEFAULT_CONTEXT || name == ADMIN_CONTEXT || store.contexts.contains_key(name)
            {
                continue;
            }
            let id = context_id_of(name);
            if let Some(other) = store.contexts.values().find(|c| c.id == id) {
                return Err(StorageError::Corrupt {
                    what: "context ids",
                    detail: format!(
                        "{name} and {} have the same id {id}; rename one",
                        other.name
                    ),
                });
            }
            store.load_context(name, id)?;
        }
        Ok(store)
    }

    /// Re-reads each context's next token (after a raft snapshot replaced the data).
    pub(crate) fn reload_contexts(&self) -> Result<(), StorageError> {
        for context in self.contexts.values() {
            let next = match self
                .db
                .get_cf(self.cf(CF_META), keys::meta_key(context.id, "next_token"))?
            {
                Some(bytes) => decode_u64(&bytes, "next token")?,
                None => 0,
            };
            context.next_token.store(next, Ordering::Release);
        }
        Ok(())
    }

    fn load_context(&mut self, name: &str, id: ContextId) -> Result<(), StorageError> {
        let next_token = match self
            .db
            .get_cf(self.cf(CF_META), keys::meta_key(id, "next_token"))?
        {
            Some(bytes) => decode_u64(&bytes, "next token")?,
            None => 0,
        };
        let context = Context {
            name: name.to_string(),
            id,
            next_token: AtomicU64::new(next_token),
        };
        self.contexts.insert(name.to_string(), Arc::new(context));
        Ok(())
    }

    /// The context with this name, if this node has it.
    pub fn context(&self, name: &str) -> Option<Arc<Context>> {
        self.contexts.get(name).cloned()
    }

    pub fn context_names(&self) -> Vec<String> {
        self.contexts.keys().cloned().collect()
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every family is created at open; a missing one is a broken invariant, not bad input.
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => panic!("column family {name} was created at open"),
        }
    }

    /// The separate snapshot database, if `snapshot.storage` names one.
    pub(crate) fn separate_snapshot_db(&self) -> Option<&DB> {
        self.snapshot_db.as_ref()
    }

    pub(crate) fn snapshot_cf(&self) -> (&DB, &ColumnFamily) {
        let db = self.snapshot_db.as_ref().unwrap_or(&self.db);
        match db.cf_handle(CF_SNAPSHOTS) {
            Some(cf) => (db, cf),
            None => panic!("column family {CF_SNAPSHOTS} was created at open"),
        }
    }

    /// Flushes memtables so a clean shutdown leaves nothing to replay from the WAL.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true)?;
        if let Some(db) = &self.snapshot_db {
            db.flush_wal(true)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // The state machine

    /// The last log index of `group` that was applied.
    pub fn applied_index(&self, group: u32) -> Result<u64, StorageError> {
        let key = keys::raft_state_key(group, keys::RAFT_APPLIED);
        match self.db.get_cf(self.cf(CF_RAFT), key)? {
            Some(bytes) => decode_u64(&bytes, "applied index"),
            None => Ok(0),
        }
    }

    /// Applies the committed entry at `index` of `group`. `command` is an encoded `LogCommand`
    /// (empty for raft's own entries). Writes the state change and the applied index in one batch.
    pub fn apply(
        &self,
        group: u32,
        index: u64,
        command: &[u8],
    ) -> Result<ApplyOutcome, StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_RAFT),
            keys::raft_state_key(group, keys::RAFT_APPLIED),
            index.to_be_bytes(),
        );
        let mut token_update = None;
        let outcome = if command.is_empty() {
            ApplyOutcome::Noop
        } else {
            match LogCommand::decode(command) {
                Ok(LogCommand { command: Some(cmd) }) => {
                    self.execute(cmd, &mut batch, &mut token_update)?
                }
                Ok(LogCommand { command: None }) => ApplyOutcome::Noop,
                Err(e) => {
                    ApplyOutcome::Rejected(Rejection::Malformed(format!("log entry {index}: {e}")))
                }
            }
        };
        let mut write = WriteOptions::default();
        // The raft log was synced before this entry was committed; a lost batch is re-applied.
        write.set_sync(false);
        self.db.write_opt(batch, &write)?;
        if let Some((context, next)) = token_update {
            context.next_token.store(next, Ordering::Release);
        }
        Ok(outcome)
    }

    fn execute(
        &self,
        command: Command,
        batch: &mut WriteBatch,
        token_update: &mut Option<(Arc<Context>, u64)>,
    ) -> Result<ApplyOutcome, StorageError> {
        let name = match &command {
            Command::RegisterNode(register) => {
                batch.put_cf(
                    self.cf(CF_META),
                    keys::cluster_node_key(register.node_id),
                    &register.info,
                );
                return Ok(ApplyOutcome::Noop);
            }
            Command::UpdateAdminState(update) => {
                let meta = self.cf(CF_META);
                for entry in &update.put {
                    batch.put_cf(meta, keys::admin_key(&entry.key), &entry.value);
                }
                for key in &update.delete {
                    batch.delete_cf(meta, keys::admin_key(key));
                }
                return Ok(ApplyOutcome::Noop);
            }
            Command::AppendEvents(c) => &c.context,
            Command::AppendSnapshot(c) => &c.context,
            Command::ScheduleEvent(c) => &c.context,
            Command::CancelSchedule(c) => &c.context,
            Command::PublishScheduled(c) => &c.context,
        };
        let Some(context) = self.context(name) else {
            return Ok(ApplyOutcome::Rejected(Rejection::UnknownContext(
                name.clone(),
            )));
        };
        match command {
            Command::AppendEvents(append) => {
                let events: Vec<&[u8]> = append.events.iter().map(Vec::as_slice).collect();
                self.append_events(&context, &events, batch, token_update)
            }
            Command::AppendSnapshot(snapshot) => self.append_snapshot(&context, &snapshot.snapshot),
            Command::ScheduleEvent(schedule) => {
                let record = ScheduledEventRecord {
                    instant_ms: schedule.instant_ms,
                    event: schedule.event,
                };
                let meta = self.cf(CF_META);
                batch.put_cf(
                    meta,
                    keys::schedule_key(context.id, &schedule.schedule_token),
                    record.encode_to_vec(),
                );
                batch.put_cf(
                    meta,
                    keys::due_key(context.id, schedule.instant_ms, &schedule.schedule_token),
                    [],
                );
                Ok(ApplyOutcome::Scheduled)
            }
            Command::CancelSchedule(cancel) => {
                let existed = self
                    .remove_schedule(&context, &cancel.schedule_token, batch)?
                    .is_some();
                Ok(ApplyOutcome::Cancelled { existed })
            }
            Command::RegisterNode(_) | Command::UpdateAdminState(_) => Ok(ApplyOutcome::Noop),
            Command::PublishScheduled(publish) => {
                let Some(record) =
                    self.remove_schedule(&context, &publish.schedule_token, batch)?
                else {
                    return Ok(ApplyOutcome::Published {
                        context: context.name.clone(),
                        token: None,
                    });
                };
                let mut event = record.event;
                // A repeated scalar field: the last occurrence wins, so this restamps the event
                // without decoding (and possibly losing) the rest of it.
                prost::encoding::int64::encode(
                    EVENT_TIMESTAMP_FIELD,
                    &publish.publication_time_ms,
                    &mut event,
                );
                match self.append_events(&context, &[event.as_slice()], batch, token_update)? {
                    ApplyOutcome::Appended { first_token, .. } => Ok(ApplyOutcome::Published {
                        context: context.name.clone(),
                        token: Some(first_token),
                    }),
                    other => Ok(other),
                }
            }
        }
    }

    /// Checks a transaction's aggregate sequences and stages its events with gap-free tokens.
    fn append_events(
        &self,
        context: &Arc<Context>,
        events: &[&[u8]],
        batch: &mut WriteBatch,
        token_update: &mut Option<(Arc<Context>, u64)>,
    ) -> Result<ApplyOutcome, StorageError> {
        let first_token = context.next_token();
        // Highest sequence per aggregate as this transaction goes along.
        let mut highest: HashMap<String, Option<u64>> = HashMap::new();
        let mut staged = Vec::with_capacity(events.len());
        for (offset, bytes) in events.iter().enumerate() {
            let header = match EventHeader::decode(*bytes) {
                Ok(h) => h,
                Err(e) => {
                    return Ok(ApplyOutcome::Rejected(Rejection::Malformed(format!(
                        "event: {e}"
                    ))))
                }
            };
            let token = first_token + offset as u64;
            if !header.aggregate_identifier.is_empty() {
                let last = match highest.get(&header.aggregate_identifier) {
                    Some(last) => *last,
                    None => self.highest_sequence(context, &header.aggregate_identifier)?,
                };
                let expected = last.map_or(0, |s| s + 1);
                if header.aggregate_sequence_number < 0
                    || header.aggregate_sequence_number as u64 != expected
                {
                    return Ok(ApplyOutcome::Rejected(Rejection::InvalidSequence {
                        aggregate_id: header.aggregate_identifier,
                        got: header.aggregate_sequence_number,
                        expected,
                    }));
                }
                staged.push((token, Some((header.aggregate_identifier.clone(), expected))));
                highest.insert(header.aggregate_identifier, Some(expected));
            } else {
                staged.push((token, None));
            }
        }
        let (events_cf, aggregates_cf) = (self.cf(CF_EVENTS), self.cf(CF_AGGREGATES));
        for ((token, aggregate), bytes) in staged.into_iter().zip(events) {
            batch.put_cf(events_cf, keys::event_key(context.id, token), bytes);
            if let Some((aggregate_id, sequence)) = aggregate {
                batch.put_cf(
                    aggregates_cf,
                    keys::aggregate_key(context.id, &aggregate_id, sequence),
                    token.to_be_bytes(),
                );
            }
        }
        let next = first_token + events.len() as u64;
        batch.put_cf(
            self.cf(CF_META),
            keys::meta_key(context.id, "next_token"),
            next.to_be_bytes(),
        );
        *token_update = Some((context.clone(), next));
        Ok(ApplyOutcome::Appended {
            context: context.name.clone(),
            first_token,
            count: events.len() as u64,
        })
    }

    fn append_snapshot(
        &self,
        context: &Context,
        bytes: &[u8],
    ) -> Result<ApplyOutcome, StorageError> {
        let header = match EventHeader::decode(bytes) {
            Ok(h) => h,
            Err(e) => {
                return Ok(ApplyOutcome::Rejected(Rejection::Malformed(format!(
                    "snapshot: {e}"
                ))))
            }
        };
        let highest = self.highest_sequence(context, &header.aggregate_identifier)?;
        let got = header.aggregate_sequence_number;
        if got < 0 || highest.is_none_or(|h| got as u64 > h) {
            return Ok(ApplyOutcome::Rejected(Rejection::SnapshotAhead {
                aggregate_id: header.aggregate_identifier,
                got,
                highest: highest.map_or(-1, |h| h as i64),
            }));
        }
        let (db, cf) = self.snapshot_cf();
        let key = keys::aggregate_key(context.id, &header.aggregate_identifier, got as u64);
        db.put_cf(cf, key, bytes)?;
        Ok(ApplyOutcome::SnapshotStored)
    }

    fn remove_schedule(
        &self,
        context: &Context,
        schedule_token: &str,
        batch: &mut WriteBatch,
    ) -> Result<Option<ScheduledEventRecord>, StorageError> {
        let meta = self.cf(CF_META);
        let key = keys::schedule_key(context.id, schedule_token);
        let Some(bytes) = self.db.get_cf(meta, &key)? else {
            return Ok(None);
        };
        let record = ScheduledEventRecord::decode(bytes.as_slice())
            .map_err(|e| StorageError::corrupt("scheduled event", e))?;
        batch.delete_cf(meta, key);
        batch.delete_cf(
            meta,
            keys::due_key(context.id, record.instant_ms, schedule_token),
        );
        Ok(Some(record))
    }

    // ---------------------------------------------------------------------------------------
    // Reads

    /// Up to `limit` events from token `from` on, in token order, as stored.
    pub fn read_events(
        &self,
        context: &Context,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let head = context.next_token();
        let mut out = Vec::new();
        if from >= head {
            return Ok(out);
        }
        let start = keys::event_key(context.id, from);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::event_key(context.id, head).to_vec());
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_EVENTS),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter.take(limit) {
            let (key, value) = item?;
            let token = keys::token_of_event_key(&key)
                .ok_or_else(|| StorageError::corrupt("event key", "short key"))?;
            out.push((token, value.into_vec()));
        }
        Ok(out)
    }

    /// The highest stored sequence number of an aggregate, `None` if it has no events.
    pub fn highest_sequence(
        &self,
        context: &Context,
        aggregate_id: &str,
    ) -> Result<Option<u64>, StorageError> {
        let prefix = keys::aggregate_prefix(context.id, aggregate_id);
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_AGGREGATES));
        iter.seek_for_prev(keys::aggregate_key(context.id, aggregate_id, u64::MAX));
        if let Some(key) = iter.key() {
            if key.starts_with(&prefix) {
                return keys::sequence_of_aggregate_key(key, prefix.len())
                    .map(Some)
                    .ok_or_else(|| StorageError::corrupt("aggregate key", "short key"));
            }
        }
        iter.status()?;
        Ok(None)
    }

    /// Up to `limit` events of an aggregate with sequence in `[from, to)`, in sequence order.
    pub fn aggregate_events(
        &self,
        context: &Context,
        aggregate_id: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let prefix = keys::aggregate_prefix(context.id, aggregate_id);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::aggregate_key(context.id, aggregate_id, to));
        let start = keys::aggregate_key(context.id, aggregate_id, from);
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_AGGREGATES),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut index = Vec::new();
        for item in iter.take(limit) {
            let (key, value) = item?;
            let sequence = keys::sequence_of_aggregate_key(&key, prefix.len())
                .ok_or_else(|| StorageError::corrupt("aggregate key", "short key"))?;
            index.push((sequence, decode_u64(&value, "aggregate index")?));
        }
        let events_cf = self.cf(CF_EVENTS);
        let values = self.db.multi_get_cf(
            index
                .iter()
                .map(|(_, token)| (events_cf, keys::event_key(context.id, *token))),
        );
        let mut out = Vec::with_capacity(index.len());
        for ((sequence, token), value) in index.into_iter().zip(values) {
            match value? {
                Some(bytes) => out.push((sequence, bytes)),
                None => {
                    return Err(StorageError::corrupt(
                        "aggregate index",
                        format!("token {token} has no event"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Snapshots of an aggregate with sequence in `[from, to)`, newest first, at most `limit`.
    pub fn snapshots(
        &self,
        context: &Context,
        aggregate_id: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let (db, cf) = self.snapshot_cf();
        let prefix = keys::aggregate_prefix(context.id, aggregate_id);
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let mut iter = db.raw_iterator_cf(cf);
        iter.seek_for_prev(keys::aggregate_key(context.id, aggregate_id, to - 1));
        while out.len() < limit {
            let Some(key) = iter.key() else { break };
            if !key.starts_with(&prefix) {
                break;
            }
            let sequence = keys::sequence_of_aggregate_key(key, prefix.len())
                .ok_or_else(|| StorageError::corrupt("snapshot key", "short key"))?;
            if sequence < from {
                break;
            }
            out.push((sequence, iter.value().unwrap_or_default().to_vec()));
            iter.prev();
        }
        iter.status()?;
        Ok(out)
    }

    /// The first token whose event has a timestamp at or after `instant_ms`; the head if none.
    /// Timestamps come from clients and are close to, not strictly, token order: this is a binary
    /// search over tokens, as exact as the clocks that stamped the events.
    pub fn token_at(&self, context: &Context, instant_ms: i64) -> Result<u64, StorageError> {
        let (mut low, mut high) = (0u64, context.next_token());
        while low < high {
            let mid = low + (high - low) / 2;
            let timestamp = match self.read_events(context, mid, 1)?.first() {
                Some((_, bytes)) => {
                    EventHeader::decode(bytes.as_slice())
                        .map_err(|e| StorageError::corrupt("event", e))?
                        .timestamp
                }
                None => break,
            };
            if timestamp < instant_ms {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    /// Schedules due at or before `now_ms`, earliest first, at most `limit`; also the instant of the
    /// earliest schedule not yet due, so the scheduler knows when to look again.
    pub fn due_schedules(
        &self,
        context: &Context,
        now_ms: i64,
        limit: usize,
    ) -> Result<(Vec<StoredSchedule>, Option<i64>), StorageError> {
        let prefix = keys::due_prefix(context.id);
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        let mut due = Vec::new();
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (instant_ms, schedule_token) = keys::parse_due_key(&key, prefix.len())
                .ok_or_else(|| StorageError::corrupt("schedule key", "bad key"))?;
            if instant_ms > now_ms {
                return Ok((due, Some(instant_ms)));
            }
            if due.len() == limit {
                return Ok((due, Some(instant_ms)));
            }
            due.push(StoredSchedule {
                schedule_token,
                instant_ms,
            });
        }
        Ok((due, None))
    }

    /// Whether a schedule is still waiting (not published, not cancelled).
    pub fn schedule_exists(
        &self,
        context: &Context,
        schedule_token: &str,
    ) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf(
                self.cf(CF_META),
                keys::schedule_key(context.id, schedule_token),
            )?
            .is_some())
    }
}

pub(crate) fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, StorageError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::corrupt(what, format!("{} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

fn create_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory {
        path: dir.display().to_string(),
        source,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
