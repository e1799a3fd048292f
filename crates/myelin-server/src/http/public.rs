//! Axon Server's informational REST endpoints: this node and the cluster (`/v1/public*`,
//! `/v1/cluster`), contexts, connected applications and components, command and query
//! registrations and their counts. Shapes follow Axon Server's JSON so its CLI and scripts read
//! them; where Axon has nothing to say about a Myelin concept, the field is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::myelin::{applications, node_name, ContextParam};
use crate::api_error::ApiError;
use crate::commands::Registration;
use crate::metrics::family;
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

/// The nodes that are voters of the replication group.
fn voter_nodes(shared: &Shared) -> Vec<myelin_protocol::cluster::NodeInfo> {
    let status = shared.group.status().borrow().clone();
    let _ = shared.cluster.learn_address_book(&shared.store);
    shared
        .cluster
        .known_nodes()
        .into_iter()
        .filter(|n| status.voters.contains(&n.id))
        .collect()
}

pub(super) async fn me(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut me = node_json(&shared, &shared.cluster.me);
    let contexts = shared.store.context_names();
    let fields = json!({
        "authentication": shared.access_control,
        "ssl": false,
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
    Json(json!({ "productName": "Myelin", "version": env!("CARGO_PKG_VERSION") }))
}

pub(super) async fn my_contexts(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(shared.store.context_names())
}

pub(super) async fn visible_contexts(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(shared.store.context_names())
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

/// Rates per second over the last minute of a context's timeline, and totals.
pub(super) async fn status(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let timeline = shared.metrics.timeline();
    let history = timeline.contexts.get(&context).cloned().unwrap_or_default();
    let per_second = |samples: &std::collections::VecDeque<u64>| {
        let seconds = samples.len().clamp(1, 60) as f64;
        samples.iter().rev().take(60).sum::<u64>() as f64 / seconds
    };
    let sum_each = |per_name: &BTreeMap<String, std::collections::VecDeque<u64>>| {
        per_name.values().map(per_second).sum::<f64>()
    };
    let total = |f| shared.metrics.counter(f, &context);
    let commands: u64 = shared
        .metrics
        .handler_stats(&context, true)
        .values()
        .map(|s| s.count)
        .sum();
    let queries: u64 = shared
        .metrics
        .handler_stats(&context, false)
        .values()
        .map(|s| s.count)
        .sum();
    let rate = |count: u64, one_minute: f64| json!({ "count": count, "oneMinuteRate": one_minute });
    Ok(Json(json!({
        "commandRate": rate(commands, sum_each(&history.commands)),
        "queryRate": rate(queries, sum_each(&history.queries)),
        "eventRate": rate(total(family::EVENTS_APPEND_THROUGHPUT), per_second(&history.events_appended)),
        "snapshotRate": rate(total(family::SNAPSHOTS_APPEND_THROUGHPUT), per_second(&history.snapshots_appended)),
        "nrOfEvents": super::myelin::head_token(&shared, &context) + 1,
    })))
}

#[derive(Debug, Deserialize)]
pub(super) struct ComponentParams {
    context: Option<String>,
}

/// Connected client instances, one entry each.
pub(super) async fn clients(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let me = shared.cluster.me.name.clone();
    let clients = shared
        .clients
        .list()
        .into_iter()
        .map(|c| {
            json!({
                "name": c.client_id,
                "componentName": c.component_name,
                "context": c.context,
                "axonServerNode": me,
                "version": c.version,
                "tags": c.tags,
            })
        })
        .collect();
    Json(clients)
}

pub(super) async fn client_ids(State(shared): State<Arc<Shared>>) -> Json<BTreeSet<String>> {
    Json(
        shared
            .clients
            .list()
            .into_iter()
            .map(|c| c.client_id)
            .collect(),
    )
}

/// The instances of one component.
pub(super) async fn instances(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(params): Query<ComponentParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    let instances = applications(&shared, Some(&context))
        .into_iter()
        .filter(|a| a.component == component)
        .flat_map(|a| a.instances)
        .map(|i| json!({ "name": i.client_id, "axonServerNode": i.node, "version": i.version }))
        .collect();
    Ok(Json(instances))
}

/// The names a component handles, as `[{name}]`.
fn component_names(
    shared: &Shared,
    component: &str,
    context: &str,
    commands: bool,
) -> Vec<Value> {
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
    let key = if commands { "name" } else { "query" };
    names.into_iter().map(|n| json!({ key: n })).collect()
}

pub(super) async fn component_commands(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(params): Query<ComponentParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    Ok(Json(component_names(&shared, &component, &context, true)))
}

pub(super) async fn component_queries(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(params): Query<ComponentParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    Ok(Json(component_names(&shared, &component, &context, false)))
}

/// Handler registrations per client: `{client, component, context, proxy, <names>}`.
fn registrations_json(shared: &Shared, registrations: Vec<Registration>, key: &str) -> Vec<Value> {
    registrations
        .into_iter()
        .map(|r| {
            json!({
                "client": r.client_id,
                "component": r.component,
                "context": r.context,
                "proxy": node_name(shared, r.node),
                key: r.names,
            })
        })
        .collect()
}

pub(super) async fn commands(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let registrations = shared.commands.registrations();
    Json(registrations_json(&shared, registrations, "commands"))
}

pub(super) async fn queries(State(shared): State<Arc<Shared>>) -> Json<Vec<Value>> {
    let registrations = shared.queries.registrations();
    Json(registrations_json(&shared, registrations, "queries"))
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
