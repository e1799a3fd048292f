//! QueryService: direct queries reach one instance per component, scatter-gather every component,
//! streaming queries run at the caller's pace and can be cancelled, subscription queries forward
//! initial result, updates and completion, and a subscriber that stops reading is cut off instead of
//! buffered without bound.

use std::time::Duration;

use myelin_protocol::grpc::query::query_provider_inbound::Request as QueryIn;
use myelin_protocol::grpc::query::query_provider_outbound::Request as QueryOut;
use myelin_protocol::grpc::query::subscription_query_request::Request as SubscriptionIn;
use myelin_protocol::grpc::query::subscription_query_response::Response as SubscriptionOut;
use myelin_protocol::grpc::query::{
    QueryComplete, QueryRequest, QueryResponse, QueryUpdate, QueryUpdateComplete,
    SubscriptionQuery, SubscriptionQueryRequest, SubscriptionQueryResponse,
};
use myelin_protocol::grpc::{meta_data_value, ProcessingKey};
use myelin_tests::handlers::{answer_all, ask, payload, query, text, QueryHandler};
use myelin_tests::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t10_direct_queries_reach_one_instance_and_scatter_gather_every_component() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let _a1 = answer_all(QueryHandler::connect(&client, "a1", "orders", &["Find"], 100).await);
        let _a2 = answer_all(QueryHandler::connect(&client, "a2", "orders", &["Find"], 100).await);
        let _b = answer_all(QueryHandler::connect(&client, "b", "billing", &["Find"], 100).await);

        println!("phase: each query gets one answer per component; instances take turns");
        let mut orders_instances = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let answers: Vec<String> = ask(&client, query("Find", -1, false, None))
                .await
                .iter()
                .map(|r| text(&r.payload))
                .collect();
            assert_eq!(answers.len(), 2, "{answers:?}");
            assert!(answers.contains(&"billing/b".to_string()), "{answers:?}");
            orders_instances.extend(answers.into_iter().filter(|a| a.starts_with("orders/")));
        }
        assert_eq!(
            orders_instances.len(),
            2,
            "both orders instances answered: {orders_instances:?}"
        );

        println!("phase: no handler is an in-band AXONIQ-5000");
        let none = ask(&client, query("Unknown", 1, false, None)).await;
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].error_code, "AXONIQ-5000");
        assert!(none[0].error_message.is_some());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t20_errors_are_held_back_when_another_target_succeeds_and_timeouts_end_the_query() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let _ok = answer_all(QueryHandler::connect(&client, "ok", "good", &["Mixed"], 100).await);
        let mut failing = QueryHandler::connect(&client, "bad", "broken", &["Mixed"], 100).await;
        let failing_task = tokio::spawn(async move {
            while let Some(QueryIn::Query(q)) = failing.next(Duration::from_secs(10)).await {
                let error = QueryResponse {
                    message_identifier: uuid::Uuid::new_v4().to_string(),
                    request_identifier: q.message_identifier.clone(),
                    error_code: "AXONIQ-5001".into(),
                    error_message: Some(myelin_protocol::grpc::ErrorMessage {
                        message: "boom".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                failing.send(QueryOut::QueryResponse(error), "").await;
                let complete = QueryComplete {
                    message_id: "c".into(),
                    request_id: q.message_identifier,
                };
                failing.send(QueryOut::QueryComplete(complete), "").await;
            }
            failing
        });
        let answers = ask(&client, query("Mixed", -1, false, None)).await;
        assert_eq!(answers.len(), 1, "only the success: {answers:?}");
        assert_eq!(text(&answers[0].payload), "good/ok");
        drop(failing_task);

        println!("phase: a handler that never completes: the query ends at its timeout with what arrived");
        let mut stuck = QueryHandler::connect(&client, "stuck", "slow", &["Stuck"], 100).await;
        let started = std::time::Instant::now();
        let answers = ask(&client, query("Stuck", 1, false, Some(300))).await;
        assert!(answers.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(matches!(stuck.next(WAIT).await, Some(QueryIn::Query(_))));
        assert!(matches!(stuck.next(WAIT).await, Some(QueryIn::QueryCancel(_))), "the handler is told to stop");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t30_streaming_queries_follow_the_callers_pace_and_can_be_cancelled() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler =
            QueryHandler::connect(&client, "streamer", "numbers", &["Count"], 10_000).await;
        let request = query("Count", -1, true, None);
        let id = request.message_identifier.clone();
        let mut stream = client
            .queries
            .clone()
            .query(request)
            .await
            .expect("query")
            .into_inner();

        let Some(QueryIn::Query(received)) = handler.next(WAIT).await else {
            panic!("the handler gets the query")
        };
        let server_streaming = received.processing_instructions.iter().any(|i| {
            i.key == ProcessingKey::ServerSupportsStreaming as i32
                && matches!(
                    i.value.as_ref().and_then(|v| v.data.as_ref()),
                    Some(meta_data_value::Data::BooleanValue(true))
                )
        });
        assert!(
            server_streaming,
            "the server tells the handler it may stream"
        );

        println!("phase: the handler sends a 4 KiB result per permit; the caller reads nothing");
        let result = |n: i64| QueryResponse {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            request_identifier: id.clone(),
            payload: payload(&format!("{n:05}{}", "x".repeat(4096))),
            ..Default::default()
        };
        let mut granted = 0;
        while let Some(message) = handler.next(Duration::from_millis(500)).await {
            let QueryIn::QueryFlowControl(flow) = message else {
                panic!("expected flow control, got {message:?}")
            };
            assert_eq!(
                flow.query_reference.map(|r| r.request_id).as_deref(),
                Some(id.as_str())
            );
            for n in granted..granted + flow.permits {
                handler.send(QueryOut::QueryResponse(result(n)), "").await;
            }
            granted += flow.permits;
            assert!(
                granted < 4000,
                "a caller that reads nothing keeps getting permits: {granted}"
            );
        }
        println!("the handler was granted {granted} results while the caller read none");
        // Our queue of 32 plus what HTTP/2 flow control lets into the transport (a 2 MiB stream
        // window on tonic's client, about 500 of these results): bounded, however long we wait.
        assert!(
            granted > 0 && granted < 1000,
            "bounded by the buffers between them: {granted}"
        );

        println!("phase: reading frees room; results arrive in order and permits flow again");
        for expected in 0..granted {
            let response = stream.message().await.expect("ok").expect("a result");
            assert!(text(&response.payload).starts_with(&format!("{expected:05}")));
        }
        match handler.next(WAIT).await {
            Some(QueryIn::QueryFlowControl(_)) => {}
            other => panic!("expected more permits once the caller read, got {other:?}"),
        }

        println!("phase: the caller gives up: the handler is cancelled");
        drop(stream);
        loop {
            match handler.next(WAIT).await {
                Some(QueryIn::QueryCancel(reference)) => {
                    assert_eq!(reference.request_id, id);
                    break;
                }
                Some(QueryIn::QueryFlowControl(_)) => continue,
                other => panic!("expected a cancel, got {other:?}"),
            }
        }
    })
    .await
    .expect("test timed out");
}

#[allow(deprecated)]
fn subscription_query(id: &str, name: &str) -> SubscriptionQuery {
    SubscriptionQuery {
        subscription_identifier: id.into(),
        number_of_permits: 0,
        query_request: Some(QueryRequest {
            message_identifier: id.into(),
            ..query(name, 1, false, None)
        }),
        update_response_type: None,
    }
}

fn subscriber_request(request: SubscriptionIn) -> SubscriptionQueryRequest {
    SubscriptionQueryRequest {
        request: Some(request),
    }
}

/// Opens a subscription call, grants `permits` and subscribes, as Axon's connector does.
async fn subscribe(
    client: &myelin_testkit::AxonClient,
    sub: &SubscriptionQuery,
    permits: i64,
) -> (
    mpsc::Sender<SubscriptionQueryRequest>,
    tonic::Streaming<SubscriptionQueryResponse>,
) {
    let (requests, receiver) = mpsc::channel(16);
    let updates = client
        .queries
        .clone()
        .subscription(ReceiverStream::new(receiver))
        .await
        .expect("subscription")
        .into_inner();
    let mut flow = sub.clone();
    flow.number_of_permits = permits;
    for request in [
        SubscriptionIn::FlowControl(flow),
        SubscriptionIn::Subscribe(sub.clone()),
    ] {
        requests
            .send(subscriber_request(request))
            .await
            .expect("send");
    }
    (requests, updates)
}

fn update(subscription: &str, text: &str) -> QueryOut {
    QueryOut::SubscriptionQueryResponse(SubscriptionQueryResponse {
        message_identifier: uuid::Uuid::new_v4().to_string(),
        subscription_identifier: subscription.into(),
        response: Some(SubscriptionOut::Update(QueryUpdate {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            payload: payload(text),
            ..Default::default()
        })),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(deprecated)]
async fn t40_subscription_queries_forward_initial_result_updates_and_completion() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut h1 = QueryHandler::connect(&client, "h1", "cards", &["Balance"], 100).await;
        let mut h2 = QueryHandler::connect(&client, "h2", "cards", &["Balance"], 100).await;

        let sub = subscription_query("sub-1", "Balance");
        let (requests, mut updates) = subscribe(&client, &sub, 10).await;
        requests
            .send(subscriber_request(SubscriptionIn::GetInitialResult(
                sub.clone(),
            )))
            .await
            .expect("send");

        println!(
            "phase: every instance gets the subscription, one gets the initial-result request"
        );
        let mut initial_asked = None;
        for (name, handler) in [("h1", &mut h1), ("h2", &mut h2)] {
            for _ in 0..2 {
                match handler.next(Duration::from_millis(500)).await {
                    Some(QueryIn::SubscriptionQueryRequest(r)) => match r.request {
                        Some(SubscriptionIn::Subscribe(s)) => {
                            assert_eq!(s.subscription_identifier, "sub-1")
                        }
                        Some(SubscriptionIn::GetInitialResult(_)) => initial_asked = Some(name),
                        other => panic!("unexpected {other:?}"),
                    },
                    None => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(
            initial_asked.is_some(),
            "one instance is asked for the initial result"
        );
        let initial = QueryOut::SubscriptionQueryResponse(SubscriptionQueryResponse {
            message_identifier: "i".into(),
            subscription_identifier: "sub-1".into(),
            response: Some(SubscriptionOut::InitialResult(QueryResponse {
                message_identifier: "r".into(),
                request_identifier: "sub-1".into(),
                payload: payload("balance=0"),
                ..Default::default()
            })),
        });
        h1.send(initial, "").await;
        h1.send(update("sub-1", "balance=5"), "").await;
        h2.send(update("sub-1", "balance=7"), "").await;

        let mut seen = Vec::new();
        for _ in 0..3 {
            let message = tokio::time::timeout(WAIT, updates.message())
                .await
                .expect("in time")
                .expect("ok")
                .expect("message");
            seen.push(match message.response {
                Some(SubscriptionOut::InitialResult(r)) => format!("initial {}", text(&r.payload)),
                Some(SubscriptionOut::Update(u)) => format!("update {}", text(&u.payload)),
                other => panic!("unexpected {other:?}"),
            });
        }
        // h1's messages keep their order; h2's update may come before or between them.
        let position = |s: &str| {
            seen.iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} missing: {seen:?}"))
        };
        assert!(
            position("initial balance=0") < position("update balance=5"),
            "{seen:?}"
        );
        position("update balance=7");

        println!("phase: completion ends the subscriber's stream");
        let complete = QueryOut::SubscriptionQueryResponse(SubscriptionQueryResponse {
            message_identifier: "c".into(),
            subscription_identifier: "sub-1".into(),
            response: Some(SubscriptionOut::Complete(QueryUpdateComplete::default())),
        });
        h2.send(complete, "").await;
        let last = updates.message().await.expect("ok").expect("complete");
        assert!(matches!(last.response, Some(SubscriptionOut::Complete(_))));
        assert!(
            updates.message().await.expect("ok").is_none(),
            "the stream ends"
        );

        println!("phase: the handlers are told the subscription is over");
        for handler in [&mut h1, &mut h2] {
            match handler.next(WAIT).await {
                Some(QueryIn::SubscriptionQueryRequest(r)) => {
                    assert!(
                        matches!(r.request, Some(SubscriptionIn::Unsubscribe(_))),
                        "{r:?}"
                    )
                }
                other => panic!("expected an unsubscribe, got {other:?}"),
            }
        }

        println!("phase: an update for an unknown subscription is refused back to its handler");
        h1.send(update("sub-gone", "x"), "").await;
        match h1.next(WAIT).await {
            Some(QueryIn::SubscriptionQueryRequest(r)) => match r.request {
                Some(SubscriptionIn::Unsubscribe(s)) => {
                    assert_eq!(s.subscription_identifier, "sub-gone")
                }
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("expected an unsubscribe, got {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t50_a_subscriber_that_stops_reading_is_cut_off_not_buffered_forever() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = QueryHandler::connect(&client, "chatty", "feed", &["Ticks"], 100).await;
        let sub = subscription_query("sub-slow", "Ticks");
        let (_requests, mut updates) = subscribe(&client, &sub, 2).await;
        assert!(matches!(
            handler.next(WAIT).await,
            Some(QueryIn::SubscriptionQueryRequest(_))
        ));

        println!("phase: 5000 updates against 2 permits");
        for i in 0..5000 {
            handler.send(update("sub-slow", &i.to_string()), "").await;
        }
        let mut delivered = 0;
        let status = loop {
            match tokio::time::timeout(WAIT, updates.message())
                .await
                .expect("an answer in time")
            {
                Ok(Some(_)) => delivered += 1,
                Ok(None) => panic!("ended without an error"),
                Err(status) => break status,
            }
        };
        assert_eq!(delivered, 2, "never more than the permits");
        assert_eq!(status.code(), Code::ResourceExhausted);
        match handler.next(WAIT).await {
            Some(QueryIn::SubscriptionQueryRequest(r)) => {
                assert!(matches!(r.request, Some(SubscriptionIn::Unsubscribe(_))))
            }
            other => panic!("expected an unsubscribe, got {other:?}"),
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t60_subscribing_without_a_handler_fails_with_axoniq_5000() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let requests = vec![subscriber_request(SubscriptionIn::Subscribe(
            subscription_query("s", "Nobody"),
        ))];
        let mut updates = client
            .queries
            .clone()
            .subscription(tokio_stream::iter(requests))
            .await
            .expect("subscription")
            .into_inner();
        let status = updates.message().await.expect_err("no handler");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-5000"));
    })
    .await
    .expect("test timed out");
}
