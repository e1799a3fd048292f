//! TLS on all three ports against in-process nodes: clients that trust the node's CA connect over
//! gRPC and HTTPS; plaintext clients and clients with another CA are refused; certificates
//! rotated on disk are served without a restart; a three-node cluster replicates over TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use myelin_protocol::grpc::control::ClientIdentification;
use myelin_server::config::NodeConfig;
use myelin_testkit::certs::{ServerFiles, TestCa};
use myelin_testkit::{AxonClient, TestCluster};
use myelin_tests::http::{request, request_tls};
use myelin_tests::*;

const WAIT: Duration = Duration::from_secs(10);

fn use_tls(config: &mut NodeConfig, files: &ServerFiles, ca: &Path) {
    config.ssl_enabled = true;
    config.ssl_cert_chain_file = Some(files.cert_chain.clone());
    config.ssl_private_key_file = Some(files.private_key.clone());
    config.ssl_trusted_certificates = Some(ca.to_path_buf());
}

fn identification() -> ClientIdentification {
    ClientIdentification {
        client_id: "tls-test".to_string(),
        component_name: "tls-test".to_string(),
        ..Default::default()
    }
}

/// A node with TLS from a fresh CA; the certificate files live in `dir` as long as the value.
struct TlsNode {
    node: TestNode,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsNode {
    async fn start(adjust: impl FnOnce(&mut NodeConfig)) -> TlsNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = TestCa::new("myelin test CA");
        let ca_file = ca.write_pem(&dir.path().join("ca.pem"));
        let files = ca.server_files(dir.path(), "node");
        let node = TestNode::start_with(|c| {
            use_tls(c, &files, &ca_file);
            adjust(c);
        })
        .await;
        TlsNode { node, ca_file, dir }
    }

    /// The certificate of a CA the node does not use.
    fn other_ca(&self) -> PathBuf {
        TestCa::new("some other CA").write_pem(&self.dir.path().join("other.pem"))
    }
}

/// `http://localhost:<grpc port>`: the connector adds TLS and checks the name `localhost`.
fn grpc_endpoint(node: &TestNode) -> String {
    format!("http://localhost:{}", node.node().grpc_addr().port())
}

#[tokio::test]
async fn grpc_clients_need_the_right_ca_and_plaintext_is_refused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let secured = TlsNode::start(|_| {}).await;
        let (node, ca_file, other_ca_file) = (&secured.node, &secured.ca_file, secured.other_ca());

        let mut client = AxonClient::connect_tls(&grpc_endpoint(node), ca_file, "default", None)
            .await
            .expect("a client trusting the CA connects");
        let info = client
            .platform
            .get_platform_server(identification())
            .await
            .expect("GetPlatformServer over TLS")
            .into_inner();
        assert!(info.primary.is_some());
        append(&client, vec![plain_event("OverTls")])
            .await
            .expect("append over TLS");
        assert_eq!(last_token(&client).await, 0);

        let wrong_ca =
            AxonClient::connect_tls(&grpc_endpoint(node), &other_ca_file, "default", None).await;
        assert!(
            wrong_ca.is_err(),
            "a client that does not trust the node's CA must not connect"
        );

        // Plaintext HTTP/2 to a TLS port: the connection is dropped during the "handshake".
        let plaintext = tonic::transport::Endpoint::from_shared(node.endpoint())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await;
        match plaintext {
            Err(_) => {}
            Ok(channel) => {
                let mut platform =
                    myelin_protocol::grpc::control::platform_service_client::PlatformServiceClient::new(channel);
                let call = tokio::time::timeout(
                    WAIT,
                    platform.get_platform_server(identification()),
                )
                .await
                .expect("a plaintext call ends");
                assert!(call.is_err(), "a plaintext call must fail on a TLS port");
            }
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn https_serves_the_rest_api_and_refuses_plaintext_and_unknown_cas() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let secured = TlsNode::start(|_| {}).await;
        let (node, ca_file, other_ca_file) = (&secured.node, &secured.ca_file, secured.other_ca());
        let http = node.node().http_addr();

        let health = request_tls(http, ca_file, "GET", "/actuator/health/liveness", &[], None)
            .await
            .expect("HTTPS with the right CA");
        assert_eq!(health.status, 200, "{}", health.body);
        let me = request_tls(http, ca_file, "GET", "/v1/public/me", &[], None)
            .await
            .expect("HTTPS");
        assert_eq!(me.json()["ssl"], true, "{}", me.body);

        let refused = request_tls(
            http,
            &other_ca_file,
            "GET",
            "/actuator/health/liveness",
            &[],
            None,
        )
        .await;
        assert!(refused.is_err(), "an unknown CA must fail the handshake");

        let plaintext = request(http, "GET", "/actuator/health/liveness", &[], None).await;
        assert_eq!(
            plaintext.status, 0,
            "plain HTTP on the HTTPS port gets no HTTP answer: {plaintext:?}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn http_can_stay_plaintext_while_grpc_uses_tls() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let secured = TlsNode::start(|c| c.http_ssl_enabled = Some(false)).await;
        let (node, ca_file) = (&secured.node, &secured.ca_file);
        let health = request(
            node.node().http_addr(),
            "GET",
            "/actuator/health/liveness",
            &[],
            None,
        )
        .await;
        assert_eq!(health.status, 200, "{health:?}");
        assert!(
            AxonClient::connect_tls(&grpc_endpoint(node), ca_file, "default", None)
                .await
                .is_ok()
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn certificates_rotated_on_disk_are_served_without_a_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let temporary = tempfile::tempdir().expect("temporary directory");
        let dir = temporary.path();
        let old_ca = TestCa::new("old CA");
        let old_ca_file = old_ca.write_pem(&dir.join("old-ca.pem"));
        let files = old_ca.server_files(dir, "node");
        let node = TestNode::start_with(|c| {
            use_tls(c, &files, &old_ca_file);
            c.ssl_reload_interval_ms = 50;
        })
        .await;
        let http = node.node().http_addr();
        let endpoint = grpc_endpoint(&node);
        assert!(
            AxonClient::connect_tls(&endpoint, &old_ca_file, "default", None)
                .await
                .is_ok()
        );

        // The operator replaces both files with a pair from a new CA (cert-manager style).
        let new_ca = TestCa::new("new CA");
        let new_ca_file = new_ca.write_pem(&dir.join("new-ca.pem"));
        let staged = new_ca.server_files(dir, "staged");
        std::fs::rename(&staged.private_key, &files.private_key).expect("replace key");
        std::fs::rename(&staged.cert_chain, &files.cert_chain).expect("replace chain");

        eventually("gRPC serves the new certificate", WAIT, || async {
            AxonClient::connect_tls(&endpoint, &new_ca_file, "default", None)
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        let health = request_tls(
            http,
            &new_ca_file,
            "GET",
            "/actuator/health/liveness",
            &[],
            None,
        )
        .await
        .expect("HTTPS serves the new certificate too");
        assert_eq!(health.status, 200);
        assert!(
            AxonClient::connect_tls(&endpoint, &old_ca_file, "default", None)
                .await
                .is_err(),
            "the old certificate is no longer served"
        );

        // A half-written rotation (a key that does not match) keeps the working pair in service.
        let stray = TestCa::new("stray CA").server_files(dir, "stray");
        std::fs::rename(&stray.private_key, &files.private_key).expect("replace key only");
        let still = request_tls(
            http,
            &new_ca_file,
            "GET",
            "/actuator/health/liveness",
            &[],
            None,
        )
        .await
        .expect("the previous pair stays in use");
        assert_eq!(still.status, 200);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_replicates_over_tls_with_the_internal_token() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let temporary = tempfile::tempdir().expect("temporary directory");
        let dir = temporary.path();
        let ca = TestCa::new("cluster CA");
        let ca_file = ca.write_pem(&dir.join("ca.pem"));
        let files = ca.server_files(dir, "nodes");
        let cluster = TestCluster::start(3, |_, c| {
            use_tls(c, &files, &ca_file);
            c.internal_token = Some("internal-secret".to_string());
        })
        .await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let endpoint = |i: usize| format!("http://localhost:{}", cluster.grpc_addr(i).port());
        let writer = AxonClient::connect_tls(&endpoint(leader), &ca_file, "default", None)
            .await
            .expect("connect to the leader");
        append(&writer, vec![domain_event("tls-1", 0, "Created")])
            .await
            .expect("append on the leader");
        let reader = AxonClient::connect_tls(&endpoint(follower), &ca_file, "default", None)
            .await
            .expect("connect to a follower");
        eventually("the follower has the event", WAIT, || async {
            (last_token(&reader).await == 0).then_some(())
        })
        .await;
    })
    .await
    .expect("test timed out");
}
