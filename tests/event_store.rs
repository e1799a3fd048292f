//! EventStore over gRPC: appends with Axon's per-aggregate sequence rule, aggregate and snapshot
//! reads, tokens, bad input, and durability across a clean restart.

use myelin_protocol::grpc::event::{
    GetAggregateSnapshotsRequest, GetFirstTokenRequest, GetTokenAtRequest, QueryEventsRequest,
    ReadHighestSequenceNrRequest,
};
use myelin_protocol::grpc::SerializedObject;
use myelin_tests::*;
use tokio_stream::StreamExt as _;
use tonic::Code;

#[tokio::test]
async fn t10_append_and_read_an_aggregate() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;

        println!("phase: empty store");
        assert_eq!(last_token(&client).await, -1);
        let first = client
            .events
            .clone()
            .get_first_token(GetFirstTokenRequest {})
            .await
            .expect("first");
        assert_eq!(first.into_inner().token, 0);

        println!("phase: one transaction of three events, and a plain event");
        let events: Vec<_> = (0..3)
            .map(|s| domain_event("order-1", s, "OrderEvent"))
            .collect();
        append(&client, events.clone()).await.expect("append");
        append(&client, vec![plain_event("Tick")])
            .await
            .expect("append plain");
        assert_eq!(last_token(&client).await, 3);

        println!("phase: read the aggregate back as stored");
        let read = read_aggregate(&client, aggregate_request("order-1"))
            .await
            .expect("read");
        assert_eq!(read, events);

        println!("phase: initial_sequence and (exclusive) max_sequence");
        let mut request = aggregate_request("order-1");
        request.initial_sequence = 1;
        let read = read_aggregate(&client, request.clone())
            .await
            .expect("read from 1");
        assert_eq!(
            read.iter()
                .map(|e| e.aggregate_sequence_number)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        request.max_sequence = 2;
        let read = read_aggregate(&client, request).await.expect("read 1..2");
        assert_eq!(
            read.iter()
                .map(|e| e.aggregate_sequence_number)
                .collect::<Vec<_>>(),
            [1]
        );

        println!("phase: highest sequence, unknown aggregate");
        let highest = client
            .events
            .clone()
            .read_highest_sequence_nr(ReadHighestSequenceNrRequest {
                aggregate_id: "order-1".into(),
                from_sequence_nr: 0,
            })
            .await
            .expect("highest")
            .into_inner();
        assert_eq!(highest.to_sequence_nr, 2);
        let none = client
            .events
            .clone()
            .read_highest_sequence_nr(ReadHighestSequenceNrRequest {
                aggregate_id: "nobody".into(),
                from_sequence_nr: 0,
            })
            .await
            .expect("highest of unknown")
            .into_inner();
        assert_eq!(none.to_sequence_nr, -1);
        assert!(read_aggregate(&client, aggregate_request("nobody"))
            .await
            .expect("read")
            .is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_sequence_conflicts_fail_the_whole_transaction() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        append(
            &client,
            vec![domain_event("a", 0, "E"), domain_event("a", 1, "E")],
        )
        .await
        .expect("append");

        println!("phase: a transaction whose second aggregate conflicts stores nothing");
        let status = append(
            &client,
            vec![domain_event("b", 0, "E"), domain_event("a", 1, "E")],
        )
        .await
        .expect_err("conflict");
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000"));
        assert!(
            status.message().contains("aggregate a"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("expected 2"),
            "{}",
            status.message()
        );
        assert!(read_aggregate(&client, aggregate_request("b"))
            .await
            .expect("read")
            .is_empty());
        assert_eq!(
            last_token(&client).await,
            1,
            "a rejected transaction takes no tokens"
        );

        println!("phase: a new aggregate must start at 0, and sequences must be contiguous");
        let status = append(&client, vec![domain_event("c", 1, "E")])
            .await
            .expect_err("gap at start");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000"));
        let status = append(
            &client,
            vec![domain_event("c", 0, "E"), domain_event("c", 2, "E")],
        )
        .await
        .expect_err("gap inside");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000"));

        println!("phase: the right next sequence still works");
        append(&client, vec![domain_event("a", 2, "E")])
            .await
            .expect("append a:2");
        assert_eq!(last_token(&client).await, 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t30_concurrent_transactions_on_one_aggregate_exactly_one_wins() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        append(&client, vec![domain_event("shared", 0, "E")])
            .await
            .expect("append");
        for round in 1..=20i64 {
            // Eight clients each try to append sequence `round` at the same time.
            let attempts: Vec<_> = (0..8)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        append(&client, vec![domain_event("shared", round, "E")]).await
                    })
                })
                .collect();
            let mut won = 0;
            for attempt in attempts {
                match attempt.await.expect("task") {
                    Ok(()) => won += 1,
                    Err(status) => assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000")),
                }
            }
            assert_eq!(
                won, 1,
                "round {round}: exactly one append of sequence {round} must win"
            );
        }
        let events = read_aggregate(&client, aggregate_request("shared"))
            .await
            .expect("read");
        let sequences: Vec<i64> = events.iter().map(|e| e.aggregate_sequence_number).collect();
        assert_eq!(sequences, (0..=20).collect::<Vec<_>>());
        assert_eq!(last_token(&client).await, 20);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t40_snapshots_are_stored_and_used_on_load() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let events: Vec<_> = (0..6)
            .map(|s| domain_event("cart", s, "CartEvent"))
            .collect();
        append(&client, events).await.expect("append");

        println!("phase: a snapshot ahead of the aggregate is refused");
        let ahead = domain_event("cart", 9, "CartSnapshot");
        let status = client
            .events
            .clone()
            .append_snapshot(ahead)
            .await
            .expect_err("ahead");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000"));

        println!("phase: snapshots at 2 and 4");
        for sequence in [2, 4] {
            let ok = client
                .events
                .clone()
                .append_snapshot(domain_event("cart", sequence, "CartSnapshot"))
                .await
                .expect("snapshot")
                .into_inner();
            assert!(ok.success);
        }

        println!("phase: allow_snapshots starts from the newest snapshot");
        let mut request = aggregate_request("cart");
        request.allow_snapshots = true;
        let read = read_aggregate(&client, request).await.expect("read");
        let shape: Vec<(i64, bool)> = read
            .iter()
            .map(|e| (e.aggregate_sequence_number, e.snapshot))
            .collect();
        assert_eq!(shape, [(4, true), (5, false)]);
        assert_eq!(
            read[0].payload.as_ref().map(|p| p.r#type.as_str()),
            Some("CartSnapshot")
        );

        println!("phase: without allow_snapshots every event comes back");
        let read = read_aggregate(&client, aggregate_request("cart"))
            .await
            .expect("read");
        assert_eq!(read.len(), 6);
        assert!(read.iter().all(|e| !e.snapshot));

        println!("phase: ListAggregateSnapshots is newest first, bounded, limited");
        let list = |initial_sequence, max_sequence, max_results| {
            let mut events = client.events.clone();
            async move {
                let mut stream = events
                    .list_aggregate_snapshots(GetAggregateSnapshotsRequest {
                        aggregate_id: "cart".into(),
                        initial_sequence,
                        max_sequence,
                        max_results,
                    })
                    .await
                    .expect("list snapshots")
                    .into_inner();
                let mut sequences = Vec::new();
                while let Some(s) = stream.message().await.expect("snapshot") {
                    assert!(s.snapshot);
                    sequences.push(s.aggregate_sequence_number);
                }
                sequences
            }
        };
        assert_eq!(list(0, i64::MAX, 0).await, [4, 2]);
        assert_eq!(list(0, i64::MAX, 1).await, [4]);
        assert_eq!(list(0, 4, 0).await, [2]);
        assert_eq!(list(3, i64::MAX, 0).await, [4]);
        assert!(list(0, -1, 0).await.is_empty());

        println!("phase: the allow_snapshots window honours initial_sequence");
        let mut request = aggregate_request("cart");
        request.allow_snapshots = true;
        request.initial_sequence = 5;
        let read = read_aggregate(&client, request).await.expect("read");
        assert_eq!(
            read.iter()
                .map(|e| (e.aggregate_sequence_number, e.snapshot))
                .collect::<Vec<_>>(),
            [(5, false)]
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t50_token_at_finds_the_first_event_at_or_after_an_instant() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let stamped = |t: i64| {
            let mut e = plain_event("Stamped");
            e.timestamp = t;
            e
        };
        append(&client, vec![stamped(1000), stamped(2000), stamped(3000)])
            .await
            .expect("append");
        let token_at = |instant| {
            let mut events = client.events.clone();
            async move {
                events
                    .get_token_at(GetTokenAtRequest { instant })
                    .await
                    .expect("token at")
                    .into_inner()
                    .token
            }
        };
        assert_eq!(token_at(0).await, 0);
        assert_eq!(token_at(1000).await, 0);
        assert_eq!(token_at(1500).await, 1);
        assert_eq!(token_at(3000).await, 2);
        assert_eq!(token_at(9999).await, 3, "past the last event: the head");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t60_bad_input_is_refused_and_changes_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(|c| c.max_message_size_bytes = 64 * 1024).await;
        let client = node.client().await;

        println!("phase: a sequence number without an aggregate");
        let mut orphan = plain_event("Orphan");
        orphan.aggregate_sequence_number = 3;
        let status = append(&client, vec![orphan]).await.expect_err("orphan");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("no aggregate identifier"),
            "{}",
            status.message()
        );

        println!("phase: a negative sequence number");
        let status = append(&client, vec![domain_event("x", -1, "E")])
            .await
            .expect_err("negative");
        assert_eq!(status.code(), Code::InvalidArgument);

        println!("phase: an event above max-message-size gets AXONIQ-2001");
        let mut big = plain_event("Big");
        big.payload = Some(SerializedObject {
            r#type: "Big".into(),
            revision: String::new(),
            data: vec![b'x'; 100 * 1024],
        });
        let status = append(&client, vec![big]).await.expect_err("too large");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2001"));
        assert!(
            status.message().contains("larger than the maximum"),
            "{}",
            status.message()
        );

        println!("phase: an event beyond the transport limit too (never OUT_OF_RANGE: that means a conflict)");
        let mut huge = plain_event("Huge");
        huge.payload = Some(SerializedObject {
            r#type: "Huge".into(),
            revision: String::new(),
            data: vec![b'x'; 300 * 1024],
        });
        let status = append(&client, vec![huge]).await.expect_err("too large");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2001"));

        println!("phase: an empty aggregate id on reads");
        let status = read_aggregate(&client, aggregate_request(""))
            .await
            .expect_err("empty id");
        assert_eq!(status.code(), Code::InvalidArgument);

        println!("phase: nothing was stored");
        assert_eq!(last_token(&client).await, -1);

        println!("phase: an empty transaction succeeds and stores nothing");
        append(&client, vec![]).await.expect("empty transaction");
        assert_eq!(last_token(&client).await, -1);

        println!("phase: QueryEvents is not available yet, and says so");
        let request = QueryEventsRequest {
            query: String::new(),
            number_of_permits: 10,
            ..Default::default()
        };
        let status = client
            .events
            .clone()
            .query_events(tokio_stream::iter(vec![request]))
            .await
            .expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t70_events_and_snapshots_survive_a_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut node = TestNode::start().await;
        let client = node.client().await;
        let events: Vec<_> = (0..50).map(|s| domain_event("durable", s, "E")).collect();
        for chunk in events.chunks(7) {
            append(&client, chunk.to_vec()).await.expect("append");
        }
        client
            .events
            .clone()
            .append_snapshot(domain_event("durable", 40, "Snap"))
            .await
            .expect("snapshot");

        println!("phase: restart on the same data");
        node.restart().await;
        let client = node.client().await;
        assert_eq!(last_token(&client).await, 49);
        assert_eq!(
            read_aggregate(&client, aggregate_request("durable"))
                .await
                .expect("read"),
            events
        );
        let mut request = aggregate_request("durable");
        request.allow_snapshots = true;
        let read = read_aggregate(&client, request).await.expect("read");
        assert_eq!(read.len(), 10);
        assert!(read[0].snapshot);

        println!("phase: sequence checks continue where they were");
        let status = append(&client, vec![domain_event("durable", 49, "E")])
            .await
            .expect_err("dup");
        assert_eq!(axon_code(&status).as_deref(), Some("AXONIQ-2000"));
        append(&client, vec![domain_event("durable", 50, "E")])
            .await
            .expect("next");
        assert_eq!(last_token(&client).await, 50);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t80_events_are_stored_and_served_as_the_bytes_received() {
    use myelin_protocol::wire::event::event_store_client::EventStoreClient as WireClient;
    use myelin_protocol::wire::event::GetEventsRequest as WireGetEvents;
    use myelin_protocol::RawEvent;
    use prost::Message;

    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let channel = tonic::transport::Endpoint::from_shared(node.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = WireClient::new(channel);

        println!("phase: an event with a field no definition of Event has (from a newer client)");
        let mut bytes = domain_event("future", 0, "E").encode_to_vec();
        prost::encoding::string::encode(42, &"from the future".to_string(), &mut bytes);
        let event = RawEvent::from_vec(bytes.clone());
        client
            .append_event(tokio_stream::iter(vec![event]))
            .await
            .expect("append");

        println!("phase: aggregate reads and tracking streams return those exact bytes");
        let mut stream = client
            .list_aggregate_events(myelin_protocol::wire::event::GetAggregateEventsRequest {
                aggregate_id: "future".into(),
                ..Default::default()
            })
            .await
            .expect("read")
            .into_inner();
        let read = stream.message().await.expect("event").expect("one event");
        assert_eq!(read.as_bytes(), bytes.as_slice());

        let request = WireGetEvents {
            tracking_token: 0,
            number_of_permits: 1,
            ..Default::default()
        };
        let mut tracking = client
            .list_events(tokio_stream::iter(vec![request]).chain(tokio_stream::pending()))
            .await
            .expect("track")
            .into_inner();
        let tracked = tracking.message().await.expect("event").expect("one event");
        assert_eq!(tracked.token, 0);
        assert_eq!(tracked.event.expect("event").as_bytes(), bytes.as_slice());
    })
    .await
    .expect("test timed out");
}
