//! Access control against in-process nodes: every role against one call of each class (gRPC and
//! REST) with the outcome spelled out per role; an application's token for one context gets
//! nowhere in another; users log in with passwords (Basic or a GUI session with CSRF protection),
//! and repeated bad logins are locked out; the admin gRPC services manage applications and users;
//! applications created on one node work on every node of a cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use myelin_protocol::grpc::admin::application_admin_service_client::ApplicationAdminServiceClient;
use myelin_protocol::grpc::admin::authentication_service_client::AuthenticationServiceClient;
use myelin_protocol::grpc::admin::event_processor_admin_service_client::EventProcessorAdminServiceClient;
use myelin_protocol::grpc::admin::user_admin_service_client::UserAdminServiceClient;
use myelin_protocol::grpc::admin::{
    ApplicationContextRole, ApplicationId, ApplicationRequest, AuthenticateUserRequest,
    CreateOrUpdateUserRequest, DeleteUserRequest, Token, UserRoleRequest,
};
use myelin_protocol::grpc::control::ClientIdentification;
use myelin_protocol::grpc::event::GetLastTokenRequest;
use myelin_server::config::NodeConfig;
use myelin_testkit::{AxonClient, AxonHeaders, TestCluster};
use myelin_tests::handlers::{command, query};
use myelin_tests::http::{request, Reply};
use myelin_tests::*;
use serde_json::json;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

const ADMIN_TOKEN: &str = "admin-secret";
const TEST_WAIT: Duration = Duration::from_secs(10);

fn secured(config: &mut NodeConfig) {
    config.access_control_enabled = true;
    config.access_control_admin_token = Some(ADMIN_TOKEN.into());
    config.autocluster_contexts = vec!["_admin".into(), "default".into(), "billing".into()];
}

/// Creates application `name` with `roles` (`ROLE@context`) through REST; returns its token.
async fn register(node: &TestNode, name: &str, roles: &[&str]) -> String {
    let mut per_context: Vec<(String, Vec<String>)> = Vec::new();
    for text in roles {
        let (role, context) = text.split_once('@').expect("ROLE@context");
        match per_context.iter_mut().find(|(c, _)| c == context) {
            Some((_, roles)) => roles.push(role.to_string()),
            None => per_context.push((context.to_string(), vec![role.to_string()])),
        }
    }
    let body = json!({
        "applicationName": name,
        "description": format!("test application {name}"),
        "roles": per_context
            .iter()
            .map(|(context, roles)| json!({ "context": context, "roles": roles }))
            .collect::<Vec<_>>(),
    });
    let reply = request(
        node.node().http_addr(),
        "POST",
        "/v1/applications",
        &[("AxonIQ-Access-Token", ADMIN_TOKEN)],
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, 200, "register {name}: {}", reply.body);
    assert_eq!(reply.body.len(), 64, "a 256-bit hex token: {}", reply.body);
    reply.body
}

fn denied(status: &Status) -> bool {
    status.code() == tonic::Code::PermissionDenied
        && axon_code(status).as_deref() == Some("AXONIQ-1001")
}

fn rest_denied(reply: &Reply) -> bool {
    reply.status == 403 && reply.error_code() == Some("AXONIQ-1001")
}

fn with_headers(node: &TestNode, context: &str, token: &str) -> (Channel, AxonHeaders) {
    let channel = Channel::from_shared(node.endpoint())
        .expect("endpoint")
        .connect_lazy();
    (channel, AxonHeaders::new(context, Some(token)))
}

fn users(
    channel: &(Channel, AxonHeaders),
) -> UserAdminServiceClient<InterceptedService<Channel, AxonHeaders>> {
    UserAdminServiceClient::with_interceptor(channel.0.clone(), channel.1.clone())
}

fn applications(
    channel: &(Channel, AxonHeaders),
) -> ApplicationAdminServiceClient<InterceptedService<Channel, AxonHeaders>> {
    ApplicationAdminServiceClient::with_interceptor(channel.0.clone(), channel.1.clone())
}

fn identification() -> ClientIdentification {
    ClientIdentification {
        client_id: "access-test".into(),
        component_name: "access-test".into(),
        ..Default::default()
    }
}

/// One call of each class, made with `token` in `default`; the set of classes that were allowed.
async fn allowed_classes(node: &TestNode, token: &str) -> BTreeSet<&'static str> {
    let client = AxonClient::connect(&node.endpoint(), "default", Some(token)).await;
    let channel = with_headers(node, "default", token);
    let http = node.node().http_addr();
    let rest = |method: &'static str, path: &'static str| async move {
        request(
            http,
            method,
            path,
            &[("AxonIQ-Access-Token", token)],
            Some(&json!({})),
        )
        .await
    };
    let mut allowed = BTreeSet::new();
    let mut record = |class: &'static str, refused: bool| {
        if !refused {
            allowed.insert(class);
        }
    };

    let mut platform = client.platform.clone();
    let connect = platform.get_platform_server(identification()).await;
    record("connect", connect.as_ref().is_err_and(denied));

    let mut events = client.events.clone();
    let read = events.get_last_token(GetLastTokenRequest {}).await;
    record("read-events", read.as_ref().is_err_and(denied));

    let publish = append(&client, vec![plain_event("Checked")]).await;
    record("publish-events", publish.as_ref().is_err_and(denied));

    let mut commands = client.commands.clone();
    let dispatch = commands
        .dispatch(command("NoSuchCommand", "k", None, None))
        .await;
    record("dispatch-commands", dispatch.as_ref().is_err_and(denied));

    let handle = commands.open_stream(tokio_stream::pending()).await;
    record("handle-commands", handle.as_ref().is_err_and(denied));

    let mut queries = client.queries.clone();
    let ask = queries
        .query(query("NoSuchQuery", 1, false, Some(100)))
        .await;
    record("dispatch-queries", ask.as_ref().is_err_and(denied));

    let answer = queries.open_stream(tokio_stream::pending()).await;
    record("handle-queries", answer.as_ref().is_err_and(denied));

    // Monitoring: the same answer over REST and over the processor admin service.
    let clients = rest("GET", "/v1/components/clients?context=default").await;
    let mut processors =
        EventProcessorAdminServiceClient::with_interceptor(channel.0.clone(), channel.1.clone());
    let listed = processors.get_all_event_processors(()).await;
    assert_eq!(
        rest_denied(&clients),
        listed.as_ref().is_err_and(denied),
        "monitor: REST and gRPC agree"
    );
    record("monitor", rest_denied(&clients));

    let pause = rest(
        "PATCH",
        "/v1/components/c/processors/p/pause?context=default",
    )
    .await;
    record("control-processors", rest_denied(&pause));

    let apps = rest("GET", "/v1/public/applications").await;
    let listed = applications(&channel).get_applications(()).await;
    assert_eq!(
        rest_denied(&apps),
        listed.as_ref().is_err_and(denied),
        "view: REST and gRPC agree"
    );
    record("view-configuration", rest_denied(&apps));

    let delete = rest("DELETE", "/v1/users/nobody").await;
    let deleted = users(&channel)
        .delete_user(DeleteUserRequest {
            user_name: "nobody".into(),
        })
        .await;
    assert_eq!(
        rest_denied(&delete),
        deleted.as_ref().is_err_and(denied),
        "admin: REST and gRPC agree"
    );
    record("admin", rest_denied(&delete));
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_allows_exactly_its_classes_of_calls() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let node = TestNode::start_with(secured).await;
        let all = [
            "connect",
            "read-events",
            "publish-events",
            "dispatch-commands",
            "handle-commands",
            "dispatch-queries",
            "handle-queries",
            "monitor",
            "control-processors",
            "view-configuration",
            "admin",
        ];
        let context_work = [
            "connect",
            "read-events",
            "publish-events",
            "dispatch-commands",
            "handle-commands",
            "dispatch-queries",
            "handle-queries",
            "monitor",
            "control-processors",
        ];
        let matrix: Vec<(&str, Vec<&str>)> = vec![
            ("ADMIN@_admin", all.to_vec()),
            ("VIEW_CONFIGURATION@_admin", vec!["view-configuration"]),
            (
                "CONTEXT_ADMIN@default",
                vec!["connect", "monitor", "control-processors"],
            ),
            ("MONITOR@default", vec!["connect", "monitor"]),
            ("READ_EVENTS@default", vec!["connect", "read-events"]),
            ("PUBLISH_EVENTS@default", vec!["connect", "publish-events"]),
            (
                "DISPATCH_COMMANDS@default",
                vec!["connect", "dispatch-commands"],
            ),
            (
                "SUBSCRIBE_COMMAND_HANDLER@default",
                vec!["connect", "handle-commands"],
            ),
            (
                "DISPATCH_QUERY@default",
                vec!["connect", "dispatch-queries"],
            ),
            (
                "SUBSCRIBE_QUERY_HANDLER@default",
                vec!["connect", "handle-queries"],
            ),
            ("USE_CONTEXT@default", context_work.to_vec()),
            ("TRANSFORM_ADMIN@default", vec!["connect"]),
            (
                "READ@default",
                vec![
                    "connect",
                    "read-events",
                    "dispatch-queries",
                    "handle-queries",
                    "monitor",
                ],
            ),
            (
                "WRITE@default",
                vec![
                    "connect",
                    "publish-events",
                    "dispatch-commands",
                    "handle-commands",
                ],
            ),
            ("USE_CONTEXT@billing", vec![]),
        ];
        let mut failures = Vec::new();
        for (index, (role, expected)) in matrix.iter().enumerate() {
            let token = register(&node, &format!("app-{index}"), &[role]).await;
            let got = allowed_classes(&node, &token).await;
            let expected: BTreeSet<&str> = expected.iter().copied().collect();
            if got != expected {
                failures.push(format!("{role}: allowed {got:?}, expected {expected:?}"));
            }
        }
        let admin = allowed_classes(&node, ADMIN_TOKEN).await;
        assert_eq!(
            admin,
            all.iter().copied().collect(),
            "the admin token may do everything"
        );
        assert!(
            failures.is_empty(),
            "role matrix differs:\n{}",
            failures.join("\n")
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn an_application_of_one_context_cannot_touch_another() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(secured).await;
        let orders = register(&node, "orders", &["USE_CONTEXT@default"]).await;
        let billing = register(&node, "billing", &["USE_CONTEXT@billing"]).await;

        let own = AxonClient::connect(&node.endpoint(), "default", Some(&orders)).await;
        append(&own, vec![plain_event("OrderPlaced")])
            .await
            .expect("own context");
        assert_eq!(last_token(&own).await, 0);

        let trespass = AxonClient::connect(&node.endpoint(), "billing", Some(&orders)).await;
        let appended = append(&trespass, vec![plain_event("Sneaky")]).await;
        assert!(
            appended.as_ref().is_err_and(denied),
            "append in billing: {appended:?}"
        );
        let mut events = trespass.events.clone();
        let read = events.get_last_token(GetLastTokenRequest {}).await;
        assert!(read.as_ref().is_err_and(denied), "read billing: {read:?}");
        let mut platform = trespass.platform.clone();
        let connect = platform.get_platform_server(identification()).await;
        assert!(
            connect.as_ref().is_err_and(denied),
            "connect to billing: {connect:?}"
        );
        let rest = request(
            node.node().http_addr(),
            "GET",
            "/v1/events?initialToken=0",
            &[
                ("AxonIQ-Access-Token", &orders),
                ("AxonIQ-Context", "billing"),
            ],
            None,
        )
        .await;
        assert!(rest_denied(&rest), "REST read of billing: {rest:?}");

        // The billing application works in billing, and its events stay there.
        let theirs = AxonClient::connect(&node.endpoint(), "billing", Some(&billing)).await;
        append(
            &theirs,
            vec![plain_event("InvoiceSent"), plain_event("InvoicePaid")],
        )
        .await
        .expect("billing appends in billing");
        assert_eq!(last_token(&theirs).await, 1);
        assert_eq!(
            last_token(&own).await,
            0,
            "default did not see billing's events"
        );
        // Listings that span contexts show each caller only its own.
        let _billing_app =
            myelin_tests::platform::Application::connect(&theirs, "billing-1", &[(0, 1)]).await;
        let http = node.node().http_addr();
        let billing_sees = eventually("the billing client is listed", TEST_WAIT, || async {
            let reply = request(
                http,
                "GET",
                "/v1/components/clients?context=billing",
                &[("AxonIQ-Access-Token", &billing)],
                None,
            )
            .await;
            reply.body.contains("billing-1").then_some(reply)
        })
        .await;
        assert_eq!(billing_sees.status, 200);
        let reply = request(
            http,
            "GET",
            "/v1/components/clients",
            &[("AxonIQ-Access-Token", &orders)],
            None,
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(
            !reply.body.contains("billing-1"),
            "orders must not see billing's clients: {}",
            reply.body
        );
        let visible = request(
            http,
            "GET",
            "/v1/public/visiblecontexts",
            &[("AxonIQ-Access-Token", &orders)],
            None,
        )
        .await;
        assert_eq!(visible.json(), json!(["default"]));

        let cross = AxonClient::connect(&node.endpoint(), "default", Some(&billing)).await;
        assert!(append(&cross, vec![plain_event("Nope")])
            .await
            .as_ref()
            .is_err_and(denied));
    })
    .await
    .expect("test timed out");
}

fn cookies(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
        .to_string()
}

fn form_login(user: &str, password: &str) -> String {
    format!("username={user}&password={password}")
}

/// POSTs a login form (the GUI's way).
async fn login(node: &TestNode, user: &str, password: &str) -> Reply {
    let form = form_login(user, password);
    raw_post(
        node,
        "/login",
        "application/x-www-form-urlencoded",
        &form,
        &[],
    )
    .await
}

async fn raw_post(
    node: &TestNode,
    path: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    myelin_tests::http::post(node.node().http_addr(), path, content_type, body, headers).await
}

#[tokio::test]
async fn users_log_in_with_passwords_sessions_need_csrf_and_bad_logins_are_locked_out() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(secured).await;
        let http = node.node().http_addr();
        let admin = [("AxonIQ-Access-Token", ADMIN_TOKEN)];
        let created = request(
            http,
            "POST",
            "/v1/users",
            &admin,
            Some(&json!({
                "userName": "alice",
                "password": "correct-horse",
                "roles": ["MONITOR@default", "READ_EVENTS@default"],
            })),
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let listed = request(http, "GET", "/v1/public/users", &admin, None)
            .await
            .json();
        assert_eq!(listed[0]["userName"], "alice");
        assert_eq!(
            listed[0]["roles"],
            json!(["MONITOR@default", "READ_EVENTS@default"])
        );
        assert!(
            !listed.to_string().contains("argon2"),
            "no password hash leaves the server"
        );

        println!("phase: HTTP Basic");
        let basic = |password: &str| {
            use base64_for_tests::encode;
            format!("Basic {}", encode(&format!("alice:{password}")))
        };
        let good = basic("correct-horse");
        let reply = request(
            http,
            "GET",
            "/v1/components/clients?context=default",
            &[("Authorization", &good)],
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let reply = request(
            http,
            "DELETE",
            "/v1/users/alice",
            &[("Authorization", &good)],
            None,
        )
        .await;
        assert!(rest_denied(&reply), "alice is not an admin: {reply:?}");

        println!("phase: GUI session");
        let reply = login(&node, "alice", "correct-horse").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let set = cookies(&reply);
        let session_cookie = set
            .iter()
            .find(|c| c.starts_with("MYELIN_SESSION="))
            .expect("session cookie");
        assert!(
            session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"),
            "{session_cookie}"
        );
        let session = cookie_value(&set, "MYELIN_SESSION");
        let csrf = cookie_value(&set, "XSRF-TOKEN");
        let cookie = format!("MYELIN_SESSION={session}; XSRF-TOKEN={csrf}");
        let me = request(http, "GET", "/v1/public/user", &[("Cookie", &cookie)], None).await;
        assert_eq!(me.status, 200);
        assert_eq!(me.json()["user"], "alice");
        let no_csrf = raw_post(
            &node,
            "/logout",
            "application/json",
            "{}",
            &[("Cookie", &cookie)],
        )
        .await;
        assert!(
            rest_denied(&no_csrf),
            "a state change without the CSRF token is refused: {no_csrf:?}"
        );
        let wrong_csrf = raw_post(
            &node,
            "/logout",
            "application/json",
            "{}",
            &[("Cookie", &cookie), ("X-XSRF-TOKEN", "forged")],
        )
        .await;
        assert!(rest_denied(&wrong_csrf));
        let out = raw_post(
            &node,
            "/logout",
            "application/json",
            "{}",
            &[("Cookie", &cookie), ("X-XSRF-TOKEN", &csrf)],
        )
        .await;
        assert_eq!(out.status, 204, "{out:?}");
        let after = request(http, "GET", "/v1/public/user", &[("Cookie", &cookie)], None).await;
        assert!(rest_denied(&after), "the session ended: {after:?}");

        println!("phase: brute force");
        for attempt in 1..=3 {
            let reply = login(&node, "alice", &format!("guess-{attempt}")).await;
            assert!(rest_denied(&reply), "attempt {attempt}: {reply:?}");
        }
        let locked = login(&node, "alice", "correct-horse").await;
        assert_eq!(
            locked.status, 429,
            "locked out even with the right password: {locked:?}"
        );
        assert_eq!(locked.error_code(), Some("AXONIQ-1900"));
        let retry: u64 = locked
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(retry >= 1);
        let basic_too = request(
            http,
            "GET",
            "/v1/public/user",
            &[("Authorization", &good)],
            None,
        )
        .await;
        assert_eq!(basic_too.status, 429, "Basic auth shares the lockout");
        // Another user is not affected.
        request(
            http,
            "POST",
            "/v1/users",
            &admin,
            Some(&json!({
                "userName": "bob", "password": "bobs-password", "roles": ["MONITOR@default"]
            })),
        )
        .await;
        assert_eq!(login(&node, "bob", "bobs-password").await.status, 200);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn admin_grpc_services_manage_applications_and_users() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let node = TestNode::start_with(secured).await;
        let admin = with_headers(&node, "_admin", ADMIN_TOKEN);
        let mut apps = applications(&admin);
        let token = apps
            .create_or_update_application(ApplicationRequest {
                application_name: "inventory".into(),
                description: "stock keeping".into(),
                token: String::new(),
                roles_per_context: vec![ApplicationContextRole {
                    context: "default".into(),
                    roles: vec!["READ_EVENTS".into(), "PUBLISH_EVENTS".into()],
                }],
                meta_data: Default::default(),
            })
            .await
            .expect("create")
            .into_inner()
            .token;
        assert_eq!(token.len(), 64);
        let mut auth =
            AuthenticationServiceClient::with_interceptor(admin.0.clone(), admin.1.clone());
        let roles = auth
            .authenticate_token(Token {
                token: token.clone(),
            })
            .await
            .expect("token known")
            .into_inner();
        assert_eq!(roles.application_name, "inventory");
        let mut granted: Vec<String> = roles
            .application_role
            .iter()
            .map(|r| format!("{}@{}", r.role, r.context))
            .collect();
        granted.sort();
        assert_eq!(granted, ["PUBLISH_EVENTS@default", "READ_EVENTS@default"]);
        let app = AxonClient::connect(&node.endpoint(), "default", Some(&token)).await;
        append(&app, vec![plain_event("Stocked")])
            .await
            .expect("the new token works");

        let listed: Vec<String> = {
            let mut stream = apps.get_applications(()).await.expect("list").into_inner();
            let mut names = Vec::new();
            while let Some(app) = stream.message().await.expect("stream") {
                names.push(app.application_name);
            }
            names
        };
        assert_eq!(listed, ["inventory"]);

        let renewed = apps
            .refresh_token(ApplicationId {
                application_name: "inventory".into(),
            })
            .await
            .expect("refresh")
            .into_inner()
            .token;
        assert_ne!(renewed, token);
        let old = AxonClient::connect(&node.endpoint(), "default", Some(&token)).await;
        assert!(
            append(&old, vec![plain_event("Late")])
                .await
                .as_ref()
                .is_err_and(denied),
            "the old token is retired"
        );
        let new = AxonClient::connect(&node.endpoint(), "default", Some(&renewed)).await;
        append(&new, vec![plain_event("Fresh")])
            .await
            .expect("the renewed token works");

        let mut deleted = apps
            .delete_application(ApplicationId {
                application_name: "inventory".into(),
            })
            .await
            .expect("delete")
            .into_inner();
        assert!(deleted.message().await.expect("completes").is_none());
        assert!(append(&new, vec![plain_event("Gone")])
            .await
            .as_ref()
            .is_err_and(denied));
        let missing = apps
            .get_application(ApplicationId {
                application_name: "inventory".into(),
            })
            .await
            .expect_err("deleted");
        assert_eq!(axon_code(&missing).as_deref(), Some("AXONIQ-1300"));

        let mut user_admin = users(&admin);
        let mut done = user_admin
            .create_or_update_user(CreateOrUpdateUserRequest {
                user_name: "carol".into(),
                password: "carols-password".into(),
                user_roles: vec![UserRoleRequest {
                    role: "ADMIN".into(),
                    context: "_admin".into(),
                }],
            })
            .await
            .expect("create user")
            .into_inner();
        assert!(done.message().await.expect("completes").is_none());
        let ok = auth
            .authenticate_user(AuthenticateUserRequest {
                user_name: "carol".into(),
                password: "carols-password".into(),
            })
            .await
            .expect("right password")
            .into_inner();
        assert_eq!(ok.user_name, "carol");
        assert_eq!(ok.user_roles[0].role, "ADMIN");
        let wrong = auth
            .authenticate_user(AuthenticateUserRequest {
                user_name: "carol".into(),
                password: "nope".into(),
            })
            .await
            .expect_err("wrong password");
        assert!(denied(&wrong));
        let bad_role = user_admin
            .create_or_update_user(CreateOrUpdateUserRequest {
                user_name: "dave".into(),
                password: "x".into(),
                user_roles: vec![UserRoleRequest {
                    role: "OVERLORD".into(),
                    context: "default".into(),
                }],
            })
            .await
            .expect_err("unknown role");
        assert_eq!(axon_code(&bad_role).as_deref(), Some("AXONIQ-2510"));

        // An application token cannot use the admin services.
        let reader = register(&node, "reader", &["READ_EVENTS@default"]).await;
        let as_reader = with_headers(&node, "default", &reader);
        let refused = users(&as_reader)
            .get_users(())
            .await
            .expect_err("not an admin");
        assert!(denied(&refused));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn applications_and_users_are_replicated_to_every_node() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start(3, |_, c| {
            secured(c);
            c.internal_token = Some("internal".into());
        })
        .await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let body = json!({
            "applicationName": "replicated",
            "roles": [{ "context": "default", "roles": ["USE_CONTEXT"] }],
        });
        let reply = request(
            cluster.node(follower).http_addr(),
            "POST",
            "/v1/applications",
            &[("AxonIQ-Access-Token", ADMIN_TOKEN)],
            Some(&body),
        )
        .await;
        assert_eq!(
            reply.status, 200,
            "created through a follower: {}",
            reply.body
        );
        let token = reply.body;
        for index in 0..3 {
            let endpoint = cluster.endpoint(index);
            eventually(
                "the application is known on every node",
                Duration::from_secs(10),
                || {
                    let endpoint = endpoint.clone();
                    let token = token.clone();
                    async move {
                        let client = AxonClient::connect(&endpoint, "default", Some(&token)).await;
                        let mut events = client.events.clone();
                        events
                            .get_last_token(GetLastTokenRequest {})
                            .await
                            .ok()
                            .map(|_| ())
                    }
                },
            )
            .await;
        }
    })
    .await
    .expect("test timed out");
}

/// Base64 for Basic credentials, kept here so the tests need no extra crate.
mod base64_for_tests {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn encodes_like_rfc_4648() {
        assert_eq!(encode("alice:pw"), "YWxpY2U6cHc=");
        assert_eq!(encode("ab"), "YWI=");
    }
}
