//! Cluster crash test of the real `myelin` binary: three processes form a raft cluster, six writers
//! append continuously through all three nodes, the leader is SIGKILLed mid-stream, the survivors
//! elect a new leader while the writers carry on, the killed node restarts on its data and ports
//! and catches up. Then every node is checked: contiguous tokens, the same events in the same
//! order, every acknowledged event present, no aggregate sequence number twice, contiguous
//! aggregate streams, nothing nobody sent. A final SIGTERM must stop all three with status 0.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myelin_protocol::grpc::event::GetLastTokenRequest;
use myelin_testkit::{domain_event, eventually, AxonClient};
use support::{free_ports, into_ledger, lock, read_all_events, Ports, Server, TestDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODES: usize = 3;
const WRITERS: usize = 6;
/// Acknowledged appends before the leader is killed.
const ACKED_BEFORE_KILL: usize = 1000;
/// Further acknowledged appends required after the kill, with two nodes left.
const ACKED_AFTER_KILL: usize = 1000;
/// Further acknowledged appends required once the killed node is back.
const ACKED_AFTER_RESTART: usize = 500;
/// A writer moves on to the next node after this many acknowledged appends, so every node
/// (the restarted one too) keeps receiving appends.
const ROTATE_EVERY: usize = 25;
/// A single append that takes longer than this counts as hung (a failed attempt, reported).
const APPEND_TIMEOUT: Duration = Duration::from_secs(20);
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
const PAYLOAD_TYPE: &str = "ClusterCrashEvent";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_a_sigkilled_leader() {
    let dir = TestDir::new();
    let started = Instant::now();
    match tokio::time::timeout(TEST_TIMEOUT, cluster_crash_test(dir.path())).await {
        Ok(()) => println!("cluster crash test passed in {:?}", started.elapsed()),
        Err(_) => panic!("cluster crash test did not finish within {TEST_TIMEOUT:?}"),
    }
}

async fn cluster_crash_test(root: &Path) {
    // ---------------------------------------------------------------- start
    let phase = Instant::now();
    println!("phase: start {NODES} nodes (data under {})", root.display());
    let (mut nodes, formed) = start_cluster(root).await;
    println!(
        "phase: start done in {:?}: leader {} (term {}), voters {:?}",
        phase.elapsed(),
        formed.leader,
        formed.term,
        formed.voters
    );
    for node in &nodes {
        println!(
            "  {}: pid {}, gRPC {}, HTTP {}, internal {}",
            node.name,
            node.server.pid(),
            node.server.ports.grpc,
            node.server.ports.http,
            node.server.ports.internal
        );
    }
    let mut clients = Vec::new();
    for node in &nodes {
        clients.push(AxonClient::connect(&node.server.endpoint(), "default", None).await);
    }
    assert_eq!(
        last_token(&mut clients[0]).await,
        Some(-1),
        "a fresh cluster has no events"
    );

    // ---------------------------------------------------------------- append under load
    let phase = Instant::now();
    println!("phase: append under load ({WRITERS} writers, one aggregate each)");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(write_continuously(
                writer,
                clients.clone(),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let acked_at_kill = wait_for_acks(
        "acknowledged appends before the kill",
        &ledger,
        ACKED_BEFORE_KILL,
    )
    .await;
    let still_running = writers.iter().filter(|w| !w.is_finished()).count();
    assert_eq!(still_running, WRITERS, "a writer stopped before the kill");
    println!(
        "phase: append under load done in {:?}: {acked_at_kill} appends acknowledged",
        phase.elapsed()
    );

    // ---------------------------------------------------------------- kill the leader
    let phase = Instant::now();
    println!("phase: SIGKILL the leader");
    // The leader may have changed since the cluster formed: ask again, right before the kill.
    let before = wait_for_agreement("a leader before the kill", &mut nodes, false).await;
    let victim = index_of(&nodes, &before.leader);
    let acked_at_kill = lock(&ledger).acked.len();
    let killed_at = Instant::now();
    let status = nodes[victim].server.sigkill();
    assert_eq!(
        status.signal(),
        Some(9),
        "{} should have died of SIGKILL, not {status}",
        nodes[victim].name
    );
    println!(
        "SIGKILLed {} (pid {}, leader of term {}) after {acked_at_kill} acknowledged appends",
        nodes[victim].name,
        nodes[victim].server.pid(),
        before.term
    );
    let survivors: Vec<usize> = (0..NODES).filter(|i| *i != victim).collect();
    let killed_name = nodes[victim].name.clone();
    let ports: Vec<u16> = survivors
        .iter()
        .map(|i| nodes[*i].server.ports.http)
        .collect();
    let after = eventually(
        "the survivors agree on a new leader",
        Duration::from_secs(30),
        || {
            let ports = ports.clone();
            let killed_name = killed_name.clone();
            async move {
                let mut healths = Vec::new();
                for port in ports {
                    healths.push(health(port).await?);
                }
                let leader = healths[0].leader.clone()?;
                let agreed = leader != killed_name
                    && healths
                        .iter()
                        .all(|h| h.leader.as_deref() == Some(leader.as_str()))
                    && healths
                        .iter()
                        .any(|h| h.role == "LEADER" && h.term > before.term);
                agreed.then(|| (leader, healths.iter().map(|h| h.term).max().unwrap_or(0)))
            }
        },
    )
    .await;
    let election = killed_at.elapsed();
    println!(
        "new leader {} (term {}) agreed by both survivors {:?} after the kill",
        after.0, after.1, election
    );
    let acked_after = wait_for_acks(
        "acknowledged appends after the kill",
        &ledger,
        acked_at_kill + ACKED_AFTER_KILL,
    )
    .await;
    println!(
        "phase: kill done in {:?}: {} appends acknowledged since the kill",
        phase.elapsed(),
        acked_after - acked_at_kill
    );

    // ---------------------------------------------------------------- restart the killed node
    let phase = Instant::now();
    println!(
        "phase: restart {} on its data and ports",
        nodes[victim].name
    );
    nodes[victim].respawn("restart").await;
    let rejoined = wait_for_agreement("all three nodes UP again", &mut nodes, true).await;
    let (acked_at_restart, victim_acked_at_restart) = {
        let ledger = lock(&ledger);
        (ledger.acked.len(), ledger.acked_by_node[victim])
    };
    wait_for_acks(
        "acknowledged appends after the restart",
        &ledger,
        acked_at_restart + ACKED_AFTER_RESTART,
    )
    .await;
    let what = format!(
        "appends acknowledged by the restarted {}",
        nodes[victim].name
    );
    let served = eventually(&what, Duration::from_secs(60), || {
        let served = lock(&ledger).acked_by_node[victim] - victim_acked_at_restart;
        async move { (served >= ROTATE_EVERY).then_some(served) }
    })
    .await;
    println!(
        "phase: restart done in {:?}: {} is UP (pid {}) and acknowledged {served} appends, \
         leader {} (term {})",
        phase.elapsed(),
        nodes[victim].name,
        nodes[victim].server.pid(),
        rejoined.leader,
        rejoined.term
    );

    // ---------------------------------------------------------------- stop the writers
    let phase = Instant::now();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        tokio::time::timeout(APPEND_TIMEOUT + Duration::from_secs(10), writer)
            .await
            .expect("a writer did not stop")
            .expect("a writer panicked");
    }
    let ledger = into_ledger(ledger);
    ledger.print_summary();
    assert!(
        ledger.unexpected.is_empty(),
        "appends refused in a way the writers cannot explain: {:#?}",
        ledger.unexpected
    );
    assert!(
        ledger.hung.is_empty(),
        "appends that got no answer within {APPEND_TIMEOUT:?}: {:#?}",
        ledger.hung
    );

    // All nodes UP with the same last token, twice in a row (so nothing is still moving).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut previous: Option<i64> = None;
    let last = loop {
        let (stable, seen) = converged(&nodes, &mut clients, previous).await;
        if let Some(token) = stable {
            break token;
        }
        previous = seen;
        assert!(
            Instant::now() < deadline,
            "the nodes did not converge on one last token within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let count = usize::try_from(last + 1).expect("last token is at least -1");
    println!(
        "phase: writers stopped, all nodes converged in {:?}: last token {last} ({count} events)",
        phase.elapsed()
    );

    // ---------------------------------------------------------------- verify every node
    let phase = Instant::now();
    println!("phase: verify every node");
    let mut reference: Option<Vec<String>> = None;
    for (index, client) in clients.iter_mut().enumerate() {
        let stored = read_all_events(client, count, "cluster-crash").await;
        let tokens: Vec<i64> = stored.iter().map(|(token, _)| *token).collect();
        let expected: Vec<i64> = (0..count as i64).collect();
        assert!(
            tokens == expected,
            "node {index}: tokens are not contiguous 0..{count}: {tokens:?}"
        );
        let ids: Vec<String> = stored
            .iter()
            .map(|(_, e)| e.message_identifier.clone())
            .collect();
        let present: HashSet<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            present.len(),
            ids.len(),
            "node {index}: a message id is stored more than once"
        );
        let missing: Vec<&String> = ledger
            .acked
            .iter()
            .filter(|id| !present.contains(id.as_str()))
            .collect();
        let phantoms: Vec<&&str> = present
            .iter()
            .filter(|id| !ledger.attempted.contains(**id))
            .collect();
        let mut pairs = HashSet::new();
        let mut streams: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (token, event) in &stored {
            assert!(
                pairs.insert((
                    event.aggregate_identifier.as_str(),
                    event.aggregate_sequence_number
                )),
                "node {index}: aggregate {} has sequence {} twice (token {token})",
                event.aggregate_identifier,
                event.aggregate_sequence_number
            );
            streams
                .entry(event.aggregate_identifier.as_str())
                .or_default()
                .push(event.aggregate_sequence_number);
            if let Some((aggregate, sequence)) = ledger.acked_at.get(&event.message_identifier) {
                assert!(
                    *aggregate == event.aggregate_identifier
                        && *sequence == event.aggregate_sequence_number,
                    "node {index}: event {} was acknowledged as {aggregate} #{sequence} but is \
                     stored as {} #{}",
                    event.message_identifier,
                    event.aggregate_identifier,
                    event.aggregate_sequence_number
                );
            }
        }
        println!(
            "node {index}: {} events acknowledged, {} found, {} missing",
            ledger.acked.len(),
            ids.len(),
            missing.len()
        );
        assert!(
            missing.is_empty(),
            "node {index}: {} acknowledged events are missing: {missing:?}",
            missing.len()
        );
        assert!(
            phantoms.is_empty(),
            "node {index}: events nobody appended: {phantoms:?}"
        );
        for (aggregate, sequences) in &streams {
            let expected: Vec<i64> = (0..sequences.len() as i64).collect();
            assert!(
                *sequences == expected,
                "node {index}: aggregate {aggregate}: sequences are not contiguous from 0: \
                 {sequences:?}"
            );
            // Everything up to the last known commit, plus at most the writer's last attempt
            // if its outcome was never learnt.
            let acked_next = ledger.acked_next.get(*aggregate).copied().unwrap_or(0);
            let unknown_tail = i64::from(ledger.ended_uncertain.contains(*aggregate));
            let stored = sequences.len() as i64;
            assert!(
                stored >= acked_next && stored <= acked_next + unknown_tail,
                "node {index}: aggregate {aggregate}: {stored} events stored, {acked_next} known \
                 to be committed (last attempt of unknown outcome: {})",
                unknown_tail == 1
            );
        }
        for (aggregate, acked_next) in &ledger.acked_next {
            let stored = streams.get(aggregate.as_str()).map_or(0, Vec::len) as i64;
            assert!(
                stored >= *acked_next,
                "node {index}: aggregate {aggregate}: {stored} events stored, {acked_next} known \
                 to be committed"
            );
        }
        match &reference {
            None => reference = Some(ids),
            Some(expected) => {
                let first_difference = expected.iter().zip(&ids).position(|(a, b)| a != b);
                assert!(
                    *expected == ids,
                    "node {index} differs from node 0 (first difference at token \
                     {first_difference:?})"
                );
            }
        }
    }
    println!("phase: verify done in {:?}", phase.elapsed());

    // ---------------------------------------------------------------- stop
    let phase = Instant::now();
    println!("phase: SIGTERM all nodes");
    drop(clients);
    for node in &nodes {
        node.server.sigterm();
    }
    for node in &mut nodes {
        let status = node
            .server
            .wait_for_exit(&node.name, Duration::from_secs(30))
            .await;
        let complaints = node.server.complaints_after_sigterm(&node.name);
        assert!(
            status.success(),
            "after SIGTERM {} should exit with status 0, not {status}",
            node.name
        );
        assert!(
            complaints.is_empty(),
            "{} did not shut down cleanly: {complaints:#?}",
            node.name
        );
        println!("  {}: {status}", node.name);
    }
    println!("phase: SIGTERM done in {:?}", phase.elapsed());
}

// ==================================================================== the cluster's view

/// What one node's `/actuator/health` says.
#[derive(Debug, Clone)]
struct Health {
    /// HTTP 200: the node has a leader and is caught up.
    up: bool,
    role: String,
    leader: Option<String>,
    term: u64,
    voters: Vec<String>,
}

/// `/actuator/health` of the node on this HTTP port; `None` when it does not answer (in 2 s).
async fn health(port: u16) -> Option<Health> {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(
                b"GET /actuator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)?
        } else {
            body.to_string()
        };
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let raft = &json["components"]["raft"]["details"];
        Some(Health {
            up: code == 200,
            role: raft["role"].as_str()?.to_string(),
            leader: raft["leader"].as_str().map(str::to_string),
            term: raft["term"].as_u64()?,
            voters: raft["voters"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        })
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// The cluster as all asked nodes agree on it.
#[derive(Debug)]
struct Agreement {
    leader: String,
    term: u64,
    voters: Vec<String>,
}

/// Waits until all nodes name the same leader, which calls itself LEADER, with 3 voters each;
/// with `need_up` also until every node is UP (HTTP 200: caught up). Panics early (with its log)
/// if one of the processes exits.
async fn wait_for_agreement(what: &str, nodes: &mut [Node], need_up: bool) -> Agreement {
    eventually(what, Duration::from_secs(60), || {
        for node in nodes.iter_mut() {
            node.assert_running();
        }
        let ports: Vec<(String, u16)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.server.ports.http))
            .collect();
        async move {
            let mut healths = Vec::new();
            for (name, port) in ports {
                healths.push((name, health(port).await?));
            }
            let leader = healths[0].1.leader.clone()?;
            let agreed = healths.iter().all(|(name, h)| {
                (h.up || !need_up)
                    && h.leader.as_deref() == Some(leader.as_str())
                    && h.voters.len() == NODES
                    && (*name != leader || h.role == "LEADER")
            });
            agreed.then(|| Agreement {
                leader,
                term: healths.iter().map(|(_, h)| h.term).max().unwrap_or(0),
                voters: healths[0].1.voters.clone(),
            })
        }
    })
    .await
}

fn index_of(nodes: &[Node], name: &str) -> usize {
    nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node is named {name}"))
}

/// Every node UP with the same last token: (that token if it equals `previous`, the token).
async fn converged(
    nodes: &[Node],
    clients: &mut [AxonClient],
    previous: Option<i64>,
) -> (Option<i64>, Option<i64>) {
    let mut tokens = HashSet::new();
    for (node, client) in nodes.iter().zip(clients.iter_mut()) {
        if !health(node.server.ports.http).await.is_some_and(|h| h.up) {
            return (None, None);
        }
        match last_token(client).await {
            Some(token) => tokens.insert(token),
            None => return (None, None),
        };
    }
    if tokens.len() != 1 {
        return (None, None);
    }
    let token = tokens.into_iter().next();
    (token.filter(|t| previous == Some(*t)), token)
}

// ==================================================================== writers

/// What the writers know.
#[derive(Default)]
struct Ledger {
    /// Acknowledged message ids, in the order of their acknowledgements.
    acked: Vec<String>,
    /// When each append was acknowledged (the longest gap is the write outage).
    ack_times: Vec<Instant>,
    /// Every message id ever sent, acknowledged or not.
    attempted: HashSet<String>,
    /// Where each acknowledged event was appended: (aggregate, sequence number).
    acked_at: HashMap<String, (String, i64)>,
    /// Per aggregate, the sequence number after the last event known to be committed.
    acked_next: HashMap<String, i64>,
    /// Aggregates whose writer stopped after an attempt of unknown outcome: that last attempt
    /// may or may not be stored.
    ended_uncertain: HashSet<String>,
    /// Acknowledged appends per node the writer sent them to.
    acked_by_node: [usize; NODES],
    /// Failed attempts by error (Axon code, gRPC code, or "timeout").
    failures: BTreeMap<String, usize>,
    /// The first message seen for each kind of failure.
    failure_examples: BTreeMap<String, String>,
    /// AXONIQ-2000 after an attempt of unknown outcome: that attempt had committed.
    advanced_on_conflict: usize,
    /// AXONIQ-2000 where the writer knows no attempt of that sequence could have committed.
    unexpected: Vec<String>,
    /// Appends without an answer within `APPEND_TIMEOUT`.
    hung: Vec<String>,
}

impl Ledger {
    fn print_summary(&self) {
        let longest_gap = self
            .ack_times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        println!(
            "writers: {} appends acknowledged (by node: {:?}), {} sent, {} retried sequences \
             had committed; failed attempts: {:?}; longest gap between acknowledgements: {:?}",
            self.acked.len(),
            self.acked_by_node,
            self.attempted.len(),
            self.advanced_on_conflict,
            self.failures,
            longest_gap
        );
        for (kind, example) in &self.failure_examples {
            println!("  first {kind}: {example}");
        }
    }
}

/// Waits until `target` appends are acknowledged; panics early on an unexplainable refusal.
async fn wait_for_acks(what: &str, ledger: &Mutex<Ledger>, target: usize) -> usize {
    eventually(what, Duration::from_secs(60), || {
        let ledger = lock(ledger);
        assert!(
            ledger.unexpected.is_empty(),
            "appends refused in a way the writers cannot explain: {:#?}",
            ledger.unexpected
        );
        let acked = ledger.acked.len();
        async move { (acked >= target).then_some(acked) }
    })
    .await
}

/// Appends one event at a time to this writer's own aggregate, sequence numbers 0, 1, 2, ...
/// A failed append moves the writer to the next node and sends the same sequence number again
/// (a new message id). If that is refused with AXONIQ-2000, the earlier attempt did commit after
/// all, and the writer moves on to the next sequence number.
async fn write_continuously(
    writer: usize,
    clients: Vec<AxonClient>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let aggregate = format!("cluster-crash-w{writer}");
    let mut node = writer % clients.len();
    let mut sequence = 0i64;
    // Whether an earlier attempt at `sequence` may have committed without an acknowledgement.
    let mut uncertain = false;
    while !stop.load(Ordering::SeqCst) {
        let event = domain_event(&aggregate, sequence, PAYLOAD_TYPE);
        let id = event.message_identifier.clone();
        lock(&ledger).attempted.insert(id.clone());
        let mut client = clients[node].clone();
        let result = tokio::time::timeout(
            APPEND_TIMEOUT,
            client.events.append_event(tokio_stream::iter(vec![event])),
        )
        .await;
        let failure = match result {
            Ok(Ok(response)) if response.get_ref().success => None,
            Ok(Ok(_)) => Some(("success=false".to_string(), String::new())),
            Ok(Err(status)) => Some((
                status
                    .metadata()
                    .get("axoniq-errorcode")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| format!("{:?}", status.code()), str::to_string),
                format!("{:?}: {}", status.code(), status.message()),
            )),
            Err(_) => Some((
                "timeout".to_string(),
                format!("no answer in {APPEND_TIMEOUT:?}"),
            )),
        };
        {
            let mut ledger = lock(&ledger);
            let Some((failure, message)) = failure else {
                ledger
                    .acked_at
                    .insert(id.clone(), (aggregate.clone(), sequence));
                ledger.acked.push(id);
                ledger.ack_times.push(Instant::now());
                ledger.acked_by_node[node] += 1;
                sequence += 1;
                ledger.acked_next.insert(aggregate.clone(), sequence);
                uncertain = false;
                if (sequence as usize).is_multiple_of(ROTATE_EVERY) {
                    node = (node + 1) % clients.len();
                }
                continue;
            };
            ledger
                .failure_examples
                .entry(failure.clone())
                .or_insert_with(|| format!("node {node}: {message}"));
            if failure == "timeout" {
                ledger
                    .hung
                    .push(format!("{aggregate} #{sequence} on node {node}"));
            }
            if failure == "AXONIQ-2000" {
                if uncertain {
                    ledger.advanced_on_conflict += 1;
                    sequence += 1;
                    ledger.acked_next.insert(aggregate.clone(), sequence);
                    uncertain = false;
                } else {
                    ledger.unexpected.push(format!(
                        "{aggregate} #{sequence} on node {node}: AXONIQ-2000, but every earlier \
                         sequence was acknowledged and no attempt at this one can have committed"
                    ));
                }
            } else {
                uncertain = true;
            }
            *ledger.failures.entry(failure).or_default() += 1;
        }
        node = (node + 1) % clients.len();
        // Not for correctness: keeps a writer from spinning on a node that refuses at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if uncertain {
        lock(&ledger).ended_uncertain.insert(aggregate);
    }
}

// ==================================================================== reading

/// The node's last token; `None` when it does not answer (in 5 s).
async fn last_token(client: &mut AxonClient) -> Option<i64> {
    let call = client.events.get_last_token(GetLastTokenRequest {});
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Ok(response)) => Some(response.into_inner().token),
        _ => None,
    }
}

// ==================================================================== the processes

/// A cluster member: its running `myelin serve` and what it takes to start it again.
struct Node {
    name: String,
    server: Server,
    data: PathBuf,
    /// `autocluster.first`: the internal address of node 0.
    first: String,
    root: PathBuf,
}

impl Node {
    fn spawn(root: &Path, data: &Path, name: &str, label: &str, ports: Ports, first: &str) -> Node {
        std::fs::create_dir_all(data).expect("data directory");
        Node {
            name: name.to_string(),
            server: start_process(root, data, name, label, ports, first),
            data: data.to_path_buf(),
            first: first.to_string(),
            root: root.to_path_buf(),
        }
    }

    /// Starts the (exited) process again on the same data and ports; retries while a port is still
    /// taken.
    async fn respawn(&mut self, label: &str) {
        for attempt in 1..=10 {
            let label = format!("{label}-{attempt}");
            self.server = start_process(
                &self.root,
                &self.data,
                &self.name,
                &label,
                self.server.ports,
                &self.first,
            );
            // Either it runs past binding its ports, or it exits.
            let outcome = eventually(
                "the restarted node to bind or exit",
                Duration::from_secs(30),
                || {
                    let exited = self.server.exited();
                    let port = self.server.ports.http;
                    async move {
                        if let Some(status) = exited {
                            return Some(Err(status));
                        }
                        health(port).await.map(|_| Ok(()))
                    }
                },
            )
            .await;
            match outcome {
                Ok(()) => return,
                Err(status) => {
                    let log = std::fs::read_to_string(&self.server.log).unwrap_or_default();
                    assert!(
                        log.contains("cannot listen on ports"),
                        "{} exited after the restart ({status}):\n{log}",
                        self.name
                    );
                    println!(
                        "{} could not listen yet ({status}); trying again",
                        self.name
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        panic!("{}: its ports stayed busy after 10 attempts", self.name);
    }

    /// Panics with the node's log if its process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.server.exited() {
            let log = std::fs::read_to_string(&self.server.log).unwrap_or_default();
            panic!("{} exited unexpectedly ({status}):\n{log}", self.name);
        }
    }
}

/// Starts `myelin serve` as cluster member `name`, its log in `root/{name}-{label}.log`.
fn start_process(
    root: &Path,
    data: &Path,
    name: &str,
    label: &str,
    ports: Ports,
    first: &str,
) -> Server {
    let log = root.join(format!("{name}-{label}.log"));
    let set = |key: &str, value: &str| ["--set".to_string(), format!("{key}={value}")];
    let server = Server::spawn(root, data, ports, log, |command| {
        command
            .args(set("axoniq.axonserver.name", name))
            .args(set("axoniq.axonserver.hostname", "127.0.0.1"))
            .args(set("axoniq.axonserver.internal-hostname", "127.0.0.1"))
            .args(set("axoniq.axonserver.autocluster.first", first))
            // Plain text logs (they are files, not a terminal).
            .env("NO_COLOR", "1")
    });
    println!("started {name} ({label}): pid {}", server.pid());
    server
}

/// Starts the three nodes (node 0 is `autocluster.first`) and waits until they agree on a leader
/// with three voters. If a node cannot listen on its ports (taken in the meantime), starts over
/// with fresh ports and fresh data directories.
async fn start_cluster(root: &Path) -> (Vec<Node>, Agreement) {
    for attempt in 1..=3 {
        let ports = free_ports(NODES);
        let first = format!("127.0.0.1:{}", ports[0].internal);
        let mut nodes: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(index, ports)| {
                let name = format!("node-{index}");
                let data = root.join(format!("attempt-{attempt}")).join(&name);
                Node::spawn(
                    root,
                    &data,
                    &name,
                    &format!("start-{attempt}"),
                    *ports,
                    &first,
                )
            })
            .collect();
        // Give a node that cannot bind a moment to exit before waiting for the cluster.
        let busy = eventually(
            "every node to bind or exit",
            Duration::from_secs(30),
            || {
                let mut exited = None;
                let mut waiting = Vec::new();
                for node in nodes.iter_mut() {
                    match node.server.exited() {
                        Some(status) => {
                            exited = Some((node.name.clone(), status, node.server.log.clone()))
                        }
                        None => waiting.push(node.server.ports.http),
                    }
                }
                async move {
                    if let Some(exited) = exited {
                        return Some(Some(exited));
                    }
                    for port in waiting {
                        health(port).await?;
                    }
                    Some(None)
                }
            },
        )
        .await;
        if let Some((name, status, log)) = busy {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("cannot listen on ports"),
                "{name} exited at start ({status}):\n{text}"
            );
            println!("{name} could not listen ({status}); starting over on fresh ports");
            continue;
        }
        let formed = wait_for_agreement("the cluster forms", &mut nodes, true).await;
        return (nodes, formed);
    }
    panic!("no free ports for the cluster after 3 attempts");
}
