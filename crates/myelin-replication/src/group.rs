//! `ReplicationGroup`: one raft-rs `RawNode` and the one thread that drives it, in raft-rs's
//! documented order: tick / step / propose → `ready` → persist entries and hard state (one synced
//! write) → send messages → apply committed entries → `advance`.
//!
//! Group commit: proposals wait in a bounded channel; each round takes every waiting proposal (up
//! to `proposals_per_round_max`) before asking for a `Ready`, so they share one raft append and one
//! fsync. A proposal is answered only after its entry is durable, committed and applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use myelin_storage::{ApplyOutcome, Store};
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ReplicationError, StartError};
use crate::log_storage::LogStorage;
use crate::slog_bridge;

/// How a group runs. Times are in ticks of `tick_interval_ms`.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group_id: u32,
    pub node_id: u64,
    /// Voters of a group that has never started before (a new single node: just itself).
    pub initial_voters: Vec<u64>,
    pub tick_interval_ms: u64,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub proposal_queue_max: usize,
    pub proposals_per_round_max: usize,
}

impl GroupConfig {
    /// A group of one node that is its only voter.
    pub fn single_node(group_id: u32, node_id: u64) -> GroupConfig {
        GroupConfig {
            group_id,
            node_id,
            initial_voters: vec![node_id],
            tick_interval_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 3,
            proposal_queue_max: 4096,
            proposals_per_round_max: 1024,
        }
    }
}

/// What the group looks like from this node right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    pub leader_id: Option<u64>,
    pub is_leader: bool,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Synced writes of the raft log so far; with group commit, fewer than the entries appended.
    pub synced_log_writes: u64,
    /// Set when the group stopped because of an error it cannot recover from.
    pub failed: Option<String>,
}

/// Applied entries a single-member group keeps before it compacts its log.
const LOG_COMPACT_EVERY_ENTRIES: u64 = 4096;

type Reply = oneshot::Sender<Result<ApplyOutcome, ReplicationError>>;

struct Proposal {
    command: Vec<u8>,
    reply: Reply,
}

/// The handle to a running group: propose, watch status and context heads, shut down.
pub struct ReplicationGroup {
    group_id: u32,
    proposals: mpsc::Sender<Proposal>,
    status: watch::Receiver<GroupStatus>,
    heads: HashMap<String, watch::Receiver<u64>>,
    stop: watch::Sender<bool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ReplicationGroup {
    /// Starts the group's thread on `store`, replaying committed entries not yet applied.
    pub fn start(store: Arc<Store>, config: GroupConfig) -> Result<ReplicationGroup, StartError> {
        let storage = LogStorage::open(store.clone(), config.group_id, &config.initial_voters)?;
        let applied = store.applied_index(config.group_id)?;
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_config.validate()?;
        let commit = storage.hard_state().commit;
        let mut node = RawNode::new(&raft_config, storage, &slog_bridge::logger())?;
        let single_voter = node.raft.prs().conf().voters().ids().len() == 1;
        if single_voter && node.raft.prs().conf().voters().contains(config.node_id) {
            node.campaign()?;
        }
        tracing::info!(
            group = config.group_id,
            node = config.node_id,
            applied,
            commit,
            "replication group started"
        );

        let (proposals_tx, proposals_rx) = mpsc::channel(config.proposal_queue_max);
        let (status_tx, status_rx) = watch::channel(GroupStatus::default());
        let mut head_senders = HashMap::new();
        let mut heads = HashMap::new();
        for name in store.context_names() {
            let next = store.context(&name).map_or(0, |c| c.next_token());
            let (tx, rx) = watch::channel(next);
            head_senders.insert(name.clone(), tx);
            heads.insert(name, rx);
        }
        let driver = Driver {
            group_id: config.group_id,
            node_id: config.node_id,
            node,
            store,
            waiting: HashMap::new(),
            next_proposal_id: 0,
            status: status_tx,
            heads: head_senders,
            proposals_per_round_max: config.proposals_per_round_max,
            synced_log_writes: 0,
        };
        let tick = Duration::from_millis(config.tick_interval_ms);
        let (stop, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(format!("raft-group-{}", config.group_id))
            .spawn(move || driver.run(proposals_rx, stop_rx, tick))?;
        Ok(ReplicationGroup {
            group_id: config.group_id,
            proposals: proposals_tx,
            status: status_rx,
            heads,
            stop,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Proposes an encoded `LogCommand`; answers with its outcome once it is applied here.
    pub async fn propose(&self, command: Vec<u8>) -> Result<ApplyOutcome, ReplicationError> {
        let (reply, outcome) = oneshot::channel();
        self.proposals
            .send(Proposal { command, reply })
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?;
        outcome
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?
    }

    pub fn status(&self) -> watch::Receiver<GroupStatus> {
        self.status.clone()
    }

    /// The next token of a context: changes whenever an append is applied.
    pub fn head(&self, context: &str) -> Option<watch::Receiver<u64>> {
        self.heads.get(context).cloned()
    }

    /// Waits (up to `timeout`) until this node knows a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(timeout, status.wait_for(|s| s.leader_id.is_some()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Finishes the round in progress, answers proposals still queued with `ShuttingDown`, and
    /// joins the group's thread. Later proposals fail at once. Safe to call more than once.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!(group = self.group_id, "replication thread panicked");
            }
        }
    }
}

impl Drop for ReplicationGroup {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The state owned by the group's thread.
struct Driver {
    group_id: u32,
    node_id: u64,
    node: RawNode<LogStorage>,
    store: Arc<Store>,
    /// Proposals of this node waiting for their entry to apply, by proposal id.
    waiting: HashMap<u64, Reply>,
    next_proposal_id: u64,
    status: watch::Sender<GroupStatus>,
    heads: HashMap<String, watch::Sender<u64>>,
    proposals_per_round_max: usize,
    synced_log_writes: u64,
}

impl Driver {
    fn run(
        mut self,
        mut proposals: mpsc::Receiver<Proposal>,
        mut stop: watch::Receiver<bool>,
        tick: Duration,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.fail(format!("cannot build the group runtime: {e}"));
                return;
            }
        };
        runtime.block_on(async {
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = ticker.tick() => {
                        self.node.tick();
                    }
                    proposal = proposals.recv() => {
                        let Some(first) = proposal else { break };
                        self.propose(first);
                        while self.waiting.len() < self.proposals_per_round_max {
                            match proposals.try_recv() {
                                Ok(p) => self.propose(p),
                                Err(_) => break,
                            }
                        }
                    }
                }
                if let Err(detail) = self.on_ready() {
                    self.fail(detail);
                    break;
                }
            }
        });
        proposals.close();
        let mut refused = 0;
        while let Ok(proposal) = proposals.try_recv() {
            let _ = proposal
                .reply
                .send(Err(ReplicationError::ShuttingDown(self.group_id)));
            refused += 1;
        }
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(ReplicationError::ShuttingDown(self.group_id)));
            refused += 1;
        }
        tracing::info!(group = self.group_id, refused, "replication group stopped");
    }

    fn propose(&mut self, proposal: Proposal) {
        if self.node.raft.state != StateRole::Leader {
            let leader = Some(self.node.raft.leader_id).filter(|id| *id != raft::INVALID_ID);
            let _ = proposal.reply.send(Err(ReplicationError::NotLeader {
                group: self.group_id,
                leader,
            }));
            return;
        }
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        let mut context = Vec::with_capacity(16);
        context.extend_from_slice(&self.node_id.to_be_bytes());
        context.extend_from_slice(&id.to_be_bytes());
        match self.node.propose(context, proposal.command) {
            Ok(()) => {
                self.waiting.insert(id, proposal.reply);
            }
            Err(e) => {
                let _ = proposal.reply.send(Err(ReplicationError::Failed {
                    group: self.group_id,
                    detail: e.to_string(),
                }));
            }
        }
    }

    /// One pass of raft-rs's ready loop. An error here is a storage failure: the group stops.
    fn on_ready(&mut self) -> Result<(), String> {
        if !self.node.has_ready() {
            self.publish_status();
            return Ok(());
        }
        let mut ready = self.node.ready();
        // Single-member groups have no peers: messages go nowhere until the cluster transport.
        let _ = ready.take_messages();
        if !ready.snapshot().is_empty() {
            return Err("raft snapshots are not supported yet".to_string());
        }
        // Persist first, so the commit index on disk is never behind what gets applied.
        let hard_state = ready.hs().cloned();
        if !ready.entries().is_empty() || hard_state.is_some() {
            self.node
                .mut_store()
                .append(ready.entries(), hard_state.as_ref())?;
        }
        let committed = ready.take_committed_entries();
        self.apply(committed)?;
        let _ = ready.take_persisted_messages();

        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        let _ = light.take_messages();
        let committed = light.take_committed_entries();
        self.apply(committed)?;
        self.node.advance_apply();
        self.compact_log()?;
        self.publish_status();
        Ok(())
    }

    /// A group with no peers never needs applied entries again: once `LOG_COMPACT_EVERY_ENTRIES`
    /// have been applied since the last compaction, they are dropped, so events are not kept twice.
    /// Groups with peers keep their log until raft snapshots can bring a peer up to date.
    fn compact_log(&mut self) -> Result<(), String> {
        let applied = self.node.raft.raft_log.applied;
        let alone = self.node.raft.prs().conf().voters().ids().len() == 1
            && self.node.raft.prs().conf().learners().is_empty();
        if alone && applied >= self.node.store().truncated_index() + LOG_COMPACT_EVERY_ENTRIES {
            self.node.mut_store().compact(applied)?;
            tracing::debug!(group = self.group_id, up_to = applied, "raft log compacted");
        }
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        for entry in entries {
            let outcome = match entry.get_entry_type() {
                EntryType::EntryNormal => self
                    .store
                    .apply(self.group_id, entry.index, &entry.data)
                    .map_err(|e| format!("applying entry {}: {e}", entry.index))?,
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change(&entry)?;
                    self.store
                        .apply(self.group_id, entry.index, &[])
                        .map_err(|e| format!("applying entry {}: {e}", entry.index))?
                }
            };
            let new_head = match &outcome {
                ApplyOutcome::Appended {
                    context,
                    first_token,
                    count,
                } => Some((context, first_token + count)),
                ApplyOutcome::Published {
                    context,
                    token: Some(token),
                } => Some((context, token + 1)),
                _ => None,
            };
            if let Some((context, next_token)) = new_head {
                if let Some(head) = self.heads.get(context) {
                    head.send_replace(next_token);
                }
            }
            if let Some(reply) = self.waiter_for(&entry.context) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), String> {
        use protobuf::Message as _;
        let result = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change = ConfChange::parse_from_bytes(&entry.data).map_err(|e| e.to_string())?;
            self.node.apply_conf_change(&change)
        } else {
            let change = ConfChangeV2::parse_from_bytes(&entry.data).map_err(|e| e.to_string())?;
            self.node.apply_conf_change(&change)
        };
        let conf_state = result.map_err(|e| e.to_string())?;
        self.node.mut_store().set_conf_state(conf_state)
    }

    fn waiter_for(&mut self, context: &[u8]) -> Option<Reply> {
        let node: [u8; 8] = context.get(..8)?.try_into().ok()?;
        if u64::from_be_bytes(node) != self.node_id {
            return None;
        }
        let id: [u8; 8] = context.get(8..16)?.try_into().ok()?;
        self.waiting.remove(&u64::from_be_bytes(id))
    }

    fn publish_status(&mut self) {
        let raft = &self.node.raft;
        let leader_id = Some(raft.leader_id).filter(|id| *id != raft::INVALID_ID);
        let status = GroupStatus {
            leader_id,
            is_leader: raft.state == StateRole::Leader,
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: raft.raft_log.applied,
            synced_log_writes: self.synced_log_writes,
            failed: None,
        };
        if !status.is_leader && !self.waiting.is_empty() {
            // A proposal made as leader may or may not survive a change of leader.
            for (_, reply) in self.waiting.drain() {
                let _ = reply.send(Err(ReplicationError::LeadershipLost(self.group_id)));
            }
        }
        self.status.send_if_modified(|current| {
            if *current != status {
                *current = status;
                true
            } else {
                false
            }
        });
    }

    fn fail(&mut self, detail: String) {
        tracing::error!(group = self.group_id, "replication group failed: {detail}");
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(ReplicationError::Failed {
                group: self.group_id,
                detail: detail.clone(),
            }));
        }
        self.status.send_modify(|s| {
            s.failed = Some(detail);
            s.is_leader = false;
        });
    }
}
