//! The REST API on 8024 against an in-process node: events and snapshots (SSE reads, JSON
//! appends, Axon's error codes), commands and queries dispatched from HTTP to gRPC handlers,
//! event processor control round-tripping through a platform stream, the informational
//! endpoints, Prometheus metrics after real traffic, the GUI's files, and access control.

use std::time::Duration;

use myelin_protocol::grpc::command::CommandResponse;
use myelin_protocol::grpc::control::platform_outbound_instruction::Request as PlatformOut;
use myelin_tests::handlers::{answer_all, payload, text, CommandHandler, QueryHandler};
use myelin_tests::http::{request, Reply};
use myelin_tests::platform::Application;
use myelin_tests::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

async fn get(node: &TestNode, path: &str) -> Reply {
    request(node.node().http_addr(), "GET", path, &[], None).await
}

async fn send(node: &TestNode, method: &str, path: &str, body: Value) -> Reply {
    request(node.node().http_addr(), method, path, &[], Some(&body)).await
}

fn event(aggregate: &str, sequence: i64, payload_type: &str) -> Value {
    json!({
        "aggregateIdentifier": aggregate,
        "aggregateSequenceNumber": sequence,
        "aggregateType": "GiftCard",
        "payload": { "type": payload_type, "data": format!("{{\"seq\":{sequence}}}") },
        "metaData": { "tenant": "t1", "attempt": sequence }
    })
}

#[tokio::test]
async fn t10_events_appended_over_rest_read_back_over_rest_and_grpc() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;

        println!("phase: append a transaction of two events and one plain event");
        let body = json!({ "messages": [event("card-1", 0, "Issued"), event("card-1", 1, "Redeemed")] });
        let reply = send(&node, "POST", "/v1/events", body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["appended"], 2);
        let plain = json!({ "messages": [{ "payloadType": "Noted", "payload": "a note" }] });
        assert_eq!(send(&node, "POST", "/v1/events", plain).await.status, 200);

        println!("phase: the aggregate's events over SSE, ending with Axon's end-of-stream comment");
        let reply = get(&node, "/v1/events?aggregateId=card-1").await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/event-stream")));
        let events = reply.events();
        assert_eq!(events.len(), 2, "{}", reply.body);
        assert_eq!(events[1]["payload"]["type"], "Redeemed");
        assert_eq!(events[1]["payload"]["data"], "{\"seq\":1}");
        assert_eq!(events[1]["metaData"]["attempt"], 1);
        assert!(
            reply.body.lines().any(|l| l.starts_with(':') && l.ends_with("End of stream")),
            "{}",
            reply.body
        );

        println!("phase: the same events reach a gRPC client, untouched");
        let client = node.client().await;
        let read = read_aggregate(&client, aggregate_request("card-1"))
            .await
            .expect("read");
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].meta_data["tenant"].data, Some(
            myelin_protocol::grpc::meta_data_value::Data::TextValue("t1".into())
        ));

        println!("phase: tracking read from token 1, stopping at the head; ids are token + 1");
        let reply = get(&node, "/v1/events?trackingToken=1&timeout=0").await;
        let events = reply.events();
        assert_eq!(events.iter().map(|e| e["token"].as_u64()).collect::<Vec<_>>(), vec![Some(1), Some(2)]);
        assert_eq!(reply.event_ids(), vec!["2", "3"]);
        assert_eq!(events[1]["payload"]["data"], "a note");

        println!("phase: filtered by payload type, and limited by maxEvents");
        let reply = get(&node, "/v1/events?trackingToken=0&timeout=0&payloadType=Redeemed").await;
        assert_eq!(reply.events().len(), 1);
        let reply = get(&node, "/v1/events?trackingToken=0&timeout=0&maxEvents=2").await;
        assert_eq!(reply.events().len(), 2);

        println!("phase: a follower of the tail (2 s) gets an event appended after it asked");
        let address = node.node().http_addr();
        let follower = tokio::spawn(async move {
            request(address, "GET", "/v1/events?trackingToken=3&timeout=2", &[], None).await
        });
        let later = json!({ "messages": [event("card-2", 0, "Issued")] });
        assert_eq!(send(&node, "POST", "/v1/events", later).await.status, 200);
        let followed = follower.await.expect("follower").events();
        assert_eq!(followed.len(), 1, "the live event arrives");
        assert_eq!(followed[0]["aggregateIdentifier"], "card-2");

        println!("phase: a sequence conflict is AXONIQ-2000 with 409, nothing stored");
        let conflict = json!({ "messages": [event("card-1", 1, "Redeemed")] });
        let reply = send(&node, "POST", "/v1/events", conflict).await;
        assert_eq!(reply.status, 409, "{}", reply.body);
        assert_eq!(reply.error_code(), Some("AXONIQ-2000"));
        assert_eq!(reply.json()["code"], "AXONIQ-2000");
        assert_eq!(last_token(&client).await, 3);

        println!("phase: an event without a payload type is AXONIQ-2010; an unknown context AXONIQ-1302");
        let reply = send(&node, "POST", "/v1/events", json!({ "messages": [{ "payload": "x" }] })).await;
        assert_eq!((reply.status, reply.error_code()), (400, Some("AXONIQ-2010")));
        let reply = request(node.node().http_addr(), "GET", "/v1/events?aggregateId=a", &[("AxonIQ-Context", "nope")], None).await;
        assert_eq!((reply.status, reply.error_code()), (404, Some("AXONIQ-1302")));

        println!("phase: snapshots: stored over REST, listed, and used by an aggregate read");
        let snapshot = json!({
            "aggregateIdentifier": "card-1", "aggregateSequenceNumber": 1, "aggregateType": "GiftCard",
            "payload": { "type": "CardState", "data": "{\"balance\":5}" }
        });
        assert_eq!(send(&node, "POST", "/v1/snapshots", snapshot).await.status, 200);
        let reply = get(&node, "/v1/snapshots?aggregateId=card-1").await;
        let snapshots = reply.events();
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0]["payload"]["type"], "CardState");
        let from_snapshot = get(&node, "/v1/events?aggregateId=card-1").await.events();
        assert_eq!(from_snapshot.len(), 1, "the snapshot replaces the events it covers");
        assert_eq!(from_snapshot[0]["snapshot"], true);
        let without = get(&node, "/v1/events?aggregateId=card-1&allowSnapshots=false").await;
        assert_eq!(without.events().len(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t20_commands_and_queries_from_http_reach_grpc_handlers() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let client = node.client().await;
        let mut handler = CommandHandler::connect(&client, "cards-1", &["IssueCard"], 100).await;
        let answering = tokio::spawn(async move {
            while let Some(command) = handler.next_command(Duration::from_secs(30)).await {
                let answer = format!("issued {}", text(&command.payload));
                let response = CommandResponse {
                    payload: payload(&answer),
                    ..Default::default()
                };
                handler.respond(&command, response).await;
            }
        });
        let queries = QueryHandler::connect(&client, "cards-1", "cards", &["FindCard"], 100).await;
        let _answering_queries = answer_all(queries);

        println!("phase: a command from HTTP is answered by the gRPC handler");
        let command = json!({
            "name": "IssueCard", "routingKey": "card-7",
            "payload": { "type": "IssueCard", "data": "card-7" }, "metaData": { "tenant": "t1" }
        });
        let reply = send(&node, "POST", "/v1/commands/run", command).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let response = reply.json();
        assert_eq!(response["payload"]["data"], "issued card-7");
        assert_eq!(response["errorCode"], "");
        assert!(reply.error_code().is_none());

        println!(
            "phase: no handler: 200 with AXONIQ-4000 in the body and the header, as Axon does"
        );
        let unknown = json!({ "name": "Nobody", "payload": { "type": "x", "data": "" } });
        let reply = send(&node, "POST", "/v1/commands/run", unknown).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["errorCode"], "AXONIQ-4000");
        assert_eq!(reply.error_code(), Some("AXONIQ-4000"));
        assert!(reply.json()["errorMessage"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Nobody"));

        println!("phase: a query from HTTP streams its responses as server-sent events");
        let query =
            json!({ "query": "FindCard", "payload": { "type": "FindCard", "data": "card-7" } });
        let reply = send(&node, "POST", "/v1/queries/run", query).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let responses = reply.events();
        assert_eq!(responses.len(), 1, "{}", reply.body);
        assert_eq!(responses[0]["payload"]["data"], "cards/cards-1");

        println!("phase: registrations and counts are listed");
        let commands = get(&node, "/v1/commands").await.json();
        assert_eq!(commands[0]["client"], "cards-1");
        assert_eq!(commands[0]["commands"], json!(["IssueCard"]));
        let queries = get(&node, "/v1/queries").await.json();
        assert_eq!(queries[0]["query"], "FindCard");
        assert_eq!(queries[0]["components"][0]["component"], "cards");
        assert_eq!(get(&node, "/v1/commands/count").await.json(), json!(0));
        let queues = get(&node, "/v1/commands/queues").await.json();
        assert_eq!(queues[0]["count"], 0, "nothing waits for permits: {queues}");
        assert!(queues[0]["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("cards-1.")));
        let metrics = get(&node, "/v1/public/command-metrics").await.json();
        assert_eq!(metrics[0]["command"], "IssueCard");
        assert_eq!(metrics[0]["clientId"], "cards-1");
        assert_eq!(metrics[0]["count"], 1);
        let metrics = get(&node, "/v1/public/query-metrics").await.json();
        assert_eq!(metrics[0]["queryDefinition"]["queryName"], "FindCard");
        assert_eq!(metrics[0]["count"], 1);
        let handlers = get(&node, "/v1/myelin/handlers").await.json();
        let issue = handlers["commands"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "IssueCard"))
            .cloned()
            .expect("IssueCard listed");
        assert_eq!(issue["count"], 1);
        assert_eq!(issue["errors"], 0);
        assert_eq!(issue["handlers"][0]["clientId"], "cards-1");
        let nobody = handlers["commands"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "Nobody"))
            .cloned()
            .expect("failed command listed");
        assert_eq!(nobody["errors"], 1);
        let components = get(&node, "/v1/components/handlers/commands").await.json();
        assert_eq!(components, json!([{ "name": "IssueCard" }]));
        let components = get(&node, "/v1/components/cards/queries").await.json();
        assert_eq!(
            components,
            json!([{ "name": "FindCard", "responseTypes": [] }])
        );
        answering.abort();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t30_processor_actions_go_to_the_applications_and_report_their_results() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start().await;
        let mut a = Application::connect(&node.client().await, "cards-a", &[(0, 2)]).await;
        let mut b = Application::connect(&node.client().await, "cards-b", &[(1, 2)]).await;
        eventually("both processor reports", WAIT, || async {
            let listed = get(&node, "/v1/components/cards/processors").await.json();
            (listed[0]["trackers"].as_array().map_or(0, Vec::len) == 2).then_some(())
        })
        .await;

        println!("phase: Axon's processor listing: trackers per segment, what can be done");
        let listed = get(&node, "/v1/components/cards/processors").await.json();
        let processor = &listed[0];
        assert_eq!(processor["name"], "card-summary");
        assert_eq!(processor["fullName"], "card-summary@ts-1");
        assert_eq!(processor["canMerge"], true);
        assert_eq!(processor["warnings"], json!([]));
        let clients = get(&node, "/v1/processors/card-summary/clients").await.json();
        assert_eq!(clients, json!(["cards-a", "cards-b"]));

        println!("phase: pause reaches both instances; their results make it a SUCCESS");
        let path = "/v1/components/cards/processors/card-summary/pause?tokenStoreIdentifier=ts-1";
        let address = node.node().http_addr();
        let pause = tokio::spawn(async move { request(address, "PATCH", path, &[], None).await });
        let (id_a, sent_a) = a.instruction().await;
        let (id_b, sent_b) = b.instruction().await;
        assert!(matches!(sent_a, PlatformOut::PauseEventProcessor(ref p) if p.processor_name == "card-summary"));
        assert!(matches!(sent_b, PlatformOut::PauseEventProcessor(_)));
        a.answer(&id_a, None).await;
        b.answer(&id_b, None).await;
        let reply = pause.await.expect("pause");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let report = reply.json();
        assert_eq!(report["success"], true);
        assert_eq!(report["result"], "SUCCESS");
        assert_eq!(report["message"], "processor card-summary paused");

        println!("phase: a failure reported by an instance is AXONIQ-1003 with its message");
        let path = "/v1/components/cards/processors/card-summary/start";
        let start = tokio::spawn(async move { request(address, "PATCH", path, &[], None).await });
        let (id_a, _) = a.instruction().await;
        let (id_b, _) = b.instruction().await;
        a.answer(&id_a, None).await;
        b.answer(&id_b, Some("token store is locked")).await;
        let reply = start.await.expect("start");
        assert_eq!((reply.status, reply.error_code()), (500, Some("AXONIQ-1003")));
        assert!(reply.json()["message"].as_str().unwrap_or("").contains("token store is locked"));

        println!("phase: split goes to the owner of the largest segment; move releases everywhere but the target");
        let path = "/v1/components/cards/processors/card-summary/segments/split";
        let split = tokio::spawn(async move { request(address, "PATCH", path, &[], None).await });
        let (id, sent) = a.instruction().await;
        assert!(matches!(sent, PlatformOut::SplitEventProcessorSegment(ref s) if s.segment_identifier == 0));
        a.answer(&id, None).await;
        assert_eq!(split.await.expect("split").status, 200);
        let path = "/v1/components/cards/processors/card-summary/segments/0/move?target=cards-b";
        let moved = tokio::spawn(async move { request(address, "PATCH", path, &[], None).await });
        let (id, sent) = a.instruction().await;
        assert!(matches!(sent, PlatformOut::ReleaseSegment(ref s) if s.segment_identifier == 0));
        a.answer(&id, None).await;
        assert_eq!(moved.await.expect("move").json()["message"], "processor card-summary segment 0 moved");

        println!("phase: merge: the other instance releases the sibling, the owner merges");
        let path = "/v1/components/cards/processors/card-summary/segments/merge";
        let merge = tokio::spawn(async move { request(address, "PATCH", path, &[], None).await });
        let (id_a, sent_a) = a.instruction().await;
        assert!(matches!(sent_a, PlatformOut::ReleaseSegment(ref s) if s.segment_identifier == 0));
        let (id_b, sent_b) = b.instruction().await;
        assert!(matches!(sent_b, PlatformOut::MergeEventProcessorSegment(ref s) if s.segment_identifier == 1));
        a.answer(&id_a, None).await;
        b.answer(&id_b, None).await;
        assert_eq!(merge.await.expect("merge").json()["message"], "processor card-summary merged");

        println!("phase: the gRPC admin service drives the same instructions");
        let admin_client = node.client().await;
        let endpoint = node.endpoint();
        let admin = tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(endpoint).expect("endpoint").connect().await.expect("connect");
            let _keep = admin_client;
            let mut admin = myelin_protocol::grpc::admin::event_processor_admin_service_client::EventProcessorAdminServiceClient::new(channel);
            admin.start_event_processor(myelin_protocol::grpc::admin::EventProcessorIdentifier {
                processor_name: "card-summary".into(),
                token_store_identifier: "ts-1".into(),
                context_name: "default".into(),
            }).await
        });
        for app in [&mut a, &mut b] {
            let (id, sent) = app.instruction().await;
            assert!(matches!(sent, PlatformOut::StartEventProcessor(_)));
            app.answer(&id, None).await;
        }
        let result = admin.await.expect("admin").expect("start over gRPC").into_inner();
        assert_eq!(result.result, myelin_protocol::grpc::admin::Result::Success as i32);

        println!("phase: unknown processor 404/AXONIQ-2800, unknown move target 404/AXONIQ-2801");
        let reply = send(&node, "PATCH", "/v1/components/cards/processors/nope/pause", json!({})).await;
        assert_eq!((reply.status, reply.error_code()), (404, Some("AXONIQ-2800")));
        let reply = send(&node, "PATCH", "/v1/components/cards/processors/card-summary/segments/0/move?target=ghost", json!({})).await;
        assert_eq!((reply.status, reply.error_code()), (404, Some("AXONIQ-2801")));

        println!("phase: a client can be asked to reconnect; an unknown one is AXONIQ-1300");
        let reply = send(&node, "PATCH", "/v1/instructions?client=cards-b", json!({})).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (_, sent) = b.instruction().await;
        assert!(matches!(sent, PlatformOut::RequestReconnect(_)));
        let reply = send(&node, "PATCH", "/v1/instructions?client=ghost", json!({})).await;
        assert_eq!((reply.status, reply.error_code()), (404, Some("AXONIQ-1300")));

        println!("phase: Myelin's processor view shows lag behind the head");
        let view = get(&node, "/v1/myelin/processors").await.json();
        assert_eq!(view[0]["name"], "card-summary");
        assert_eq!(view[0]["instances"].as_array().map(Vec::len), Some(2));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t40_informational_endpoints_metrics_and_the_gui() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(|c| c.name = "rest-node".into()).await;
        eventually("readiness", WAIT, || async {
            (get(&node, "/actuator/health/readiness").await.status == 200).then_some(())
        })
        .await;
        let _app = Application::connect(&node.client().await, "cards-a", &[(0, 1)]).await;
        let body = json!({ "messages": [event("card-1", 0, "Issued")] });
        assert_eq!(send(&node, "POST", "/v1/events", body).await.status, 200);

        println!("phase: health: liveness and readiness, both components in the full report");
        assert_eq!(get(&node, "/actuator/health/liveness").await.json()["status"], "UP");
        let health = get(&node, "/actuator/health").await.json();
        assert_eq!(health["components"]["livenessState"]["status"], "UP");
        assert_eq!(health["components"]["readinessState"]["status"], "UP");

        println!("phase: this node, the cluster and contexts in Axon's shapes");
        let me = get(&node, "/v1/public/me").await.json();
        assert_eq!(me["name"], "rest-node");
        assert_eq!(me["authentication"], false);
        assert_eq!(me["contextNames"], json!(["default"]));
        let nodes = get(&node, "/v1/public").await.json();
        assert_eq!(nodes[0]["name"], "rest-node");
        assert_eq!(get(&node, "/v1/public/mycontexts").await.json(), json!(["default"]));
        assert_eq!(get(&node, "/v1/public/context").await.json()[0]["leader"], "rest-node");
        let status = get(&node, "/v1/public/status").await.json();
        assert_eq!(status["nrOfEvents"], 0, "Axon reports the last token as nrOfEvents");
        assert_eq!(status["eventRate"]["count"], 1);
        assert_eq!(get(&node, "/v1/public/version").await.json()["productName"], "Myelin");
        let clients = get(&node, "/v1/components/clients").await.json();
        assert_eq!(clients[0]["name"], "cards-a");
        assert_eq!(clients[0]["axonServerNode"], "rest-node");
        let instances = get(&node, "/v1/components/cards/instances").await.json();
        assert_eq!(instances, json!([{ "name": "cards-a", "axonServerNode": "rest-node", "version": "4.13.0" }]));
        assert_eq!(get(&node, "/v1/components/cards/commands").await.json(), json!([]));
        assert_eq!(get(&node, "/v1/public/visiblecontexts").await.json(), json!(["default"]));
        let ids = get(&node, "/v1/components/clientIds").await.json();
        assert!(ids["PLATFORM"].as_object().is_some_and(|m| m.values().any(|v| v == "cards-a.default")));

        println!("phase: Myelin's overview, timeline and cluster views");
        let overview = get(&node, "/v1/myelin/overview").await.json();
        assert_eq!(overview["applications"][0]["component"], "cards");
        assert_eq!(overview["applications"][0]["processors"], json!(["card-summary"]));
        assert_eq!(overview["contexts"][0]["lastToken"], 0);
        assert_eq!(overview["nodes"][0]["role"], "LEADER");
        let timeline = eventually("a timeline sample with the append", WAIT, || async {
            let timeline = get(&node, "/v1/myelin/timeline").await.json();
            let appended: u64 = timeline["eventsAppended"].as_array()?.iter().filter_map(Value::as_u64).sum();
            (appended == 1).then_some(timeline)
        })
        .await;
        assert_eq!(timeline["intervalMs"], 1000);
        let cluster = get(&node, "/v1/myelin/cluster").await.json();
        assert_eq!(cluster["leader"], "rest-node");
        assert_eq!(cluster["nodes"][0]["self"], true);

        println!("phase: Prometheus metrics with Axon's names");
        let metrics = get(&node, "/actuator/prometheus").await;
        assert_eq!(metrics.status, 200);
        for line in [
            "axon_events_append_throughput_count_total{axonserver=\"rest-node\",context=\"default\"} 1",
            "axon_event_lastToken{axonserver=\"rest-node\",context=\"default\"} 0",
            "axon_applications_saturation_connected_count{axonserver=\"rest-node\"} 1",
            "myelin_raft_leader{axonserver=\"rest-node\"} 1",
            "# TYPE axon_events_append_duration_seconds summary",
        ] {
            assert!(metrics.body.contains(line), "missing {line} in\n{}", metrics.body);
        }

        println!("phase: the GUI and the API document are served");
        let index = get(&node, "/").await;
        assert_eq!(index.status, 200);
        assert!(index.body.contains("/gui/app.js"), "index.html loads the app");
        let script = get(&node, "/gui/app.js").await;
        assert!(script.header("content-type").is_some_and(|t| t.starts_with("text/javascript")));
        assert!(script.body.len() > 1000, "the embedded app is there");
        assert_eq!(get(&node, "/gui/nope.js").await.status, 404);
        let api = get(&node, "/v3/api-docs").await.json();
        assert_eq!(api["openapi"], "3.0.3");
        assert!(api["paths"]["/v1/events"]["get"].is_object());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn t50_access_control_applies_to_the_rest_api() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(|c| {
            c.access_control_enabled = true;
            c.access_control_token = Some("app-token".into());
            c.access_control_admin_token = Some("admin-token".into());
        })
        .await;
        let address = node.node().http_addr();
        let call = |method: &'static str, path: &'static str, token: Option<&'static str>| async move {
            let headers: Vec<(&str, &str)> = token.map(|t| ("AxonIQ-Access-Token", t)).into_iter().collect();
            request(address, method, path, &headers, Some(&json!({}))).await
        };

        println!("phase: probes, /v1/public/me, the GUI and the API document stay open");
        for path in ["/actuator/health/liveness", "/actuator/info", "/v1/public/me", "/", "/v3/api-docs"] {
            let reply = call("GET", path, None).await;
            assert!(reply.status == 200 || reply.status == 503, "{path}: {}", reply.status);
        }
        assert_eq!(call("GET", "/v1/public/me", None).await.json()["authentication"], true);

        println!("phase: no token 403/AXONIQ-1000, a wrong one 403/AXONIQ-1001");
        let reply = call("GET", "/v1/public/status", None).await;
        assert_eq!((reply.status, reply.error_code()), (403, Some("AXONIQ-1000")));
        let reply = call("GET", "/v1/public/status", Some("wrong")).await;
        assert_eq!((reply.status, reply.error_code()), (403, Some("AXONIQ-1001")));

        println!("phase: the application token reads and appends, but may not act as admin");
        assert_eq!(call("GET", "/v1/public/status", Some("app-token")).await.status, 200);
        let body = json!({ "messages": [event("card-1", 0, "Issued")] });
        let reply = request(address, "POST", "/v1/events", &[("AxonIQ-Access-Token", "app-token")], Some(&body)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let reply = call("PATCH", "/v1/components/c/processors/p/pause", Some("app-token")).await;
        assert_eq!((reply.status, reply.error_code()), (403, Some("AXONIQ-1001")));
        let reply = call("DELETE", "/v1/cluster/somebody", Some("app-token")).await;
        assert_eq!((reply.status, reply.error_code()), (403, Some("AXONIQ-1001")));

        println!("phase: the admin token may; Prometheus scrapers may send it as a bearer token");
        let reply = call("PATCH", "/v1/components/c/processors/p/pause", Some("admin-token")).await;
        assert_eq!((reply.status, reply.error_code()), (404, Some("AXONIQ-2800")), "past the token check");
        assert_eq!(call("GET", "/actuator/prometheus", None).await.status, 403);
        let reply = request(address, "GET", "/actuator/prometheus", &[("Authorization", "Bearer app-token")], None).await;
        assert_eq!(reply.status, 200);
    })
    .await
    .expect("test timed out");
}
