//! Shared pieces of the real-binary failure tests (`crash.rs`, `cluster_crash.rs`): a temporary
//! directory whose node logs are printed if the test fails, `myelin serve` processes on free
//! loopback ports (SIGKILL, SIGTERM, the log after SIGTERM), the writers' ledger behind a mutex,
//! and reading a node's whole global event stream through ListEvents.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use myelin_protocol::grpc::event::{Event, GetEventsRequest};
use myelin_testkit::{eventually, AxonClient};
use tempfile::TempDir;

// ==================================================================== the test directory

/// A temporary directory for the nodes' data and logs; if the test panics, every `*.log` in it is
/// printed before the directory goes away (the nodes are already killed by then, inside the
/// timed future).
pub struct TestDir {
    // Fields drop in declaration order: the logs are printed before the directory is removed.
    _logs: DumpLogsOnPanic,
    dir: TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        TestDir {
            _logs: DumpLogsOnPanic(dir.path().to_path_buf()),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Prints every node log in the directory if the test fails.
struct DumpLogsOnPanic(PathBuf);

impl Drop for DumpLogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!("===== {} =====\n{text}", log.display());
        }
    }
}

// ==================================================================== the processes

#[derive(Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub internal: u16,
}

/// Loopback ports for `n` nodes that were free a moment ago (held together so they differ).
pub fn free_ports(n: usize) -> Vec<Ports> {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let held: Vec<[TcpListener; 3]> = (0..n).map(|_| [bind(), bind(), bind()]).collect();
    let port = |l: &TcpListener| l.local_addr().expect("local address").port();
    held.iter()
        .map(|[grpc, http, internal]| Ports {
            grpc: port(grpc),
            http: port(http),
            internal: port(internal),
        })
        .collect()
}

/// A running `myelin serve`; dropping it SIGKILLs the process (by its Child handle) if it still
/// runs.
pub struct Server {
    pub child: Child,
    pub ports: Ports,
    pub log: PathBuf,
}

impl Server {
    /// Starts `myelin serve` on `ports` with its data in `data`, stdout and stderr into the file
    /// `log`; `more` adds the caller's own arguments and environment.
    pub fn spawn(
        root: &Path,
        data: &Path,
        ports: Ports,
        log: PathBuf,
        more: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Server {
        let file = File::create(&log).expect("create the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_myelin"));
        command
            .arg("serve")
            .arg("--port")
            .arg(ports.grpc.to_string())
            .arg("--http-port")
            .arg(ports.http.to_string())
            .arg("--data")
            .arg(data)
            .arg("--set")
            .arg(format!(
                "axoniq.axonserver.internal-port={}",
                ports.internal
            ));
        more(&mut command)
            // No stray axonserver.properties from the working directory.
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        let child = command.spawn().expect("start the myelin binary");
        Server { child, ports, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.grpc)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn sigkill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap the killed process")
    }

    pub fn sigterm(&self) {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed: {sent}", self.pid());
    }

    /// Waits until the process has exited (after a SIGTERM); `who` names it in the timeout panic.
    pub async fn wait_for_exit(&mut self, who: &str, timeout: Duration) -> ExitStatus {
        let what = format!("{who} to exit after SIGTERM");
        eventually(&what, timeout, || {
            let status = self.exited();
            async move { status }
        })
        .await
    }

    /// The WARN and ERROR lines the node logged after "SIGTERM received"; panics if it never
    /// logged that. `who` names the node in that panic.
    pub fn complaints_after_sigterm(&self, who: &str) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).expect("read the node log");
        let after_sigterm = log
            .split_once("SIGTERM received")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{who} did not log the SIGTERM"));
        after_sigterm
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ==================================================================== the writers' ledger

/// Locks the writers' ledger.
pub fn lock<T>(ledger: &Mutex<T>) -> MutexGuard<'_, T> {
    ledger.lock().expect("ledger lock")
}

/// The ledger back from the writers, once they are all done.
pub fn into_ledger<T>(ledger: Arc<Mutex<T>>) -> T {
    Arc::try_unwrap(ledger)
        .map_err(|_| "ledger still shared")
        .expect("writers are done")
        .into_inner()
        .expect("ledger lock")
}

// ==================================================================== reading

/// Reads the first `count` events of the node's global stream, as (token, event); `reader` names
/// the tracking client (`{reader}-test`) and its processor (`{reader}-verifier`).
pub async fn read_all_events(
    client: &mut AxonClient,
    count: usize,
    reader: &str,
) -> Vec<(i64, Event)> {
    let first = GetEventsRequest {
        tracking_token: 0,
        number_of_permits: 1_000_000,
        client_id: format!("{reader}-test"),
        component_name: format!("{reader}-test"),
        processor: format!("{reader}-verifier"),
        ..Default::default()
    };
    // The request stream stays open while reading (closing it ends the tracking stream) and is
    // closed afterwards, so the call ends and the node's graceful shutdown need not wait for it.
    let (requests_tx, requests_rx) = tokio::sync::mpsc::channel(1);
    requests_tx
        .send(first)
        .await
        .expect("queue the first GetEventsRequest");
    let requests = tokio_stream::wrappers::ReceiverStream::new(requests_rx);
    let mut stream = client
        .events
        .list_events(requests)
        .await
        .expect("ListEvents")
        .into_inner();
    let mut events = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while events.len() < count {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "ListEvents delivered only {} of {count} events within 30 s",
                    events.len()
                )
            })
            .expect("ListEvents stream failed")
            .unwrap_or_else(|| panic!("ListEvents ended after {} of {count} events", events.len()));
        let event = message.event.expect("EventWithToken without an event");
        events.push((message.token, event));
    }
    drop(requests_tx);
    // Caught up and half-closed: the node ends the stream.
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("ListEvents did not end within 10 s of closing the request stream")
        .expect("ListEvents stream failed");
    assert!(
        rest.is_none(),
        "ListEvents delivered more than {count} events: {rest:?}"
    );
    events
}
