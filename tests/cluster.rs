//! Three-node clusters in one process: replication, losing the leader under load, a partitioned
//! minority, rolling restarts, a wiped node rebuilt from a snapshot, commands across nodes, client
//! redirection and the internal token. Each failure test prints what it checked.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use myelin_protocol::cluster::cluster_client::ClusterClient;
use myelin_protocol::cluster::RaftBatch;
use myelin_protocol::grpc::control::platform_outbound_instruction::Request as PlatformOut;
use myelin_protocol::grpc::control::ClientIdentification;
use myelin_protocol::grpc::event::{Event, GetEventsRequest};
use myelin_testkit::{AxonClient, TestCluster};
use myelin_tests::handlers::{
    answer_all, ask, command, payload, query, text, CommandHandler, QueryHandler,
};
use myelin_tests::platform::Application;
use myelin_tests::*;

const CLUSTER_TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a node that stopped announcing keeps its handlers on the others (`commands.rs`).
const REMOTE_STALE: Duration = Duration::from_millis(4000);

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    if tokio::time::timeout(CLUSTER_TEST_TIMEOUT, test)
        .await
        .is_err()
    {
        panic!("cluster test did not finish within {CLUSTER_TEST_TIMEOUT:?}");
    }
}

/// Every event a node serves, in token order, read through its tracking stream.
async fn all_events(client: &AxonClient) -> Vec<(i64, Event)> {
    let last = last_token(client).await;
    let mut events = Vec::new();
    if last < 0 {
        return events;
    }
    let mut tracking = Tracking::open(client, from_token(0, last + 1))
        .await
        .expect("tracking stream");
    while events.len() < (last + 1) as usize {
        match tracking.next_within(Duration::from_secs(10)).await {
            Some(e) => events.push((e.token, e.event.expect("event"))),
            None => panic!(
                "tracking stream stalled at {} of {}",
                events.len(),
                last + 1
            ),
        }
    }
    events
}

/// What the writers had acknowledged.
#[derive(Default)]
struct Acknowledged {
    message_ids: HashSet<String>,
    failures: usize,
}

/// Writers appending continuously, one aggregate each, through the nodes in turn; a failed append
/// moves the writer to the next node and tries the same sequence again (a duplicate would be
/// refused by the sequence check, so a "failed" append that did commit is found, not repeated).
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(cluster: &TestCluster, writers: usize) -> Load {
        let mut clients = Vec::new();
        for index in 0..cluster.size() {
            clients.push(cluster.client(index).await);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let clients = clients.clone();
            let stop = stop.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                let aggregate = format!("writer-{writer}-{}", uuid::Uuid::new_v4());
                let mut node = writer % clients.len();
                let mut sequence = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let event = domain_event(&aggregate, sequence, "LoadEvent");
                    let id = event.message_identifier.clone();
                    match append(&clients[node], vec![event]).await {
                        Ok(()) => {
                            acked.lock().expect("lock").message_ids.insert(id);
                            sequence += 1;
                        }
                        Err(status) => {
                            if axon_code(&status).as_deref() == Some("AXONIQ-2000") {
                                // The earlier attempt of this sequence did commit.
                                sequence += 1;
                            }
                            acked.lock().expect("lock").failures += 1;
                            node = (node + 1) % clients.len();
                            tokio::task::yield_now().await;
                        }
                    }
                }
            }));
        }
        Load { stop, acked, tasks }
    }

    fn acknowledged(&self) -> usize {
        self.acked.lock().expect("lock").message_ids.len()
    }

    /// Waits until at least `more` further appends were acknowledged.
    async fn progress(&self, more: usize) {
        let target = self.acknowledged() + more;
        eventually(
            "the writers make progress",
            Duration::from_secs(60),
            || async { (self.acknowledged() >= target).then_some(()) },
        )
        .await;
    }

    async fn finish(self) -> Acknowledged {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("writer task");
        }
        Arc::try_unwrap(self.acked)
            .ok()
            .expect("writers done")
            .into_inner()
            .expect("lock")
    }
}

/// Checks every node holds the same events in the same order with contiguous tokens, every
/// acknowledged event among them and no aggregate sequence twice; prints what it found.
async fn verify(cluster: &TestCluster, acked: &Acknowledged, what: &str) {
    cluster.wait_until_caught_up().await;
    let mut reference: Option<Vec<String>> = None;
    for index in 0..cluster.size() {
        let client = cluster.client(index).await;
        let events = all_events(&client).await;
        for (position, (token, _)) in events.iter().enumerate() {
            assert_eq!(
                *token, position as i64,
                "node {index}: tokens are contiguous"
            );
        }
        let ids: Vec<String> = events
            .iter()
            .map(|(_, e)| e.message_identifier.clone())
            .collect();
        let present: HashSet<&String> = ids.iter().collect();
        let missing = acked
            .message_ids
            .iter()
            .filter(|id| !present.contains(id))
            .count();
        let mut sequences = HashSet::new();
        for (_, event) in &events {
            assert!(
                sequences.insert((
                    event.aggregate_identifier.clone(),
                    event.aggregate_sequence_number
                )),
                "node {index}: aggregate {} has sequence {} twice",
                event.aggregate_identifier,
                event.aggregate_sequence_number
            );
        }
        println!(
            "{what}: node {index}: {} events acknowledged, {} found, {missing} acknowledged missing, {} failed attempts",
            acked.message_ids.len(),
            ids.len(),
            acked.failures
        );
        assert_eq!(missing, 0, "node {index} lost acknowledged events");
        match &reference {
            None => reference = Some(ids),
            Some(expected) => assert_eq!(&ids, expected, "node {index}: same events, same order"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c01_three_nodes_replicate_every_append_in_the_same_order() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, _| {}).await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let mut acked = Acknowledged::default();
        for (index, node) in [leader, follower, leader, follower].into_iter().enumerate() {
            let client = cluster.client(node).await;
            let event = domain_event("order-1", index as i64, "OrderEvent");
            acked.message_ids.insert(event.message_identifier.clone());
            append(&client, vec![event])
                .await
                .expect("append through any node");
        }
        // A follower reads its own write: the append answers after it applied there.
        let client = cluster.client(follower).await;
        let events = read_aggregate(&client, aggregate_request("order-1"))
            .await
            .expect("read");
        assert_eq!(events.len(), 4);
        verify(&cluster, &acked, "replication").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c02_losing_the_leader_under_load_loses_no_acknowledged_event() {
    bounded(async {
        let mut cluster = TestCluster::start(3, |_, _| {}).await;
        let load = Load::start(&cluster, 6).await;
        load.progress(200).await;
        let leader = cluster.leader().await;
        let old_term = cluster.node(leader).raft_status().term;
        cluster.stop(leader).await;
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, leader);
        assert!(cluster.node(new_leader).raft_status().term > old_term);
        load.progress(200).await;
        cluster.restart(leader).await;
        load.progress(100).await;
        let acked = load.finish().await;
        verify(&cluster, &acked, "leader stopped under load").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c03_a_partitioned_minority_refuses_writes_and_catches_up_by_snapshot_after_healing() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, config| {
            config.log_keep_entries = 20;
            config.wait_for_leader_timeout_ms = 1000;
        })
        .await;
        let leader = cluster.leader().await;
        // Cut off the leader itself: the hardest case for the minority side.
        cluster.isolate(leader);
        let minority = cluster.client(leader).await;
        let refused = append(&minority, vec![domain_event("cut-off", 0, "Refused")])
            .await
            .expect_err("a node without a majority refuses writes");
        assert_eq!(
            axon_code(&refused).as_deref(),
            Some("AXONIQ-2100"),
            "{refused}"
        );

        let majority_node = (leader + 1) % 3;
        let new_leader = eventually(
            "the majority elects a leader",
            Duration::from_secs(30),
            || async {
                let status = cluster.node(majority_node).raft_status();
                status
                    .leader_id
                    .filter(|id| *id != cluster.node(leader).node_id())
            },
        )
        .await;
        assert_ne!(new_leader, cluster.node(leader).node_id());
        let cut_off_readiness = cluster.http_url(leader, "/actuator/health/readiness");
        eventually(
            "the cut-off node reports itself not ready",
            Duration::from_secs(10),
            || async { (http("GET", &cut_off_readiness, None).await.0 == 503).then_some(()) },
        )
        .await;
        let liveness = cluster.http_url(leader, "/actuator/health/liveness");
        let (live, _, _) = http("GET", &liveness, None).await;
        assert_eq!(
            live, 200,
            "a cut-off node is still alive: nothing to restart"
        );
        let majority = cluster.client(majority_node).await;
        let mut acked = Acknowledged::default();
        for sequence in 0..5000 {
            let event = domain_event("during-partition", sequence, "Accepted");
            acked.message_ids.insert(event.message_identifier.clone());
            append(&majority, vec![event])
                .await
                .expect("the majority accepts writes");
        }
        let installed_before = cluster.node(leader).raft_status().snapshots_installed;
        cluster.heal();
        verify(&cluster, &acked, "partition healed").await;
        let installed = cluster.node(leader).raft_status().snapshots_installed;
        println!(
            "partition healed: the cut-off node installed {} snapshot(s)",
            installed - installed_before
        );
        assert!(
            installed > installed_before,
            "the log was compacted, so catching up needs a snapshot"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c04_a_rolling_restart_under_load_loses_nothing() {
    bounded(async {
        let mut cluster = TestCluster::start(3, |_, _| {}).await;
        let load = Load::start(&cluster, 4).await;
        for index in 0..3 {
            load.progress(100).await;
            cluster.restart(index).await;
            cluster.wait_until_formed().await;
        }
        load.progress(100).await;
        let acked = load.finish().await;
        verify(&cluster, &acked, "rolling restart").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c05_a_wiped_node_rejoins_and_rebuilds_from_a_snapshot() {
    bounded(async {
        let mut cluster = TestCluster::start(3, |_, config| config.log_keep_entries = 20).await;
        let client = cluster.client(cluster.leader().await).await;
        let mut acked = Acknowledged::default();
        for sequence in 0..5000 {
            let event = domain_event("before-wipe", sequence, "Kept");
            acked.message_ids.insert(event.message_identifier.clone());
            append(&client, vec![event]).await.expect("append");
        }
        let leader = cluster.leader().await;
        let wiped = (leader + 1) % 3;
        let old_id = cluster.node(wiped).node_id();
        cluster.wipe_and_restart(wiped).await;
        let new_id = cluster.node(wiped).node_id();
        assert_ne!(
            old_id, new_id,
            "a wiped node comes back with a new identity"
        );
        cluster.wait_until_formed().await;
        let voters = cluster.node(leader).raft_status().voters;
        assert!(
            !voters.contains(&old_id) && voters.contains(&new_id),
            "{voters:?}"
        );
        verify(&cluster, &acked, "wiped node").await;
        let installed = cluster.node(wiped).raft_status().snapshots_installed;
        println!("wiped node: installed {installed} snapshot(s)");
        assert!(installed >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c06_a_command_dispatched_through_one_node_reaches_a_handler_on_another() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, _| {}).await;
        let handler_client = cluster.client(1).await;
        let mut handler =
            CommandHandler::connect(&handler_client, "handler-on-b", &["ChargeCard"], 10).await;
        let dispatcher = cluster.client(0).await;
        let dispatch = tokio::spawn(async move {
            let mut commands = dispatcher.commands.clone();
            commands
                .dispatch(command("ChargeCard", "card-9", None, None))
                .await
        });
        let received = handler
            .next_command(Duration::from_secs(20))
            .await
            .expect("the handler on node 1 gets the command");
        assert_eq!(text(&received.payload), "card-9");
        let response = myelin_protocol::grpc::command::CommandResponse {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            request_identifier: received.message_identifier.clone(),
            payload: payload("charged"),
            ..Default::default()
        };
        handler.respond(&received, response).await;
        let answer = dispatch
            .await
            .expect("task")
            .expect("dispatch")
            .into_inner();
        assert_eq!(answer.error_code, "", "{answer:?}");
        assert_eq!(text(&answer.payload), "charged");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c08_a_query_through_one_node_gathers_answers_from_handlers_on_the_others() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, _| {}).await;
        let on_one = cluster.client(1).await;
        let on_two = cluster.client(2).await;
        let _orders =
            answer_all(QueryHandler::connect(&on_one, "o1", "orders", &["Find"], 100).await);
        let _billing =
            answer_all(QueryHandler::connect(&on_two, "b1", "billing", &["Find"], 100).await);
        let asker = cluster.client(0).await;
        let answers = eventually(
            "both remote components answer",
            Duration::from_secs(30),
            || async {
                let mut answers: Vec<String> = ask(&asker, query("Find", -1, false, Some(5000)))
                    .await
                    .iter()
                    .map(|r| text(&r.payload))
                    .collect();
                answers.sort();
                (answers.len() == 2).then_some(answers)
            },
        )
        .await;
        assert_eq!(answers, ["billing/b1", "orders/o1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c09_a_follower_serves_what_it_applied_unless_asked_to_read_from_the_leader() {
    bounded(async {
        let cluster =
            TestCluster::start(3, |_, config| config.wait_for_leader_timeout_ms = 1000).await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        cluster.isolate(follower);
        let writer = cluster.client(leader).await;
        for sequence in 0..10 {
            append(&writer, vec![domain_event("fresh", sequence, "Fresh")])
                .await
                .expect("the majority accepts writes");
        }
        let reader = cluster.client(follower).await;
        assert_eq!(
            last_token(&reader).await,
            -1,
            "a cut-off follower serves what it applied"
        );
        let forced = GetEventsRequest {
            force_read_from_leader: true,
            ..from_token(0, 100)
        };
        let refused = match Tracking::open(&reader, forced.clone()).await {
            Ok(mut stream) => stream
                .events
                .message()
                .await
                .expect_err("no leader to read from"),
            Err(status) => status,
        };
        assert_eq!(
            axon_code(&refused).as_deref(),
            Some("AXONIQ-2100"),
            "{refused}"
        );

        cluster.heal();
        let mut tracking = eventually(
            "the follower reaches the leader again",
            Duration::from_secs(30),
            || {
                let reader = reader.clone();
                let forced = forced.clone();
                async move { Tracking::open(&reader, forced).await.ok() }
            },
        )
        .await;
        for token in 0..10 {
            let event = tracking
                .next_within(Duration::from_secs(10))
                .await
                .expect("events the leader committed");
            assert_eq!(event.token, token);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c10_an_admin_removes_a_dead_node_and_a_new_one_takes_its_place() {
    bounded(async {
        let mut cluster = TestCluster::start(3, |_, config| {
            config.access_control_enabled = true;
            config.access_control_admin_token = Some("admin-secret".to_string());
        })
        .await;
        let leader = cluster.leader().await;
        let gone = (leader + 1) % 3;
        let asked = (leader + 2) % 3;
        cluster.stop(gone).await;
        let url = cluster.http_url(asked, &format!("/v1/cluster/node-{gone}"));
        let (status, code, _) = http("DELETE", &url, None).await;
        assert_eq!((status, code.as_deref()), (403, Some("AXONIQ-1000")));
        let (status, code, _) = http("DELETE", &url, Some("wrong")).await;
        assert_eq!((status, code.as_deref()), (403, Some("AXONIQ-1001")));
        let (status, _, body) = http("DELETE", &url, Some("admin-secret")).await;
        assert_eq!(status, 200, "{body}");
        let (status, code, _) = http("DELETE", &url, Some("admin-secret")).await;
        assert_eq!((status, code.as_deref()), (404, Some("AXONIQ-1301")));
        // The node that was asked applies the change right after the leader.
        let names = eventually(
            "the removal reaches every node",
            Duration::from_secs(10),
            || async {
                let (_, _, nodes) = http(
                    "GET",
                    &cluster.http_url(asked, "/v1/cluster"),
                    Some("admin-secret"),
                )
                .await;
                let names: Vec<String> = nodes
                    .as_array()?
                    .iter()
                    .filter_map(|n| n["name"].as_str().map(str::to_string))
                    .collect();
                (names.len() == 2).then_some(names)
            },
        )
        .await;
        assert!(!names.contains(&format!("node-{gone}")), "{names:?}");

        // A new node (new disk, new identity) with the same name joins in its place.
        cluster.wipe_and_restart(gone).await;
        cluster.wait_until_formed().await;
        let (_, _, nodes) = http(
            "GET",
            &cluster.http_url(asked, "/v1/cluster"),
            Some("admin-secret"),
        )
        .await;
        assert_eq!(nodes.as_array().map(Vec::len), Some(3), "{nodes}");
    })
    .await;
}

/// Answers every command with `answer` until the stream ends.
fn serve_commands(
    mut handler: CommandHandler,
    answer: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(received) = handler.next_command(Duration::from_secs(60)).await {
            let response = myelin_protocol::grpc::command::CommandResponse {
                payload: payload(answer),
                ..Default::default()
            };
            handler.respond(&received, response).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c11_an_application_that_moves_to_another_node_gets_its_commands_there_at_once() {
    bounded(async {
        let mut cluster = TestCluster::start(3, |_, _| {}).await;
        let first = CommandHandler::connect(&cluster.client(1).await, "app-1", &["Pay"], 1000).await;
        let _first = serve_commands(first, "served on node 1");
        let dispatcher = cluster.client(0).await;
        let dispatch = |key: String| {
            let mut commands = dispatcher.commands.clone();
            async move {
                commands
                    .dispatch(command("Pay", &key, None, Some(10_000)))
                    .await
                    .expect("dispatch")
                    .into_inner()
            }
        };
        eventually("node 0 routes to the handler on node 1", Duration::from_secs(20), || async {
            let answer = dispatch("warm-up".to_string()).await;
            (text(&answer.payload) == "served on node 1").then_some(())
        })
        .await;

        // Node 1 dies; the application reconnects to node 2 with the same client id.
        cluster.stop(1).await;
        let moved = CommandHandler::connect(&cluster.client(2).await, "app-1", &["Pay"], 1000).await;
        let _moved = serve_commands(moved, "served on node 2");
        let started = std::time::Instant::now();
        eventually("node 0 routes to the handler on node 2", Duration::from_secs(20), || async {
            let answer = dispatch("first-after-move".to_string()).await;
            (text(&answer.payload) == "served on node 2").then_some(())
        })
        .await;
        let mut failures = Vec::new();
        for key in 0..20 {
            let answer = dispatch(format!("card-{key}")).await;
            if text(&answer.payload) != "served on node 2" {
                failures.push(answer.error_code);
            }
        }
        println!(
            "moved handler: first command served {:?} after the move, then 20 of 20 expected, failures: {failures:?}",
            started.elapsed()
        );
        assert!(failures.is_empty(), "every routing key reaches the moved handler: {failures:?}");
        assert!(
            started.elapsed() < REMOTE_STALE,
            "served before the dead node's handlers would have gone stale"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c07_get_platform_server_names_the_leader_and_the_internal_port_wants_the_token() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, config| {
            config.internal_token = Some("cluster-secret".to_string());
        })
        .await;
        let leader = cluster.leader().await;
        let follower = (leader + 2) % 3;
        let identification = ClientIdentification {
            client_id: "app-1".to_string(),
            component_name: "app".to_string(),
            ..Default::default()
        };
        let mut platform = cluster.client(follower).await.platform;
        let info = platform
            .get_platform_server(identification.clone())
            .await
            .expect("platform server")
            .into_inner();
        let primary = info.primary.expect("primary");
        assert!(
            !info.same_connection,
            "a follower sends clients to the leader"
        );
        assert_eq!(
            primary.grpc_port,
            i32::from(cluster.grpc_addr(leader).port())
        );
        assert_eq!(primary.node_name, format!("node-{leader}"));
        let mut platform = cluster.client(leader).await.platform;
        let info = platform
            .get_platform_server(identification)
            .await
            .expect("platform server")
            .into_inner();
        assert!(info.same_connection, "the leader keeps its clients");

        let (_, _, health) =
            http("GET", &cluster.http_url(follower, "/actuator/health"), None).await;
        let raft = &health["components"]["raft"]["details"];
        assert_eq!(raft["role"], "FOLLOWER");
        assert_eq!(raft["leader"], format!("node-{leader}"));

        // The internal port refuses calls without the internal token.
        let internal = cluster.node(follower).internal_addr();
        let mut client = ClusterClient::connect(format!("http://{internal}"))
            .await
            .expect("connect to the internal port");
        let status = client
            .raft(RaftBatch::default())
            .await
            .expect_err("no token, no raft");
        assert_eq!(
            axon_code(&status).as_deref(),
            Some("AXONIQ-1000"),
            "{status}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c12_any_node_shows_and_controls_the_processors_of_applications_connected_elsewhere() {
    bounded(async {
        let cluster = TestCluster::start(3, |_, _| {}).await;
        cluster.wait_until_formed().await;
        let home = cluster.leader().await;
        let asked = (home + 1) % 3;
        let home_name = format!("node-{home}");
        let client = cluster.client(home).await;
        let mut app = Application::connect(&client, "cards-a", &[(0, 1)]).await;

        println!(
            "phase: node {asked} lists the processor of an application connected to {home_name}"
        );
        let processors = cluster.http_url(asked, "/v1/myelin/processors");
        let listed = eventually(
            "the processor listed elsewhere",
            Duration::from_secs(10),
            || async {
                let (_, _, listed) = http("GET", &processors, None).await;
                (listed[0]["name"] == "card-summary").then_some(listed)
            },
        )
        .await;
        assert_eq!(listed[0]["instances"][0]["node"], home_name.as_str());
        let (_, _, clients) = http(
            "GET",
            &cluster.http_url(asked, "/v1/components/clients"),
            None,
        )
        .await;
        assert_eq!(clients[0]["axonServerNode"], home_name.as_str());

        println!(
            "phase: a pause sent to node {asked} reaches the application and its result comes back"
        );
        let pause = cluster.http_url(asked, "/v1/components/cards/processors/card-summary/pause");
        let paused = tokio::spawn(async move { http("PATCH", &pause, None).await });
        let (id, sent) = app.instruction().await;
        assert!(
            matches!(sent, PlatformOut::PauseEventProcessor(_)),
            "{sent:?}"
        );
        app.answer(&id, None).await;
        let (status, _, body) = paused.await.expect("pause");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], "SUCCESS");
        assert_eq!(body["instances"][0]["clientId"], "cards-a");

        println!("phase: an unknown processor is still AXONIQ-2800 when no node has it");
        let unknown = cluster.http_url(asked, "/v1/components/cards/processors/nope/pause");
        let (status, code, _) = http("PATCH", &unknown, None).await;
        assert_eq!((status, code.as_deref()), (404, Some("AXONIQ-2800")));
    })
    .await;
}

/// An HTTP/1.1 exchange without a client library: status, `AxonIQ-ErrorCode` header, JSON body.
async fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
) -> (u16, Option<String>, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let token = token.map_or(String::new(), |t| format!("AxonIQ-Access-Token: {t}\r\n"));
    let request =
        format!("{method} /{path} HTTP/1.1\r\nHost: {host}\r\n{token}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let code = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("axoniq-errorcode")
            .then(|| value.trim().to_string())
    });
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, code, json)
}
