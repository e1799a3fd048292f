//! Spring Boot style actuator endpoints. `/actuator/health` shows every component and is 200 only
//! when all are UP; its two groups answer the two questions a probe asks: **liveness** (the
//! process works: storage is open and the raft thread runs — restart it if not) and
//! **readiness** (send it traffic: there is a leader, this node has applied what it knows to be
//! committed, within `CAUGHT_UP_ENTRIES`, and a new leader has committed an entry of its term).
//! `/actuator/prometheus` renders `Metrics` plus gauges read now: clients, raft, storage size.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use myelin_replication::GroupStatus;
use serde_json::{json, Value};

use crate::node::Shared;

/// A node this close to its commit index counts as caught up.
const CAUGHT_UP_ENTRIES: u64 = 1000;

/// Whether the process works at all.
fn live(shared: &Shared, status: &GroupStatus) -> bool {
    status.failed.is_none() && !shared.shutdown.is_cancelled()
}

/// Whether the node should get traffic.
fn ready(shared: &Shared, status: &GroupStatus) -> bool {
    let lag = status.commit_index.saturating_sub(status.applied_index);
    // A new leader serves once it committed an entry of its term: before, writes acknowledged
    // under the old leader may not be applied here yet.
    let serving = !status.is_leader() || status.committed_in_term;
    live(shared, status) && status.leader_id.is_some() && lag <= CAUGHT_UP_ENTRIES && serving
}

fn word(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

fn answer(up: bool, body: Value) -> (StatusCode, Json<Value>) {
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

pub(super) async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let lag = status.commit_index.saturating_sub(status.applied_index);
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
    let live = live(&shared, &status);
    let ready = ready(&shared, &status);
    let body = json!({
        "status": word(live && ready),
        "components": {
            "livenessState": { "status": if live { "UP" } else { "DOWN" } },
            "readinessState": { "status": if ready { "UP" } else { "OUT_OF_SERVICE" } },
            "storage": { "status": word(storage_up), "details": { "path": shared.data_dir } },
            "raft": {
                "status": word(ready),
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
    answer(live && ready, body)
}

/// Liveness: restart the process if this is DOWN.
pub(super) async fn liveness(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let up = live(&shared, &status);
    answer(up, json!({ "status": word(up) }))
}

/// Readiness: send traffic only when this is UP.
pub(super) async fn readiness(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let status = shared.group.status().borrow().clone();
    let up = ready(&shared, &status);
    let word = if up { "UP" } else { "OUT_OF_SERVICE" };
    answer(up, json!({ "status": word }))
}

pub(super) async fn info(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "app": { "name": "myelin", "version": env!("CARGO_PKG_VERSION") },
        "node": { "name": shared.advertised.name, "hostname": shared.advertised.hostname },
    }))
}

pub(super) async fn prometheus(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let data_dir = shared.data_dir.clone();
    let storage_bytes = tokio::task::spawn_blocking(move || directory_size(Path::new(&data_dir)))
        .await
        .unwrap_or(0);
    let mut out = String::new();
    shared.metrics.render(&mut out);
    let status = shared.group.status().borrow().clone();
    let metrics = &shared.metrics;
    let contexts = shared.store.context_names();
    let last_tokens: Vec<_> = contexts
        .iter()
        .filter_map(|name| shared.store.context(name))
        .map(|c| {
            (
                crate::metrics::context_labels(c.name()),
                c.next_token() as f64 - 1.0,
            )
        })
        .collect();
    metrics.render_gauge(
        &mut out,
        "axon_event_lastToken",
        "Token of the newest event, per context (-1 when empty)",
        &last_tokens,
    );
    let connected = vec![(Vec::new(), shared.clients.count() as f64)];
    metrics.render_gauge(
        &mut out,
        "axon_applications_saturation_connected_count",
        "Applications connected to this node",
        &connected,
    );
    let gauges: [(&str, &str, f64); 6] = [
        ("myelin_raft_term", "Current raft term", status.term as f64),
        (
            "myelin_raft_leader",
            "1 when this node leads its replication group",
            if status.is_leader() { 1.0 } else { 0.0 },
        ),
        (
            "myelin_raft_commit_index",
            "Highest raft index known to be committed",
            status.commit_index as f64,
        ),
        (
            "myelin_raft_applied_index",
            "Highest raft index applied to storage here",
            status.applied_index as f64,
        ),
        (
            "myelin_raft_commit_lag",
            "Committed entries not yet applied here",
            status.commit_index.saturating_sub(status.applied_index) as f64,
        ),
        (
            "myelin_storage_size_bytes",
            "Bytes on disk in the data directory (events, snapshots, raft log)",
            storage_bytes as f64,
        ),
    ];
    for (name, help, value) in gauges {
        metrics.render_gauge(&mut out, name, help, &[(Vec::new(), value)]);
    }
    let peers: Vec<_> = status
        .peers_matched
        .iter()
        .map(|(id, matched)| {
            let name = shared
                .cluster
                .node(*id)
                .map_or_else(|| id.to_string(), |n| n.name);
            (
                vec![("peer", name)],
                status.commit_index.saturating_sub(*matched) as f64,
            )
        })
        .collect();
    metrics.render_gauge(
        &mut out,
        "myelin_raft_peer_lag",
        "On the leader: committed entries a peer has not replicated yet",
        &peers,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The bytes of every file under `dir` (0 where it cannot be read), leaving out raft snapshot
/// checkpoints, which are hard links to files counted already.
fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() && entry.file_name() == "checkpoints" => 0,
            Ok(kind) if kind.is_dir() => directory_size(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
