//! CommandService: handlers subscribe and grant permits; Dispatch routes by consistent hashing on
//! the routing key, honours priority when a handler backs up, and reports no handler (4000), lost
//! handler (4001) and timeout (4002) as Axon does; a handler's own error travels back unchanged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use myelin_protocol::grpc::command::command_provider_inbound::Request as CommandIn;
use myelin_protocol::grpc::command::command_provider_outbound::Request as CommandOut;
use myelin_protocol::grpc::command::{CommandResponse, CommandSubscription};
use myelin_protocol::grpc::control::platform_inbound_instruction::Request as PlatformIn;
use myelin_protocol::grpc::control::platform_outbound_instruction::Request as PlatformOut;
use myelin_protocol::grpc::control::{
    PlatformInboundInstruction, SubscribeTopologyChanges, UpdateType,
};
use myelin_protocol::grpc::ErrorMessage;
use myelin_tests::handlers::{command, payload, text, CommandHandler};
use myelin_tests::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(5);

/// Answers every command it receives with "<client>:<payload>" until the stream ends.
fn echo(mut handler: CommandHandler) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(command) = handler.next_command(Duration::from_secs(30)).await {
            let answer = format!("{}:{}", handler.client_id, text(&command.payload));
            let response = CommandResponse {
                payload: payload(&answer),
                ..Default::default()
            };
            handler.respond(&command, response).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t10_the_same_routing_key_reaches_the_same_handler() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let a = CommandHandler::connect(&client, "handler-a", &["Place"], 1000).await;
        let b = CommandHandler::connect(&client, "handler-b", &["Place"], 1000).await;
        let (_a, _b) = (echo(a), echo(b));

        println!("phase: 40 keys, each dispatched 3 times");
        let mut owner: HashMap<String, String> = HashMap::new();
        for round in 0..3 {
            for k in 0..40 {
                let key = format!("order-{k}");
                let response = client
                    .commands
                    .clone()
                    .dispatch(command("Place", &key, None, None))
                    .await
                    .expect("dispatch")
                    .into_inner();
                assert!(response.error_message.is_none(), "{response:?}");
                let answer = text(&response.payload);
                let (handler, echoed) = answer.split_once(':').expect("client:payload");
                assert_eq!(echoed, key, "the response belongs to this command");
                if round == 0 {
                    owner.insert(key, handler.to_string());
                } else {
                    assert_eq!(owner[&key], handler, "{key} moved between handlers");
                }
            }
        }
        let on_a = owner.values().filter(|h| *h == "handler-a").count();
        assert!(
            (5..=35).contains(&on_a),
            "both handlers get a share: a has {on_a} of 40"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_no_handler_is_an_in_band_axoniq_4000() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let sent = command("Nobody", "k", None, None);
        let response = client
            .commands
            .clone()
            .dispatch(sent.clone())
            .await
            .expect("status OK")
            .into_inner();
        assert_eq!(response.error_code, "AXONIQ-4000");
        assert_eq!(response.request_identifier, sent.message_identifier);
        let error = response.error_message.expect("error_message is set");
        assert_eq!(error.message, "No Handler for command: Nobody");
        assert_eq!(error.error_code, "AXONIQ-4000");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t30_a_handler_that_disconnects_fails_its_commands_at_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = CommandHandler::connect(&client, "flaky", &["Slow"], 10).await;
        let mut commands = client.commands.clone();
        let dispatch =
            tokio::spawn(async move { commands.dispatch(command("Slow", "k", None, None)).await });
        let received = handler
            .next_command(WAIT)
            .await
            .expect("the handler gets the command");
        assert_eq!(received.name, "Slow");

        println!("phase: the handler goes away without answering");
        let started = Instant::now();
        drop(handler);
        let response = dispatch
            .await
            .expect("task")
            .expect("status OK")
            .into_inner();
        assert_eq!(response.error_code, "AXONIQ-4001");
        assert!(response.error_message.is_some());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no waiting for a timeout"
        );

        println!("phase: with the handler gone, the command has no handler");
        let response = client
            .commands
            .clone()
            .dispatch(command("Slow", "k", None, None))
            .await
            .expect("status OK")
            .into_inner();
        assert_eq!(response.error_code, "AXONIQ-4000");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t40_an_unanswered_command_times_out_with_axoniq_4002() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = CommandHandler::connect(&client, "silent", &["Ignored"], 10).await;
        let started = Instant::now();
        let response = client
            .commands
            .clone()
            .dispatch(command("Ignored", "k", None, Some(300)))
            .await
            .expect("status OK")
            .into_inner();
        assert_eq!(response.error_code, "AXONIQ-4002");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            handler.next_command(WAIT).await.is_some(),
            "it was delivered, just not answered"
        );

        println!("phase: a late answer to a timed-out command is dropped quietly");
        let late = handler.next(Duration::from_millis(200)).await;
        assert!(late.is_none());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t50_when_a_handler_backs_up_higher_priority_goes_first() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = CommandHandler::connect(&client, "busy", &["Work"], 0).await;

        println!("phase: no permits: four commands wait, with priorities 0, 5, 1, 3");
        let mut calls = Vec::new();
        for (key, priority) in [("p0", 0), ("p5", 5), ("p1", 1), ("p3", 3)] {
            let mut commands = client.commands.clone();
            calls.push(tokio::spawn(async move {
                commands
                    .dispatch(command("Work", key, Some(priority), None))
                    .await
            }));
        }
        // Also the time for all four to reach the server.
        assert!(
            handler
                .next_command(Duration::from_millis(500))
                .await
                .is_none(),
            "never without a permit"
        );

        println!("phase: one permit at a time");
        let mut order = Vec::new();
        for _ in 0..4 {
            handler.grant(1).await;
            let received = handler
                .next_command(WAIT)
                .await
                .expect("a command per permit");
            order.push(text(&received.payload));
            handler.respond(&received, CommandResponse::default()).await;
            assert!(
                handler
                    .next_command(Duration::from_millis(100))
                    .await
                    .is_none(),
                "one per permit"
            );
        }
        assert_eq!(order, ["p5", "p3", "p1", "p0"]);
        for call in calls {
            assert!(call
                .await
                .expect("task")
                .expect("status OK")
                .into_inner()
                .error_message
                .is_none());
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t60_a_handlers_exception_travels_back_unchanged() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = CommandHandler::connect(&client, "strict", &["Validate"], 10).await;
        let mut commands = client.commands.clone();
        let call = tokio::spawn(async move {
            commands
                .dispatch(command("Validate", "k", None, None))
                .await
        });
        let received = handler.next_command(WAIT).await.expect("command");
        let error = ErrorMessage {
            message: "Amount must be positive".into(),
            location: "strict@host".into(),
            details: vec![
                "IllegalArgumentException".into(),
                "at Validate.handle".into(),
            ],
            error_code: "AXONIQ-4002".into(),
        };
        let failure = CommandResponse {
            error_code: "AXONIQ-4002".into(),
            error_message: Some(error.clone()),
            payload: payload("details"),
            ..Default::default()
        };
        handler.respond(&received, failure).await;
        let response = call.await.expect("task").expect("status OK").into_inner();
        assert_eq!(response.error_code, "AXONIQ-4002");
        assert_eq!(response.error_message, Some(error));
        assert_eq!(text(&response.payload), "details");
        assert_eq!(response.request_identifier, received.message_identifier);
    })
    .await
    .expect("test timed out");
}

async fn next_change(
    platform: &mut tonic::Streaming<myelin_protocol::grpc::control::PlatformOutboundInstruction>,
) -> myelin_protocol::grpc::control::TopologyChange {
    match tokio::time::timeout(WAIT, platform.message()).await {
        Ok(Ok(Some(message))) => match message.request {
            Some(PlatformOut::TopologyChange(change)) => change,
            other => panic!("expected a topology change, got {other:?}"),
        },
        other => panic!("no topology change: {other:?}"),
    }
}

#[tokio::test]
async fn t70_instructions_are_acknowledged_and_topology_is_published() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let _early = CommandHandler::connect(&client, "early", &["Existing"], 10).await;

        println!("phase: a watcher first sees what is registered, then every change");
        let (inbound, receiver) = mpsc::channel(16);
        let mut platform = client
            .platform
            .clone()
            .open_stream(ReceiverStream::new(receiver))
            .await
            .expect("platform stream")
            .into_inner();
        let watch = PlatformInboundInstruction {
            request: Some(PlatformIn::SubscribeTopologyChanges(
                SubscribeTopologyChanges {},
            )),
            instruction_id: String::new(),
        };
        inbound.send(watch).await.expect("send");
        let existing = next_change(&mut platform).await;
        assert_eq!(existing.update_type, UpdateType::AddCommandHandler as i32);
        assert_eq!(existing.client_id, "early");

        let mut late = CommandHandler::connect(&client, "late", &["Fresh"], 10).await;
        let added = next_change(&mut platform).await;
        assert_eq!(added.update_type, UpdateType::AddCommandHandler as i32);
        assert_eq!(added.client_id, "late");
        assert!(added.client_stream_id.starts_with("late."));

        println!("phase: unsubscribe with an instruction id is acked and published");
        let subscription = CommandSubscription {
            message_id: "u1".into(),
            command: "Fresh".into(),
            component_name: "handlers".into(),
            client_id: "late".into(),
            load_factor: 100,
        };
        late.send(CommandOut::Unsubscribe(subscription), "u1").await;
        match late.next(WAIT).await {
            Some(CommandIn::Ack(ack)) => assert_eq!(ack.instruction_id, "u1"),
            other => panic!("expected an ack, got {other:?}"),
        }
        let removed = next_change(&mut platform).await;
        assert_eq!(removed.update_type, UpdateType::RemoveCommandHandler as i32);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t80_a_command_sent_just_before_the_subscription_finds_its_handler() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        for round in 0..10 {
            let name = format!("Fresh{round}");
            // The dispatch goes out before the handler even opens its stream, as when an
            // application sends a command right at start-up: the server must not answer "no
            // handler" while the subscription is on its way.
            let mut commands = client.commands.clone();
            let sent = command(&name, "k", None, None);
            let call = tokio::spawn(async move { commands.dispatch(sent).await });
            let (requests, receiver) = mpsc::channel(8);
            let mut inbound = client
                .commands
                .clone()
                .open_stream(ReceiverStream::new(receiver))
                .await
                .expect("stream")
                .into_inner();
            let flow = myelin_protocol::grpc::FlowControl {
                client_id: "starter".into(),
                permits: 10,
            };
            let subscription = CommandSubscription {
                message_id: "s".into(),
                command: name.clone(),
                component_name: "starters".into(),
                client_id: "starter".into(),
                load_factor: 100,
            };
            for request in [
                CommandOut::FlowControl(flow),
                CommandOut::Subscribe(subscription),
            ] {
                let message = myelin_protocol::grpc::command::CommandProviderOutbound {
                    request: Some(request),
                    instruction_id: String::new(),
                };
                requests.send(message).await.expect("send");
            }
            let received = loop {
                let message = tokio::time::timeout(WAIT, inbound.message()).await;
                match message
                    .expect("a message in time")
                    .expect("ok")
                    .expect("message")
                    .request
                {
                    Some(CommandIn::Command(c)) => break c,
                    _ => continue,
                }
            };
            let response = myelin_protocol::grpc::command::CommandProviderOutbound {
                request: Some(CommandOut::CommandResponse(CommandResponse {
                    message_identifier: "r".into(),
                    request_identifier: received.message_identifier,
                    ..Default::default()
                })),
                instruction_id: String::new(),
            };
            requests.send(response).await.expect("send");
            let answer = call.await.expect("task").expect("status OK").into_inner();
            assert!(answer.error_message.is_none(), "round {round}: {answer:?}");
        }
    })
    .await
    .expect("test timed out");
}
