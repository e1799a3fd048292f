//! `myelin-bench`: a load generator for Myelin that speaks the Axon Server protocol over real gRPC.
//!
//! By default it starts the release `myelin` binary itself (on free loopback ports, over a data
//! directory in a temporary scratch directory) and kills it when the run ends, however it ends;
//! with `--endpoint http://127.0.0.1:8124` it measures a server that is already running instead
//! (loopback only). It measures, in this order (`--only` picks some of them):
//!
//! 1. the disk's fsync rate (4 KiB write + `sync_data`, in the scratch directory): the ceiling for
//!    one synced append at a time; measured again at the end, as it varies on shared disks;
//! 2. a bare unary call (`GetLastToken`) from 1 and 64 callers: the baseline for round trips;
//! 3. command round trips: 1 and 64 callers dispatching to 1 and 2 command handler instances that
//!    run in this process;
//! 4. query round trips, the same way (one result per query);
//! 5. append throughput and latency for transactions of 1, 10 and 100 events from 1, 16 and 64
//!    concurrent clients, each appending to its own aggregate;
//! 6. tracking-read throughput: every event from token 0, with Axon's permit refills;
//! 7. aggregate load latency: full reads of 1000-event aggregates;
//! 8. a 3-node cluster (started after the single node is killed, so that nothing of it competes
//!    for the CPU): the append cells of 5. against the leader, each as a ratio to its single-node
//!    figure of this run, with the followers' apply lag during them; and the time to elect a new
//!    leader after the leader is SIGKILLed (see `cluster.rs`).
//!
//! Round trips come before appends: they do not touch the disk, and so they run while no flush or
//! compaction of the appended events competes for the CPU.
//!
//! Each figure is a markdown table row on stdout and a JSON line in the `--json` file; progress
//! goes to stderr. See `benches/README.md`.

mod cluster;
mod grpc;
mod report;
mod routing;
mod server;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};

use crate::cluster::{AppendFigure, Cluster, Plan};
use crate::grpc::Pool;
use crate::report::{Output, Row};
use crate::routing::{Handlers, Kind};
use crate::server::Server;
use crate::workloads::{CpuProbe, EventMaker, Window};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The parts of a run, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum Part {
    /// The fsync baselines before and after the run.
    Fsync,
    /// The GetLastToken round-trip baseline.
    Unary,
    /// Command round trips.
    Commands,
    /// Query round trips.
    Queries,
    /// Appends.
    Appends,
    /// The tracking read.
    Read,
    /// Aggregate loads.
    Loads,
    /// The 3-node cluster: appends against the leader, follower lag, leader elections. Runs the
    /// single-node append cells too, as its reference.
    Cluster,
}

#[derive(Parser)]
#[command(
    name = "myelin-bench",
    about = "Load generator for Myelin over the Axon Server gRPC protocol"
)]
struct Args {
    /// Measure a running server at this loopback endpoint instead of starting one.
    #[arg(long)]
    endpoint: Option<String>,
    /// The myelin binary to start (default: `myelin` next to this binary, else target/release/myelin).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Measured seconds per append cell and per aggregate-load cell.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Warm-up seconds before each of those cells (not measured).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Also write every figure as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Synced 4 KiB writes in the fsync baseline.
    #[arg(long, default_value_t = 2000)]
    fsyncs: usize,
    /// Events per append transaction, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    tx_events: Vec<usize>,
    /// Concurrent append clients, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Clients that share one HTTP/2 connection.
    #[arg(long, default_value_t = 8)]
    clients_per_connection: usize,
    /// Bytes of each event's payload.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// The tracking read reads every event in the store, topping it up to at least this many.
    #[arg(long, default_value_t = 100_000)]
    min_read_events: u64,
    /// Aggregates created for the load measurement.
    #[arg(long, default_value_t = 20)]
    aggregates: usize,
    /// Events in each of those aggregates.
    #[arg(long, default_value_t = 1000)]
    aggregate_events: usize,
    /// Concurrent aggregate loaders, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    loaders: Vec<usize>,
    /// Concurrent callers of the round-trip measurements, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    callers: Vec<usize>,
    /// Handler instances answering commands and queries, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    handlers: Vec<usize>,
    /// Leader elections (SIGKILL to the leader, then a restart) in the cluster part.
    #[arg(long, default_value_t = 3)]
    elections: usize,
    /// Run only these parts (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Part>,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }

    /// The single-node append cells also run as the cluster part's reference.
    fn runs_appends(&self) -> bool {
        self.runs(Part::Appends) || self.runs_cluster()
    }

    /// The cluster part starts nodes of its own, so it does not run against `--endpoint`.
    fn runs_cluster(&self) -> bool {
        self.runs(Part::Cluster) && self.endpoint.is_none()
    }

    /// The warm-up and measured window of every timed cell.
    fn window(&self) -> Window {
        Window {
            warmup: Duration::from_secs(self.warmup_seconds),
            measure: Duration::from_secs(self.seconds),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("myelin-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("myelin-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the scratch directory, runs the single-node part and then the cluster part, each
/// killing its servers whatever happened, and measures the fsync rate again at the end.
async fn run(args: Args) -> Result<(), BoxError> {
    check_args(&args)?;
    let scratch = tempfile::Builder::new()
        .prefix("myelin-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
    let mut out = Output::create(args.json.as_deref())?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = run_id.get(..8).unwrap_or("run");
    let reference = single_node(&args, &mut out, scratch.path(), run_id).await?;
    if args.runs_cluster() {
        cluster_part(&args, &mut out, scratch.path(), &reference, run_id).await?;
    } else if args.endpoint.is_some() && args.only.is_empty() {
        eprintln!("skipping the cluster part: it starts nodes of its own, not with --endpoint");
    }
    if let Some(before) = reference.fsyncs_per_s {
        fsync_row(
            &mut out,
            scratch.path(),
            args.fsyncs,
            "after the run",
            Some(before),
        )
        .await?;
    }
    Ok(())
}

/// What the single-node part hands on: the fsync rate before the run, and the append cells (the
/// cluster part's reference).
struct Reference {
    fsyncs_per_s: Option<f64>,
    appends: Vec<AppendFigure>,
}

/// Starts the single server (unless `--endpoint`), runs the single-node measurements, and kills
/// the server whatever happened (error, Ctrl-C, the server dying).
async fn single_node(
    args: &Args,
    out: &mut Output,
    scratch: &std::path::Path,
    run_id: &str,
) -> Result<Reference, BoxError> {
    let mut server = match &args.endpoint {
        Some(_) => None,
        None => {
            let binary = server_binary(args)?;
            eprintln!("starting {} ...", binary.display());
            // Dropping a launch in progress drops its child process, which kills it.
            tokio::select! {
                launched = Server::launch(&binary, scratch) => Some(launched?),
                _ = tokio::signal::ctrl_c() => {
                    return Err("interrupted while the server was starting".into())
                }
            }
        }
    };
    let endpoint = match (&args.endpoint, &server) {
        (Some(given), _) => grpc::check_loopback(given),
        (None, Some(server)) => Ok(server.endpoint()),
        (None, None) => Err("no server and no endpoint".into()),
    };
    let outcome = match endpoint {
        Ok(endpoint) => {
            let pid = server.as_ref().and_then(Server::pid);
            let server_exit = async {
                match server.as_mut() {
                    Some(s) => s.exited().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = benchmark(args, out, &endpoint, scratch, pid, run_id) => result,
                exit = server_exit => Err(exit.into()),
                signal = tokio::signal::ctrl_c() => Err(match signal {
                    Ok(()) => "interrupted".into(),
                    Err(e) => format!("cannot listen for Ctrl-C: {e}").into(),
                }),
            }
        }
        Err(e) => Err(e),
    };
    if let Some(server) = server.as_mut() {
        server.kill().await;
        if outcome.is_err() {
            eprintln!("{}", server.log_tail());
        }
    }
    outcome
}

/// Starts the 3-node cluster, measures it, and kills every node whatever happened (error,
/// Ctrl-C, a node dying).
async fn cluster_part(
    args: &Args,
    out: &mut Output,
    scratch: &std::path::Path,
    reference: &Reference,
    run_id: &str,
) -> Result<(), BoxError> {
    let binary = server_binary(args)?;
    let mut cluster = Cluster::new(&binary, scratch).await?;
    let maker = EventMaker::new(args.payload_bytes, uuid::Uuid::new_v4().as_u64_pair().0);
    let plan = Plan {
        tx_events: &args.tx_events,
        clients: &args.clients,
        clients_per_connection: args.clients_per_connection,
        window: args.window(),
        elections: args.elections,
        fsyncs_per_s: reference.fsyncs_per_s,
        reference: &reference.appends,
        run_id,
    };
    let outcome = tokio::select! {
        result = cluster::measure(&mut cluster, out, &plan, &maker) => result,
        signal = tokio::signal::ctrl_c() => Err(match signal {
            Ok(()) => "interrupted".into(),
            Err(e) => format!("cannot listen for Ctrl-C: {e}").into(),
        }),
    };
    cluster.kill_all().await;
    if outcome.is_err() {
        eprintln!("{}", cluster.log_tails());
    }
    outcome
}

fn check_args(args: &Args) -> Result<(), BoxError> {
    if args.seconds == 0 {
        return Err("--seconds must be at least 1".into());
    }
    let nonzero = |name: &str, values: &[usize]| {
        if values.is_empty() || values.contains(&0) {
            Err(format!("--{name} needs one or more numbers above 0"))
        } else {
            Ok(())
        }
    };
    nonzero("tx-events", &args.tx_events)?;
    nonzero("clients", &args.clients)?;
    nonzero("loaders", &args.loaders)?;
    nonzero("callers", &args.callers)?;
    nonzero("handlers", &args.handlers)?;
    if args.elections == 0 {
        return Err("--elections must be at least 1".into());
    }
    if args.endpoint.is_some() && args.only.contains(&Part::Cluster) {
        return Err("--only cluster starts nodes of its own and cannot run with --endpoint".into());
    }
    if args.fsyncs == 0 || args.aggregates == 0 || args.aggregate_events == 0 {
        return Err("--fsyncs, --aggregates and --aggregate-events must be above 0".into());
    }
    Ok(())
}

/// `--binary`, else `myelin` next to this executable (both live in target/release), else
/// `target/release/myelin` under the working directory; as an absolute path, because servers run
/// in directories of their own.
fn server_binary(args: &Args) -> Result<PathBuf, BoxError> {
    if let Some(binary) = &args.binary {
        return std::fs::canonicalize(binary)
            .map_err(|e| format!("--binary {}: {e}", binary.display()).into());
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("myelin")));
    let candidates = sibling
        .into_iter()
        .chain(std::iter::once(PathBuf::from("target/release/myelin")));
    for candidate in candidates {
        if candidate.is_file() {
            return std::fs::canonicalize(&candidate)
                .map_err(|e| format!("{}: {e}", candidate.display()).into());
        }
    }
    Err("no myelin binary found: run `cargo build --release` first, or pass --binary".into())
}

async fn benchmark(
    args: &Args,
    out: &mut Output,
    endpoint: &str,
    scratch: &std::path::Path,
    server_pid: Option<u32>,
    run_id: &str,
) -> Result<Reference, BoxError> {
    let cpu = CpuProbe::new(server_pid);
    let window = args.window();
    let load_before = server::load_average();
    if let Some(load) = load_before.filter(|l| *l > 0.5) {
        eprintln!(
            "warning: the 1-minute load average is {load:.2} before the run: other processes \
             compete for the CPU and the disk, and the figures will show it"
        );
    }
    out.line(&json!({
        "measurement": "run",
        "run": run_id,
        "started_unix_ms": myelin_testkit::now_ms(),
        "endpoint": endpoint,
        "server_started_by_bench": server_pid.is_some(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "payload_bytes": args.payload_bytes,
        "clients_per_connection": args.clients_per_connection,
        "parts": if args.only.is_empty() { "all".to_string() } else { format!("{:?}", args.only) },
        "loadavg_1m_before": load_before,
    }))?;
    out.header();

    // 1. fsync baseline (again at the end: this figure is noisy on shared disks).
    let fsyncs_per_s = if args.runs(Part::Fsync) {
        Some(fsync_row(out, scratch, args.fsyncs, "before the run", None).await?)
    } else {
        None
    };

    let max_clients = args
        .clients
        .iter()
        .chain(&args.loaders)
        .chain(&args.callers)
        .copied()
        .chain([args.aggregates, 16])
        .max()
        .unwrap_or(1);
    let pool = Pool::connect(endpoint, max_clients, args.clients_per_connection).await?;
    let maker = EventMaker::new(args.payload_bytes, uuid::Uuid::new_v4().as_u64_pair().0);

    // 2.-4. round trips: GetLastToken, commands, queries.
    if args.runs(Part::Unary) {
        for &callers in &args.callers {
            eprintln!(
                "GetLastToken round trips from {} ...",
                plural(callers, "caller")
            );
            let result =
                routing::call_cell(&pool, Kind::LastToken, callers, None, run_id, window, &cpu)
                    .await?;
            out.row(&round_trip_row(
                "unary baseline",
                format!("GetLastToken × {}", plural(callers, "caller")),
                "calls",
                &pool,
                callers,
                None,
                &result,
            ))?;
        }
    }
    for (part, kind) in [
        (Part::Commands, Kind::Command),
        (Part::Queries, Kind::Query),
    ] {
        if args.runs(part) {
            for &handlers in &args.handlers {
                handler_round_trips(out, args, endpoint, &pool, kind, handlers, run_id, &cpu)
                    .await?;
            }
        }
    }

    // 5. appends.
    let append_tx_events = if args.runs_appends() {
        args.tx_events.as_slice()
    } else {
        &[]
    };
    let mut appends = Vec::new();
    for &events_per_tx in append_tx_events {
        for &clients in &args.clients {
            eprintln!("appending {events_per_tx}-event transactions from {clients} clients ...");
            let prefix = format!("{run_id}-append");
            let result = workloads::append_cell(
                &pool,
                &maker,
                &prefix,
                events_per_tx,
                clients,
                window,
                &cpu,
            )
            .await?;
            let seconds = result.elapsed.as_secs_f64();
            let tx_per_s = result.transactions as f64 / seconds;
            appends.push(AppendFigure {
                events_per_tx,
                clients,
                tx_per_s,
                p99_ms: result.latencies.percentile_ms(0.99),
            });
            out.row(&Row {
                measurement: "append",
                setting: format!("{events_per_tx} ev/tx × {}", plural(clients, "client")),
                events_per_s: Some(result.events as f64 / seconds),
                ops_per_s: Some(tx_per_s),
                ops_unit: "tx",
                p50_ms: result.latencies.percentile_ms(0.5),
                p99_ms: result.latencies.percentile_ms(0.99),
                per_fsync: fsyncs_per_s.map(|f| tx_per_s / f),
                server_cores: result.cores.0,
                bench_cores: result.cores.1,
                extra: fields(json!({
                    "events_per_tx": events_per_tx,
                    "clients": clients,
                    "connections": pool.connections_for(clients),
                    "transactions": result.transactions,
                    "events": result.events,
                    "seconds": seconds,
                })),
            })?;
        }
    }

    let mut reader = pool.client(0);
    if args.runs(Part::Read) {
        tracking_read(out, args, &pool, &maker, &mut reader, run_id, &cpu).await?;
    }
    if args.runs(Part::Loads) {
        aggregate_loads(out, args, &pool, &maker, run_id, window, &cpu).await?;
    }

    // What the server looks like afterwards.
    let events = workloads::event_count(&mut reader).await?;
    let data_bytes = server_pid.map(|_| server::dir_size(&scratch.join("data")));
    let peak_rss = server_pid.and_then(server::peak_rss_mib);
    let mut summary = format!("store holds {events} events");
    if let Some(bytes) = data_bytes.filter(|_| events > 0) {
        summary += &format!(
            "; data directory {:.1} MiB ({:.0} bytes per event)",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / events.max(1) as f64
        );
    }
    if let Some(rss) = peak_rss {
        summary += &format!("; server peak RSS {rss:.0} MiB");
    }
    let load_after = server::load_average();
    if let Some(load) = load_after {
        summary += &format!("; 1-minute load average {load:.2} (this run included)");
    }
    eprintln!("{summary}");
    out.line(&json!({
        "measurement": "server",
        "events": events,
        "data_dir_bytes": data_bytes,
        "peak_rss_mib": peak_rss,
        "loadavg_1m_after": load_after,
    }))?;
    Ok(Reference {
        fsyncs_per_s,
        appends,
    })
}

/// 3./4. Command or query round trips from each number of callers to `handlers` handler
/// instances, started for these cells and stopped after them.
#[allow(clippy::too_many_arguments)]
async fn handler_round_trips(
    out: &mut Output,
    args: &Args,
    endpoint: &str,
    pool: &Pool,
    kind: Kind,
    handlers: usize,
    run_id: &str,
    cpu: &CpuProbe,
) -> Result<(), BoxError> {
    let window = args.window();
    let (measurement, unit, what) = match kind {
        Kind::Query => ("query round trip", "queries", "query"),
        _ => ("command round trip", "cmd", "command"),
    };
    eprintln!(
        "starting {} ...",
        plural(handlers, &format!("{what} handler"))
    );
    let instances = Handlers::start(endpoint, kind, handlers, run_id).await?;
    let mut outcome = Ok(());
    for &callers in &args.callers {
        eprintln!(
            "{what} round trips from {} to {} ...",
            plural(callers, "caller"),
            plural(handlers, "handler")
        );
        let result =
            routing::call_cell(pool, kind, callers, Some(&instances), run_id, window, cpu).await;
        let row = result.map(|result| {
            round_trip_row(
                measurement,
                format!(
                    "{} × {}",
                    plural(callers, "caller"),
                    plural(handlers, "handler")
                ),
                unit,
                pool,
                callers,
                Some(handlers),
                &result,
            )
        });
        outcome = row.and_then(|row| out.row(&row));
        if outcome.is_err() {
            break;
        }
    }
    // Stopped whatever happened: the next cell must not route to these instances.
    let stopped = instances.stop().await;
    outcome.and(stopped)
}

/// The row of a round-trip cell.
fn round_trip_row(
    measurement: &'static str,
    setting: String,
    unit: &'static str,
    pool: &Pool,
    callers: usize,
    handlers: Option<usize>,
    result: &routing::CallResult,
) -> Row {
    let seconds = result.elapsed.as_secs_f64();
    let mut extra = fields(json!({
        "callers": callers,
        "connections": pool.connections_for(callers),
        "calls": result.calls,
        "seconds": seconds,
    }));
    if let Some(handlers) = handlers {
        extra.insert("handlers".to_string(), json!(handlers));
        extra.insert("handled_per_handler".to_string(), json!(result.handled));
        extra.insert("initial_permits".to_string(), json!(5000));
        extra.insert("refill_permits".to_string(), json!(1250));
    }
    Row {
        measurement,
        setting,
        events_per_s: None,
        ops_per_s: Some(result.calls as f64 / seconds),
        ops_unit: unit,
        p50_ms: result.latencies.percentile_ms(0.5),
        p99_ms: result.latencies.percentile_ms(0.99),
        per_fsync: None,
        server_cores: result.cores.0,
        bench_cores: result.cores.1,
        extra,
    }
}

/// 6. The tracking read from token 0, after topping the store up to `--min-read-events`.
async fn tracking_read(
    out: &mut Output,
    args: &Args,
    pool: &Pool,
    maker: &EventMaker,
    reader: &mut grpc::Client,
    run_id: &str,
    cpu: &CpuProbe,
) -> Result<(), BoxError> {
    let existing = workloads::event_count(reader).await?;
    if existing < args.min_read_events {
        let missing = usize::try_from(args.min_read_events - existing)?;
        eprintln!("appending {missing} more events for the tracking read ...");
        let prefix = format!("{run_id}-fill");
        workloads::fill(pool, maker, &prefix, 16, 100, missing).await?;
    }
    let total = workloads::event_count(reader).await?;
    eprintln!("tracking read of {total} events from token 0 ...");
    let read = workloads::tracking_read(reader, total, cpu).await?;
    let seconds = read.elapsed.as_secs_f64();
    out.row(&Row {
        measurement: "tracking read",
        setting: format!("{} events from token 0", read.events),
        events_per_s: Some(read.events as f64 / seconds),
        ops_per_s: None,
        ops_unit: "",
        p50_ms: None,
        p99_ms: None,
        per_fsync: None,
        server_cores: read.cores.0,
        bench_cores: read.cores.1,
        extra: fields(json!({
            "events": read.events,
            "seconds": seconds,
            "initial_permits": 5000,
            "refill_permits": 1250,
        })),
    })?;
    Ok(())
}

/// 7. Aggregate loads.
async fn aggregate_loads(
    out: &mut Output,
    args: &Args,
    pool: &Pool,
    maker: &EventMaker,
    run_id: &str,
    window: Window,
    cpu: &CpuProbe,
) -> Result<(), BoxError> {
    eprintln!(
        "creating {} aggregates of {} events ...",
        args.aggregates, args.aggregate_events
    );
    let prefix = format!("{run_id}-load");
    workloads::fill(
        pool,
        maker,
        &prefix,
        args.aggregates,
        100,
        args.aggregates * args.aggregate_events,
    )
    .await?;
    let aggregates: Vec<String> = (0..args.aggregates)
        .map(|i| format!("{prefix}-{i}"))
        .collect();
    for &loaders in &args.loaders {
        eprintln!("loading aggregates with {loaders} concurrent loaders ...");
        let result = workloads::load_cell(
            pool,
            &aggregates,
            args.aggregate_events,
            loaders,
            window,
            cpu,
        )
        .await?;
        let seconds = result.elapsed.as_secs_f64();
        let loads_per_s = result.loads as f64 / seconds;
        out.row(&Row {
            measurement: "aggregate load",
            setting: format!(
                "{}-event aggregate × {}",
                args.aggregate_events,
                plural(loaders, "loader")
            ),
            events_per_s: Some(loads_per_s * args.aggregate_events as f64),
            ops_per_s: Some(loads_per_s),
            ops_unit: "loads",
            p50_ms: result.latencies.percentile_ms(0.5),
            p99_ms: result.latencies.percentile_ms(0.99),
            per_fsync: None,
            server_cores: result.cores.0,
            bench_cores: result.cores.1,
            extra: fields(json!({
                "aggregates": args.aggregates,
                "aggregate_events": args.aggregate_events,
                "loaders": loaders,
                "loads": result.loads,
                "seconds": seconds,
            })),
        })?;
    }
    Ok(())
}

/// Measures the fsync rate and prints it as a row; `reference` is the rate the ratio column uses
/// (none: this one). Returns fsyncs per second.
async fn fsync_row(
    out: &mut Output,
    scratch: &std::path::Path,
    count: usize,
    when: &str,
    reference: Option<f64>,
) -> Result<f64, BoxError> {
    eprintln!("fsync baseline {when}: {count} synced 4 KiB appends ...");
    let mut fsync = workloads::fsync_baseline(scratch, count).await?;
    fsync.latencies.sort();
    let fsyncs_per_s = fsync.count as f64 / fsync.elapsed.as_secs_f64();
    out.row(&Row {
        measurement: "fsync baseline",
        setting: format!("{} × 4 KiB write + sync_data, {when}", fsync.count),
        events_per_s: None,
        ops_per_s: Some(fsyncs_per_s),
        ops_unit: "fsync",
        p50_ms: fsync.latencies.percentile_ms(0.5),
        p99_ms: fsync.latencies.percentile_ms(0.99),
        per_fsync: Some(fsyncs_per_s / reference.unwrap_or(fsyncs_per_s)),
        server_cores: None,
        bench_cores: None,
        extra: fields(json!({
            "when": when,
            "fsyncs": fsync.count,
            "seconds": fsync.elapsed.as_secs_f64(),
        })),
    })?;
    Ok(fsyncs_per_s)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
