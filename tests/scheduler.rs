//! EventScheduler: a scheduled event is appended at its time with the publication time as its
//! timestamp; cancelled ones never appear; schedules survive a restart.

use std::time::Duration;

use myelin_protocol::grpc::event::{
    CancelScheduledEventRequest, RescheduleEventRequest, ScheduleEventRequest,
};
use myelin_tests::*;

async fn schedule(
    client: &myelin_testkit::AxonClient,
    payload_type: &str,
    delay_ms: i64,
) -> String {
    client
        .scheduler
        .clone()
        .schedule_event(ScheduleEventRequest {
            instant: now_ms() + delay_ms,
            event: Some(plain_event(payload_type)),
        })
        .await
        .expect("schedule")
        .into_inner()
        .token
}

#[tokio::test]
async fn t10_scheduled_events_fire_at_their_time_and_cancelled_ones_never() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let before = now_ms();
        let _due = schedule(&client, "Reminder", 400).await;
        let cancelled = schedule(&client, "Cancelled", 300).await;
        let moved = schedule(&client, "Moved", 60_000).await;

        println!("phase: cancel one, reschedule another to fire soon");
        let ack = client
            .scheduler
            .clone()
            .cancel_scheduled_event(CancelScheduledEventRequest { token: cancelled })
            .await
            .expect("cancel")
            .into_inner();
        assert!(ack.success);
        let new_token = client
            .scheduler
            .clone()
            .reschedule_event(RescheduleEventRequest {
                token: moved.clone(),
                instant: now_ms() + 200,
                event: Some(plain_event("Moved")),
            })
            .await
            .expect("reschedule")
            .into_inner()
            .token;
        assert_ne!(new_token, moved);
        assert_eq!(last_token(&client).await, -1, "nothing is due yet");

        println!("phase: the two due events are appended, stamped with their publication time");
        let mut tracking = Tracking::open(&client, from_token(0, 10))
            .await
            .expect("open");
        let mut published = Vec::new();
        while published.len() < 2 {
            let event = tracking
                .next_within(Duration::from_secs(10))
                .await
                .expect("a scheduled event");
            let event = event.event.expect("event");
            assert!(
                event.timestamp >= before + 200,
                "timestamp {} is the publication time",
                event.timestamp
            );
            published.push(event.payload.map(|p| p.r#type).unwrap_or_default());
        }
        published.sort();
        assert_eq!(published, ["Moved", "Reminder"]);
        assert!(
            tracking
                .next_within(Duration::from_millis(700))
                .await
                .is_none(),
            "the cancelled event never fires"
        );

        println!("phase: cancelling an event that already fired is fine");
        let ack = client
            .scheduler
            .clone()
            .cancel_scheduled_event(CancelScheduledEventRequest { token: new_token })
            .await
            .expect("cancel again")
            .into_inner();
        assert!(ack.success);
        assert_eq!(last_token(&client).await, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t20_schedules_survive_a_restart() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut node = TestNode::start().await;
        let client = node.client().await;
        schedule(&client, "AfterRestart", 1500).await;
        node.restart().await;
        let client = node.client().await;
        assert_eq!(last_token(&client).await, -1, "not due before the restart");
        eventually(
            "the scheduled event after the restart",
            Duration::from_secs(10),
            || {
                let client = client.clone();
                async move { (last_token(&client).await == 0).then_some(()) }
            },
        )
        .await;
        let mut tracking = Tracking::open(&client, from_token(0, 1))
            .await
            .expect("open");
        let event = tracking
            .next_within(Duration::from_secs(5))
            .await
            .expect("event");
        assert_eq!(
            event
                .event
                .and_then(|e| e.payload)
                .map(|p| p.r#type)
                .as_deref(),
            Some("AfterRestart")
        );
    })
    .await
    .expect("test timed out");
}
