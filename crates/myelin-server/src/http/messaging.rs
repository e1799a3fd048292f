//! Dispatching a command or a query from HTTP (`POST /v1/commands/run`, `POST /v1/queries/run`):
//! the JSON request becomes the same protobuf message an application would send, goes through
//! the same routing as gRPC dispatches, and the handlers' answers come back as JSON — a command's
//! response as one object, a query's responses as server-sent events, one per response. As in
//! Axon Server, a command that failed still answers 200 with `errorCode` and `errorMessage` in
//! the body; Myelin also sets the `AxonIQ-ErrorCode` header then.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use myelin_protocol::grpc::command::{Command, CommandResponse};
use myelin_protocol::grpc::query::{QueryRequest, QueryResponse};
use myelin_protocol::grpc::{
    meta_data_value, ErrorMessage, MetaDataValue, ProcessingInstruction, ProcessingKey,
    SerializedObject,
};
use myelin_protocol::{ErrorCode, RawCommand, RawQuery, RawQueryResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::json::{metadata_from_json, metadata_json, serialized_json, serialized_object};
use super::ContextParam;
use crate::api_error::{ApiError, HTTP_ERROR_CODE_HEADER};
use crate::node::Shared;

/// Client id and component the node uses for what it dispatches on behalf of HTTP callers.
const HTTP_CLIENT: &str = "myelin-rest";
/// How long a query from HTTP runs when the request names no timeout (Axon's default).
const DEFAULT_QUERY_TIMEOUT_MS: i64 = 15_000;
/// Query responses buffered before waiting for the HTTP reader.
const RESPONSES_QUEUE_MAX: usize = 32;

fn instruction(key: ProcessingKey, data: meta_data_value::Data) -> ProcessingInstruction {
    ProcessingInstruction {
        key: key as i32,
        value: Some(MetaDataValue { data: Some(data) }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommandRequest {
    message_identifier: Option<String>,
    name: String,
    routing_key: Option<String>,
    timestamp: Option<i64>,
    #[serde(default)]
    payload: Value,
    payload_type: Option<String>,
    payload_revision: Option<String>,
    #[serde(default)]
    meta_data: Map<String, Value>,
    /// Milliseconds to wait for the handler.
    timeout: Option<i64>,
}

/// The JSON of a command or query response.
fn response_json(
    message_identifier: &str,
    request_identifier: &str,
    error_code: &str,
    error_message: Option<&ErrorMessage>,
    payload: Option<&SerializedObject>,
    meta_data: &std::collections::HashMap<String, MetaDataValue>,
) -> Value {
    let success = error_code.is_empty() && error_message.is_none();
    json!({
        "messageIdentifier": message_identifier,
        "requestIdentifier": request_identifier,
        "success": success,
        "errorCode": error_code,
        "errorMessage": error_message.map(|e| json!({
            "message": e.message,
            "location": e.location,
            "details": e.details,
        })),
        "payload": payload.map(serialized_json),
        "metaData": metadata_json(meta_data),
    })
}

/// The answer to a command: 200 with the response, and the `AxonIQ-ErrorCode` header when the
/// response carries an error.
fn command_answer(body: Value, error_code: Option<&str>) -> Response {
    let mut response = Json(body).into_response();
    if let Some(value) = error_code.and_then(|code| HeaderValue::from_str(code).ok()) {
        response.headers_mut().insert(HTTP_ERROR_CODE_HEADER, value);
    }
    response
}

pub(super) async fn run_command(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
    Json(request): Json<CommandRequest>,
) -> Result<Response, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    if request.name.is_empty() {
        return Err(ApiError::InvalidRequest("name is required".to_string()));
    }
    let id = request
        .message_identifier
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut instructions = Vec::new();
    if let Some(key) = request.routing_key.filter(|k| !k.is_empty()) {
        instructions.push(instruction(
            ProcessingKey::RoutingKey,
            meta_data_value::Data::TextValue(key),
        ));
    }
    if let Some(ms) = request.timeout.filter(|ms| *ms > 0) {
        instructions.push(instruction(
            ProcessingKey::Timeout,
            meta_data_value::Data::NumberValue(ms),
        ));
    }
    let command = Command {
        message_identifier: id,
        name: request.name,
        timestamp: request.timestamp.unwrap_or_else(crate::scheduler::now_ms),
        payload: Some(serialized_object(
            &request.payload,
            request.payload_type,
            request.payload_revision,
        )),
        meta_data: metadata_from_json(&request.meta_data)?,
        processing_instructions: instructions,
        client_id: HTTP_CLIENT.to_string(),
        component_name: HTTP_CLIENT.to_string(),
    };
    let raw = RawCommand::from_message(&command);
    let response = crate::commands::dispatch_command(&shared, context, raw).await?;
    let response: CommandResponse = response
        .decode_as()
        .map_err(|e| ApiError::Internal(format!("the handler's response does not decode: {e}")))?;
    let body = response_json(
        &response.message_identifier,
        &response.request_identifier,
        &response.error_code,
        response.error_message.as_ref(),
        response.payload.as_ref(),
        &response.meta_data,
    );
    let failed = !response.error_code.is_empty() || response.error_message.is_some();
    let code = failed.then(|| {
        if response.error_code.is_empty() {
            ErrorCode::Other.code()
        } else {
            response.error_code.as_str()
        }
    });
    Ok(command_answer(body, code))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryRunRequest {
    message_identifier: Option<String>,
    query: String,
    #[serde(default)]
    payload: Value,
    payload_type: Option<String>,
    payload_revision: Option<String>,
    /// The serialized Axon `ResponseType` (`{type, data, revision}`), or just a type name.
    #[serde(default)]
    response_type: Value,
    /// How many results to wait for; -1 (the default) gathers from every handler.
    nr_of_results: Option<i64>,
    /// Milliseconds the query may take.
    timeout: Option<i64>,
    priority: Option<i64>,
    #[serde(default)]
    meta_data: Map<String, Value>,
}

// `response_type` is deprecated in the protocol, but handlers of older clients still read it.
#[allow(deprecated)]
pub(super) async fn run_query(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
    Json(request): Json<QueryRunRequest>,
) -> Result<Response, ApiError> {
    let context = param.resolve(&shared, &headers)?;
    if request.query.is_empty() {
        return Err(ApiError::InvalidRequest("query is required".to_string()));
    }
    let timeout_ms = request
        .timeout
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_QUERY_TIMEOUT_MS);
    let wanted = request.nr_of_results.unwrap_or(-1);
    let query = QueryRequest {
        message_identifier: request
            .message_identifier
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        query: request.query,
        timestamp: crate::scheduler::now_ms(),
        payload: Some(serialized_object(
            &request.payload,
            request.payload_type,
            request.payload_revision,
        )),
        meta_data: metadata_from_json(&request.meta_data)?,
        response_type: (!request.response_type.is_null())
            .then(|| serialized_object(&request.response_type, None, None))
            .map(|mut object| {
                if object.r#type.is_empty() {
                    // A bare type name.
                    object.r#type = String::from_utf8_lossy(&object.data).into_owned();
                    object.data.clear();
                }
                object
            }),
        processing_instructions: vec![
            instruction(
                ProcessingKey::NrOfResults,
                meta_data_value::Data::NumberValue(wanted),
            ),
            instruction(
                ProcessingKey::Timeout,
                meta_data_value::Data::NumberValue(timeout_ms),
            ),
            instruction(
                ProcessingKey::Priority,
                meta_data_value::Data::NumberValue(request.priority.unwrap_or(0)),
            ),
        ],
        client_id: HTTP_CLIENT.to_string(),
        component_name: HTTP_CLIENT.to_string(),
    };
    let raw = RawQuery::from_message(&query);
    let responses = crate::queries::dispatch_query(&shared, context, raw).await?;
    let limit = usize::try_from(wanted).ok().filter(|n| *n > 0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms as u64);
    let (sender, receiver) = tokio::sync::mpsc::channel(RESPONSES_QUEUE_MAX);
    tokio::spawn(forward_responses(responses, sender, limit, deadline));
    Ok(super::sse(receiver, |_| None, None))
}

/// Forwards a query's responses as JSON until the query ends, `limit` responses came, the
/// deadline passed or the reader left.
async fn forward_responses(
    mut responses: ReceiverStream<Result<RawQueryResponse, tonic::Status>>,
    sender: tokio::sync::mpsc::Sender<Value>,
    limit: Option<usize>,
    deadline: tokio::time::Instant,
) {
    let mut sent = 0;
    while let Ok(Some(next)) = tokio::time::timeout_at(deadline, responses.next()).await {
        let value = match next.map(|raw| raw.decode_as::<QueryResponse>()) {
            Ok(Ok(response)) => response_json(
                &response.message_identifier,
                &response.request_identifier,
                &response.error_code,
                response.error_message.as_ref(),
                response.payload.as_ref(),
                &response.meta_data,
            ),
            Ok(Err(e)) => json!({ "errorCode": ErrorCode::Other.code(), "errorMessage": {
                "message": format!("a handler's response does not decode: {e}"),
                "location": "Myelin", "details": [] } }),
            Err(status) => json!({ "errorCode": ErrorCode::Other.code(), "errorMessage": {
                "message": status.message(), "location": "Myelin", "details": [] } }),
        };
        if sender.send(value).await.is_err() {
            return;
        }
        sent += 1;
        if limit.is_some_and(|n| sent >= n) {
            return;
        }
    }
}
