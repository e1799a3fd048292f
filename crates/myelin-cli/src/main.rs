//! The `myelin` binary: `serve` runs a node (single node, context `default`, data in `./data` unless
//! configured otherwise); `healthcheck` asks the local node's `/actuator/health` and exits 0 when it
//! is UP (over HTTPS when the node uses TLS: it trusts exactly the node's own certificate), for
//! container images without a shell; the administration commands (`admin.rs`) manage applications
//! and users over REST. Thin: the node lives in `myelin-server`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod admin;

use clap::{Parser, Subcommand};
use myelin_server::config::{self, ConfigSources, NodeConfig};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Parser)]
#[command(
    name = "myelin",
    version,
    about = "An event store and message router that speaks Axon Server's protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a node (the default command).
    Serve(ServeArgs),
    /// Exit 0 if the local node reports UP on /actuator/health, 1 otherwise.
    Healthcheck(HealthcheckArgs),
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Properties file (default: ./axonserver.properties, else ./config/axonserver.properties).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any property, e.g. --set axoniq.axonserver.port=8125 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// gRPC port for clients (axoniq.axonserver.port).
    #[arg(long)]
    port: Option<u16>,
    /// HTTP port (server.port).
    #[arg(long)]
    http_port: Option<u16>,
    /// Data directory for events and snapshots (axoniq.axonserver.event.storage and snapshot.storage).
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(clap::Args)]
struct HealthcheckArgs {
    /// HTTP port of the node (default: server.port from the configuration, 8024).
    #[arg(long)]
    http_port: Option<u16>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("myelin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Commands::Serve(ServeArgs::default())) {
        Commands::Serve(args) => runtime.block_on(serve(args)),
        Commands::Healthcheck(args) => runtime.block_on(healthcheck(args)),
        Commands::Admin(command) => match runtime.block_on(admin::run(command)) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("myelin: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Gathers the file, the environment and the flags, and loads the configuration from them.
fn load_config(args: &ServeArgs) -> Result<NodeConfig, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    let file = args
        .config
        .clone()
        .or_else(|| config::find_properties_file(&cwd));
    let properties_text = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            tracing::info!("configuration file: {}", path.display());
            Some((path, text))
        }
        None => None,
    };
    let mut overrides = Vec::new();
    for item in &args.set {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--set {item}: expected KEY=VALUE"))?;
        overrides.push((key.trim().to_string(), value.trim().to_string()));
    }
    if let Some(port) = args.port {
        overrides.push(("axoniq.axonserver.port".into(), port.to_string()));
    }
    if let Some(port) = args.http_port {
        overrides.push(("server.port".into(), port.to_string()));
    }
    if let Some(data) = &args.data {
        let data = data.display().to_string();
        overrides.push(("axoniq.axonserver.event.storage".into(), data.clone()));
        overrides.push(("axoniq.axonserver.snapshot.storage".into(), data));
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let (config, warnings) = config::load(ConfigSources {
        properties_text,
        env,
        overrides,
    })
    .map_err(|e| e.to_string())?;
    for warning in warnings {
        tracing::warn!("configuration: {warning}");
    }
    Ok(config)
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Colours only on a terminal: container logs and log files get plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_ansi(colours)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tracing::info!("myelin {} starting", env!("CARGO_PKG_VERSION"));
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match myelin_server::Listeners::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "cannot listen on ports {} (gRPC) and {} (HTTP): {e}",
                config.grpc_port,
                config.http_port
            );
            return ExitCode::FAILURE;
        }
    };
    let node = match myelin_server::start(config, listeners).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    node.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stopping on SIGINT only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Sends `GET /actuator/health` and returns the whole answer.
async fn ask_health<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<String> {
    stream
        .write_all(b"GET /actuator/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    // A TLS server may close without close_notify; what arrived is the answer.
    let read = stream.read_to_end(&mut response).await;
    if response.is_empty() {
        read?;
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

async fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let config = match load_config(&ServeArgs::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myelin healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = args.http_port.unwrap_or(config.http_port);
    // With HTTPS on, the probe trusts exactly the node's own certificate (names do not matter).
    let tls = match config.tls_files().map(|files| files.http) {
        Ok(Some(pem)) => match myelin_server::tls::own_certificate_client_config(&pem.cert_chain) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("myelin healthcheck: {e}");
                return ExitCode::FAILURE;
            }
        },
        Ok(None) => None,
        Err(e) => {
            eprintln!("myelin healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        match tls {
            Some(tls) => {
                let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await?;
                ask_health(stream).await
            }
            None => ask_health(tcp).await,
        }
    };
    match tokio::time::timeout(Duration::from_secs(args.timeout), check).await {
        Ok(Ok(response)) if response.starts_with("HTTP/1.1 200") && response.contains("\"UP\"") => {
            println!("UP");
            ExitCode::SUCCESS
        }
        Ok(Ok(response)) => {
            println!("DOWN: {}", response.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            println!("DOWN: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("DOWN: no answer within {} s", args.timeout);
            ExitCode::FAILURE
        }
    }
}
