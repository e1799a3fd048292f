//! `ReplicationGroup`: one raft-rs `RawNode` and the one thread that drives it, in raft-rs's
//! documented order: tick / step / propose → `ready` → install snapshot, persist entries and hard
//! state (one synced write) → send messages → apply committed entries → `advance`.
//!
//! Group commit: proposals wait in a bounded channel; each round takes every waiting proposal (up
//! to `proposals_per_round_max`) before asking for a `Ready`, so they share one raft append and one
//! fsync. A proposal is answered only after its entry is durable, committed and applied here.
//!
//! On a follower, raft-rs forwards proposals to the leader; the entry comes back through the log
//! and the proposer answers when it applies it. Without a leader a proposal waits at most
//! `wait_for_leader_ms`; a proposal that does not commit within `proposal_timeout_ms`, or whose
//! leader changes first, is answered with an error (its outcome unknown).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use myelin_storage::{ApplyOutcome, Store};
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ReplicationError, StartError};
use crate::log_storage::LogStorage;
use crate::slog_bridge;
use crate::transport::{snapshot_checkpoint, SnapshotReport, Transport};

/// How a group runs. Times are in ticks of `tick_interval_ms` unless named in ms.
#[derive(Clone)]
pub struct GroupConfig {
    pub group_id: u32,
    pub node_id: u64,
    /// Voters of a group that has never started before: just this node for the node that creates
    /// the cluster (or runs alone), none for a node that will be added by the leader.
    pub initial_voters: Vec<u64>,
    pub tick_interval_ms: u64,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub proposal_queue_max: usize,
    pub proposals_per_round_max: usize,
    /// How long a proposal waits for a leader to exist before it is refused.
    pub wait_for_leader_ms: u64,
    /// How long a proposal handed to raft may take to commit and apply.
    pub proposal_timeout_ms: u64,
    /// Applied entries kept in the log for followers that lag a little (groups with peers).
    pub log_keep_entries: u64,
    /// Compact once this many entries beyond `log_keep_entries` have been applied.
    pub compact_every_entries: u64,
    /// Where checkpoints for raft snapshots are written and received.
    pub checkpoint_dir: PathBuf,
    pub transport: Arc<dyn Transport>,
}

impl GroupConfig {
    /// A group of one node that is its only voter.
    pub fn single_node(group_id: u32, node_id: u64, checkpoint_dir: PathBuf) -> GroupConfig {
        GroupConfig {
            group_id,
            node_id,
            initial_voters: vec![node_id],
            tick_interval_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 3,
            proposal_queue_max: 4096,
            proposals_per_round_max: 1024,
            wait_for_leader_ms: 5000,
            proposal_timeout_ms: 10_000,
            log_keep_entries: 20_000,
            compact_every_entries: 4096,
            checkpoint_dir,
            transport: Arc::new(crate::transport::NoTransport),
        }
    }
}

impl GroupStatus {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

/// A node's raft role, as health reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    Leader,
    #[default]
    Follower,
    Candidate,
    PreCandidate,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "LEADER",
            Role::Follower => "FOLLOWER",
            Role::Candidate => "CANDIDATE",
            Role::PreCandidate => "PRE_CANDIDATE",
        }
    }
}

/// What the group looks like from this node right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    pub node_id: u64,
    pub role: Role,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    /// On the leader: whether an entry of its own term is committed (and so everything before
    /// it); until then it may not have applied every acknowledged write.
    pub committed_in_term: bool,
    /// On the leader: each peer's highest replicated index.
    pub peers_matched: Vec<(u64, u64)>,
    /// Synced writes of the raft log so far; with group commit, fewer than the entries appended.
    pub synced_log_writes: u64,
    /// Raft snapshots installed here since start.
    pub snapshots_installed: u64,
    /// Set when the group stopped because of an error it cannot recover from.
    pub failed: Option<String>,
}

type Reply = oneshot::Sender<Result<ApplyOutcome, ReplicationError>>;

struct Proposal {
    command: Vec<u8>,
    reply: Reply,
    /// Set once the proposal waits for a leader: when it gives up.
    parked_until: Option<Instant>,
}

struct Waiter {
    reply: Reply,
    deadline: Instant,
}

/// What other tasks hand to the group's thread besides proposals.
pub(crate) enum Inbound {
    Step(Message),
    /// A `MsgSnapshot` whose data names a checkpoint staged on this node.
    Snapshot(Message),
    SnapshotSent {
        to: u64,
        delivered: bool,
    },
    Unreachable(u64),
    Membership {
        change: ConfChange,
        reply: Reply,
    },
}

/// The handle to a running group: propose, step, change membership, watch, shut down.
pub struct ReplicationGroup {
    group_id: u32,
    /// The last index of the log when the group started.
    start_last_index: u64,
    proposals: mpsc::Sender<Proposal>,
    inbox: mpsc::Sender<Inbound>,
    status: watch::Receiver<GroupStatus>,
    heads: HashMap<String, watch::Receiver<u64>>,
    stop: watch::Sender<bool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ReplicationGroup {
    /// Starts the group's thread on `store`, replaying committed entries not yet applied.
    pub fn start(store: Arc<Store>, config: GroupConfig) -> Result<ReplicationGroup, StartError> {
        let storage = LogStorage::open(
            store.clone(),
            config.group_id,
            &config.initial_voters,
            config.checkpoint_dir.clone(),
        )?;
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
        let start_last_index = raft::Storage::last_index(&storage)?;
        let mut node = RawNode::new(&raft_config, storage, &slog_bridge::logger())?;
        let voters: Vec<u64> = node.raft.prs().conf().voters().ids().iter().collect();
        if voters == [config.node_id] {
            node.campaign()?;
        }
        tracing::info!(
            group = config.group_id,
            node = config.node_id,
            applied,
            commit,
            ?voters,
            "replication group started"
        );

        let (proposals_tx, proposals_rx) = mpsc::channel(config.proposal_queue_max);
        let (inbox_tx, inbox_rx) = mpsc::channel(config.proposal_queue_max);
        let (status_tx, status_rx) = watch::channel(GroupStatus::default());
        let mut head_senders = HashMap::new();
        let mut heads = HashMap::new();
        for name in store.context_names() {
            let next = store.context(&name).map_or(0, |c| c.next_token());
            let (tx, rx) = watch::channel(next);
            head_senders.insert(name.clone(), tx);
            heads.insert(name, rx);
        }
        let tick = Duration::from_millis(config.tick_interval_ms);
        let group_id = config.group_id;
        let driver = Driver {
            group_id: config.group_id,
            node_id: config.node_id,
            node,
            store,
            waiting: HashMap::new(),
            parked: VecDeque::new(),
            next_proposal_id: 0,
            status: status_tx,
            heads: head_senders,
            synced_log_writes: 0,
            snapshots_installed: 0,
            last_leader: raft::INVALID_ID,
            inbox: inbox_tx.clone(),
            config,
        };
        let mut driver = driver;
        // Watchers see the configuration (voters, leader) from the start, not a blank status.
        driver.publish_status();
        let (stop, stop_rx) = watch::channel(false);
        let failed = driver.status.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raft-group-{}", driver.group_id))
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| {
                    driver.run(proposals_rx, inbox_rx, stop_rx, tick)
                });
                if std::panic::catch_unwind(run).is_err() {
                    // Health shows it; proposals fail instead of waiting for a dead thread.
                    failed.send_modify(|s| {
                        s.failed = Some("the raft thread panicked".to_string());
                        s.role = Role::Follower;
                    });
                }
            })?;
        Ok(ReplicationGroup {
            group_id,
            start_last_index,
            proposals: proposals_tx,
            inbox: inbox_tx,
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
            .send(Proposal {
                command,
                reply,
                parked_until: None,
            })
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?;
        outcome
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?
    }

    /// Hands a raft message from a peer to the group.
    pub async fn step(&self, message: Message) -> Result<(), ReplicationError> {
        self.inbox
            .send(Inbound::Step(message))
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))
    }

    /// Hands a `MsgSnapshot` whose checkpoint has been staged locally (see `with_checkpoint`).
    pub async fn step_snapshot(&self, message: Message) -> Result<(), ReplicationError> {
        self.inbox
            .send(Inbound::Snapshot(message))
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))
    }

    /// Tells raft that a peer could not be reached, so it probes instead of streaming to it.
    pub fn report_unreachable(&self, node: u64) {
        let _ = self.inbox.try_send(Inbound::Unreachable(node));
    }

    /// Adds `node` as a voter (on the leader; others answer `NotLeader`).
    pub async fn add_voter(&self, node: u64) -> Result<(), ReplicationError> {
        self.change_membership(ConfChangeType::AddNode, node).await
    }

    /// Removes `node` from the group's voters (on the leader; others answer `NotLeader`).
    pub async fn remove_voter(&self, node: u64) -> Result<(), ReplicationError> {
        self.change_membership(ConfChangeType::RemoveNode, node)
            .await
    }

    async fn change_membership(
        &self,
        change_type: ConfChangeType,
        node: u64,
    ) -> Result<(), ReplicationError> {
        let mut change = ConfChange::default();
        change.set_change_type(change_type);
        change.node_id = node;
        let (reply, outcome) = oneshot::channel();
        self.inbox
            .send(Inbound::Membership { change, reply })
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?;
        outcome
            .await
            .map_err(|_| ReplicationError::ShuttingDown(self.group_id))?
            .map(|_| ())
    }

    pub fn status(&self) -> watch::Receiver<GroupStatus> {
        self.status.clone()
    }

    /// The next token of a context: changes whenever an append is applied.
    pub fn head(&self, context: &str) -> Option<watch::Receiver<u64>> {
        self.heads.get(context).cloned()
    }

    /// For a node alone: waits (up to `timeout`) until it leads and has applied every entry its
    /// log held at start. Entries written before a crash may be committed only once the new term
    /// begins; until then reads would miss acknowledged events.
    pub async fn wait_until_replayed(&self, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        let target = self.start_last_index;
        tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.is_leader() && s.applied_index >= target),
        )
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
    /// Proposals handed to raft, waiting for their entry to apply here, by proposal id.
    waiting: HashMap<u64, Waiter>,
    /// Proposals waiting for a leader to exist.
    parked: VecDeque<(Proposal, Instant)>,
    next_proposal_id: u64,
    status: watch::Sender<GroupStatus>,
    heads: HashMap<String, watch::Sender<u64>>,
    synced_log_writes: u64,
    snapshots_installed: u64,
    last_leader: u64,
    inbox: mpsc::Sender<Inbound>,
    config: GroupConfig,
}

impl Driver {
    fn run(
        mut self,
        mut proposals: mpsc::Receiver<Proposal>,
        mut inbox: mpsc::Receiver<Inbound>,
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
                        self.expire(Instant::now());
                    }
                    proposal = proposals.recv() => {
                        let Some(first) = proposal else { break };
                        self.propose(first);
                        while self.waiting.len() < self.config.proposals_per_round_max {
                            match proposals.try_recv() {
                                Ok(p) => self.propose(p),
                                Err(_) => break,
                            }
                        }
                    }
                    inbound = inbox.recv() => {
                        let Some(first) = inbound else { break };
                        self.receive(first);
                        while let Ok(next) = inbox.try_recv() {
                            self.receive(next);
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
        for (proposal, _) in self.parked.drain(..) {
            let _ = proposal
                .reply
                .send(Err(ReplicationError::ShuttingDown(self.group_id)));
            refused += 1;
        }
        for (_, waiter) in self.waiting.drain() {
            let _ = waiter
                .reply
                .send(Err(ReplicationError::ShuttingDown(self.group_id)));
            refused += 1;
        }
        tracing::info!(group = self.group_id, refused, "replication group stopped");
    }

    fn receive(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Step(message) => {
                if let Err(e) = self.node.step(message) {
                    tracing::debug!(group = self.group_id, "raft message ignored: {e}");
                }
            }
            Inbound::Snapshot(message) => {
                let staged = snapshot_checkpoint(&message);
                if let Err(e) = self.node.step(message) {
                    tracing::warn!(group = self.group_id, "raft snapshot refused: {e}");
                }
                // Raft keeps a snapshot it accepts as pending until `ready` hands it over.
                if self.node.raft.raft_log.unstable_snapshot().is_none() {
                    if let Some(dir) = staged {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                }
            }
            Inbound::SnapshotSent { to, delivered } => {
                let status = if delivered {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(to, status);
            }
            Inbound::Unreachable(node) => self.node.report_unreachable(node),
            Inbound::Membership { change, reply } => {
                if self.node.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
                }
                let (id, context) = self.proposal_context();
                match self.node.propose_conf_change(context, change) {
                    Ok(()) => self.wait(id, reply),
                    Err(e) => {
                        let _ = reply.send(Err(ReplicationError::Failed {
                            group: self.group_id,
                            detail: e.to_string(),
                        }));
                    }
                }
            }
        }
    }

    fn not_leader(&self) -> ReplicationError {
        let leader = Some(self.node.raft.leader_id).filter(|id| *id != raft::INVALID_ID);
        ReplicationError::NotLeader {
            group: self.group_id,
            leader,
        }
    }

    /// The entry context that lets this node find its waiter: node id, then proposal id.
    fn proposal_context(&mut self) -> (u64, Vec<u8>) {
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        let mut context = Vec::with_capacity(16);
        context.extend_from_slice(&self.node_id.to_be_bytes());
        context.extend_from_slice(&id.to_be_bytes());
        (id, context)
    }

    fn wait(&mut self, id: u64, reply: Reply) {
        let deadline = Instant::now() + Duration::from_millis(self.config.proposal_timeout_ms);
        self.waiting.insert(id, Waiter { reply, deadline });
    }

    fn propose(&mut self, proposal: Proposal) {
        if self.node.raft.leader_id == raft::INVALID_ID {
            self.park(proposal);
            return;
        }
        let leader = self.node.raft.state == StateRole::Leader;
        // A follower's proposal may be dropped (no leader after all, a transfer under way) and
        // is then retried, so raft gets a copy; a leader's is taken as it is.
        let (command, kept) = if leader {
            (proposal.command, Vec::new())
        } else {
            (proposal.command.clone(), proposal.command)
        };
        let (id, context) = self.proposal_context();
        match self.node.propose(context, command) {
            Ok(()) => self.wait(id, proposal.reply),
            Err(raft::Error::ProposalDropped) if !leader => self.park(Proposal {
                command: kept,
                ..proposal
            }),
            Err(raft::Error::ProposalDropped) => {
                let _ = proposal.reply.send(Err(self.not_leader()));
            }
            Err(e) => {
                let _ = proposal.reply.send(Err(ReplicationError::Failed {
                    group: self.group_id,
                    detail: e.to_string(),
                }));
            }
        }
    }

    fn park(&mut self, mut proposal: Proposal) {
        let wait = Duration::from_millis(self.config.wait_for_leader_ms);
        let deadline = *proposal
            .parked_until
            .get_or_insert_with(|| Instant::now() + wait);
        self.parked.push_back((proposal, deadline));
    }

    /// Proposes parked proposals once a leader is known; answers those that waited too long for
    /// one, and those handed to raft that did not apply in time.
    fn expire(&mut self, now: Instant) {
        let parked = std::mem::take(&mut self.parked);
        for (proposal, deadline) in parked {
            if self.node.raft.leader_id != raft::INVALID_ID {
                self.propose(proposal);
            } else if deadline <= now {
                let _ = proposal.reply.send(Err(ReplicationError::NoLeader {
                    group: self.group_id,
                    waited_ms: self.config.wait_for_leader_ms,
                }));
            } else {
                self.parked.push_back((proposal, deadline));
            }
        }
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(waiter) = self.waiting.remove(&id) {
                let _ = waiter.reply.send(Err(ReplicationError::Timeout {
                    group: self.group_id,
                    waited_ms: self.config.proposal_timeout_ms,
                }));
            }
        }
    }

    /// One pass of raft-rs's ready loop. An error here is a storage failure: the group stops.
    fn on_ready(&mut self) -> Result<(), String> {
        if !self.parked.is_empty() && self.node.raft.leader_id != raft::INVALID_ID {
            self.expire(Instant::now());
        }
        if !self.node.has_ready() {
            self.publish_status();
            return Ok(());
        }
        let mut ready = self.node.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let hard_state = ready.hs().cloned();
            self.node
                .mut_store()
                .install_snapshot(&snapshot, hard_state.as_ref())?;
            self.snapshots_installed += 1;
            self.publish_heads();
        }
        // Persist first, so the commit index on disk is never behind what gets applied.
        let hard_state = ready.hs().cloned();
        if !ready.entries().is_empty() || hard_state.is_some() {
            let must_sync = ready.must_sync();
            let synced =
                self.node
                    .mut_store()
                    .append(ready.entries(), hard_state.as_ref(), must_sync)?;
            if synced {
                self.synced_log_writes += 1;
            }
        }
        let committed = ready.take_committed_entries();
        self.apply(committed)?;
        self.send(ready.take_persisted_messages());

        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed)?;
        self.node.advance_apply();
        self.compact_log()?;
        self.publish_status();
        Ok(())
    }

    fn send(&mut self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let mut plain = Vec::with_capacity(messages.len());
        for message in messages {
            if snapshot_checkpoint(&message).is_some() {
                let report = SnapshotReport {
                    to: message.to,
                    inbox: self.inbox.clone(),
                };
                tracing::info!(
                    group = self.group_id,
                    to = message.to,
                    index = message.get_snapshot().get_metadata().index,
                    "sending a raft snapshot"
                );
                self.config
                    .transport
                    .send_snapshot(self.group_id, message, report);
            } else {
                plain.push(message);
            }
        }
        if !plain.is_empty() {
            self.config.transport.send(self.group_id, plain);
        }
    }

    /// Drops applied entries from the log. A node alone keeps none; a group with peers keeps
    /// `log_keep_entries` so a follower that lags a little catches up from the log, not a snapshot.
    fn compact_log(&mut self) -> Result<(), String> {
        let applied = self.node.raft.raft_log.applied;
        let alone = self.node.raft.prs().conf().voters().ids().len() == 1
            && self.node.raft.prs().conf().learners().is_empty();
        let keep = if alone {
            0
        } else {
            self.config.log_keep_entries
        };
        let target = applied.saturating_sub(keep);
        let truncated = self.node.store().truncated_index();
        // The first configuration is not in the log (it is where the log starts), so the log is
        // cut once at the very start: a node added later then begins from a snapshot, which
        // carries the configuration.
        if truncated == 0 && applied > 0 {
            self.node.mut_store().compact(applied)?;
            return Ok(());
        }
        if target >= truncated + self.config.compact_every_entries {
            self.node.mut_store().compact(target)?;
            tracing::debug!(group = self.group_id, up_to = target, "raft log compacted");
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
            if let Some(waiter) = self.waiter_for(&entry.context) {
                let _ = waiter.reply.send(Ok(outcome));
            }
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), String> {
        use protobuf::Message as _;
        let result = if entry.get_entry_type() == EntryType::EntryConfChange {
            let change = ConfChange::parse_from_bytes(&entry.data).map_err(|e| e.to_string())?;
            tracing::info!(
                group = self.group_id,
                node = change.node_id,
                change = ?change.get_change_type(),
                "membership change applied"
            );
            self.node.apply_conf_change(&change)
        } else {
            let change = ConfChangeV2::parse_from_bytes(&entry.data).map_err(|e| e.to_string())?;
            self.node.apply_conf_change(&change)
        };
        let conf_state = result.map_err(|e| e.to_string())?;
        self.node.mut_store().set_conf_state(conf_state)
    }

    fn waiter_for(&mut self, context: &[u8]) -> Option<Waiter> {
        let node: [u8; 8] = context.get(..8)?.try_into().ok()?;
        if u64::from_be_bytes(node) != self.node_id {
            return None;
        }
        let id: [u8; 8] = context.get(8..16)?.try_into().ok()?;
        self.waiting.remove(&u64::from_be_bytes(id))
    }

    /// After a snapshot replaced the data, every context's head moves to its new next token.
    fn publish_heads(&mut self) {
        for (name, head) in &self.heads {
            if let Some(context) = self.store.context(name) {
                head.send_replace(context.next_token());
            }
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.node.raft;
        let leader = raft.leader_id;
        if leader != self.last_leader {
            if self.last_leader != raft::INVALID_ID && !self.waiting.is_empty() {
                // A proposal made under the old leader may or may not survive the change.
                for (_, waiter) in self.waiting.drain() {
                    let _ = waiter
                        .reply
                        .send(Err(ReplicationError::LeadershipLost(self.group_id)));
                }
            }
            tracing::info!(
                group = self.group_id,
                term = raft.term,
                leader = (leader != raft::INVALID_ID).then_some(leader),
                "leader changed"
            );
            self.last_leader = leader;
        }
        let role = match raft.state {
            StateRole::Leader => Role::Leader,
            StateRole::Follower => Role::Follower,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
        };
        let mut voters: Vec<u64> = raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        let mut peers_matched: Vec<(u64, u64)> = if role == Role::Leader {
            raft.prs()
                .iter()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(id, pr)| (*id, pr.matched))
                .collect()
        } else {
            Vec::new()
        };
        peers_matched.sort_unstable();
        let committed_in_term = role == Role::Leader
            && raft.raft_log.term(raft.raft_log.committed).unwrap_or(0) == raft.term;
        let status = GroupStatus {
            node_id: self.node_id,
            role,
            committed_in_term,
            leader_id: Some(leader).filter(|id| *id != raft::INVALID_ID),
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: raft.raft_log.applied,
            voters,
            peers_matched,
            synced_log_writes: self.synced_log_writes,
            snapshots_installed: self.snapshots_installed,
            failed: None,
        };
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
        for (_, waiter) in self.waiting.drain() {
            let _ = waiter.reply.send(Err(ReplicationError::Failed {
                group: self.group_id,
                detail: detail.clone(),
            }));
        }
        self.status.send_modify(|s| {
            s.failed = Some(detail);
            s.role = Role::Follower;
        });
    }
}
