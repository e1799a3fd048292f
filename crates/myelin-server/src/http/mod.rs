//! HTTP on 8024 (axum): the REST API (Axon Server's paths where Axon has them, Myelin's own under
//! `/v1/myelin/`), the actuator endpoints, the OpenAPI document and the embedded GUI.
//!
//! `routes()` is the one table of every endpoint: method, path, the `Permission` it needs, handler.
//! The router is built from it and a test checks it against `openapi.json`, so the document cannot
//! drift from what is served. With access control on, callers show a token (`AxonIQ-Access-Token`,
//! or `Authorization: Bearer` for Prometheus scrapers), a user's password (HTTP Basic) or a GUI
//! session cookie (then state-changing requests must echo the CSRF token in `X-XSRF-TOKEN`); the
//! permission is checked in the context the request names. `Permission::Open` is for probes, the
//! GUI's files, login and `/v1/public/me` (which tells the GUI that it needs to log in).

mod actuator;
mod auth;
mod events;
mod gui;
mod json;
mod messaging;
mod myelin;
mod processors;
mod public;
mod security;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{self, MethodFilter, MethodRouter};
use axum::Router;

use crate::access::{self, Permission};
use crate::api_error::ApiError;
use crate::node::Shared;

/// Header that carries the access token, as in Axon Server's REST API.
pub(crate) const ACCESS_TOKEN_HEADER: &str = "AxonIQ-Access-Token";
/// Header that names the context on event, command and query endpoints.
pub(crate) const CONTEXT_HEADER: &str = "AxonIQ-Context";

/// One endpoint of the table.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub permission: Permission,
    handler: MethodRouter<Arc<Shared>>,
}

fn route<H, T>(method: Method, path: &'static str, permission: Permission, handler: H) -> Route
where
    H: Handler<T, Arc<Shared>>,
    T: 'static,
{
    let filter = match MethodFilter::try_from(method.clone()) {
        Ok(filter) => filter,
        Err(e) => panic!("route table: {method} {path}: {e}"),
    };
    Route {
        method,
        path,
        permission,
        handler: routing::on(filter, handler),
    }
}

/// Every endpoint on 8024 (kept as a one-line-per-route table).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Route> {
    use Permission::*;
    use Method as M;
    vec![
        // The GUI and the API document.
        route(M::GET, "/", Open, gui::index),
        route(M::GET, "/gui/{file}", Open, gui::asset),
        route(M::GET, "/v3/api-docs", Open, gui::openapi),
        // Actuator.
        route(M::GET, "/actuator/health", Open, actuator::health),
        route(M::GET, "/actuator/health/liveness", Open, actuator::liveness),
        route(M::GET, "/actuator/health/readiness", Open, actuator::readiness),
        route(M::GET, "/actuator/info", Open, actuator::info),
        route(M::GET, "/actuator/prometheus", Monitor, actuator::prometheus),
        // Node, cluster and contexts.
        route(M::GET, "/v1/public/me", Open, public::me),
        route(M::GET, "/v1/public", Authenticated, public::nodes),
        route(M::GET, "/v1/public/version", Authenticated, public::version),
        route(M::GET, "/v1/public/mycontexts", Authenticated, public::my_contexts),
        route(M::GET, "/v1/public/context", Authenticated, public::contexts),
        route(M::GET, "/v1/public/visiblecontexts", Authenticated, public::visible_contexts),
        route(M::GET, "/v1/public/status", Authenticated, public::status),
        route(M::GET, "/v1/cluster", Authenticated, public::cluster_nodes),
        route(M::DELETE, "/v1/cluster/{node}", Admin, public::remove_node),
        // Applications, commands and queries.
        route(M::GET, "/v1/components/clients", Monitor, public::clients),
        route(M::GET, "/v1/components/clientIds", Monitor, public::client_ids),
        route(M::GET, "/v1/components/{component}/instances", Monitor, public::instances),
        route(M::GET, "/v1/components/{component}/commands", Monitor, public::component_commands),
        route(M::GET, "/v1/components/{component}/queries", Monitor, public::component_queries),
        route(M::GET, "/v1/commands", Monitor, public::commands),
        route(M::GET, "/v1/commands/queues", Monitor, public::command_queues),
        route(M::GET, "/v1/commands/count", Monitor, public::command_count),
        route(M::GET, "/v1/queries", Monitor, public::queries),
        route(M::GET, "/v1/public/command-metrics", Monitor, public::command_metrics),
        route(M::GET, "/v1/public/query-metrics", Monitor, public::query_metrics),
        route(M::POST, "/v1/commands/run", DispatchCommands, messaging::run_command),
        route(M::POST, "/v1/queries/run", DispatchQueries, messaging::run_query),
        route(M::PATCH, "/v1/instructions", ControlProcessors, processors::reconnect_client),
        // Events and snapshots.
        route(M::GET, "/v1/events", ReadEvents, events::list_events),
        route(M::POST, "/v1/events", PublishEvents, events::append_events),
        route(M::GET, "/v1/snapshots", ReadEvents, events::list_snapshots),
        route(M::POST, "/v1/snapshots", PublishEvents, events::append_snapshot),
        // Event processors.
        route(M::GET, "/v1/components/{component}/processors", Monitor, processors::of_component),
        route(M::GET, "/v1/processors/{processor}/clients", Monitor, processors::clients),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/pause", ControlProcessors, processors::pause),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/start", ControlProcessors, processors::start),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/split", ControlProcessors, processors::split),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/merge", ControlProcessors, processors::merge),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/{segment}/move", ControlProcessors, processors::move_segment),
        // Myelin's own views, for the GUI and scripts.
        route(M::GET, "/v1/myelin/overview", Monitor, myelin::overview),
        route(M::GET, "/v1/myelin/timeline", Monitor, myelin::timeline),
        route(M::GET, "/v1/myelin/handlers", Monitor, myelin::handlers),
        route(M::GET, "/v1/myelin/processors", Monitor, myelin::processors),
        route(M::GET, "/v1/myelin/cluster", Authenticated, myelin::cluster),
        // Access control: login, who am I, applications and users.
        route(M::POST, "/login", Open, auth::login),
        route(M::POST, "/logout", Authenticated, auth::logout),
        route(M::GET, "/v1/public/user", Authenticated, auth::current_user),
        route(M::GET, "/v1/roles/user", Authenticated, security::roles),
        route(M::GET, "/v1/roles/application", Authenticated, security::roles),
        route(M::GET, "/v1/public/applications", ViewConfiguration, security::list_applications),
        route(M::GET, "/v1/applications/{name}", ViewConfiguration, security::get_application),
        route(M::POST, "/v1/applications", Admin, security::save_application),
        route(M::PATCH, "/v1/applications/{name}", Admin, security::renew_token),
        route(M::DELETE, "/v1/applications/{name}", Admin, security::delete_application),
        route(M::GET, "/v1/public/users", ViewConfiguration, security::list_users),
        route(M::POST, "/v1/users", Admin, security::save_user),
        route(M::DELETE, "/v1/users/{name}", Admin, security::delete_user),
    ]
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        tracing::trace!(method = %route.method, path = route.path, permission = ?route.permission, "HTTP route");
        let checked = route.handler.route_layer(middleware::from_fn_with_state(
            (shared.clone(), route.permission),
            authorize,
        ));
        router = router.route(route.path, checked);
    }
    router.with_state(shared)
}

/// Lets a request through if its caller has `permission` in the context it names; the caller is
/// left in the request's extensions (`auth::Caller`) for the handler.
async fn authorize(
    State((shared, permission)): State<(Arc<Shared>, Permission)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !shared.access.enabled || permission == Permission::Open {
        request.extensions_mut().insert(auth::Caller(None));
        return Ok(next.run(request).await);
    }
    let method = format!("{} {}", request.method(), request.uri().path());
    let from = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::RemoteAddr>>()
        .map(|info| info.0 .0.ip());
    let caller = auth::caller(&shared, request.method(), request.headers(), from, &method).await?;
    let context = context_of(
        query_param(request.uri(), "context").as_deref(),
        request.headers(),
    );
    access::authorize(&caller, permission, &context, &method)?;
    request.extensions_mut().insert(auth::Caller(Some(caller)));
    Ok(next.run(request).await)
}

/// A query parameter's raw value (context names need no decoding).
fn query_param(uri: &axum::http::Uri, name: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Server-sent events, one JSON value each (with the SSE id `id_of` gives), ending with the
/// comment `end` when given (Axon ends finite streams with `:End of stream`).
pub(crate) fn sse(
    receiver: tokio::sync::mpsc::Receiver<serde_json::Value>,
    id_of: fn(&serde_json::Value) -> Option<String>,
    end: Option<&'static str>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use axum::response::IntoResponse;
    use tokio_stream::StreamExt;
    let events = tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |value| {
        let mut event = Event::default().data(value.to_string());
        if let Some(id) = id_of(&value) {
            event = event.id(id);
        }
        event
    });
    let end = tokio_stream::iter(end.map(|text| Event::default().comment(text)));
    let stream = events.chain(end).map(Ok::<_, std::convert::Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The `context` query parameter most endpoints take.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ContextParam {
    context: Option<String>,
}

impl ContextParam {
    /// The context this request names (parameter, header or `default`), checked to exist.
    pub(crate) fn resolve(&self, shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
        let name = context_of(self.context.as_deref(), headers);
        shared.context(&name)?;
        Ok(name)
    }
}

/// The context a request names: the `context` query parameter, else the `AxonIQ-Context` header,
/// else `default`.
pub(crate) fn context_of(query: Option<&str>, headers: &HeaderMap) -> String {
    query
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(CONTEXT_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|c| !c.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| myelin_storage::DEFAULT_CONTEXT.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The OpenAPI document lists exactly the endpoints the router serves.
    #[test]
    fn openapi_document_matches_the_route_table() {
        let document: serde_json::Value =
            serde_json::from_str(gui::OPENAPI_JSON).expect("openapi.json parses");
        let mut documented = BTreeSet::new();
        let paths = document["paths"].as_object().expect("paths");
        for (path, operations) in paths {
            for method in operations.as_object().expect("operations").keys() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        let served: BTreeSet<String> = routes()
            .iter()
            .filter(|r| r.path != "/" && !r.path.starts_with("/gui/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let not_served: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && not_served.is_empty(),
            "served but not in openapi.json: {undocumented:?}; documented but not served: {not_served:?}"
        );
    }

    /// Every operation that needs a token says so in the document, and open ones do not.
    #[test]
    fn openapi_document_states_who_may_call() {
        let document: serde_json::Value =
            serde_json::from_str(gui::OPENAPI_JSON).expect("openapi.json parses");
        for route in routes()
            .iter()
            .filter(|r| r.path != "/" && !r.path.starts_with("/gui/"))
        {
            let operation = &document["paths"][route.path][route.method.as_str().to_lowercase()];
            let needs_token = operation
                .get("security")
                .is_none_or(|s| s.as_array().is_none_or(|a| !a.is_empty()));
            assert_eq!(
                needs_token,
                route.permission != Permission::Open,
                "{} {}: security in openapi.json does not match {:?}",
                route.method,
                route.path,
                route.permission
            );
            let documented = operation["x-myelin-permission"].as_str();
            assert_eq!(
                documented,
                Some(format!("{:?}", route.permission).as_str()),
                "{} {}: x-myelin-permission in openapi.json does not match the route table",
                route.method,
                route.path,
            );
        }
    }
}
