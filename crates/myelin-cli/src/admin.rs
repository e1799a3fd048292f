//! The administration commands (`applications`, `register-application`, `delete-application`,
//! `renew-token`, `users`, `register-user`, `delete-user`): Axon Server CLI's commands and flags,
//! over the node's REST API with a small HTTP/1.1 client of its own (plain or TLS with rustls).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where and how to reach the node.
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// The node's HTTP address (https:// for a node with TLS).
    #[arg(
        short = 'S',
        long = "server",
        default_value = "http://localhost:8024",
        env = "MYELIN_SERVER"
    )]
    server: String,
    /// Access token (the admin token for changes); read from MYELIN_TOKEN when not given.
    #[arg(
        short = 't',
        long = "token",
        env = "MYELIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// CA certificates (PEM) to verify an https:// node with; default: the system's.
    #[arg(long = "ca")]
    ca: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// List applications (API tokens) and their roles.
    Applications(Connection),
    /// Create or update an application; prints its new token (shown once).
    RegisterApplication {
        #[command(flatten)]
        connection: Connection,
        /// Application name.
        #[arg(short = 'a', long = "application")]
        name: String,
        /// Roles as ROLE@context, comma-separated or repeated.
        #[arg(short = 'r', long = "roles", value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(short = 'd', long = "description", default_value = "")]
        description: String,
        /// Use this token instead of a generated one.
        #[arg(short = 'T', long = "app-token")]
        app_token: Option<String>,
    },
    /// Delete an application (its token stops working at once).
    DeleteApplication {
        #[command(flatten)]
        connection: Connection,
        #[arg(short = 'a', long = "application")]
        name: String,
    },
    /// Give an application a new token; prints it.
    RenewToken {
        #[command(flatten)]
        connection: Connection,
        #[arg(short = 'a', long = "application")]
        name: String,
    },
    /// List users and their roles.
    Users(Connection),
    /// Create or update a user. The password comes from -p or MYELIN_PASSWORD.
    RegisterUser {
        #[command(flatten)]
        connection: Connection,
        #[arg(short = 'u', long = "username")]
        name: String,
        /// Roles as ROLE@context, comma-separated or repeated.
        #[arg(short = 'r', long = "roles", value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(
            short = 'p',
            long = "password",
            env = "MYELIN_PASSWORD",
            hide_env_values = true
        )]
        password: Option<String>,
    },
    /// Delete a user.
    DeleteUser {
        #[command(flatten)]
        connection: Connection,
        #[arg(short = 'u', long = "username")]
        name: String,
    },
}

/// Runs one command; `Err` is the message to print.
pub async fn run(command: AdminCommand) -> Result<String, String> {
    match command {
        AdminCommand::Applications(connection) => {
            let apps = call(&connection, "GET", "/v1/public/applications", None).await?;
            let apps: serde_json::Value = parse_json(&apps)?;
            let mut lines = vec![format!("{:<24} {:<40} {}", "NAME", "ROLES", "DESCRIPTION")];
            for app in apps.as_array().into_iter().flatten() {
                let roles: Vec<String> =
                    app["roles"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|per| {
                            let context = per["context"].as_str().unwrap_or_default().to_string();
                            per["roles"].as_array().into_iter().flatten().map(move |r| {
                                format!("{}@{context}", r.as_str().unwrap_or_default())
                            })
                        })
                        .collect();
                lines.push(format!(
                    "{:<24} {:<40} {}",
                    app["applicationName"].as_str().unwrap_or_default(),
                    roles.join(","),
                    app["description"].as_str().unwrap_or_default()
                ));
            }
            Ok(lines.join("\n"))
        }
        AdminCommand::RegisterApplication {
            connection,
            name,
            roles,
            description,
            app_token,
        } => {
            let mut per_context: Vec<(String, Vec<String>)> = Vec::new();
            for text in &roles {
                let (role, context) = text.split_once('@').unwrap_or((text, "*"));
                match per_context.iter_mut().find(|(c, _)| c == context) {
                    Some((_, list)) => list.push(role.to_string()),
                    None => per_context.push((context.to_string(), vec![role.to_string()])),
                }
            }
            let body = serde_json::json!({
                "applicationName": name,
                "description": description,
                "token": app_token,
                "roles": per_context
                    .iter()
                    .map(|(context, roles)| serde_json::json!({ "context": context, "roles": roles }))
                    .collect::<Vec<_>>(),
            });
            let token = call(&connection, "POST", "/v1/applications", Some(body)).await?;
            Ok(if token.is_empty() {
                format!("application {name} saved; its token did not change")
            } else {
                token
            })
        }
        AdminCommand::DeleteApplication { connection, name } => {
            call(
                &connection,
                "DELETE",
                &format!("/v1/applications/{name}"),
                None,
            )
            .await?;
            Ok(format!("application {name} deleted"))
        }
        AdminCommand::RenewToken { connection, name } => {
            call(
                &connection,
                "PATCH",
                &format!("/v1/applications/{name}"),
                None,
            )
            .await
        }
        AdminCommand::Users(connection) => {
            let users = call(&connection, "GET", "/v1/public/users", None).await?;
            let users: serde_json::Value = parse_json(&users)?;
            let mut lines = vec![format!("{:<24} {}", "USER", "ROLES")];
            for user in users.as_array().into_iter().flatten() {
                let roles: Vec<&str> = user["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .collect();
                lines.push(format!(
                    "{:<24} {}",
                    user["userName"].as_str().unwrap_or_default(),
                    roles.join(",")
                ));
            }
            Ok(lines.join("\n"))
        }
        AdminCommand::RegisterUser {
            connection,
            name,
            roles,
            password,
        } => {
            let body =
                serde_json::json!({ "userName": name, "password": password, "roles": roles });
            call(&connection, "POST", "/v1/users", Some(body)).await?;
            Ok(format!("user {name} saved"))
        }
        AdminCommand::DeleteUser { connection, name } => {
            call(&connection, "DELETE", &format!("/v1/users/{name}"), None).await?;
            Ok(format!("user {name} deleted"))
        }
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("the node answered something that is not JSON ({e})"))
}

/// One request; `Ok` with the body on 2xx, else the node's error message.
async fn call(
    connection: &Connection,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<String, String> {
    let url = connection.server.trim_end_matches('/');
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "--server {url}: expected http://host:port or https://host:port"
        ));
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host.to_string(),
            port.parse::<u16>()
                .map_err(|_| format!("--server {url}: bad port"))?,
        ),
        None => (rest.to_string(), if tls { 443 } else { 80 }),
    };
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = &connection.token {
        head.push_str(&format!("AxonIQ-Access-Token: {token}\r\n"));
    }
    head.push_str("\r\n");
    let request = format!("{head}{body}");
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let raw = if tls {
        let config = myelin_server::tls::client_config(
            connection.ca.as_deref(),
            myelin_server::tls::ALPN_HTTP,
        )
        .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.clone())
            .map_err(|_| format!("{host} is not a valid TLS name"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {url} failed: {e}"))?;
        exchange(stream, &request).await
    } else {
        exchange(tcp, &request).await
    }
    .map_err(|e| format!("{url}: {e}"))?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                Some(format!(
                    "{} {}",
                    v["code"].as_str()?,
                    v["message"].as_str()?
                ))
            })
            .unwrap_or(body);
        Err(format!("{method} {path}: HTTP {status}: {message}"))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> std::io::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    // A TLS server may close without close_notify; what arrived is the answer.
    let read = stream.read_to_end(&mut raw).await;
    if raw.is_empty() {
        read?;
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    body
}
