//! HTTP on 8024 (axum): Spring Boot style actuator endpoints. `/actuator/health` is UP only while
//! storage is open and the replication group has a leader; `/actuator/info` names the build.

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

async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let raft_up = status.leader_id.is_some() && status.failed.is_none();
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
                    "leader": status.leader_id,
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
