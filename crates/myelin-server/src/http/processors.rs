//! Event processors over REST, on Axon Server's paths: the processors of a component with their
//! instances and segments, the clients running a processor, and the admin actions (pause, start,
//! split, merge, move a segment) that `crate::processors` sends to the applications as
//! platform-stream instructions. `PATCH /v1/instructions?client=` asks a client to reconnect.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use myelin_protocol::wire::control::EventProcessorInfo;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::clients::ConnectedClient;
use crate::cluster::everywhere;
use crate::node::Shared;
use crate::processors::{self, ActionResult, ProcessorAction, ProcessorRef};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProcessorParams {
    context: Option<String>,
    token_store_identifier: Option<String>,
    /// The client that should take a moved segment.
    target: Option<String>,
}

/// The processors of a component in Axon's shape: per (processor, token store) the mode, what
/// can be done with it, the warnings Axon shows, and one tracker per claimed segment.
pub(super) async fn of_component(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    let clients: Vec<ConnectedClient> = everywhere(&shared)
        .await
        .into_iter()
        .map(|c| c.client)
        .filter(|c| c.context == context && c.component_name == component)
        .collect();
    Ok(Json(axon_processors(&clients, &context)))
}

fn axon_processors(clients: &[ConnectedClient], context: &str) -> Vec<Value> {
    let mut grouped: BTreeMap<(String, String), Vec<(&ConnectedClient, &EventProcessorInfo)>> =
        BTreeMap::new();
    for client in clients {
        for info in client.processors.values() {
            let key = (
                info.processor_name.clone(),
                info.token_store_identifier.clone(),
            );
            grouped.entry(key).or_default().push((client, info));
        }
    }
    grouped
        .into_iter()
        .map(|((name, token_store), instances)| {
            let modes: BTreeSet<&str> = instances.iter().map(|(_, i)| i.mode.as_str()).collect();
            let mode = match modes.len() {
                1 => modes.iter().next().copied().unwrap_or_default(),
                _ => "Unknown",
            };
            let streaming = instances.iter().all(|(_, i)| i.is_streaming_processor);
            if !streaming {
                return json!({
                    "name": name, "context": context, "mode": mode, "isStreaming": false,
                    "fullName": name, "warnings": [],
                });
            }
            let mut trackers: Vec<Value> = Vec::new();
            let mut claimed: BTreeMap<i32, (usize, i32)> = BTreeMap::new();
            let mut free_thread_instances = Vec::new();
            for (client, info) in &instances {
                if info.available_threads > 0 {
                    free_thread_instances.push(client.client_id.clone());
                }
                for segment in &info.segment_status {
                    let entry = claimed
                        .entry(segment.segment_id)
                        .or_insert((0, segment.one_part_of));
                    entry.0 += 1;
                    trackers.push(json!({
                        "clientId": client.client_id,
                        "segmentId": segment.segment_id,
                        "caughtUp": segment.caught_up,
                        "replaying": segment.replaying,
                        "tokenPosition": segment.token_position,
                        "errorState": segment.error_state,
                        "onePartOf": segment.one_part_of,
                    }));
                }
            }
            trackers.sort_by_key(|t| t["segmentId"].as_i64());
            let mut warnings = Vec::new();
            if claimed.values().any(|(claims, _)| *claims > 1) {
                warnings.push(json!({ "message": "Duplicated segment claim detected" }));
            }
            let covered: f64 = claimed
                .values()
                .map(|(_, parts)| 1.0 / f64::from((*parts).max(1)))
                .sum();
            if covered < 0.999 {
                warnings.push(json!({ "message": "Not all segments claimed" }));
            }
            let any_running = instances.iter().any(|(_, i)| i.running);
            let any_stopped = instances.iter().any(|(_, i)| !i.running);
            let smallest_parts = claimed.values().map(|(_, parts)| *parts).max().unwrap_or(1);
            json!({
                "name": name,
                "context": context,
                "mode": mode,
                "isStreaming": true,
                "fullName": format!("{name}@{token_store}"),
                "warnings": warnings,
                "tokenStoreIdentifier": token_store,
                "freeThreadInstances": free_thread_instances,
                "activeThreads": trackers.len(),
                "canPause": any_running,
                "canPlay": any_stopped,
                "canSplit": any_running,
                "canMerge": any_running && smallest_parts > 1,
                "trackers": trackers,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClientsParams {
    context: Option<String>,
    token_store_identifier: Option<String>,
}

/// The client ids that run a processor.
pub(super) async fn clients(
    State(shared): State<Arc<Shared>>,
    Path(processor): Path<String>,
    Query(params): Query<ClientsParams>,
    headers: HeaderMap,
) -> Result<Json<BTreeSet<String>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    let processor = ProcessorRef {
        context,
        component: None,
        name: processor,
        token_store: params.token_store_identifier,
    };
    let clients = everywhere(&shared)
        .await
        .into_iter()
        .filter(|c| processors::runs(&c.client, &processor))
        .map(|c| c.client.client_id)
        .collect();
    Ok(Json(clients))
}

async fn act(
    shared: &Shared,
    component: String,
    processor: String,
    params: ProcessorParams,
    headers: &HeaderMap,
    action: ProcessorAction,
) -> Result<Response, ApiError> {
    let context = super::context_of(params.context.as_deref(), headers);
    shared.context(&context)?;
    let processor = ProcessorRef {
        context,
        component: Some(component),
        name: processor,
        token_store: params.token_store_identifier,
    };
    let report = processors::control(shared, &processor, action).await?;
    let status = match report.result {
        ActionResult::Success => StatusCode::OK,
        ActionResult::Accepted => StatusCode::ACCEPTED,
    };
    Ok((status, Json(report)).into_response())
}

pub(super) async fn pause(
    State(shared): State<Arc<Shared>>,
    Path((component, processor)): Path<(String, String)>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let action = ProcessorAction::Pause;
    act(&shared, component, processor, params, &headers, action).await
}

pub(super) async fn start(
    State(shared): State<Arc<Shared>>,
    Path((component, processor)): Path<(String, String)>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let action = ProcessorAction::Start;
    act(&shared, component, processor, params, &headers, action).await
}

pub(super) async fn split(
    State(shared): State<Arc<Shared>>,
    Path((component, processor)): Path<(String, String)>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let action = ProcessorAction::Split;
    act(&shared, component, processor, params, &headers, action).await
}

pub(super) async fn merge(
    State(shared): State<Arc<Shared>>,
    Path((component, processor)): Path<(String, String)>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let action = ProcessorAction::Merge;
    act(&shared, component, processor, params, &headers, action).await
}

pub(super) async fn move_segment(
    State(shared): State<Arc<Shared>>,
    Path((component, processor, segment)): Path<(String, String, i32)>,
    Query(mut params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target_client = params
        .target
        .take()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::InvalidRequest("the target parameter is required".into()))?;
    let action = ProcessorAction::Move {
        segment,
        target_client,
    };
    act(&shared, component, processor, params, &headers, action).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ClientParam {
    client: String,
}

/// Asks a client to reconnect (it gets `RequestReconnect` on its instruction stream).
pub(super) async fn reconnect_client(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ClientParam>,
) -> Result<Json<Value>, ApiError> {
    let asked = shared
        .clients
        .request_reconnect(|c| c.client_id == param.client || c.stream_id == param.client);
    if asked == 0 {
        return Err(ApiError::NoSuchApplication(param.client));
    }
    tracing::info!(client = %param.client, "client asked to reconnect");
    Ok(Json(json!({ "client": param.client, "instructed": asked })))
}
