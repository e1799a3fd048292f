//! Axon Server's informational REST endpoints: this node and the cluster (`/v1/public*`,
//! `/v1/cluster`), contexts, connected applications and components, command and query
//! registrations and their counts. Shapes follow Axon Server's JSON so its CLI and scripts read
//! them; where Axon has nothing to say about a Myelin concept, the field is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Caller;
use super::myelin::{applications, node_name, voter_nodes};
use super::ContextParam;
use crate::api_error::ApiError;
use crate::cluster::{everywhere, NodeClient};
use crate::commands::Registration;
use crate::metrics::{family, sum_series};
use crate::node::Shared;

/// This node's address card, in Axon's field names.
fn node_json(shared: &Shared, node: &myelin_protocol::cluster::NodeInfo) -> Value {
    let (internal_host, internal_port) = node
        .internal_address
        .rsplit_once(':')
        .map_or((node.internal_address.as_str(), ""), |(h, p)| (h, p));
    let status = shared.group.status().borrow().clone();
    json!({
        "name": node.name,
        "hostName": node.hostname,
        "grpcPort": node.grpc_port,
        "httpPort": node.http_port,
        "internalHostName": internal_host,
        "grpcInternalPort": internal_port.parse::<u16>().ok(),
        "leader": status.leader_id == Some(node.id),
    })
}

pub(super) async fn me(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut me = node_json(&shared, &shared.cluster.me);
    let contexts = shared.store.context_names();
    let fields = json!({
        "authentication": shared.access.enabled,
        "ssl": shared.ssl,
        "clustered": voter_nodes(&shared).len() > 1,
        "adminNode": true,
        "developmentMode": false,
        "initialized": true,
        "pluginsEnabled": false,
        "contextNames": contexts,
        "storageContextNames": contexts,
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(me), Some(fields)) = (me.as_object_mut(), fields.as_object()) {
        me.extend(fields.clone());
    }
    Json(me)
}

pub(super) async fn nodes(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let nodes = voter_nodes(&shared)
        .iter()
        .map(|n| node_json(&shared, n))
        .collect();
    Json(nodes)
}

/// `GET /v1/cluster`: the same nodes, with Axon EE's field for the internal port.
pub(super) async fn cluster_nodes(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let nodes = voter_nodes(&shared)
        .iter()
        .map(|n| {
            let mut node = node_json(&shared, n);
            node["internalGrpcPort"] = node["grpcInternalPort"].clone();
            node
        })
        .collect();
    Json(nodes)
}

/// Removes a node from the cluster.
pub(super) async fn remove_node(
    State(shared): State<Arc<Shared>>,
    Path(node): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::cluster::remove_node(&shared, &node).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn version() -> Json<Value> {
    Json(json!({
        "productName": "Myelin",
        "version": env!("CARGO_PKG_VERSION"),
        "licenseType": null,
    }))
}

/// The contexts the caller has a role in.
pub(super) async fn my_contexts(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<String>> {
    let mut names: Vec<String> = shared
        .store
        .context_names()
        .into_iter()
        .filter(|c| caller.uses(c))
        .collect();
    names.sort();
    Json(names)
}

pub(super) async fn visible_contexts(
    state: State<Arc<Shared>>,
    caller: Extension<Caller>,
) -> Json<Vec<String>> {
    my_contexts(state, caller).await
}

/// Every context with the nodes that store it and its leader.
pub(super) async fn contexts(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let status = shared.group.status().borrow().clone();
    let leader = status.leader_id.map(|id| node_name(&shared, Some(id)));
    let nodes: Vec<String> = voter_nodes(&shared).into_iter().map(|n| n.name).collect();
    let contexts = shared
        .store
        .context_names()
        .into_iter()
        .map(|name| {
            json!({
                "context": name,
                "replicationGroup": "default",
                "leader": leader,
                "nodes": nodes,
            })
        })
        .collect();
    Json(contexts)
}

/// Rates per second (Axon's RateMeter: count and one, five and fifteen minute rates; the
/// timeline holds five minutes, so the fifteen-minute rate is over those) and the last token,
/// which Axon calls `nrOfEvents`.
pub(super) async fn status(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let timeline = shared.metrics.timeline();
    let history = timeline.contexts.get(&context).cloned().unwrap_or_default();
    let total = |f| shared.metrics.counter(f, &context);
    let rate = |count: u64, samples: Vec<u64>| {
        let per_second = |seconds: usize| {
            let taken = samples.len().clamp(1, seconds);
            samples.iter().rev().take(seconds).sum::<u64>() as f64 / taken as f64
        };
        json!({
            "count": count,
            "oneMinuteRate": per_second(60),
            "fiveMinuteRate": per_second(300),
            "fifteenMinuteRate": per_second(300),
        })
    };
    let count = |commands: bool| -> u64 {
        shared
            .metrics
            .handler_stats(&context, commands)
            .values()
            .map(|s| s.count)
            .sum()
    };
    Ok(Json(json!({
        "commandRate": rate(count(true), sum_series(&history.commands)),
        "queryRate": rate(count(false), sum_series(&history.queries)),
        "eventRate": rate(
            total(family::EVENTS_APPEND_THROUGHPUT),
            history.events_appended.iter().copied().collect(),
        ),
        "snapshotRate": rate(
            total(family::SNAPSHOTS_APPEND_THROUGHPUT),
            history.snapshots_appended.iter().copied().collect(),
        ),
        "nrOfEvents": super::myelin::head_token(&shared, &context),
        "nrOfSnapshots": total(family::SNAPSHOTS_APPEND_THROUGHPUT),
    })))
}

/// Connected client instances, one entry each, with the node each is connected to.
pub(super) async fn clients(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<Value>> {
    let clients = everywhere(&shared)
        .await
        .into_iter()
        .filter(|c| caller.sees(&c.client.context))
        .map(|NodeClient { node, client }| {
            json!({
                "name": client.client_id,
                "componentName": client.component_name,
                "context": client.context,
                "axonServerNode": node,
                "version": client.version,
                "tags": client.tags,
            })
        })
        .collect();
    Json(clients)
}

pub(super) async fn client_ids(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let platform: BTreeMap<String, String> = shared
        .clients
        .list()
        .into_iter()
        .filter(|c| caller.sees(&c.context))
        .map(|c| (c.stream_id, format!("{}.{}", c.client_id, c.context)))
        .collect();
    let streams = |registrations: Vec<Registration>| -> BTreeMap<String, String> {
        registrations
            .into_iter()
            .filter(|r| r.node.is_none() && caller.sees(&r.context))
            .map(|r| (r.stream_id, format!("{}.{}", r.client_id, r.context)))
            .collect()
    };
    Json(json!({
        "PLATFORM": platform,
        "COMMAND": streams(shared.commands.registrations()),
        "QUERY": streams(shared.queries.registrations()),
    }))
}

/// The instances of one component.
pub(super) async fn instances(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let instances = applications(&shared, &context, everywhere(&shared).await)
        .into_iter()
        .filter(|a| a.component == component)
        .flat_map(|a| a.instances)
        .map(|i| json!({ "name": i.client_id, "axonServerNode": i.node, "version": i.version }))
        .collect();
    Ok(Json(instances))
}

/// The names a component handles, as `[{name}]`.
fn component_names(shared: &Shared, component: &str, context: &str, commands: bool) -> Vec<Value> {
    let registrations = if commands {
        shared.commands.registrations()
    } else {
        shared.queries.registrations()
    };
    let names: BTreeSet<String> = registrations
        .into_iter()
        .filter(|r| r.component == component && r.context == context)
        .flat_map(|r| r.names)
        .collect();
    names
        .into_iter()
        .map(|name| {
            if commands {
                json!({ "name": name })
            } else {
                json!({ "name": name, "responseTypes": [] })
            }
        })
        .collect()
}

pub(super) async fn component_commands(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    Ok(Json(component_names(&shared, &component, &context, true)))
}

pub(super) async fn component_queries(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    Ok(Json(component_names(&shared, &component, &context, false)))
}

/// Command registrations per handler client: `{client, component, context, proxy, commands}`.
fn registrations_json(shared: &Shared, registrations: Vec<Registration>) -> Vec<Value> {
    registrations
        .into_iter()
        .map(|r| {
            json!({
                "client": r.client_id,
                "component": r.component,
                "context": r.context,
                "proxy": node_name(shared, r.node),
                "commands": r.names,
            })
        })
        .collect()
}

pub(super) async fn commands(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<Value>> {
    let mut registrations = shared.commands.registrations();
    registrations.retain(|r| caller.sees(&r.context));
    Json(registrations_json(&shared, registrations))
}

/// Commands waiting for each handler's permits (Axon's `[{client, count}]`).
pub(super) async fn command_queues(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let queues = shared
        .commands
        .queues()
        .into_iter()
        .map(|(client, count)| json!({ "client": client, "count": count }))
        .collect();
    Json(queues)
}

/// Commands dispatched through this node and not answered yet (a bare number, as in Axon).
pub(super) async fn command_count(State(shared): State<Arc<Shared>>) -> Json<usize> {
    Json(shared.commands.in_flight())
}

/// Per query name: the components that handle it and their clients (Axon's shape).
pub(super) async fn queries(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<Value>> {
    let mut by_name: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for registration in shared.queries.registrations() {
        if !caller.sees(&registration.context) {
            continue;
        }
        for name in &registration.names {
            by_name
                .entry(name.clone())
                .or_default()
                .entry(registration.component.clone())
                .or_default()
                .insert(format!(
                    "{}.{}",
                    registration.client_id, registration.context
                ));
        }
    }
    let queries = by_name
        .into_iter()
        .map(|(query, components)| {
            let components: Vec<Value> = components
                .into_iter()
                .map(|(component, clients)| json!({ "component": component, "clients": clients }))
                .collect();
            json!({ "query": query, "resultNames": [], "components": components })
        })
        .collect();
    Json(queries)
}

/// How many of each command (or query) each client connected here handled.
fn handled_metrics(shared: &Shared, context: &str, commands: bool) -> Vec<Value> {
    let components: BTreeMap<String, String> = shared
        .clients
        .list()
        .into_iter()
        .map(|c| (c.client_id, c.component_name))
        .collect();
    shared
        .metrics
        .handled(context, commands)
        .into_iter()
        .map(|(name, client, count)| {
            let mut row = json!({
                "clientId": client,
                "componentName": components.get(&client),
                "context": context,
                "count": count,
            });
            if commands {
                row["command"] = json!(name);
            } else {
                row["queryDefinition"] = json!({ "queryName": name });
            }
            row
        })
        .collect()
}

pub(super) async fn command_metrics(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    Ok(Json(handled_metrics(&shared, &context, true)))
}

pub(super) async fn query_metrics(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    Ok(Json(handled_metrics(&shared, &context, false)))
}
