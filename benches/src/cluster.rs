//! The cluster part: three `myelin serve` processes on loopback that form one raft group
//! (`node-0` is `autocluster.first`, the others join it), each with its own ports, working
//! directory, data directory and `server.log` under `node-N/` in the run's scratch directory. It
//! measures
//!
//! - append cells against the leader: the same transaction sizes and client counts as the
//!   single-node append cells, each compared with the single-node figure of the same run;
//! - during each of them, how many entries the followers' applied index trails the leader's
//!   commit index (sampled from `/actuator/health`), and after it how long the followers take to
//!   apply the leader's last commit;
//! - leader elections: the leader is SIGKILLed and the time until both survivors name the same
//!   new leader on `/actuator/health` is measured; the killed node is then restarted (same ports,
//!   same data) and the cluster waited for before the next round.
//!
//! Every node is killed by pid when the part ends, however it ends ([`Cluster::kill_all`], called
//! by `main`; dropping a node's process kills it too, as a last resort).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::grpc::{Connection, Pool};
use crate::report::{Latencies, Output, Row};
use crate::server::{self, Launch, Server};
use crate::workloads::{self, CpuProbe, EventMaker, Window};
use crate::{fields, plural, BoxError};

/// Nodes in the cluster.
pub const SIZE: usize = 3;
/// How long the cluster may take to form (every node UP, one leader, all voters), at the start
/// and after a killed node is restarted.
const FORM_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the nodes are asked whether the cluster has formed.
const FORM_POLL: Duration = Duration::from_millis(20);
/// How often follower lag is sampled during an append cell.
const LAG_SAMPLE_EVERY: Duration = Duration::from_millis(25);
/// How often the followers are asked whether they have caught up after a cell.
const CATCH_UP_POLL: Duration = Duration::from_millis(2);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the survivors are asked for their leader after the leader is killed.
const ELECTION_POLL: Duration = Duration::from_millis(10);
const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of each node's log an error shows.
const NODE_LOG_TAIL_BYTES: usize = 2000;

/// What one node's `/actuator/health` says about raft.
#[derive(Clone, Debug)]
struct Health {
    /// 200 UP: the node has a leader and has applied what it knows to be committed.
    up: bool,
    leader: Option<String>,
    term: u64,
    commit: u64,
    applied: u64,
    voters: usize,
}

impl Health {
    fn parse(code: u16, body: &Value) -> Result<Health, BoxError> {
        let raft = &body["components"]["raft"]["details"];
        let number = |key: &str| {
            raft[key]
                .as_u64()
                .ok_or_else(|| format!("health has no raft {key}: {body}"))
        };
        Ok(Health {
            up: code == 200,
            leader: raft["leader"].as_str().map(str::to_string),
            term: number("term")?,
            commit: number("commitIndex")?,
            applied: number("appliedIndex")?,
            voters: raft["voters"].as_array().map_or(0, Vec::len),
        })
    }
}

async fn health(http_port: u16) -> Result<Health, BoxError> {
    let (code, body) = server::health(http_port).await?;
    Health::parse(code, &body)
}

/// A node: fixed ports and directory (kept across restarts), and its process while it runs.
struct Node {
    name: String,
    dir: PathBuf,
    grpc_port: u16,
    http_port: u16,
    internal_port: u16,
    server: Option<Server>,
}

/// The three nodes.
pub struct Cluster {
    binary: PathBuf,
    /// `autocluster.first`: node-0's internal address.
    first: String,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Chooses the ports and creates the directories (`scratch/node-N`); starts nothing.
    pub async fn new(binary: &Path, scratch: &Path) -> Result<Cluster, BoxError> {
        let ports = server::free_loopback_ports(3 * SIZE).await?;
        let mut nodes = Vec::with_capacity(SIZE);
        for (index, ports) in ports.chunks_exact(3).enumerate() {
            let name = format!("node-{index}");
            let dir = scratch.join(&name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            nodes.push(Node {
                name,
                dir,
                grpc_port: ports[0],
                http_port: ports[1],
                internal_port: ports[2],
                server: None,
            });
        }
        let first = match nodes.first() {
            Some(node) => format!("127.0.0.1:{}", node.internal_port),
            None => return Err("a cluster needs nodes".into()),
        };
        Ok(Cluster {
            binary: binary.to_path_buf(),
            first,
            nodes,
        })
    }

    /// Starts node `index` (its process; it joins or rejoins by itself).
    fn start(&mut self, index: usize) -> Result<(), BoxError> {
        let node = &mut self.nodes[index];
        let settings = vec![
            format!("axoniq.axonserver.name={}", node.name),
            "axoniq.axonserver.hostname=127.0.0.1".to_string(),
            "axoniq.axonserver.internal-hostname=127.0.0.1".to_string(),
            format!("axoniq.axonserver.internal-port={}", node.internal_port),
            format!("axoniq.axonserver.autocluster.first={}", self.first),
        ];
        node.server = Some(Server::spawn(&Launch {
            binary: &self.binary,
            dir: &node.dir,
            grpc_port: node.grpc_port,
            http_port: node.http_port,
            settings,
        })?);
        Ok(())
    }

    /// Starts node-0, waits until it is UP (the leader of a group of one), starts the others and
    /// waits until the cluster has formed. Returns the leader's index.
    async fn start_all(&mut self) -> Result<usize, BoxError> {
        self.start(0)?;
        if let Some(server) = self.nodes[0].server.as_mut() {
            server.wait_until_up(server::STARTUP_TIMEOUT).await?;
        }
        for index in 1..SIZE {
            self.start(index)?;
        }
        self.wait_formed().await
    }

    /// SIGKILLs node `index` by pid and reaps it.
    async fn kill(&mut self, index: usize) {
        if let Some(mut server) = self.nodes[index].server.take() {
            server.kill().await;
        }
    }

    /// SIGKILLs every node that runs. Safe to call more than once.
    pub async fn kill_all(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index).await;
        }
    }

    /// The end of every node's log, for error messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|node| server::log_tail(&node.dir.join("server.log"), NODE_LOG_TAIL_BYTES))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An error if a node that should run has exited.
    fn check_running(&mut self) -> Result<(), BoxError> {
        for node in &mut self.nodes {
            if let Some(how) = node.server.as_mut().and_then(Server::exit_status) {
                return Err(format!("{} {how} during the run", node.name).into());
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.server.as_ref().and_then(Server::pid))
            .collect()
    }

    /// Every node's health, in node order (an error for a node that does not answer).
    async fn healths(&self) -> Vec<Result<Health, BoxError>> {
        join_all(self.nodes.iter().map(|n| health(n.http_port))).await
    }

    /// Waits until every node runs and answers UP, all name the same leader, and the leader has
    /// all nodes as voters. Returns the leader's index.
    async fn wait_formed(&mut self) -> Result<usize, BoxError> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            self.check_running()?;
            if let Some(leader) = self.formed().await {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .healths()
                    .await
                    .into_iter()
                    .zip(&self.nodes)
                    .map(|(h, n)| match h {
                        Ok(h) => format!("{}: up {}, leader {:?}", n.name, h.up, h.leader),
                        Err(e) => format!("{}: {e}", n.name),
                    })
                    .collect();
                return Err(format!(
                    "the cluster did not form (every node UP, one leader, {SIZE} voters) within \
                     {} s: {}",
                    FORM_TIMEOUT.as_secs(),
                    seen.join("; ")
                )
                .into());
            }
            tokio::time::sleep(FORM_POLL).await;
        }
    }

    async fn formed(&self) -> Option<usize> {
        if self.nodes.iter().any(|n| n.server.is_none()) {
            return None;
        }
        let healths = self.healths().await;
        let mut leader: Option<&str> = None;
        for health in &healths {
            let health = health.as_ref().ok()?;
            let named = health.leader.as_deref()?;
            if !health.up || leader.is_some_and(|l| l != named) {
                return None;
            }
            leader = Some(named);
        }
        let index = self
            .nodes
            .iter()
            .position(|n| Some(n.name.as_str()) == leader)?;
        let leader_health = healths.get(index)?.as_ref().ok()?;
        (leader_health.voters == SIZE).then_some(index)
    }
}

/// A single-node append cell of this run, the reference of the cluster cell with its settings.
#[derive(Clone, Copy, Debug)]
pub struct AppendFigure {
    pub events_per_tx: usize,
    pub clients: usize,
    pub tx_per_s: f64,
    pub p99_ms: Option<f64>,
}

/// What the cluster part measures, from the command line and the single-node part.
pub struct Plan<'a> {
    pub tx_events: &'a [usize],
    pub clients: &'a [usize],
    pub clients_per_connection: usize,
    pub window: Window,
    pub elections: usize,
    /// The fsync rate measured before the run, for the ratio column.
    pub fsyncs_per_s: Option<f64>,
    pub reference: &'a [AppendFigure],
    pub run_id: &'a str,
}

/// Starts the cluster and measures appends, follower lag and leader elections. The caller kills
/// the nodes afterwards, whatever happened.
pub async fn measure(
    cluster: &mut Cluster,
    out: &mut Output,
    plan: &Plan<'_>,
    maker: &EventMaker,
) -> Result<(), BoxError> {
    eprintln!("starting a {SIZE}-node cluster ...");
    let began = Instant::now();
    let leader = cluster.start_all().await?;
    eprintln!(
        "cluster formed in {:.1} s; {} leads",
        began.elapsed().as_secs_f64(),
        cluster.nodes[leader].name
    );
    appends(cluster, out, plan, maker, leader).await?;
    elections(cluster, out, plan).await?;
    summary(cluster, out).await
}

/// Follower lag sampled during one append cell, and the nodes' CPU over its measured window.
struct Lag {
    /// Entries each follower's applied index trailed the leader's commit index, every sample of
    /// both followers, sorted.
    behind: Vec<u64>,
    /// The largest figure of each follower.
    max_per_follower: Vec<(String, u64)>,
    /// Sampling rounds in which a node did not answer.
    missed: usize,
    node_cores: Vec<(String, Option<f64>)>,
}

/// Every `LAG_SAMPLE_EVERY` of the measured window, asks the leader and the followers for their
/// health at the same moment and records leader commit index − follower applied index.
async fn sample_lag(
    leader_http: u16,
    followers: &[(String, u16)],
    window: Window,
    nodes: &[(String, CpuProbe)],
) -> Lag {
    let measured_from = Instant::now() + window.warmup;
    let end = measured_from + window.measure;
    tokio::time::sleep_until(measured_from).await;
    let marks: Vec<_> = nodes.iter().map(|(_, probe)| probe.mark()).collect();
    let mut ticker = tokio::time::interval(LAG_SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut behind = Vec::new();
    let mut max_per_follower: Vec<(String, u64)> = followers
        .iter()
        .map(|(name, _)| (name.clone(), 0))
        .collect();
    let mut missed = 0;
    loop {
        ticker.tick().await;
        if Instant::now() >= end {
            break;
        }
        let (leader, answers) = tokio::join!(
            health(leader_http),
            join_all(followers.iter().map(|(_, port)| health(*port)))
        );
        let Ok(leader) = leader else {
            missed += 1;
            continue;
        };
        for (answer, (_, max)) in answers.iter().zip(max_per_follower.iter_mut()) {
            match answer {
                Ok(follower) => {
                    let lag = leader.commit.saturating_sub(follower.applied);
                    behind.push(lag);
                    *max = (*max).max(lag);
                }
                Err(_) => missed += 1,
            }
        }
    }
    let node_cores = nodes
        .iter()
        .zip(&marks)
        .map(|((name, probe), mark)| (name.clone(), probe.cores_since(mark).0))
        .collect();
    behind.sort_unstable();
    Lag {
        behind,
        max_per_follower,
        missed,
        node_cores,
    }
}

/// The `q` quantile (0 < q ≤ 1) of sorted counts by nearest rank.
fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

struct CatchUp {
    /// From the end of the load to both followers having applied `target`.
    elapsed: Duration,
    /// The leader's commit index when the load had stopped.
    target: u64,
    /// Rounds of asking the followers (1: caught up at the first look).
    checks: usize,
}

/// Right after a cell's last confirmation: reads the leader's commit index and waits until both
/// followers have applied it.
async fn catch_up(leader_http: u16, followers: &[(String, u16)]) -> Result<CatchUp, BoxError> {
    let stopped = Instant::now();
    let target = health(leader_http).await?.commit;
    let deadline = stopped + CATCH_UP_TIMEOUT;
    let mut checks = 0;
    loop {
        checks += 1;
        let answers = join_all(followers.iter().map(|(_, port)| health(*port))).await;
        let caught_up = answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|h| h.applied >= target));
        if caught_up {
            return Ok(CatchUp {
                elapsed: stopped.elapsed(),
                target,
                checks,
            });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the followers did not apply commit index {target} within {} s of the load's end",
                CATCH_UP_TIMEOUT.as_secs()
            )
            .into());
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// The append cells against the leader, each with its follower-lag row.
async fn appends(
    cluster: &mut Cluster,
    out: &mut Output,
    plan: &Plan<'_>,
    maker: &EventMaker,
    leader: usize,
) -> Result<(), BoxError> {
    let leader_node = &cluster.nodes[leader];
    let leader_name = leader_node.name.clone();
    let leader_http = leader_node.http_port;
    let endpoint = format!("http://127.0.0.1:{}", leader_node.grpc_port);
    let followers: Vec<(String, u16)> = cluster
        .nodes
        .iter()
        .filter(|n| n.name != leader_name)
        .map(|n| (n.name.clone(), n.http_port))
        .collect();
    let node_probes: Vec<(String, CpuProbe)> = cluster
        .nodes
        .iter()
        .map(|n| {
            let pid = n.server.as_ref().and_then(Server::pid);
            (n.name.clone(), CpuProbe::new(pid))
        })
        .collect();
    let cpu = CpuProbe::new(cluster.pids());
    let max_clients = plan.clients.iter().copied().max().unwrap_or(1);
    let pool = Pool::connect(&endpoint, max_clients, plan.clients_per_connection).await?;
    let prefix = format!("{}-cluster", plan.run_id);
    for &events_per_tx in plan.tx_events {
        for &clients in plan.clients {
            eprintln!(
                "cluster: appending {events_per_tx}-event transactions from {clients} clients to \
                 the leader ..."
            );
            let (result, lag) = tokio::join!(
                workloads::append_cell(
                    &pool,
                    maker,
                    &prefix,
                    events_per_tx,
                    clients,
                    plan.window,
                    &cpu
                ),
                sample_lag(leader_http, &followers, plan.window, &node_probes),
            );
            let result = result?;
            let caught_up = catch_up(leader_http, &followers).await?;
            cluster.check_running()?;

            let seconds = result.elapsed.as_secs_f64();
            let tx_per_s = result.transactions as f64 / seconds;
            let p99_ms = result.latencies.percentile_ms(0.99);
            let reference = plan
                .reference
                .iter()
                .find(|r| r.events_per_tx == events_per_tx && r.clients == clients);
            let tx_ratio = reference.map(|r| tx_per_s / r.tx_per_s);
            let p99_ratio = match (reference.and_then(|r| r.p99_ms), p99_ms) {
                (Some(single), Some(cluster)) if single > 0.0 => Some(cluster / single),
                _ => None,
            };
            let cell = format!("{events_per_tx} ev/tx × {}", plural(clients, "client"));
            out.row(&Row {
                measurement: "cluster append",
                setting: format!(
                    "{cell}, leader of {SIZE}: {} tx/s, {} p99 of 1 node",
                    ratio(tx_ratio),
                    ratio(p99_ratio)
                ),
                events_per_s: Some(result.events as f64 / seconds),
                ops_per_s: Some(tx_per_s),
                ops_unit: "tx",
                p50_ms: result.latencies.percentile_ms(0.5),
                p99_ms,
                per_fsync: plan.fsyncs_per_s.map(|f| tx_per_s / f),
                server_cores: result.cores.0,
                bench_cores: result.cores.1,
                extra: fields(json!({
                    "nodes": SIZE,
                    "leader": leader_name,
                    "events_per_tx": events_per_tx,
                    "clients": clients,
                    "connections": pool.connections_for(clients),
                    "transactions": result.transactions,
                    "events": result.events,
                    "seconds": seconds,
                    "single_node_tx_per_s": reference.map(|r| r.tx_per_s),
                    "single_node_p99_ms": reference.and_then(|r| r.p99_ms),
                    "tx_per_s_ratio_to_single_node": tx_ratio,
                    "p99_ratio_to_single_node": p99_ratio,
                    "server_cores_are": "all nodes together",
                    "node_cores": lag.node_cores.iter()
                        .map(|(name, cores)| (name.clone(), json!(cores)))
                        .collect::<serde_json::Map<_, _>>(),
                })),
            })?;

            let p50 = nearest_rank(&lag.behind, 0.5);
            let p99 = nearest_rank(&lag.behind, 0.99);
            let max = lag.behind.last().copied();
            let entries = |v: Option<u64>| v.map_or("–".to_string(), |v| v.to_string());
            let caught_up_ms = caught_up.elapsed.as_secs_f64() * 1000.0;
            let when = if caught_up.checks == 1 {
                "already caught up"
            } else {
                "caught up"
            };
            out.row(&Row {
                measurement: "follower lag",
                setting: format!(
                    "{cell}: applied index behind the leader's commit p50 {} / p99 {} / max {} \
                     entries ({} samples); {when} {caught_up_ms:.1} ms after the load",
                    entries(p50),
                    entries(p99),
                    entries(max),
                    lag.behind.len(),
                ),
                events_per_s: None,
                ops_per_s: None,
                ops_unit: "",
                p50_ms: None,
                p99_ms: None,
                per_fsync: None,
                server_cores: None,
                bench_cores: None,
                extra: fields(json!({
                    "nodes": SIZE,
                    "leader": leader_name,
                    "events_per_tx": events_per_tx,
                    "clients": clients,
                    "sample_every_ms": LAG_SAMPLE_EVERY.as_millis() as u64,
                    "samples": lag.behind.len(),
                    "missed_samples": lag.missed,
                    "behind_p50_entries": p50,
                    "behind_p99_entries": p99,
                    "behind_max_entries": max,
                    "behind_max_per_follower": lag.max_per_follower.iter()
                        .map(|(name, max)| (name.clone(), json!(max)))
                        .collect::<serde_json::Map<_, _>>(),
                    "catch_up_ms": caught_up_ms,
                    "catch_up_checks": caught_up.checks,
                    "catch_up_commit_index": caught_up.target,
                })),
            })?;
        }
    }
    Ok(())
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |r| format!("{r:.2}×"))
}

/// Kills the leader, times the election, restarts the killed node and times its return; as many
/// rounds as the plan says. The cluster is idle meanwhile.
async fn elections(
    cluster: &mut Cluster,
    out: &mut Output,
    plan: &Plan<'_>,
) -> Result<(), BoxError> {
    let mut elected = Latencies::default();
    let mut rejoined = Latencies::default();
    let mut rounds = Vec::new();
    for round in 1..=plan.elections {
        let leader = cluster.wait_formed().await?;
        let killed = cluster.nodes[leader].name.clone();
        let term_before = health(cluster.nodes[leader].http_port).await?.term;
        let survivors: Vec<(String, u16)> = cluster
            .nodes
            .iter()
            .filter(|n| n.name != killed)
            .map(|n| (n.name.clone(), n.http_port))
            .collect();
        eprintln!(
            "election {round}/{}: SIGKILL to the leader, {killed} ...",
            plan.elections
        );
        let killed_at = Instant::now();
        cluster.kill(leader).await;
        let (new_leader, term, agreed_at) =
            wait_for_new_leader(&survivors, &killed, killed_at + ELECTION_TIMEOUT).await?;
        let election = agreed_at - killed_at;
        cluster.check_running()?;
        eprintln!(
            "  {new_leader} leads (term {term}) {:.0} ms after the kill; restarting {killed} ...",
            election.as_secs_f64() * 1000.0
        );
        let restarted_at = Instant::now();
        cluster.start(leader)?;
        cluster.wait_formed().await?;
        let rejoin = restarted_at.elapsed();
        eprintln!(
            "  {killed} is back and UP after {:.0} ms",
            rejoin.as_secs_f64() * 1000.0
        );
        elected.push(election);
        rejoined.push(rejoin);
        rounds.push(json!({
            "killed": killed,
            "term_before": term_before,
            "new_leader": new_leader,
            "term_after": term,
            "election_ms": election.as_secs_f64() * 1000.0,
            "rejoin_ms": rejoin.as_secs_f64() * 1000.0,
        }));
    }
    elected.sort();
    rejoined.sort();
    let rounds = Value::Array(rounds);
    out.row(&spread_row(
        "leader election",
        "SIGKILL to the leader → both survivors name one new leader",
        &elected,
        ELECTION_POLL,
        &rounds,
    ))?;
    out.row(&spread_row(
        "node rejoin",
        "killed node restarted → all 3 UP, one leader, 3 voters",
        &rejoined,
        FORM_POLL,
        &rounds,
    ))?;
    Ok(())
}

/// Polls the survivors' health until both name the same leader, and it is not `killed`. Returns
/// that leader, the highest term reported, and when the agreement was seen.
async fn wait_for_new_leader(
    survivors: &[(String, u16)],
    killed: &str,
    deadline: Instant,
) -> Result<(String, u64, Instant), BoxError> {
    loop {
        let answers = join_all(survivors.iter().map(|(_, port)| health(*port))).await;
        let seen = Instant::now();
        let mut agreed: Option<&str> = None;
        let mut term = 0;
        let mut all_agree = true;
        for answer in &answers {
            match answer
                .as_ref()
                .ok()
                .and_then(|h| Some((h.leader.as_deref()?, h.term)))
            {
                Some((named, t)) if named != killed && agreed.is_none_or(|a| a == named) => {
                    agreed = Some(named);
                    term = term.max(t);
                }
                _ => all_agree = false,
            }
        }
        if let (true, Some(leader)) = (all_agree, agreed) {
            return Ok((leader.to_string(), term, seen));
        }
        if seen >= deadline {
            return Err(format!(
                "the survivors did not agree on a new leader within {} s of killing {killed}",
                ELECTION_TIMEOUT.as_secs()
            )
            .into());
        }
        tokio::time::sleep(ELECTION_POLL).await;
    }
}

/// A row of a few timed rounds: min / median / max in the setting, the median and the top
/// (p99 by nearest rank, which is the max below 100 rounds) in the latency columns.
fn spread_row(
    measurement: &'static str,
    what: &str,
    times: &Latencies,
    poll: Duration,
    rounds: &Value,
) -> Row {
    let ms = |q: f64| {
        times
            .percentile_ms(q)
            .map_or("–".to_string(), |v| format!("{v:.0}"))
    };
    Row {
        measurement,
        setting: format!(
            "{what}, {}: min {} / median {} / max {} ms",
            plural(times.len(), "round"),
            ms(f64::MIN_POSITIVE),
            ms(0.5),
            ms(1.0),
        ),
        events_per_s: None,
        ops_per_s: None,
        ops_unit: "",
        p50_ms: times.percentile_ms(0.5),
        p99_ms: times.percentile_ms(0.99),
        per_fsync: None,
        server_cores: None,
        bench_cores: None,
        extra: fields(json!({
            "nodes": SIZE,
            "rounds": times.len(),
            "min_ms": times.percentile_ms(f64::MIN_POSITIVE),
            "median_ms": times.percentile_ms(0.5),
            "max_ms": times.percentile_ms(1.0),
            "poll_every_ms": poll.as_millis() as u64,
            "each": rounds,
        })),
    }
}

/// What the nodes look like afterwards: events stored, data directory sizes, peak RSS.
async fn summary(cluster: &mut Cluster, out: &mut Output) -> Result<(), BoxError> {
    let leader = cluster.wait_formed().await?;
    let endpoint = format!("http://127.0.0.1:{}", cluster.nodes[leader].grpc_port);
    let mut client = Connection::open(&endpoint).await?.events;
    let events = workloads::event_count(&mut client).await?;
    let mut nodes = serde_json::Map::new();
    let mut text = Vec::new();
    for node in &cluster.nodes {
        let bytes = server::dir_size(&node.dir.join("data"));
        let rss = node
            .server
            .as_ref()
            .and_then(Server::pid)
            .and_then(server::peak_rss_mib);
        text.push(format!(
            "{} {:.1} MiB data{}",
            node.name,
            bytes as f64 / (1024.0 * 1024.0),
            rss.map_or(String::new(), |r| format!(", peak RSS {r:.0} MiB"))
        ));
        nodes.insert(
            node.name.clone(),
            json!({ "data_dir_bytes": bytes, "peak_rss_mib": rss }),
        );
    }
    eprintln!(
        "cluster holds {events} events; {} (peak RSS since each node's last start)",
        text.join("; ")
    );
    out.line(&json!({
        "measurement": "cluster",
        "events": events,
        "leader": cluster.nodes[leader].name,
        "nodes": nodes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_read_from_the_raft_details() {
        let body = json!({
            "status": "UP",
            "components": { "raft": { "status": "UP", "details": {
                "role": "LEADER", "leader": "node-0", "term": 3, "commitIndex": 120,
                "appliedIndex": 118, "lag": 2, "voters": ["node-2", "node-0", "node-1"],
                "peers": [{ "node": "node-1", "matchIndex": 120, "lag": 0 }]
            } } }
        });
        let health = Health::parse(200, &body).expect("a complete health body");
        assert!(health.up);
        assert_eq!(health.leader.as_deref(), Some("node-0"));
        assert_eq!((health.term, health.commit, health.applied), (3, 120, 118));
        assert_eq!(health.voters, 3);

        let no_leader = json!({ "components": { "raft": { "details": {
            "leader": null, "term": 4, "commitIndex": 120, "appliedIndex": 120, "voters": []
        } } } });
        let health = Health::parse(503, &no_leader).expect("a body without a leader");
        assert!(!health.up);
        assert_eq!(health.leader, None);
        assert!(Health::parse(200, &json!({ "status": "UP" })).is_err());
    }

    #[test]
    fn ranks_of_counts() {
        let sorted: Vec<u64> = (1..=200).collect();
        assert_eq!(nearest_rank(&sorted, 0.5), Some(100));
        assert_eq!(nearest_rank(&sorted, 0.99), Some(198));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}
