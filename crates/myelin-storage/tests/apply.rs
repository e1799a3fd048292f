//! The storage state machine on its own: sequence checks, gap-free tokens, snapshots, schedules,
//! reopening, and the raft log's overwrite of a conflicting tail.

use myelin_protocol::grpc::event::Event;
use myelin_protocol::log::{
    log_command::Command, AppendEvents, AppendSnapshot, CancelSchedule, LogCommand,
    PublishScheduled, ScheduleEvent,
};
use myelin_storage::{ApplyOutcome, Rejection, Store, DEFAULT_CONTEXT};
use prost::Message;

fn event(aggregate: &str, sequence: i64) -> Event {
    Event {
        message_identifier: format!("{aggregate}-{sequence}"),
        aggregate_identifier: aggregate.to_string(),
        aggregate_sequence_number: sequence,
        aggregate_type: if aggregate.is_empty() {
            String::new()
        } else {
            "Agg".to_string()
        },
        timestamp: 1000 + sequence,
        ..Default::default()
    }
}

fn append(events: &[Event]) -> Vec<u8> {
    LogCommand {
        command: Some(Command::AppendEvents(AppendEvents {
            context: DEFAULT_CONTEXT.to_string(),
            events: events.iter().map(Message::encode_to_vec).collect(),
        })),
    }
    .encode_to_vec()
}

fn command(command: Command) -> Vec<u8> {
    LogCommand {
        command: Some(command),
    }
    .encode_to_vec()
}

struct Applier {
    store: Store,
    index: u64,
}

impl Applier {
    fn apply(&mut self, entry: &[u8]) -> ApplyOutcome {
        self.index += 1;
        self.store.apply(0, self.index, entry).expect("apply")
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, dir).expect("open store")
}

#[test]
fn sequences_are_checked_and_tokens_stay_gap_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Applier {
        store: open(dir.path()),
        index: 0,
    };
    let ctx = s.store.context(DEFAULT_CONTEXT).expect("default context");

    assert_eq!(
        s.apply(&append(&[event("a", 0), event("a", 1), event("", 0)])),
        ApplyOutcome::Appended {
            context: "default".into(),
            first_token: 0,
            count: 3
        }
    );
    let rejected = s.apply(&append(&[event("b", 0), event("a", 5)]));
    assert_eq!(
        rejected,
        ApplyOutcome::Rejected(Rejection::InvalidSequence {
            aggregate_id: "a".into(),
            got: 5,
            expected: 2
        })
    );
    assert_eq!(
        s.store.highest_sequence(&ctx, "b").expect("read"),
        None,
        "nothing of a rejected transaction"
    );
    assert_eq!(
        s.apply(&append(&[event("a", 2)])),
        ApplyOutcome::Appended {
            context: "default".into(),
            first_token: 3,
            count: 1
        }
    );
    assert_eq!(ctx.next_token(), 4);
    assert_eq!(
        s.store.applied_index(0).expect("applied"),
        3,
        "rejections are applied entries too"
    );

    let tokens: Vec<u64> = s
        .store
        .read_events(&ctx, 0, 100)
        .expect("read")
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(tokens, [0, 1, 2, 3]);
    let sequences: Vec<u64> = s
        .store
        .aggregate_events(&ctx, "a", 1, u64::MAX, 100)
        .expect("read")
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(sequences, [1, 2]);
}

#[test]
fn aggregate_ids_that_prefix_each_other_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Applier {
        store: open(dir.path()),
        index: 0,
    };
    let ctx = s.store.context(DEFAULT_CONTEXT).expect("default context");
    s.apply(&append(&[event("ab", 0), event("abc", 0), event("abc", 1)]));
    assert_eq!(s.store.highest_sequence(&ctx, "ab").expect("read"), Some(0));
    assert_eq!(
        s.store.highest_sequence(&ctx, "abc").expect("read"),
        Some(1)
    );
    assert_eq!(
        s.store
            .aggregate_events(&ctx, "ab", 0, u64::MAX, 10)
            .expect("read")
            .len(),
        1
    );
}

#[test]
fn snapshots_must_not_run_ahead_and_come_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Applier {
        store: open(dir.path()),
        index: 0,
    };
    let ctx = s.store.context(DEFAULT_CONTEXT).expect("default context");
    let snapshot = |seq| {
        command(Command::AppendSnapshot(AppendSnapshot {
            context: DEFAULT_CONTEXT.into(),
            snapshot: event("s", seq).encode_to_vec(),
        }))
    };
    assert!(matches!(
        s.apply(&snapshot(0)),
        ApplyOutcome::Rejected(Rejection::SnapshotAhead { .. })
    ));
    s.apply(&append(&[event("s", 0), event("s", 1), event("s", 2)]));
    assert_eq!(s.apply(&snapshot(1)), ApplyOutcome::SnapshotStored);
    assert_eq!(s.apply(&snapshot(2)), ApplyOutcome::SnapshotStored);
    assert!(matches!(
        s.apply(&snapshot(3)),
        ApplyOutcome::Rejected(Rejection::SnapshotAhead { .. })
    ));
    let newest: Vec<u64> = s
        .store
        .snapshots(&ctx, "s", 0, u64::MAX, 10)
        .expect("read")
        .iter()
        .map(|(q, _)| *q)
        .collect();
    assert_eq!(newest, [2, 1]);
}

#[test]
fn schedules_publish_once_with_the_publication_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Applier {
        store: open(dir.path()),
        index: 0,
    };
    let ctx = s.store.context(DEFAULT_CONTEXT).expect("default context");
    let schedule = |token: &str, instant_ms| {
        command(Command::ScheduleEvent(ScheduleEvent {
            context: DEFAULT_CONTEXT.into(),
            schedule_token: token.into(),
            instant_ms,
            event: event("", 0).encode_to_vec(),
        }))
    };
    assert_eq!(s.apply(&schedule("late", 9000)), ApplyOutcome::Scheduled);
    assert_eq!(s.apply(&schedule("early", -5)), ApplyOutcome::Scheduled);
    assert_eq!(s.apply(&schedule("gone", 100)), ApplyOutcome::Scheduled);
    let cancel = command(Command::CancelSchedule(CancelSchedule {
        context: DEFAULT_CONTEXT.into(),
        schedule_token: "gone".into(),
    }));
    assert_eq!(s.apply(&cancel), ApplyOutcome::Cancelled { existed: true });
    assert_eq!(s.apply(&cancel), ApplyOutcome::Cancelled { existed: false });

    let (due, next) = s.store.due_schedules(&ctx, 500, 10).expect("due");
    assert_eq!(
        due.iter()
            .map(|d| d.schedule_token.as_str())
            .collect::<Vec<_>>(),
        ["early"]
    );
    assert_eq!(next, Some(9000));

    let publish = command(Command::PublishScheduled(PublishScheduled {
        context: DEFAULT_CONTEXT.into(),
        schedule_token: "early".into(),
        publication_time_ms: 777,
    }));
    assert_eq!(
        s.apply(&publish),
        ApplyOutcome::Published {
            context: "default".into(),
            token: Some(0)
        }
    );
    assert_eq!(
        s.apply(&publish),
        ApplyOutcome::Published {
            context: "default".into(),
            token: None
        },
        "only once"
    );
    let stored = s.store.read_events(&ctx, 0, 10).expect("read");
    let published = Event::decode(stored[0].1.as_slice()).expect("decode");
    assert_eq!(published.timestamp, 777);
    assert!(!s.store.schedule_exists(&ctx, "early").expect("exists"));
    assert!(s.store.schedule_exists(&ctx, "late").expect("exists"));
}

#[test]
fn reopening_restores_tokens_and_applied_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = Applier {
            store: open(dir.path()),
            index: 0,
        };
        s.apply(&append(&[event("r", 0), event("r", 1)]));
        s.apply(&[]);
    }
    let store = open(dir.path());
    let ctx = store.context(DEFAULT_CONTEXT).expect("default context");
    assert_eq!(ctx.next_token(), 2);
    assert_eq!(store.applied_index(0).expect("applied"), 2);
    assert_eq!(store.highest_sequence(&ctx, "r").expect("read"), Some(1));
}

#[test]
fn raft_log_overwrites_a_conflicting_tail_and_pages_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let entries: Vec<(u64, Vec<u8>)> = (1..=5).map(|i| (i, vec![i as u8; 10])).collect();
    store
        .raft_append(7, &entries, 0, Some(b"hs"), Some(b"cs"))
        .expect("append");
    assert_eq!(store.raft_log_state(7).expect("state").last_index, 5);
    // A new leader replaces entries 3.. with a shorter tail.
    store
        .raft_append(7, &[(3, vec![9; 10])], 5, None, None)
        .expect("overwrite");
    let state = store.raft_log_state(7).expect("state");
    assert_eq!(state.last_index, 3);
    assert_eq!(state.hard_state.as_deref(), Some(&b"hs"[..]));
    assert_eq!(
        store.raft_entries(7, 1, 4, u64::MAX).expect("read")[2],
        vec![9; 10]
    );
    assert_eq!(
        store.raft_entries(7, 1, 4, 15).expect("read").len(),
        1,
        "size limit, at least one"
    );
    assert_eq!(
        store.raft_log_state(8).expect("other group").last_index,
        0,
        "groups are separate"
    );
}
