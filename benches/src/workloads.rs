//! The four measurements: the disk's fsync rate, appends, a tracking read from token 0, and
//! aggregate loads.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use myelin_protocol::grpc::event::{Event, GetAggregateEventsRequest, GetEventsRequest};
use myelin_protocol::grpc::SerializedObject;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::grpc::{self, Client, Pool};
use crate::report::Latencies;
use crate::server::cpu_seconds;
use crate::BoxError;

/// Axon Framework's tracking stream flow control as the brief for this bench states it.
const INITIAL_PERMITS: i64 = 5000;
const REFILL_PERMITS: i64 = 1250;
/// The longest a tracking read or an aggregate load may wait for its next event.
const STREAM_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Timing of one measurement: warm-up first (not recorded), then the measured window.
#[derive(Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// CPU use of the server (or, in the cluster part, of all its nodes together) and of this
/// process over a stretch of wall time.
#[derive(Clone)]
pub struct CpuProbe {
    server_pids: Vec<String>,
}

pub struct CpuMark {
    at: Instant,
    server: Option<f64>,
    bench: Option<f64>,
}

impl CpuProbe {
    /// A probe of these server processes (none: the server's CPU is not measured).
    pub fn new(server_pids: impl IntoIterator<Item = u32>) -> CpuProbe {
        CpuProbe {
            server_pids: server_pids.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    pub fn mark(&self) -> CpuMark {
        let server = if self.server_pids.is_empty() {
            None
        } else {
            self.server_pids
                .iter()
                .map(|pid| cpu_seconds(pid))
                .sum::<Option<f64>>()
        };
        CpuMark {
            at: Instant::now(),
            server,
            bench: cpu_seconds("self"),
        }
    }

    /// Cores used (server, bench) since `start`.
    pub fn cores_since(&self, start: &CpuMark) -> (Option<f64>, Option<f64>) {
        let end = self.mark();
        let wall = end.at.duration_since(start.at).as_secs_f64();
        let cores = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall),
            _ => None,
        };
        (
            cores(start.server, end.server),
            cores(start.bench, end.bench),
        )
    }
}

// -------------------------------------------------------------------------------------------
// fsync baseline

pub struct FsyncResult {
    pub count: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

/// Appends 4 KiB to a new file in `dir` and `sync_data`s it, `count` times: the rate of synced
/// appends this disk allows, which bounds a node that syncs every raft append.
pub async fn fsync_baseline(dir: &Path, count: usize) -> Result<FsyncResult, BoxError> {
    let path = dir.join("fsync-baseline.bin");
    tokio::task::spawn_blocking(move || {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let block = vec![0xA5u8; 4096];
        let mut latencies = Latencies::default();
        let start = std::time::Instant::now();
        for _ in 0..count {
            let t = std::time::Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            latencies.push(t.elapsed());
        }
        let elapsed = start.elapsed();
        drop(file);
        std::fs::remove_file(&path)?;
        Ok(FsyncResult {
            count,
            elapsed,
            latencies,
        })
    })
    .await
    .map_err(|e| format!("the fsync task failed: {e}"))?
}

// -------------------------------------------------------------------------------------------
// appends

/// Makes events with payloads of random printable characters: every event's payload differs and
/// does not compress, so the disk sees its full size (real JSON or XML would compress somewhat).
#[derive(Clone)]
pub struct EventMaker {
    payload_bytes: usize,
    state: u64,
}

impl EventMaker {
    pub fn new(payload_bytes: usize, seed: u64) -> EventMaker {
        EventMaker {
            payload_bytes,
            state: seed | 1,
        }
    }

    /// A maker of its own for client `index`, so clients never share a random sequence.
    pub fn for_client(&self, index: usize) -> EventMaker {
        let mut maker = EventMaker {
            payload_bytes: self.payload_bytes,
            state: (self.state ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        };
        maker.next();
        maker
    }

    /// The events of one transaction: `count` events of `aggregate` from sequence `first`.
    pub fn transaction(&mut self, aggregate: &str, first: i64, count: usize) -> Vec<Event> {
        (0..count as i64)
            .map(|offset| {
                let mut event = myelin_testkit::domain_event(aggregate, first + offset, "");
                event.aggregate_type = "BenchAggregate".to_string();
                event.payload = Some(SerializedObject {
                    r#type: "io.myelin.bench.SomethingHappened".to_string(),
                    revision: "1".to_string(),
                    data: self.payload(),
                });
                event
            })
            .collect()
    }

    fn payload(&mut self) -> Vec<u8> {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::with_capacity(self.payload_bytes);
        while out.len() < self.payload_bytes {
            let mut bits = self.next();
            for _ in 0..10 {
                if out.len() == self.payload_bytes {
                    break;
                }
                out.push(ALPHABET[(bits & 63) as usize]);
                bits >>= 6;
            }
        }
        out
    }

    /// xorshift64*: fast, and plenty random for payload bytes.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

pub struct AppendResult {
    pub transactions: usize,
    pub events: usize,
    /// From the end of the warm-up to the last measured transaction's confirmation.
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub cores: (Option<f64>, Option<f64>),
}

/// `clients` clients, each appending `events_per_tx`-event transactions to its own aggregate as
/// fast as confirmations come back, for the window. Transactions started during the measured
/// window count; the last one may end a little after it.
pub async fn append_cell(
    pool: &Pool,
    maker: &EventMaker,
    prefix: &str,
    events_per_tx: usize,
    clients: usize,
    window: Window,
    cpu: &CpuProbe,
) -> Result<AppendResult, BoxError> {
    let start = Instant::now();
    let measured_from = start + window.warmup;
    let end = measured_from + window.measure;
    let mut tasks = JoinSet::new();
    for index in 0..clients {
        let mut client = pool.client(index);
        let mut maker = maker.for_client(index);
        let aggregate = format!("{prefix}-{events_per_tx}x{clients}-{index}");
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            let mut last_done = None;
            let mut sequence = 0i64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let events = maker.transaction(&aggregate, sequence, events_per_tx);
                grpc::append(&mut client, events).await?;
                sequence += events_per_tx as i64;
                let done = Instant::now();
                if began >= measured_from {
                    latencies.push(done - began);
                    last_done = Some(done);
                }
            }
            Ok::<_, BoxError>((latencies, last_done))
        });
    }
    tokio::time::sleep_until(measured_from).await;
    let mark = cpu.mark();
    tokio::time::sleep_until(end).await;
    let cores = cpu.cores_since(&mark);

    let mut latencies = Latencies::default();
    let mut last_done = measured_from;
    while let Some(joined) = tasks.join_next().await {
        let (client_latencies, client_last) =
            joined.map_err(|e| format!("an append client failed: {e}"))??;
        latencies.extend(client_latencies);
        if let Some(done) = client_last {
            last_done = last_done.max(done);
        }
    }
    latencies.sort();
    let transactions = latencies.len();
    Ok(AppendResult {
        transactions,
        events: transactions * events_per_tx,
        elapsed: last_done - measured_from,
        latencies,
        cores,
    })
}

/// Appends `total` events in `events_per_tx`-event transactions from `clients` clients, each to
/// one aggregate of its own named `{prefix}-{client}`.
pub async fn fill(
    pool: &Pool,
    maker: &EventMaker,
    prefix: &str,
    clients: usize,
    events_per_tx: usize,
    total: usize,
) -> Result<(), BoxError> {
    let clients = clients.max(1);
    let mut tasks = JoinSet::new();
    for index in 0..clients {
        let mut client = pool.client(index);
        let mut maker = maker.for_client(index);
        let aggregate = format!("{prefix}-{index}");
        let mine = total / clients + usize::from(index < total % clients);
        tasks.spawn(async move {
            let mut sequence = 0usize;
            while sequence < mine {
                let count = events_per_tx.min(mine - sequence);
                let events = maker.transaction(&aggregate, sequence as i64, count);
                grpc::append(&mut client, events).await?;
                sequence += count;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| format!("a filling client failed: {e}"))??;
    }
    Ok(())
}

/// The number of events in the store (the last token + 1).
pub async fn event_count(client: &mut Client) -> Result<u64, BoxError> {
    let last = client
        .get_last_token(myelin_protocol::grpc::event::GetLastTokenRequest {})
        .await
        .map_err(|s| format!("GetLastToken failed: {}", s.message()))?
        .into_inner()
        .token;
    Ok(u64::try_from(last + 1).unwrap_or(0))
}

// -------------------------------------------------------------------------------------------
// tracking read

pub struct ReadResult {
    pub events: u64,
    pub elapsed: Duration,
    pub cores: (Option<f64>, Option<f64>),
}

/// Opens a tracking stream at token 0 and reads `expected` events, granting permits the way Axon
/// Framework does; checks that tokens arrive gap-free and in order.
pub async fn tracking_read(
    client: &mut Client,
    expected: u64,
    cpu: &CpuProbe,
) -> Result<ReadResult, BoxError> {
    let (requests, inbound) = mpsc::channel(16);
    requests
        .send(GetEventsRequest {
            tracking_token: 0,
            number_of_permits: INITIAL_PERMITS,
            client_id: "myelin-bench".to_string(),
            component_name: "myelin-bench".to_string(),
            processor: "bench-tracking-processor".to_string(),
            ..Default::default()
        })
        .await
        .map_err(|_| "cannot queue the first GetEventsRequest")?;
    let mark = cpu.mark();
    let start = Instant::now();
    let mut stream = client
        .list_events(ReceiverStream::new(inbound))
        .await
        .map_err(|s| format!("ListEvents failed: {}", s.message()))?
        .into_inner();
    let mut next = 0u64;
    let mut since_refill = 0i64;
    while next < expected {
        let message = tokio::time::timeout(STREAM_STALL_TIMEOUT, stream.message())
            .await
            .map_err(|_| format!("no event for {STREAM_STALL_TIMEOUT:?} after token {next}"))?
            .map_err(|s| format!("ListEvents broke after {next} events: {}", s.message()))?
            .ok_or_else(|| format!("ListEvents ended after {next} of {expected} events"))?;
        if message.token != next as i64 {
            return Err(format!("expected token {next}, got {}", message.token).into());
        }
        next += 1;
        since_refill += 1;
        if since_refill == REFILL_PERMITS {
            since_refill = 0;
            requests
                .send(GetEventsRequest {
                    number_of_permits: REFILL_PERMITS,
                    ..Default::default()
                })
                .await
                .map_err(|_| "the ListEvents request stream closed")?;
        }
    }
    let elapsed = start.elapsed();
    let cores = cpu.cores_since(&mark);
    Ok(ReadResult {
        events: next,
        elapsed,
        cores,
    })
}

// -------------------------------------------------------------------------------------------
// aggregate loads

pub struct LoadResult {
    pub loads: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub cores: (Option<f64>, Option<f64>),
}

/// `loaders` clients each loading the aggregates in turn (from sequence 0, no snapshots) for the
/// window; every load must return exactly `events` events in sequence order.
pub async fn load_cell(
    pool: &Pool,
    aggregates: &[String],
    events: usize,
    loaders: usize,
    window: Window,
    cpu: &CpuProbe,
) -> Result<LoadResult, BoxError> {
    if aggregates.is_empty() {
        return Err("no aggregates to load".into());
    }
    let start = Instant::now();
    let measured_from = start + window.warmup;
    let end = measured_from + window.measure;
    let mut tasks = JoinSet::new();
    for index in 0..loaders {
        let mut client = pool.client(index);
        let aggregates = aggregates.to_vec();
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            let mut last_done = None;
            let mut turn = index;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let aggregate = &aggregates[turn % aggregates.len()];
                turn += 1;
                load_aggregate(&mut client, aggregate, events).await?;
                let done = Instant::now();
                if began >= measured_from {
                    latencies.push(done - began);
                    last_done = Some(done);
                }
            }
            Ok::<_, BoxError>((latencies, last_done))
        });
    }
    tokio::time::sleep_until(measured_from).await;
    let mark = cpu.mark();
    tokio::time::sleep_until(end).await;
    let cores = cpu.cores_since(&mark);

    let mut latencies = Latencies::default();
    let mut last_done = measured_from;
    while let Some(joined) = tasks.join_next().await {
        let (loader_latencies, loader_last) =
            joined.map_err(|e| format!("an aggregate loader failed: {e}"))??;
        latencies.extend(loader_latencies);
        if let Some(done) = loader_last {
            last_done = last_done.max(done);
        }
    }
    latencies.sort();
    Ok(LoadResult {
        loads: latencies.len(),
        elapsed: last_done - measured_from,
        latencies,
        cores,
    })
}

async fn load_aggregate(
    client: &mut Client,
    aggregate: &str,
    expected: usize,
) -> Result<(), BoxError> {
    let mut stream = client
        .list_aggregate_events(GetAggregateEventsRequest {
            aggregate_id: aggregate.to_string(),
            initial_sequence: 0,
            allow_snapshots: false,
            max_sequence: 0,
            min_token: 0,
        })
        .await
        .map_err(|s| format!("ListAggregateEvents {aggregate} failed: {}", s.message()))?
        .into_inner();
    let mut next = 0i64;
    loop {
        let event = tokio::time::timeout(STREAM_STALL_TIMEOUT, stream.message())
            .await
            .map_err(|_| format!("loading {aggregate}: no event for {STREAM_STALL_TIMEOUT:?}"))?
            .map_err(|s| format!("loading {aggregate} broke after {next}: {}", s.message()))?;
        let Some(event) = event else { break };
        if event.aggregate_sequence_number != next {
            return Err(format!(
                "loading {aggregate}: expected sequence {next}, got {}",
                event.aggregate_sequence_number
            )
            .into());
        }
        next += 1;
    }
    if next as usize != expected {
        return Err(format!("loading {aggregate}: {next} events, expected {expected}").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_size_asked_and_differ() {
        let mut maker = EventMaker::new(200, 42).for_client(3);
        let events = maker.transaction("a", 5, 2);
        let payloads: Vec<&[u8]> = events
            .iter()
            .filter_map(|e| e.payload.as_ref().map(|p| p.data.as_slice()))
            .collect();
        assert_eq!(payloads.len(), 2);
        assert!(payloads.iter().all(|p| p.len() == 200));
        assert_ne!(payloads[0], payloads[1]);
        assert_eq!(events[1].aggregate_sequence_number, 6);
    }
}
