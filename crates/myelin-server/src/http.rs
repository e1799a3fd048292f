//! HTTP on 8024 (axum): Spring Boot style actuator endpoints. `/actuator/health` is UP only while
//! storage is open, the replication group has a leader and this node has applied what it knows to
//! be committed (within `CAUGHT_UP_ENTRIES`); it shows the node's raft role, term, leader and
//! lag, and on the leader each peer's lag. `/actuator/info` names the build.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::node::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/actuator/health", get(health))
        .route("/actuator/info", get(info))
        .with_state(shared)
}

/// A node this close to its commit index counts as caught up.
const CAUGHT_UP_ENTRIES: u64 = 1000;

async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let lag = status.commit_index.saturating_sub(status.applied_index);
    let raft_up = status.leader_id.is_some() && status.failed.is_none() && lag <= CAUGHT_UP_ENTRIES;
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
                    "isLeader": status.is_leader,
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
