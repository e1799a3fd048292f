//! A one-member replication group over real storage: proposals are answered with their outcome,
//! concurrent proposals share synced log writes (group commit), and entries that were committed but
//! not applied before a crash are applied at the next start.

use std::sync::Arc;
use std::time::Duration;

use myelin_protocol::grpc::event::Event;
use myelin_protocol::log::{log_command::Command, AppendEvents, LogCommand};
use myelin_replication::{GroupConfig, ReplicationGroup};
use myelin_storage::{ApplyOutcome, Store, DEFAULT_CONTEXT};
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState};

fn append_command(aggregate: &str, sequence: i64) -> Vec<u8> {
    let event = Event {
        aggregate_identifier: aggregate.to_string(),
        aggregate_sequence_number: sequence,
        aggregate_type: "Agg".to_string(),
        ..Default::default()
    };
    let command = LogCommand {
        command: Some(Command::AppendEvents(AppendEvents {
            context: DEFAULT_CONTEXT.to_string(),
            events: vec![prost::Message::encode_to_vec(&event)],
        })),
    };
    prost::Message::encode_to_vec(&command)
}

async fn start(store: &Arc<Store>) -> ReplicationGroup {
    let checkpoints = std::env::temp_dir().join(format!("myelin-cp-{}", std::process::id()));
    let group = ReplicationGroup::start(store.clone(), GroupConfig::single_node(0, 1, checkpoints))
        .expect("start group");
    assert!(
        group.wait_until_replayed(Duration::from_secs(10)).await,
        "a single node elects itself"
    );
    group
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_proposals_share_synced_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path(), dir.path()).expect("open"));
    let group = Arc::new(start(&store).await);
    let before = group.status().borrow().synced_log_writes;
    let proposals: Vec<_> = (0..200)
        .map(|i| {
            let group = group.clone();
            tokio::spawn(async move { group.propose(append_command(&format!("agg-{i}"), 0)).await })
        })
        .collect();
    for proposal in proposals {
        let outcome = proposal.await.expect("task").expect("proposal");
        assert!(
            matches!(outcome, ApplyOutcome::Appended { count: 1, .. }),
            "{outcome:?}"
        );
    }
    let writes = group.status().borrow().synced_log_writes - before;
    println!("200 proposals took {writes} synced log writes");
    assert!(
        writes < 200,
        "group commit: {writes} synced writes for 200 concurrent proposals"
    );
    let ctx = store.context(DEFAULT_CONTEXT).expect("context");
    assert_eq!(ctx.next_token(), 200);
}

#[tokio::test]
async fn committed_but_unapplied_entries_are_applied_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path(), dir.path()).expect("open"));
    {
        let group = start(&store).await;
        group
            .propose(append_command("x", 0))
            .await
            .expect("proposal");
        group.shutdown();
    }

    // As if the process died after the raft log write of entry `next` but before applying it.
    let state = store.raft_log_state(0).expect("log state");
    let mut hard_state =
        HardState::parse_from_bytes(&state.hard_state.expect("hard state")).expect("decode");
    let next = state.last_index + 1;
    let entry = Entry {
        index: next,
        term: hard_state.term,
        data: append_command("x", 1).into(),
        ..Default::default()
    };
    hard_state.commit = next;
    let bytes = entry.write_to_bytes().expect("encode");
    let hs = hard_state.write_to_bytes().expect("encode");
    store
        .raft_append(0, &[(next, bytes)], state.last_index, Some(&hs), None)
        .expect("write log");
    let ctx = store.context(DEFAULT_CONTEXT).expect("context");
    assert_eq!(
        ctx.next_token(),
        1,
        "entry {next} is in the log, not applied"
    );

    let group = start(&store).await;
    let mut status = group.status();
    tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.applied_index >= next),
    )
    .await
    .expect("replayed in time")
    .expect("status");
    assert_eq!(ctx.next_token(), 2);
    assert_eq!(store.highest_sequence(&ctx, "x").expect("read"), Some(1));
    group.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_compacts_its_log_and_restarts_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path(), dir.path()).expect("open"));
    let proposals = 5000;
    {
        let group = start(&store).await;
        for i in 0..proposals {
            group
                .propose(append_command(&format!("c-{}", i % 50), i / 50))
                .await
                .expect("proposal");
        }
        group.shutdown();
    }
    let state = store.raft_log_state(0).expect("log state");
    assert!(
        state.truncated.0 >= 4096,
        "compacted up to {}",
        state.truncated.0
    );
    let kept = store
        .raft_entries(0, state.truncated.0 + 1, state.last_index + 1, u64::MAX)
        .expect("entries");
    assert_eq!(kept.len() as u64, state.last_index - state.truncated.0);
    assert!(
        kept.len() < 1000,
        "{} entries kept after compaction",
        kept.len()
    );

    println!("phase: restart on a compacted log and keep appending");
    let group = start(&store).await;
    let outcome = group
        .propose(append_command("c-0", 100))
        .await
        .expect("proposal");
    assert!(
        matches!(outcome, ApplyOutcome::Appended { first_token, .. } if first_token == proposals as u64)
    );
    group.shutdown();
}
