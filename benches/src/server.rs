//! The server under test: the real `myelin` binary started on free loopback ports over a data
//! directory in the run's scratch directory, or nothing when the run targets `--endpoint`; the
//! same process handling (spawn, health, SIGKILL by pid) serves the nodes of the cluster part.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::BoxError;

/// How long the server may take to report UP on `/actuator/health`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the server's log an error shows.
const LOG_TAIL_BYTES: usize = 4000;

/// A `myelin serve` child process. Killed by [`Server::kill`]; also on drop, as a last resort.
pub struct Server {
    child: Child,
    pid: Option<u32>,
    grpc_port: u16,
    http_port: u16,
    log: PathBuf,
}

/// How to start one `myelin serve`.
pub struct Launch<'a> {
    pub binary: &'a Path,
    /// Its working directory, which holds its data (`data/`) and its output (`server.log`).
    pub dir: &'a Path,
    pub grpc_port: u16,
    pub http_port: u16,
    /// `--set KEY=VALUE` settings on top of the ports and the data directory.
    pub settings: Vec<String>,
}

impl Server {
    /// Starts `binary` with its data in `scratch/data` and its output in `scratch/server.log`, and
    /// waits until it is UP. A server that does not come up is killed before the error returns.
    pub async fn launch(binary: &Path, scratch: &Path) -> Result<Server, BoxError> {
        let ports = free_loopback_ports(2).await?;
        let mut server = Server::spawn(&Launch {
            binary,
            dir: scratch,
            grpc_port: ports[0],
            http_port: ports[1],
            settings: Vec::new(),
        })?;
        if let Err(e) = server.wait_until_up(STARTUP_TIMEOUT).await {
            server.kill().await;
            return Err(format!("{e}\n{}", server.log_tail()).into());
        }
        Ok(server)
    }

    /// Starts a server and returns at once, without waiting for it to come up. Its output is
    /// appended to `server.log` in its directory (a restarted node keeps its earlier log).
    pub fn spawn(launch: &Launch) -> Result<Server, BoxError> {
        let data = launch.dir.join("data");
        let log = launch.dir.join("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut command = Command::new(launch.binary);
        command
            .arg("serve")
            .arg("--port")
            .arg(launch.grpc_port.to_string())
            .arg("--http-port")
            .arg(launch.http_port.to_string())
            .arg("--data")
            .arg(&data);
        for setting in &launch.settings {
            command.arg("--set").arg(setting);
        }
        command
            // No properties file and no AXONIQ_* / SERVER_* variables of ours may change the node:
            // an empty working directory and an empty environment.
            .current_dir(launch.dir)
            .env_clear()
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.binary.display()))?;
        let pid = child.id();
        Ok(Server {
            child,
            pid,
            grpc_port: launch.grpc_port,
            http_port: launch.http_port,
            log,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Waits until the server answers 200 UP on `/actuator/health`.
    pub async fn wait_until_up(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(how) = self.exit_status() {
                return Err(format!("the server {how} before it was up").into());
            }
            if health_is_up(self.http_port).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the server did not report UP within {} s",
                    timeout.as_secs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How the process ended, if it has (`None` while it runs).
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("exited ({status})")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be watched ({e})")),
        }
    }

    /// Resolves when the server process ends, with a description of how.
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => format!("the server exited during the run ({status})"),
            Err(e) => format!("cannot watch the server process: {e}"),
        }
    }

    /// Kills the process (SIGKILL by pid) and reaps it. Safe to call more than once.
    pub async fn kill(&mut self) {
        match self.child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => eprintln!("myelin-bench: cannot check the server process: {e}"),
        }
        if let Err(e) = self.child.kill().await {
            eprintln!(
                "myelin-bench: cannot kill the server (pid {:?}): {e}",
                self.pid
            );
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_TAIL_BYTES)
    }
}

/// The last `bytes` bytes of a log file, headed by its path.
pub fn log_tail(log: &Path, bytes: usize) -> String {
    match std::fs::read(log) {
        Ok(content) => {
            let start = content.len().saturating_sub(bytes);
            format!(
                "--- end of {} ---\n{}",
                log.display(),
                String::from_utf8_lossy(&content[start..])
            )
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

/// `count` distinct free loopback ports. They are released before a server binds them, so another
/// process could take one in between; the server then fails to start and the run says so.
pub async fn free_loopback_ports(count: usize) -> Result<Vec<u16>, BoxError> {
    // All bound at once, so that no two are the same.
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let mut ports = Vec::with_capacity(count);
    for listener in &listeners {
        ports.push(listener.local_addr()?.port());
    }
    Ok(ports)
}

async fn health_is_up(http_port: u16) -> bool {
    matches!(health(http_port).await, Ok((200, body)) if body["status"] == "UP")
}

/// `GET /actuator/health` on a loopback HTTP port: the status code and the JSON body (which the
/// node sends with 503 too). Gives up after 2 s.
pub async fn health(http_port: u16) -> Result<(u16, Value), BoxError> {
    let get = async {
        let mut stream = TcpStream::connect(("127.0.0.1", http_port)).await?;
        stream
            .write_all(
                b"GET /actuator/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(2), get)
        .await
        .map_err(|_| format!("no health answer on port {http_port} within 2 s"))?
        .map_err(|e| format!("health on port {http_port}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("health on port {http_port}: not an HTTP/1.1 answer"))?;
    // The body is one JSON object, sent whole (with a content length, or as one chunk).
    let body = match (text.find('{'), text.rfind('}')) {
        (Some(open), Some(close)) if open < close => &text[open..=close],
        _ => return Err(format!("health on port {http_port}: no JSON body ({code})").into()),
    };
    let json = serde_json::from_str(body)
        .map_err(|e| format!("health on port {http_port}: bad JSON ({e})"))?;
    Ok((code, json))
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`; `None` where
/// there is no procfs.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are space separated.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, which is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// Peak resident memory of a process in MiB, from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The 1-minute load average of the machine, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Total size of the files under `dir`, in bytes.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
