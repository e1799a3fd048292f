//! The real binary with TLS and access control: `myelin healthcheck` probes its HTTPS port, the
//! administration commands register an application whose token then works over gRPC with TLS,
//! and failed logins are logged with the user and address but never with a secret.

// Shared with the crash tests; this test uses only part of it.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use myelin_testkit::certs::TestCa;
use myelin_testkit::{eventually, plain_event, AxonClient};
use support::{free_ports, Server, TestDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_TOKEN: &str = "admin-7f3c9e";
const USER_PASSWORD: &str = "pw-of-mallory-4411";
const WRONG_PASSWORD: &str = "guessed-9x8y7z";

fn myelin(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_myelin"))
        .args(args)
        .current_dir(dir)
        .env_remove("MYELIN_TOKEN")
        .output()
        .expect("run myelin");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    )
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// POSTs a login form over HTTPS; returns the status code.
async fn login(config: Arc<rustls::ClientConfig>, port: u16, user: &str, password: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS");
    let body = format!("username={user}&password={password}");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_node_is_probed_administered_and_keeps_secrets_out_of_its_log() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = TestDir::new();
        let root = dir.path();
        let ca = TestCa::new("cli test CA");
        let ca_file = ca.write_pem(&root.join("ca.pem"));
        let files = ca.server_files(root, "node");
        let ports = free_ports(1)[0];
        // The properties file is what `myelin healthcheck` reads, from the same directory.
        std::fs::write(
            root.join("axonserver.properties"),
            format!(
                "axoniq.axonserver.ssl.enabled=true\n\
                 axoniq.axonserver.ssl.cert-chain-file={}\n\
                 axoniq.axonserver.ssl.private-key-file={}\n\
                 axoniq.axonserver.accesscontrol.enabled=true\n\
                 axoniq.axonserver.accesscontrol.admin-token={ADMIN_TOKEN}\n\
                 server.port={}\n",
                files.cert_chain.display(),
                files.private_key.display(),
                ports.http
            ),
        )
        .expect("write properties");
        let log = root.join("node.log");
        let server = Server::spawn(root, &root.join("data"), ports, log.clone(), |c| c);

        eventually(
            "the healthcheck passes over HTTPS",
            Duration::from_secs(30),
            || async {
                let (ok, out, _) = myelin(root, &["healthcheck"]);
                (ok && out == "UP").then_some(())
            },
        )
        .await;

        let https = format!("https://localhost:{}", ports.http);
        let ca_arg = ca_file.display().to_string();
        let admin = |extra: &[&'static str]| -> Vec<String> {
            let mut args: Vec<String> = [
                "-S",
                https.as_str(),
                "--ca",
                ca_arg.as_str(),
                "-t",
                ADMIN_TOKEN,
            ]
            .map(str::to_string)
            .to_vec();
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let mut register = vec!["register-application".to_string()];
        register.extend(admin(&[
            "-a",
            "orders",
            "-r",
            "USE_CONTEXT@default",
            "-d",
            "order service",
        ]));
        let (ok, token, err) = myelin(root, &strs(&register));
        assert!(ok, "register-application: {err}");
        assert_eq!(token.len(), 64, "prints the token: {token}");

        let mut list = vec!["applications".to_string()];
        list.extend(admin(&[]));
        let (ok, out, err) = myelin(root, &strs(&list));
        assert!(ok, "{err}");
        assert!(
            out.contains("orders") && out.contains("USE_CONTEXT@default"),
            "{out}"
        );

        let (ok, _, err) = myelin(
            root,
            &["applications", "-S", &https, "--ca", &ca_arg, "-t", &token],
        );
        assert!(
            !ok && err.contains("AXONIQ-1001"),
            "an application token cannot list applications: {err}"
        );

        let endpoint = format!("http://localhost:{}", ports.grpc);
        let client = AxonClient::connect_tls(&endpoint, &ca_file, "default", Some(&token))
            .await
            .expect("TLS connect");
        append_one(&client).await;

        let mut user = vec!["register-user".to_string()];
        user.extend(admin(&[
            "-u",
            "mallory",
            "-r",
            "MONITOR@default",
            "-p",
            USER_PASSWORD,
        ]));
        let (ok, _, err) = myelin(root, &strs(&user));
        assert!(ok, "register-user: {err}");

        let config =
            myelin_server::tls::client_config(Some(&ca_file), myelin_server::tls::ALPN_HTTP)
                .expect("client config");
        for _ in 0..3 {
            assert_eq!(
                login(config.clone(), ports.http, "mallory", WRONG_PASSWORD).await,
                403
            );
        }
        assert_eq!(
            login(config.clone(), ports.http, "mallory", USER_PASSWORD).await,
            429
        );

        let text = std::fs::read_to_string(&log).expect("read log");
        assert!(
            text.contains("login failed") && text.contains("mallory"),
            "failed logins are logged:\n{text}"
        );
        assert!(text.contains("locked out"), "the lockout is logged");
        assert!(
            text.contains("application created"),
            "administration is audited"
        );
        for secret in [WRONG_PASSWORD, USER_PASSWORD, ADMIN_TOKEN, token.as_str()] {
            assert!(
                !text.contains(secret),
                "the log must not contain a secret ({secret})"
            );
        }
        drop(server);
    })
    .await
    .expect("test timed out");
}

async fn append_one(client: &AxonClient) {
    let mut events = client.events.clone();
    let confirmation = events
        .append_event(tokio_stream::iter(vec![plain_event("Secured")]))
        .await
        .expect("append with the application's token");
    assert!(confirmation.into_inner().success);
}
