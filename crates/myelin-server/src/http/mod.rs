//! HTTP on 8024 (axum): the REST API (Axon Server's paths where Axon has them, Myelin's own under
//! `/v1/myelin/`), the actuator endpoints, the OpenAPI document and the embedded GUI.
//!
//! `routes()` is the one table of every endpoint: method, path, who may call it, handler. The
//! router is built from it and a test checks it against `openapi.json`, so the document cannot
//! drift from what is served. With access control on, `Access::Read` and `Access::Write` need an
//! application or admin token (`AxonIQ-Access-Token`, or `Authorization: Bearer` for Prometheus
//! scrapers), `Access::Admin` the admin token; `Access::Open` is for probes, the GUI's files and
//! `/v1/public/me` (which tells the GUI that it needs a token).

mod actuator;
mod events;
mod gui;
mod json;
mod messaging;
mod myelin;
mod processors;
mod public;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{self, MethodFilter, MethodRouter};
use axum::Router;

use crate::api_error::ApiError;
use crate::gateway::tokens_equal;
use crate::node::Shared;

/// Header that carries the access token, as in Axon Server's REST API.
pub(crate) const ACCESS_TOKEN_HEADER: &str = "AxonIQ-Access-Token";
/// Header that names the context on event, command and query endpoints.
pub(crate) const CONTEXT_HEADER: &str = "AxonIQ-Context";

/// Who may call an endpoint when access control is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: health probes, the GUI's files, the API document, `/v1/public/me`.
    Open,
    /// An application or admin token: everything that only reads.
    Read,
    /// An application or admin token: appending events, dispatching commands and queries.
    Write,
    /// The admin token: processor control, reconnecting clients, removing nodes.
    Admin,
}

/// One endpoint of the table.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<Arc<Shared>>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
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
        access,
        handler: routing::on(filter, handler),
    }
}

/// Every endpoint on 8024 (kept as a one-line-per-route table).
#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Route> {
    use Access::{Admin, Open, Read, Write};
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
        route(M::GET, "/actuator/prometheus", Read, actuator::prometheus),
        // Node, cluster and contexts.
        route(M::GET, "/v1/public/me", Open, public::me),
        route(M::GET, "/v1/public", Read, public::nodes),
        route(M::GET, "/v1/public/version", Read, public::version),
        route(M::GET, "/v1/public/mycontexts", Read, public::my_contexts),
        route(M::GET, "/v1/public/context", Read, public::contexts),
        route(M::GET, "/v1/public/visiblecontexts", Read, public::visible_contexts),
        route(M::GET, "/v1/public/status", Read, public::status),
        route(M::GET, "/v1/cluster", Read, public::cluster_nodes),
        route(M::DELETE, "/v1/cluster/{node}", Admin, public::remove_node),
        // Applications, commands and queries.
        route(M::GET, "/v1/components/clients", Read, public::clients),
        route(M::GET, "/v1/components/clientIds", Read, public::client_ids),
        route(M::GET, "/v1/components/{component}/instances", Read, public::instances),
        route(M::GET, "/v1/components/{component}/commands", Read, public::component_commands),
        route(M::GET, "/v1/components/{component}/queries", Read, public::component_queries),
        route(M::GET, "/v1/commands", Read, public::commands),
        route(M::GET, "/v1/commands/queues", Read, public::command_queues),
        route(M::GET, "/v1/commands/count", Read, public::command_count),
        route(M::GET, "/v1/queries", Read, public::queries),
        route(M::GET, "/v1/public/command-metrics", Read, public::command_metrics),
        route(M::GET, "/v1/public/query-metrics", Read, public::query_metrics),
        route(M::POST, "/v1/commands/run", Write, messaging::run_command),
        route(M::POST, "/v1/queries/run", Write, messaging::run_query),
        route(M::PATCH, "/v1/instructions", Admin, processors::reconnect_client),
        // Events and snapshots.
        route(M::GET, "/v1/events", Read, events::list_events),
        route(M::POST, "/v1/events", Write, events::append_events),
        route(M::GET, "/v1/snapshots", Read, events::list_snapshots),
        route(M::POST, "/v1/snapshots", Write, events::append_snapshot),
        // Event processors.
        route(M::GET, "/v1/components/{component}/processors", Read, processors::of_component),
        route(M::GET, "/v1/processors/{processor}/clients", Read, processors::clients),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/pause", Admin, processors::pause),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/start", Admin, processors::start),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/split", Admin, processors::split),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/merge", Admin, processors::merge),
        route(M::PATCH, "/v1/components/{component}/processors/{processor}/segments/{segment}/move", Admin, processors::move_segment),
        // Myelin's own views, for the GUI and scripts.
        route(M::GET, "/v1/myelin/overview", Read, myelin::overview),
        route(M::GET, "/v1/myelin/timeline", Read, myelin::timeline),
        route(M::GET, "/v1/myelin/handlers", Read, myelin::handlers),
        route(M::GET, "/v1/myelin/processors", Read, myelin::processors),
        route(M::GET, "/v1/myelin/cluster", Read, myelin::cluster),
    ]
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        tracing::trace!(method = %route.method, path = route.path, access = ?route.access, "HTTP route");
        let checked = route.handler.route_layer(middleware::from_fn_with_state(
            (shared.clone(), route.access),
            authorize,
        ));
        router = router.route(route.path, checked);
    }
    router.with_state(shared)
}

/// Lets a request through if its token allows `access`.
async fn authorize(
    State((shared, access)): State<(Arc<Shared>, Access)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let method = format!("{} {}", request.method(), request.uri().path());
    check_access(&shared, request.headers(), access, method)?;
    Ok(next.run(request).await)
}

/// The access check itself: `Ok` when access control is off, the endpoint is open, or the token
/// is one that `access` accepts.
pub(crate) fn check_access(
    shared: &Shared,
    headers: &HeaderMap,
    access: Access,
    method: String,
) -> Result<(), ApiError> {
    if !shared.access_control || access == Access::Open {
        return Ok(());
    }
    let given = headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    let Some(given) = given else {
        return Err(ApiError::TokenMissing { method });
    };
    let admin = shared
        .admin_token
        .as_deref()
        .is_some_and(|t| tokens_equal(given, t));
    let application = shared
        .application_token
        .as_deref()
        .is_some_and(|t| tokens_equal(given, t));
    let allowed = match access {
        Access::Open => true,
        Access::Read | Access::Write => admin || application,
        Access::Admin => admin,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::InvalidToken { method })
    }
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
                route.access != Access::Open,
                "{} {}: security in openapi.json does not match {:?}",
                route.method,
                route.path,
                route.access
            );
            let admin = operation["x-myelin-access"].as_str() == Some("admin");
            assert_eq!(
                admin,
                route.access == Access::Admin,
                "{} {}: x-myelin-access in openapi.json does not match {:?}",
                route.method,
                route.path,
                route.access
            );
        }
    }
}
