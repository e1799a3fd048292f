//! Crash test of the real `myelin` binary: eight clients append transactions concurrently, the
//! process is SIGKILLed mid-stream, restarted on the same data, and the event store is checked:
//! contiguous tokens, every acknowledged event present exactly once, no duplicates, atomic
//! transactions, contiguous aggregate streams, and appends (right and wrong sequence) still
//! behaving. A final SIGTERM must stop the node cleanly with exit status 0.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myelin_protocol::grpc::event::{
    Event, GetAggregateEventsRequest, GetLastTokenRequest, ReadHighestSequenceNrRequest,
};
use myelin_testkit::{domain_event, eventually, AxonClient};
use support::{free_ports, into_ledger, lock, read_all_events, Ports, Server, TestDir};

const WRITERS: usize = 8;
const AGGREGATES_PER_WRITER: usize = 5;
const EVENTS_PER_TRANSACTION_MAX: u64 = 5;
const ACKED_TRANSACTIONS_BEFORE_KILL: usize = 300;
const PAYLOAD_TYPE: &str = "CrashTestEvent";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_sigkill_and_restart() {
    let dir = TestDir::new();
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(120), crash_test(dir.path())).await {
        Ok(()) => println!("crash test passed in {:?}", started.elapsed()),
        Err(_) => panic!("crash test did not finish within 120 s"),
    }
}

async fn crash_test(root: &Path) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data directory");

    // ---------------------------------------------------------------- start
    let phase = Instant::now();
    println!("phase: start (data in {})", data.display());
    let (mut first, mut probe) = start_ready(root, &data, "serve-1", free_ports(1)[0]).await;
    let last = last_token(&mut probe).await;
    assert_eq!(last, -1, "a fresh data directory has no events");
    println!(
        "phase: start done in {:?} (gRPC {}, HTTP {}, internal {})",
        phase.elapsed(),
        first.ports.grpc,
        first.ports.http,
        first.ports.internal
    );

    // ---------------------------------------------------------------- append under load
    let phase = Instant::now();
    println!("phase: append under load ({WRITERS} writers)");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        writers.push(tokio::spawn(write_until_error(
            writer,
            first.endpoint(),
            ledger.clone(),
            killed.clone(),
            stop.clone(),
        )));
    }
    let enough = eventually(
        "acknowledged transactions before the kill",
        Duration::from_secs(60),
        || {
            let ledger = lock(&ledger);
            let answer = if !ledger.pre_kill_errors.is_empty() {
                Some(Err(ledger.pre_kill_errors.clone()))
            } else if ledger.acked_transactions >= ACKED_TRANSACTIONS_BEFORE_KILL {
                Some(Ok(ledger.acked_transactions))
            } else {
                None
            };
            async move { answer }
        },
    )
    .await;
    let acked_at_kill = match enough {
        Ok(n) => n,
        Err(errors) => panic!("appends failed before the kill: {errors:#?}"),
    };
    // Every writer must still be appending when the process dies.
    let still_running = writers.iter().filter(|w| !w.is_finished()).count();
    assert_eq!(still_running, WRITERS, "a writer stopped before the kill");
    killed.store(true, Ordering::SeqCst);
    let status = first.sigkill();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        status.signal(),
        Some(9),
        "the first process should have died of SIGKILL, not {status}"
    );
    println!(
        "SIGKILLed pid {} after {acked_at_kill} acknowledged transactions",
        first.pid()
    );
    let mut interrupted = 0;
    for writer in writers {
        let outcome = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("a writer did not stop within 30 s of the kill")
            .expect("a writer panicked");
        if outcome == WriterEnd::Error {
            interrupted += 1;
        }
    }
    let ledger = into_ledger(ledger);
    assert!(
        ledger.pre_kill_errors.is_empty(),
        "appends failed before the kill: {:#?}",
        ledger.pre_kill_errors
    );
    println!(
        "phase: append under load done in {:?}: {} transactions / {} events acknowledged, \
         {} transactions / {} events unknown, {interrupted} writers saw an error",
        phase.elapsed(),
        ledger.acked_transactions,
        ledger.acked.len(),
        ledger.unknown.len(),
        ledger.unknown.iter().map(|t| t.ids.len()).sum::<usize>(),
    );
    let ports = first.ports;
    drop(first);
    drop(probe);

    // ---------------------------------------------------------------- restart
    let phase = Instant::now();
    println!("phase: restart on the same data and ports");
    let (mut second, mut client) = start_ready(root, &data, "serve-2", ports).await;
    println!(
        "phase: restart done in {:?} (gRPC {}, HTTP {})",
        phase.elapsed(),
        second.ports.grpc,
        second.ports.http
    );

    // ---------------------------------------------------------------- verify
    let phase = Instant::now();
    println!("phase: verify");
    let last = last_token(&mut client).await;
    let count = usize::try_from(last + 1).expect("last token is at least -1");
    println!("last token after restart: {last} ({count} events)");
    assert!(
        count >= ledger.acked.len(),
        "the store has {count} events but {} were acknowledged",
        ledger.acked.len()
    );
    let stored = read_all_events(&mut client, count, "crash").await;

    let tokens: Vec<i64> = stored.iter().map(|(token, _)| *token).collect();
    let expected: Vec<i64> = (0..count as i64).collect();
    assert!(
        tokens == expected,
        "tokens are not contiguous 0..{count}: {tokens:?}"
    );

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, event) in &stored {
        *seen.entry(event.message_identifier.as_str()).or_default() += 1;
    }
    let duplicated: Vec<(&str, usize)> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    assert!(
        duplicated.is_empty(),
        "message ids stored more than once: {duplicated:?}"
    );
    let lost: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events are missing after the restart: {lost:?}",
        lost.len()
    );
    let known: HashSet<&str> = ledger
        .acked
        .iter()
        .map(String::as_str)
        .chain(
            ledger
                .unknown
                .iter()
                .flat_map(|t| t.ids.iter().map(String::as_str)),
        )
        .collect();
    let phantoms: Vec<&&str> = seen.keys().filter(|id| !known.contains(**id)).collect();
    assert!(phantoms.is_empty(), "events nobody appended: {phantoms:?}");
    let mut unknown_stored = 0;
    for transaction in &ledger.unknown {
        let present = transaction
            .ids
            .iter()
            .filter(|id| seen.contains_key(id.as_str()))
            .count();
        assert!(
            present == 0 || present == transaction.ids.len(),
            "transaction on {} is partly stored ({present} of {} events): not atomic",
            transaction.aggregate,
            transaction.ids.len()
        );
        if present > 0 {
            unknown_stored += 1;
        }
    }
    println!(
        "{} of {} unknown transactions were stored",
        unknown_stored,
        ledger.unknown.len()
    );

    // Each aggregate's stream: sequences 0..k, the same events in the same order as the global stream.
    let mut by_aggregate: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for (_, event) in &stored {
        by_aggregate
            .entry(event.aggregate_identifier.as_str())
            .or_default()
            .push((
                event.aggregate_sequence_number,
                event.message_identifier.as_str(),
            ));
    }
    let mut heads = HashMap::new();
    for writer in 0..WRITERS {
        for index in 0..AGGREGATES_PER_WRITER {
            let aggregate = aggregate_id(writer, index);
            let events = read_aggregate(&mut client, &aggregate).await;
            let sequences: Vec<i64> = events.iter().map(|e| e.aggregate_sequence_number).collect();
            let expected: Vec<i64> = (0..events.len() as i64).collect();
            assert!(
                sequences == expected,
                "aggregate {aggregate}: sequences are not contiguous from 0: {sequences:?}"
            );
            let from_global = by_aggregate
                .get(aggregate.as_str())
                .cloned()
                .unwrap_or_default();
            let from_aggregate: Vec<(i64, &str)> = events
                .iter()
                .map(|e| (e.aggregate_sequence_number, e.message_identifier.as_str()))
                .collect();
            assert!(
                from_global == from_aggregate,
                "aggregate {aggregate}: its stream differs from the global stream\n\
                 aggregate stream: {from_aggregate:?}\nglobal stream: {from_global:?}"
            );
            let acked_next = ledger.acked_next.get(&aggregate).copied().unwrap_or(0);
            assert!(
                events.len() as i64 >= acked_next,
                "aggregate {aggregate}: {} events stored but {acked_next} acknowledged",
                events.len()
            );
            let highest = client
                .events
                .read_highest_sequence_nr(ReadHighestSequenceNrRequest {
                    aggregate_id: aggregate.clone(),
                    from_sequence_nr: 0,
                })
                .await
                .expect("ReadHighestSequenceNr")
                .into_inner()
                .to_sequence_nr;
            assert_eq!(
                highest,
                events.len() as i64 - 1,
                "aggregate {aggregate}: highest sequence number"
            );
            heads.insert(aggregate, events.len() as i64);
        }
    }
    let aggregate_total: i64 = heads.values().sum();
    assert_eq!(
        aggregate_total, count as i64,
        "the aggregate streams do not add up to the global stream"
    );

    // The next sequence number is accepted; a stale one is refused with AXONIQ-2000.
    let aggregate = ledger
        .unknown
        .first()
        .map_or_else(|| aggregate_id(0, 0), |t| t.aggregate.clone());
    let next = heads[&aggregate];
    let right = domain_event(&aggregate, next, PAYLOAD_TYPE);
    client
        .events
        .append_event(tokio_stream::iter(vec![right.clone()]))
        .await
        .unwrap_or_else(|e| panic!("appending {aggregate} #{next} after the restart: {e:?}"));
    let wrong = domain_event(&aggregate, next, PAYLOAD_TYPE);
    let refused = client
        .events
        .append_event(tokio_stream::iter(vec![wrong]))
        .await
        .expect_err("a second event at the same sequence number must be refused");
    assert_eq!(
        refused.code(),
        tonic::Code::OutOfRange,
        "wrong sequence: {refused:?}"
    );
    assert_eq!(
        refused
            .metadata()
            .get("axoniq-errorcode")
            .and_then(|v| v.to_str().ok()),
        Some("AXONIQ-2000"),
        "wrong sequence: {refused:?}"
    );
    assert_eq!(last_token(&mut client).await, last + 1);
    let events = read_aggregate(&mut client, &aggregate).await;
    assert_eq!(events.len() as i64, next + 1);
    assert_eq!(
        events.last().map(|e| e.message_identifier.as_str()),
        Some(right.message_identifier.as_str())
    );
    println!("phase: verify done in {:?}", phase.elapsed());

    // ---------------------------------------------------------------- stop
    let phase = Instant::now();
    println!("phase: SIGTERM");
    drop(client);
    second.sigterm();
    let status = second
        .wait_for_exit("the node", Duration::from_secs(10))
        .await;
    assert!(
        status.success(),
        "after SIGTERM the node should exit with status 0, not {status}"
    );
    // No client is connected any more, so shutting down needs no timeout or forced close.
    let complaints = second.complaints_after_sigterm("the node");
    assert!(
        complaints.is_empty(),
        "the node did not shut down cleanly: {complaints:#?}"
    );
    println!("phase: SIGTERM done in {:?}: {status}", phase.elapsed());
}

// ==================================================================== writers

/// What the writers know: acknowledged events, transactions whose fate is unknown.
#[derive(Default)]
struct Ledger {
    acked: Vec<String>,
    acked_transactions: usize,
    /// Per aggregate, the sequence number after the last acknowledged event.
    acked_next: HashMap<String, i64>,
    unknown: Vec<Transaction>,
    pre_kill_errors: Vec<String>,
}

struct Transaction {
    aggregate: String,
    ids: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum WriterEnd {
    Error,
    Stopped,
}

fn aggregate_id(writer: usize, index: usize) -> String {
    format!("crash-w{writer}-a{index}")
}

/// Appends 1–5 event transactions to this writer's own aggregates until an append fails.
async fn write_until_error(
    writer: usize,
    endpoint: String,
    ledger: Arc<Mutex<Ledger>>,
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> WriterEnd {
    let mut client = AxonClient::connect(&endpoint, "default", None).await;
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((writer as u64 + 1) * 0x1000_0001));
    let mut next = [0i64; AGGREGATES_PER_WRITER];
    while !stop.load(Ordering::SeqCst) {
        let index = (random.next() % AGGREGATES_PER_WRITER as u64) as usize;
        let size = 1 + random.next() % EVENTS_PER_TRANSACTION_MAX;
        let aggregate = aggregate_id(writer, index);
        let events: Vec<Event> = (0..size as i64)
            .map(|i| domain_event(&aggregate, next[index] + i, PAYLOAD_TYPE))
            .collect();
        let ids: Vec<String> = events
            .iter()
            .map(|e| e.message_identifier.clone())
            .collect();
        let result = client.events.append_event(tokio_stream::iter(events)).await;
        let mut ledger = lock(&ledger);
        match result {
            Ok(response) if response.get_ref().success => {
                next[index] += size as i64;
                ledger.acked.extend(ids);
                ledger.acked_transactions += 1;
                ledger.acked_next.insert(aggregate, next[index]);
            }
            other => {
                if !killed.load(Ordering::SeqCst) {
                    ledger.pre_kill_errors.push(format!(
                        "writer {writer}, {aggregate} #{}..{}: {other:?}",
                        next[index],
                        next[index] + size as i64
                    ));
                }
                ledger.unknown.push(Transaction { aggregate, ids });
                return WriterEnd::Error;
            }
        }
    }
    WriterEnd::Stopped
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ==================================================================== reading

async fn last_token(client: &mut AxonClient) -> i64 {
    client
        .events
        .get_last_token(GetLastTokenRequest {})
        .await
        .expect("GetLastToken")
        .into_inner()
        .token
}

async fn read_aggregate(client: &mut AxonClient, aggregate: &str) -> Vec<Event> {
    let request = GetAggregateEventsRequest {
        aggregate_id: aggregate.to_string(),
        initial_sequence: 0,
        allow_snapshots: false,
        ..Default::default()
    };
    let mut stream = client
        .events
        .list_aggregate_events(request)
        .await
        .expect("ListAggregateEvents")
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Some(event) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("ListAggregateEvents for {aggregate} did not end within 10 s"))
        .expect("ListAggregateEvents stream failed")
    {
        events.push(event);
    }
    events
}

// ==================================================================== the process

/// Starts `myelin serve` on `ports`, its log in `root/{name}.log`.
fn spawn(root: &Path, data: &Path, name: &str, ports: Ports) -> Server {
    let log = root.join(format!("{name}.log"));
    let server = Server::spawn(root, data, ports, log, |command| command);
    println!("started {name}: pid {}", server.pid());
    server
}

/// Waits until the node answers GetLastToken; Err if the process exits first.
async fn wait_ready(server: &mut Server, timeout: Duration) -> Result<AxonClient, ExitStatus> {
    let endpoint = server.endpoint();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.ports.grpc));
    eventually("the node to answer GetLastToken", timeout, || {
        let exited = server.exited();
        let endpoint = endpoint.clone();
        async move {
            if let Some(status) = exited {
                return Some(Err(status));
            }
            let attempt = async {
                tokio::net::TcpStream::connect(addr).await.ok()?;
                let mut client = AxonClient::connect(&endpoint, "default", None).await;
                client
                    .events
                    .get_last_token(GetLastTokenRequest {})
                    .await
                    .ok()?;
                Some(Ok(client))
            };
            tokio::time::timeout(Duration::from_secs(2), attempt)
                .await
                .ok()
                .flatten()
        }
    })
    .await
}

/// Starts the node on `ports` and waits for it; if it cannot listen there (a port taken in the
/// meantime), tries again on fresh ports.
async fn start_ready(root: &Path, data: &Path, name: &str, ports: Ports) -> (Server, AxonClient) {
    let mut ports = ports;
    for attempt in 1..=3 {
        let label = if attempt == 1 {
            name.to_string()
        } else {
            format!("{name}-attempt{attempt}")
        };
        let mut server = spawn(root, data, &label, ports);
        match wait_ready(&mut server, Duration::from_secs(30)).await {
            Ok(client) => return (server, client),
            Err(status) => {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                if log.contains("cannot listen on ports") {
                    println!("{label} could not listen ({status}); trying fresh ports");
                    ports = free_ports(1)[0];
                    continue;
                }
                panic!("{label} exited before answering ({status}):\n{log}");
            }
        }
    }
    panic!("{name}: no free ports after 3 attempts");
}
