//! HTTP on 8024 (axum): Spring Boot style actuator endpoints. `/actuator/health` is UP only while
//! storage is open, the replication group has a leader and this node has applied what it knows to
//! be committed (within `CAUGHT_UP_ENTRIES`); it shows the node's raft role, term, leader and
//! lag, and on the leader each peer's lag. `/actuator/info` names the build.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::node::Shared;

/// Header that carries the access token, as in Axon Server's REST API.
const ACCESS_TOKEN_HEADER: &str = "AxonIQ-Access-Token";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/actuator/health", get(health))
        .route("/actuator/info", get(info))
        .route("/v1/cluster", get(cluster_nodes))
        .route("/v1/cluster/{node}", delete(remove_node))
        .with_state(shared)
}

/// The nodes of the cluster as Axon Server lists them, plus their raft membership.
async fn cluster_nodes(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let status = shared.group.status().borrow().clone();
    let _ = shared.cluster.learn_address_book(&shared.store);
    let nodes: Vec<Value> = shared
        .cluster
        .known_nodes()
        .into_iter()
        .filter(|n| status.voters.contains(&n.id))
        .map(|n| {
            let (internal_host, internal_port) = n
                .internal_address
                .rsplit_once(':')
                .map_or((n.internal_address.as_str(), ""), |(h, p)| (h, p));
            json!({
                "name": n.name,
                "hostName": n.hostname,
                "grpcPort": n.grpc_port,
                "httpPort": n.http_port,
                "internalHostName": internal_host,
                "internalGrpcPort": internal_port.parse::<u16>().ok(),
                "leader": status.leader_id == Some(n.id),
            })
        })
        .collect();
    Json(Value::Array(nodes))
}

/// Removes a node from the cluster (admin token required when access control is on).
async fn remove_node(
    State(shared): State<Arc<Shared>>,
    Path(node): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    require_admin(&shared, &headers, "DELETE /v1/cluster")?;
    crate::cluster::remove_node(&shared, &node).await?;
    Ok(StatusCode::OK)
}

fn require_admin(shared: &Shared, headers: &HeaderMap, method: &str) -> Result<(), ApiError> {
    if !shared.access_control {
        return Ok(());
    }
    let admin = shared.admin_token.as_deref();
    match headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        None => Err(ApiError::TokenMissing {
            method: method.to_string(),
        }),
        Some(token) if admin.is_some_and(|a| crate::gateway::tokens_equal(token, a)) => Ok(()),
        Some(_) => Err(ApiError::InvalidToken {
            method: method.to_string(),
        }),
    }
}

/// A node this close to its commit index counts as caught up.
const CAUGHT_UP_ENTRIES: u64 = 1000;

async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let lag = status.commit_index.saturating_sub(status.applied_index);
    // A new leader serves once it committed an entry of its term: before, writes acknowledged
    // under the old leader may not be applied here yet.
    let serving = !status.is_leader() || status.committed_in_term;
    let raft_up = status.leader_id.is_some()
        && status.failed.is_none()
        && lag <= CAUGHT_UP_ENTRIES
        && serving;
    let name_of = |id: u64| {
        shared
            .cluster
            .node(id)
            .map_or_else(|| id.to_string(), |n| n.name)
    };
    let peers: Vec<Value> = status
        .peers_matched
        .iter()
        .map(|(id, matched)| {
            json!({
                "node": name_of(*id),
                "matchIndex": matched,
                "lag": status.commit_index.saturating_sub(*matched),
            })
        })
        .collect();
    let voters: Vec<String> = status.voters.iter().map(|id| name_of(*id)).collect();
    let storage_up = status.failed.is_none();
    let up = raft_up && storage_up && !shared.shutdown.is_cancelled();
    let word = |ok: bool| if ok { "UP" } else { "DOWN" };
    let body = json!({
        "status": word(up),
        "components": {
            "storage": { "status": word(storage_up), "details": { "path": shared.data_dir } },
            "raft": {
                "status": word(raft_up),
                "details": {
                    "group": "default",
                    "node": shared.cluster.me.name,
                    "role": status.role.name(),
                    "leader": status.leader_id.map(name_of),
                    "voters": voters,
                    "lag": lag,
                    "peers": peers,
                    "snapshotsInstalled": status.snapshots_installed,
                    "isLeader": status.is_leader(),
                    "term": status.term,
                    "commitIndex": status.commit_index,
                    "appliedIndex": status.applied_index,
                    "error": status.failed,
                }
            }
        }
    });
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "app": { "name": "myelin", "version": env!("CARGO_PKG_VERSION") },
        "node": { "name": shared.advertised.name, "hostname": shared.advertised.hostname },
    }))
}
