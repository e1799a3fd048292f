//! Event processors over REST, on Axon Server's paths: the processors of a component with their
//! instances and segments, the clients running a processor, and the admin actions (pause, start,
//! split, merge, move a segment) that `crate::processors` sends to the applications as
//! platform-stream instructions. `PATCH /v1/instructions?client=` asks a client to reconnect.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::myelin::{head_token, processor_views};
use crate::api_error::ApiError;
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

pub(super) async fn of_component(
    State(shared): State<Arc<Shared>>,
    Path(component): Path<String>,
    Query(params): Query<ProcessorParams>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let context = super::context_of(params.context.as_deref(), &headers);
    shared.context(&context)?;
    let clients: Vec<_> = shared
        .clients
        .list()
        .into_iter()
        .filter(|c| c.context == context)
        .collect();
    Ok(Json(processor_views(
        &clients,
        head_token(&shared, &context),
        Some(&component),
    )))
}

/// The clients that run a processor, in every context.
pub(super) async fn clients(
    State(shared): State<Arc<Shared>>,
    Path(processor): Path<String>,
) -> Json<Vec<Value>> {
    let clients = shared
        .clients
        .list()
        .into_iter()
        .filter(|c| c.processors.contains_key(&processor))
        .map(|c| {
            json!({
                "clientId": c.client_id,
                "componentName": c.component_name,
                "context": c.context,
            })
        })
        .collect();
    Json(clients)
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
