//! Myelin's own views under `/v1/myelin/`, shaped for the GUI and for scripts: the topology
//! (nodes, contexts, applications with what they handle), the per-second timeline behind the
//! charts, per-handler statistics, event processors with their lag behind the head, and the raft
//! view of the cluster. Everything is read from what the node already keeps: the client registry,
//! the routers' registrations, `Metrics` and the replication group's status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::ContextParam;
use crate::api_error::ApiError;
use crate::cluster::{everywhere, NodeClient};
use crate::commands::Registration;
use crate::node::Shared;

/// The name of node `id` (or this node for `None`).
pub(super) fn node_name(shared: &Shared, id: Option<u64>) -> String {
    match id {
        None => shared.cluster.me.name.clone(),
        Some(id) => shared
            .cluster
            .node(id)
            .map_or_else(|| format!("node-{id}"), |n| n.name),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Instance {
    pub client_id: String,
    pub node: String,
    pub version: String,
}

/// One application: the instances of a component in a context, and what they handle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Application {
    pub component: String,
    pub context: String,
    pub instances: Vec<Instance>,
    pub commands: BTreeSet<String>,
    pub queries: BTreeSet<String>,
    pub processors: BTreeSet<String>,
}

/// The applications of `context`: connected to any node (`clients`, from
/// `cluster::everywhere`) or known from their handlers.
pub(super) fn applications(
    shared: &Shared,
    context: &str,
    clients: Vec<NodeClient>,
) -> Vec<Application> {
    let in_context = |c: &str| c == context;
    let mut apps: BTreeMap<(String, String), Application> = BTreeMap::new();
    for NodeClient { node, client } in clients {
        if !in_context(&client.context) {
            continue;
        }
        let app = entry(&mut apps, &client.context, &client.component_name);
        app.processors.extend(client.processors.keys().cloned());
        app.instances.push(Instance {
            client_id: client.client_id,
            node,
            version: client.version,
        });
    }
    let registrations = [
        (true, shared.commands.registrations()),
        (false, shared.queries.registrations()),
    ];
    for (commands, list) in registrations {
        for registration in list {
            if !in_context(&registration.context) || registration.component.is_empty() {
                continue;
            }
            let node = node_name(shared, registration.node);
            let app = entry(&mut apps, &registration.context, &registration.component);
            if !app
                .instances
                .iter()
                .any(|i| i.client_id == registration.client_id)
            {
                app.instances.push(Instance {
                    client_id: registration.client_id.clone(),
                    node,
                    version: String::new(),
                });
            }
            if commands {
                app.commands.extend(registration.names);
            } else {
                app.queries.extend(registration.names);
            }
        }
    }
    apps.into_values().collect()
}

fn entry<'a>(
    apps: &'a mut BTreeMap<(String, String), Application>,
    context: &str,
    component: &str,
) -> &'a mut Application {
    apps.entry((context.to_string(), component.to_string()))
        .or_insert_with(|| Application {
            component: component.to_string(),
            context: context.to_string(),
            instances: Vec::new(),
            commands: BTreeSet::new(),
            queries: BTreeSet::new(),
            processors: BTreeSet::new(),
        })
}

/// The nodes that are voters of the replication group.
pub(super) fn voter_nodes(shared: &Shared) -> Vec<myelin_protocol::cluster::NodeInfo> {
    let status = shared.group.status().borrow().clone();
    let _ = shared.cluster.learn_address_book(&shared.store);
    shared
        .cluster
        .known_nodes()
        .into_iter()
        .filter(|n| status.voters.contains(&n.id))
        .collect()
}

/// The raft view of every voter: name, addresses, role as far as this node knows it, and (on the
/// leader) how far each one has replicated.
pub(super) fn cluster_view(shared: &Shared) -> Value {
    let status = shared.group.status().borrow().clone();
    let matched: BTreeMap<u64, u64> = status.peers_matched.iter().copied().collect();
    let nodes: Vec<Value> = voter_nodes(shared)
        .into_iter()
        .map(|n| {
            let me = n.id == shared.cluster.me.id;
            let role = if me {
                status.role.name()
            } else if status.leader_id == Some(n.id) {
                "LEADER"
            } else if status.is_leader() {
                "FOLLOWER"
            } else {
                "UNKNOWN"
            };
            let match_index = if me && status.is_leader() {
                Some(status.commit_index)
            } else {
                matched.get(&n.id).copied()
            };
            json!({
                "name": n.name,
                "hostName": n.hostname,
                "grpcPort": n.grpc_port,
                "httpPort": n.http_port,
                "internal": n.internal_address,
                "role": role,
                "leader": status.leader_id == Some(n.id),
                "self": me,
                "matchIndex": match_index,
                "lag": match_index.map(|m| status.commit_index.saturating_sub(m)),
            })
        })
        .collect();
    json!({
        "term": status.term,
        "leader": status.leader_id.map(|id| node_name(shared, Some(id))),
        "commitIndex": status.commit_index,
        "appliedIndex": status.applied_index,
        "nodes": nodes,
    })
}

pub(super) async fn overview(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let contexts: Vec<Value> = shared
        .store
        .context_names()
        .iter()
        .filter_map(|name| shared.store.context(name))
        .map(|c| {
            json!({
                "name": c.name(),
                "firstToken": 0,
                "lastToken": c.next_token() as i64 - 1,
            })
        })
        .collect();
    let cluster = cluster_view(&shared);
    Ok(Json(json!({
        "node": shared.cluster.me.name,
        "context": context,
        "contexts": contexts,
        "nodes": cluster["nodes"],
        "applications": applications(&shared, &context, everywhere(&shared).await),
    })))
}

pub(super) async fn timeline(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let timeline = shared.metrics.timeline();
    let history = timeline.contexts.get(&context).cloned().unwrap_or_default();
    Ok(Json(json!({
        "intervalMs": 1000,
        "endMs": timeline.end_ms,
        "eventsAppended": history.events_appended,
        "eventsRead": history.events_read,
        "snapshotsAppended": history.snapshots_appended,
        "commands": history.commands,
        "queries": history.queries,
        "commitLag": timeline.commit_lag,
        "connectedClients": timeline.connected_clients,
    })))
}

/// Per name: who handles it and how it has done.
fn handler_table(shared: &Shared, context: &str, commands: bool) -> Vec<Value> {
    let registrations: Vec<Registration> = if commands {
        shared.commands.registrations()
    } else {
        shared.queries.registrations()
    };
    let mut handlers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for registration in registrations.iter().filter(|r| r.context == context) {
        for name in &registration.names {
            handlers.entry(name.clone()).or_default().push(json!({
                "clientId": registration.client_id,
                "component": registration.component,
                "node": node_name(shared, registration.node),
            }));
        }
    }
    let mut stats = shared.metrics.handler_stats(context, commands);
    let names: BTreeSet<String> = handlers.keys().chain(stats.keys()).cloned().collect();
    names
        .into_iter()
        .map(|name| {
            let stat = stats.remove(&name).unwrap_or_default();
            json!({
                "name": name,
                "handlers": handlers.remove(&name).unwrap_or_default(),
                "count": stat.count,
                "errors": stat.errors,
                "ratePerSecond": stat.rate_per_second,
                "meanMs": stat.latency.mean_seconds() * 1000.0,
                "p99Ms": stat.latency.quantile_seconds(0.99) * 1000.0,
            })
        })
        .collect()
}

pub(super) async fn handlers(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    Ok(Json(json!({
        "commands": handler_table(&shared, &context, true),
        "queries": handler_table(&shared, &context, false),
    })))
}

/// One processor across its instances, with each segment's lag behind the head.
fn processor_views(clients: &[NodeClient], head_token: i64) -> Vec<Value> {
    type Key = (String, String, String);
    let mut grouped: BTreeMap<Key, (Vec<Value>, Vec<Value>, Value)> = BTreeMap::new();
    for NodeClient { node, client } in clients {
        for info in client.processors.values() {
            let key = (
                client.component_name.clone(),
                info.processor_name.clone(),
                info.token_store_identifier.clone(),
            );
            let (instances, segments, _) = grouped.entry(key).or_insert_with(|| {
                (
                    Vec::new(),
                    Vec::new(),
                    json!({ "mode": info.mode, "isStreaming": info.is_streaming_processor }),
                )
            });
            instances.push(json!({
                "clientId": client.client_id,
                "node": node,
                "running": info.running,
                "error": info.error,
                "availableThreads": info.available_threads,
                "activeThreads": info.active_threads,
            }));
            for segment in &info.segment_status {
                segments.push(json!({
                    "id": segment.segment_id,
                    "onePartOf": segment.one_part_of,
                    "claimedBy": client.client_id,
                    "tokenPosition": segment.token_position,
                    "lag": (head_token - segment.token_position).max(0),
                    "caughtUp": segment.caught_up,
                    "replaying": segment.replaying,
                    "error": segment.error_state,
                }));
            }
        }
    }
    grouped
        .into_iter()
        .map(
            |((component, name, token_store), (instances, mut segments, meta))| {
                segments.sort_by_key(|s| s["id"].as_i64());
                let running = instances.iter().all(|i| i["running"] == true);
                json!({
                    "component": component,
                    "name": name,
                    "tokenStoreIdentifier": token_store,
                    "mode": meta["mode"],
                    "isStreaming": meta["isStreaming"],
                    "running": running,
                    "headToken": head_token,
                    "instances": instances,
                    "segments": segments,
                })
            },
        )
        .collect()
}

/// The head token of `context`: the newest event's token, -1 when empty.
pub(super) fn head_token(shared: &Shared, context: &str) -> i64 {
    shared
        .store
        .context(context)
        .map_or(-1, |c| c.next_token() as i64 - 1)
}

pub(super) async fn processors(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    let clients: Vec<NodeClient> = everywhere(&shared)
        .await
        .into_iter()
        .filter(|c| c.client.context == context)
        .collect();
    Ok(Json(processor_views(
        &clients,
        head_token(&shared, &context),
    )))
}

pub(super) async fn cluster(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(cluster_view(&shared))
}
