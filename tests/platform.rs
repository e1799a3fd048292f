//! PlatformService: the platform handshake and the instruction stream — acknowledgements for
//! every message with an instruction id (heartbeats!), processor reports kept per client and
//! dropped with the stream.

use std::time::Duration;

use myelin_protocol::grpc::control::platform_inbound_instruction::Request as Inbound;
use myelin_protocol::grpc::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::grpc::control::{
    event_processor_info::SegmentStatus, ClientIdentification, EventProcessorInfo, Heartbeat,
    PlatformInboundInstruction, PlatformOutboundInstruction,
};
use myelin_tests::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

fn identification() -> ClientIdentification {
    ClientIdentification {
        client_id: "orders-1@host".into(),
        component_name: "orders".into(),
        tags: Default::default(),
        version: "4.6".into(),
    }
}

fn instruction(request: Inbound, instruction_id: &str) -> PlatformInboundInstruction {
    PlatformInboundInstruction {
        request: Some(request),
        instruction_id: instruction_id.to_string(),
    }
}

async fn next(
    stream: &mut Streaming<PlatformOutboundInstruction>,
    wait: Duration,
) -> Option<PlatformOutboundInstruction> {
    match tokio::time::timeout(wait, stream.message()).await {
        Ok(Ok(message)) => message,
        Ok(Err(status)) => panic!("platform stream failed: {status}"),
        Err(_) => None,
    }
}

#[tokio::test]
async fn t10_get_platform_server_keeps_the_client_on_this_connection() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(|c| c.name = "node-a".into()).await;
        let client = node.client().await;
        let info = client
            .platform
            .clone()
            .get_platform_server(identification())
            .await
            .expect("platform server")
            .into_inner();
        assert!(info.same_connection);
        let primary = info.primary.expect("primary node");
        assert_eq!(primary.node_name, "node-a");
        assert_eq!(primary.host_name, "localhost");
        assert_eq!(primary.grpc_port as u16, node.node().grpc_addr().port());
        assert_eq!(primary.http_port as u16, node.node().http_addr().port());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_instruction_stream_acks_heartbeats_and_keeps_processor_reports() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let (inbound, receiver) = mpsc::channel(16);
        let mut outbound = client
            .platform
            .clone()
            .open_stream(ReceiverStream::new(receiver))
            .await
            .expect("open stream")
            .into_inner();

        println!("phase: register (no instruction id: no answer)");
        inbound
            .send(instruction(Inbound::Register(identification()), ""))
            .await
            .expect("send");
        assert!(next(&mut outbound, Duration::from_millis(300))
            .await
            .is_none());
        let clients = node.node().clients();
        eventually(
            "the client to be registered",
            Duration::from_secs(5),
            || {
                let listed = clients.list();
                async move { (listed.len() == 1).then_some(()) }
            },
        )
        .await;
        assert_eq!(clients.list()[0].component_name, "orders");

        println!("phase: a heartbeat with an instruction id is acknowledged with that id");
        inbound
            .send(instruction(Inbound::Heartbeat(Heartbeat {}), "hb-1"))
            .await
            .expect("send");
        let ack = next(&mut outbound, Duration::from_secs(5))
            .await
            .expect("ack");
        match ack.request {
            Some(Outbound::Ack(ack)) => {
                assert_eq!(ack.instruction_id, "hb-1");
                assert!(ack.success);
            }
            other => panic!("expected an ack, got {other:?}"),
        }

        println!("phase: a message the server does not understand is acked as unsupported");
        inbound
            .send(PlatformInboundInstruction {
                request: None,
                instruction_id: "odd-1".into(),
            })
            .await
            .expect("send");
        match next(&mut outbound, Duration::from_secs(5))
            .await
            .and_then(|m| m.request)
        {
            Some(Outbound::Ack(ack)) => {
                assert_eq!(ack.instruction_id, "odd-1");
                assert!(!ack.success);
                assert_eq!(
                    ack.error.map(|e| e.error_code).as_deref(),
                    Some("AXONIQ-1002")
                );
            }
            other => panic!("expected an ack, got {other:?}"),
        }

        println!("phase: processor reports: the latest one is kept");
        for position in [10, 42] {
            let info = EventProcessorInfo {
                processor_name: "projections".into(),
                mode: "Pooled Streaming".into(),
                running: true,
                is_streaming_processor: true,
                segment_status: vec![SegmentStatus {
                    segment_id: 0,
                    caught_up: true,
                    one_part_of: 1,
                    token_position: position,
                    ..Default::default()
                }],
                ..Default::default()
            };
            inbound
                .send(instruction(Inbound::EventProcessorInfo(info), ""))
                .await
                .expect("send");
        }
        eventually(
            "the latest processor report",
            Duration::from_secs(5),
            || {
                let listed = clients.list();
                async move {
                    let position = listed
                        .first()?
                        .processors
                        .get("projections")?
                        .segment_status
                        .first()?
                        .token_position;
                    (position == 42).then_some(())
                }
            },
        )
        .await;

        println!("phase: the admin service shows the processor per component");
        let channel = tonic::transport::Endpoint::from_shared(node.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut admin =
            myelin_protocol::grpc::admin::event_processor_admin_service_client::EventProcessorAdminServiceClient::new(channel);
        let mut processors = admin
            .get_event_processors_by_component(myelin_protocol::grpc::Component {
                component: "orders".into(),
            })
            .await
            .expect("processors")
            .into_inner();
        let processor = processors.message().await.expect("ok").expect("one processor");
        assert_eq!(processor.identifier.as_ref().map(|i| i.processor_name.as_str()), Some("projections"));
        assert_eq!(processor.mode, "Pooled Streaming");
        let instance = &processor.client_instance[0];
        assert_eq!(instance.client_id, "orders-1@host");
        assert_eq!(instance.claimed_segment[0].token_position, 42);
        assert!(processors.message().await.expect("ok").is_none());
        let mut other = admin
            .get_event_processors_by_component(myelin_protocol::grpc::Component {
                component: "billing".into(),
            })
            .await
            .expect("processors")
            .into_inner();
        assert!(other.message().await.expect("ok").is_none(), "other components have none");

        println!("phase: closing the stream forgets the client");
        drop(inbound);
        eventually("the client to be removed", Duration::from_secs(5), || {
            let empty = clients.list().is_empty();
            async move { empty.then_some(()) }
        })
        .await;
    })
    .await
    .expect("test timed out");
}
