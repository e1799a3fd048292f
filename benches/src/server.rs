//! The server under test: the real `myelin` binary started on free loopback ports over a data
//! directory in the run's scratch directory, or nothing when the run targets `--endpoint`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::BoxError;

/// How long the server may take to report UP on `/actuator/health`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the server's log an error shows.
const LOG_TAIL_BYTES: usize = 4000;

/// A `myelin serve` child process. Killed by [`Server::kill`]; also on drop, as a last resort.
pub struct Server {
    child: Child,
    pid: Option<u32>,
    grpc_port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `binary` with its data in `scratch/data` and its output in `scratch/server.log`, and
    /// waits until it is UP. A server that does not come up is killed before the error returns.
    pub async fn launch(binary: &Path, scratch: &Path) -> Result<Server, BoxError> {
        let data = scratch.join("data");
        let log = scratch.join("server.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let (grpc_port, http_port) = free_loopback_ports().await?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--port")
            .arg(grpc_port.to_string())
            .arg("--http-port")
            .arg(http_port.to_string())
            .arg("--data")
            .arg(&data)
            // No properties file and no AXONIQ_* / SERVER_* variables of ours may change the node:
            // an empty working directory and an empty environment.
            .current_dir(scratch)
            .env_clear()
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            grpc_port,
            log,
        };
        if let Err(e) = server.wait_until_up(http_port).await {
            server.kill().await;
            return Err(format!("{e}\n{}", server.log_tail()).into());
        }
        Ok(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn wait_until_up(&mut self, http_port: u16) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("the server exited ({status}) before it was up").into());
            }
            if health_is_up(http_port).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the server did not report UP within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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
        match std::fs::read(&self.log) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
                format!(
                    "--- end of {} ---\n{}",
                    self.log.display(),
                    String::from_utf8_lossy(&bytes[start..])
                )
            }
            Err(e) => format!("(cannot read {}: {e})", self.log.display()),
        }
    }
}

/// Two distinct free loopback ports. They are released before the server binds them, so another
/// process could take one in between; the server then fails to start and the run says so.
async fn free_loopback_ports() -> Result<(u16, u16), BoxError> {
    let first = TcpListener::bind("127.0.0.1:0").await?;
    let second = TcpListener::bind("127.0.0.1:0").await?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

async fn health_is_up(http_port: u16) -> bool {
    let check = async {
        let mut stream = TcpStream::connect(("127.0.0.1", http_port)).await?;
        stream
            .write_all(
                b"GET /actuator/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(response)) => response.starts_with("HTTP/1.1 200") && response.contains("\"UP\""),
        _ => false,
    }
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
