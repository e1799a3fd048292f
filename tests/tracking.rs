//! ListEvents, the tracking stream: start at a token, never more events than permits, every event
//! once in token order while appends go on, blacklisted payload types left out.

use std::time::Duration;

use myelin_protocol::grpc::event::{GetEventsRequest, PayloadDescription};
use myelin_tests::*;
use tonic::Code;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t10_stream_from_zero_while_appends_continue_sees_every_event_once_in_order() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        append(
            &client,
            (0..10).map(|s| domain_event("early", s, "E")).collect(),
        )
        .await
        .expect("append");

        println!("phase: open the stream at 0, then keep four writers appending");
        let mut tracking = Tracking::open(&client, from_token(0, 100))
            .await
            .expect("open");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let client = client.clone();
                tokio::spawn(async move {
                    for s in 0..50 {
                        let event = domain_event(&format!("writer-{w}"), s, "E");
                        append(&client, vec![event]).await.expect("append");
                    }
                })
            })
            .collect();

        println!("phase: read 210 events, refilling permits as Axon does");
        let mut tokens = Vec::new();
        let mut consumed_since_grant = 0;
        while tokens.len() < 210 {
            let event = tracking
                .next_within(Duration::from_secs(10))
                .await
                .expect("an event within 10 s");
            tokens.push(event.token);
            consumed_since_grant += 1;
            if consumed_since_grant == 25 {
                tracking.grant(25).await;
                consumed_since_grant = 0;
            }
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(tokens, (0..210).collect::<Vec<i64>>());
        assert!(
            tracking.next_within(QUIET).await.is_none(),
            "nothing beyond the head"
        );

        println!("phase: a new commit wakes the idle stream");
        append(&client, vec![plain_event("Late")])
            .await
            .expect("append");
        let late = tracking
            .next_within(Duration::from_secs(5))
            .await
            .expect("late event");
        assert_eq!(late.token, 210);
        assert_eq!(
            late.event
                .and_then(|e| e.payload)
                .map(|p| p.r#type)
                .as_deref(),
            Some("Late")
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_never_more_events_than_permits() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        append(&client, (0..20).map(|_| plain_event("E")).collect())
            .await
            .expect("append");

        let mut tracking = Tracking::open(&client, from_token(3, 5))
            .await
            .expect("open");
        let mut tokens = Vec::new();
        while let Some(event) = tracking.next_within(QUIET).await {
            tokens.push(event.token);
        }
        assert_eq!(
            tokens,
            [3, 4, 5, 6, 7],
            "five permits, five events, from token 3"
        );

        tracking.grant(2).await;
        let mut more = Vec::new();
        while let Some(event) = tracking.next_within(QUIET).await {
            more.push(event.token);
        }
        assert_eq!(more, [8, 9]);

        println!("phase: zero permits at the start sends nothing until permits arrive");
        let mut idle = Tracking::open(&client, from_token(0, 0))
            .await
            .expect("open");
        assert!(idle.next_within(QUIET).await.is_none());
        idle.grant(1).await;
        assert_eq!(
            idle.next_within(Duration::from_secs(5))
                .await
                .map(|e| e.token),
            Some(0)
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t30_blacklisted_payload_types_are_left_out() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let events = vec![
            plain_event("Wanted"),
            plain_event("Noise"),
            plain_event("Wanted"),
            plain_event("Noise"),
        ];
        append(&client, events).await.expect("append");

        let mut first = from_token(0, 100);
        first.blacklist = vec![PayloadDescription {
            r#type: "Noise".into(),
            revision: String::new(),
        }];
        let mut tracking = Tracking::open(&client, first).await.expect("open");
        let mut seen = Vec::new();
        while let Some(event) = tracking.next_within(QUIET).await {
            seen.push((
                event.token,
                event
                    .event
                    .and_then(|e| e.payload)
                    .map(|p| p.r#type)
                    .unwrap_or_default(),
            ));
        }
        assert_eq!(seen, [(0, "Wanted".to_string()), (2, "Wanted".to_string())]);

        println!("phase: a blacklist added later applies from then on");
        append(&client, vec![plain_event("Other"), plain_event("Wanted")])
            .await
            .expect("append");
        let mut tracking = Tracking::open(&client, from_token(4, 100))
            .await
            .expect("open");
        let first = tracking
            .next_within(Duration::from_secs(5))
            .await
            .expect("event 4");
        assert_eq!(first.token, 4);
        tracking
            .requests
            .send(GetEventsRequest {
                blacklist: vec![PayloadDescription {
                    r#type: "Other".into(),
                    revision: String::new(),
                }],
                ..Default::default()
            })
            .await
            .expect("send");
        let next = tracking
            .next_within(Duration::from_secs(5))
            .await
            .expect("event 5");
        assert_eq!(next.token, 5);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t40_malformed_requests_are_refused() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;

        let status = match Tracking::open(&client, from_token(0, -5)).await {
            Err(status) => status,
            Ok(mut tracking) => match tracking.events.message().await {
                Err(status) => status,
                Ok(other) => panic!("negative permits accepted: {other:?}"),
            },
        };
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("negative"),
            "{}",
            status.message()
        );

        let status = match Tracking::open(&client, from_token(-3, 5)).await {
            Err(status) => status,
            Ok(mut tracking) => tracking.events.message().await.expect_err("negative token"),
        };
        assert_eq!(status.code(), Code::InvalidArgument);

        println!("phase: negative permits later on end the stream with an error");
        append(&client, vec![plain_event("E")])
            .await
            .expect("append");
        let mut tracking = Tracking::open(&client, from_token(0, 1))
            .await
            .expect("open");
        assert!(tracking.next_within(Duration::from_secs(5)).await.is_some());
        tracking.grant(-1).await;
        let status = tokio::time::timeout(Duration::from_secs(5), tracking.events.message())
            .await
            .expect("answer")
            .expect_err("error");
        assert_eq!(status.code(), Code::InvalidArgument);
    })
    .await
    .expect("test timed out");
}
