//! What every call passes first: access control with Axon's tokens and error codes, and context
//! resolution. Also the actuator health endpoint that says whether the node can take writes.

use std::time::Duration;

use myelin_protocol::grpc::control::ClientIdentification;
use myelin_protocol::grpc::event::GetLastTokenRequest;
use myelin_testkit::AxonClient;
use myelin_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

async fn last_token(client: &AxonClient) -> Result<i64, tonic::Status> {
    Ok(client
        .events
        .clone()
        .get_last_token(GetLastTokenRequest {})
        .await?
        .into_inner()
        .token)
}

#[tokio::test]
async fn t10_access_control_off_needs_no_token() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = AxonClient::connect(&node.endpoint(), "default", Some("anything")).await;
        assert_eq!(last_token(&client).await.expect("no token needed"), -1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_access_control_on_checks_tokens_on_every_call() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(|c| {
            c.access_control_enabled = true;
            c.access_control_token = Some("app-secret".into());
            c.access_control_admin_token = Some("admin-secret".into());
        })
        .await;

        println!("phase: no token: AXONIQ-1000");
        let anonymous = AxonClient::connect(&node.endpoint(), "default", None).await;
        let status = last_token(&anonymous).await.expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-1000"));
        assert_eq!(
            status.message(),
            "No token for io.axoniq.axonserver.grpc.event.EventStore/GetLastToken"
        );
        let status = anonymous
            .platform
            .clone()
            .get_platform_server(ClientIdentification::default())
            .await
            .expect_err("refused");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-1000"));

        println!("phase: wrong token: AXONIQ-1001");
        let wrong = AxonClient::connect(&node.endpoint(), "default", Some("guess")).await;
        let status = append(&wrong, vec![plain_event("E")])
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-1001"));

        println!("phase: the application token and the admin token both work");
        let app = AxonClient::connect(&node.endpoint(), "default", Some("app-secret")).await;
        append(&app, vec![plain_event("E")])
            .await
            .expect("app token");
        let admin = AxonClient::connect(&node.endpoint(), "default", Some("admin-secret")).await;
        assert_eq!(last_token(&admin).await.expect("admin token"), 0);
        assert_eq!(
            last_token(&app).await.expect("app token"),
            0,
            "refused calls stored nothing"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t30_unknown_contexts_are_refused_as_axon_does() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = AxonClient::connect(&node.endpoint(), "nowhere", None).await;
        let status = last_token(&client).await.expect_err("unknown context");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-1302"));
        assert!(status.message().contains("nowhere"));
        let status = client
            .platform
            .clone()
            .get_platform_server(ClientIdentification::default())
            .await
            .expect_err("no server for it");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-1400"));
    })
    .await
    .expect("test timed out");
}

async fn http_get(node: &TestNode, path: &str) -> (u16, String) {
    let addr = node.node().http_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn t40_health_is_up_with_a_leader_and_info_names_the_build() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let (status, body) = eventually("health UP", Duration::from_secs(10), || async {
            let (status, body) = http_get(&node, "/actuator/health").await;
            (status == 200).then_some((status, body))
        })
        .await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""status":"UP""#), "{body}");
        assert!(body.contains(r#""isLeader":true"#), "{body}");
        let (status, body) = http_get(&node, "/actuator/info").await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""name":"myelin""#), "{body}");
    })
    .await
    .expect("test timed out");
}
