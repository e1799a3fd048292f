//! Events and snapshots over REST, on Axon Server's paths. `GET /v1/events` streams server-sent
//! events: one aggregate's events (`aggregateId`, optionally from its newest snapshot), or the
//! global stream from `trackingToken`, filtered by payload or aggregate type, up to `maxEvents`,
//! following the live tail for `timeout` seconds. Each SSE message carries one event as JSON with
//! `id` = token + 1, so a reader can resume. `POST /v1/events` appends a transaction, through the
//! same path as gRPC appends (limits, sequence checks, replication).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use myelin_protocol::grpc::event::Event;
use myelin_protocol::wire::event::GetAggregateEventsRequest;
use myelin_protocol::RawEvent;
use myelin_storage::Context;
use prost::Message;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::json::{event_json, JsonEvent};
use super::{sse, ContextParam};
use crate::api_error::ApiError;
use crate::event_store::{
    append_transaction, read_blocking, sequence_bound, store_snapshot, stream_aggregate,
    Transaction,
};
use crate::node::Shared;

/// Events read from storage per round trip.
const READ_BATCH_EVENTS_MAX: usize = 256;
/// Events buffered per SSE stream before waiting for the reader.
const STREAM_QUEUE_EVENTS_MAX: usize = 64;
/// `maxEvents` when not given (Axon's default).
const DEFAULT_MAX_EVENTS: u64 = 10_000;
/// How long a tracking stream follows the live tail when `timeout` is not given, and at most
/// (seconds; Axon's default).
const FOLLOW_SECONDS_MAX: u64 = 3600;
/// The comment that ends a finite stream, as Axon Server sends it.
const END_OF_STREAM: &str = "End of stream";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventsParams {
    context: Option<String>,
    aggregate_id: Option<String>,
    initial_sequence: Option<i64>,
    max_sequence: Option<i64>,
    allow_snapshots: Option<bool>,
    tracking_token: Option<i64>,
    max_events: Option<u64>,
    /// Seconds to keep following new events once the stream reached the head.
    timeout: Option<u64>,
    payload_type: Option<String>,
    aggregate_type: Option<String>,
}

/// SSE id of an event: its token + 1 (the token to resume from).
fn resume_id(value: &Value) -> Option<String> {
    value["token"].as_u64().map(|t| (t + 1).to_string())
}

fn resolve_context(
    shared: &Shared,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Arc<Context>, ApiError> {
    shared.context(&super::context_of(query, headers))
}

fn decode(bytes: &[u8]) -> Result<Event, ApiError> {
    Event::decode(bytes)
        .map_err(|e| ApiError::Storage(myelin_storage::StorageError::corrupt_event(e)))
}

pub(super) async fn list_events(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let context = resolve_context(&shared, params.context.as_deref(), &headers)?;
    shared.read_barrier().await;
    let (sender, receiver) = mpsc::channel(STREAM_QUEUE_EVENTS_MAX);
    let aggregate = params.aggregate_id.clone().filter(|a| !a.is_empty());
    let aggregate_mode = aggregate.is_some();
    match aggregate {
        Some(aggregate) => {
            let from = params.initial_sequence.unwrap_or(0);
            if from < 0 {
                return Err(ApiError::InvalidRequest(format!(
                    "initialSequence {from} is negative"
                )));
            }
            let end = sequence_bound(params.max_sequence.unwrap_or(0));
            let query = GetAggregateEventsRequest {
                aggregate_id: aggregate,
                allow_snapshots: params.allow_snapshots.unwrap_or(true),
                ..Default::default()
            };
            // The gRPC read of an aggregate, its events turned into JSON as they come.
            let (raw_sender, mut raw) = mpsc::channel(STREAM_QUEUE_EVENTS_MAX);
            let store = shared.store.clone();
            tokio::spawn(async move {
                let read = stream_aggregate(store, context, query, from as u64, end, &raw_sender);
                if let Err(status) = read.await {
                    let _ = raw_sender.send(Err(status)).await;
                }
            });
            tokio::spawn(async move {
                while let Some(item) = raw.recv().await {
                    let value = match item {
                        Ok(event) => match decode(event.as_bytes()) {
                            Ok(event) => event_json(&event, None),
                            Err(error) => json!({ "error": error.to_string() }),
                        },
                        Err(status) => json!({ "error": status.message() }),
                    };
                    if sender.send(value).await.is_err() {
                        return;
                    }
                }
            });
        }
        None => {
            let from = params.tracking_token.unwrap_or(0);
            if from < 0 {
                return Err(ApiError::InvalidRequest(format!(
                    "trackingToken {from} is negative"
                )));
            }
            let scan = Scan {
                next: from as u64,
                remaining: params.max_events.unwrap_or(DEFAULT_MAX_EVENTS),
                follow: Duration::from_secs(
                    params
                        .timeout
                        .unwrap_or(FOLLOW_SECONDS_MAX)
                        .min(FOLLOW_SECONDS_MAX),
                ),
                payload_type: params.payload_type.filter(|t| !t.is_empty()),
                aggregate_type: params.aggregate_type.filter(|t| !t.is_empty()),
            };
            tokio::spawn(async move {
                if let Err(error) = scan.run(&shared, &context, &sender).await {
                    let _ = sender.send(json!({ "error": error.to_string() })).await;
                }
            });
        }
    }
    let end = aggregate_mode.then_some(END_OF_STREAM);
    Ok(sse(receiver, resume_id, end))
}

/// A read of the global stream: where it is, how many matching events it may still send, how
/// long it follows the tail, and what it filters on.
struct Scan {
    next: u64,
    remaining: u64,
    follow: Duration,
    payload_type: Option<String>,
    aggregate_type: Option<String>,
}

impl Scan {
    async fn run(
        mut self,
        shared: &Shared,
        context: &Arc<Context>,
        sender: &mpsc::Sender<Value>,
    ) -> Result<(), ApiError> {
        let Some(mut head) = shared.group.head(context.name()) else {
            return Err(ApiError::ContextNotFound(context.name().to_string()));
        };
        let deadline = tokio::time::Instant::now() + self.follow;
        while self.remaining > 0 && !sender.is_closed() {
            if self.next < context.next_token() {
                let (store, reading, from) = (shared.store.clone(), context.clone(), self.next);
                let batch =
                    read_blocking(move || store.read_events(&reading, from, READ_BATCH_EVENTS_MAX))
                        .await?;
                for (token, bytes) in batch {
                    self.next = token + 1;
                    let event = decode(&bytes)?;
                    if !self.matches(&event) {
                        continue;
                    }
                    if sender.send(event_json(&event, Some(token))).await.is_err() {
                        return Ok(());
                    }
                    self.remaining -= 1;
                    if self.remaining == 0 {
                        return Ok(());
                    }
                }
                continue;
            }
            // At the head: follow new events until the deadline, the reader leaving or shutdown.
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, head.changed()) => match changed {
                    Ok(Ok(())) => {}
                    _ => return Ok(()),
                },
                _ = sender.closed() => return Ok(()),
                _ = shared.shutdown.cancelled() => return Ok(()),
            }
        }
        Ok(())
    }

    fn matches(&self, event: &Event) -> bool {
        let payload_type = event.payload.as_ref().map_or("", |p| p.r#type.as_str());
        self.payload_type
            .as_deref()
            .is_none_or(|t| t == payload_type)
            && self
                .aggregate_type
                .as_deref()
                .is_none_or(|t| t == event.aggregate_type)
    }
}

pub(super) async fn list_snapshots(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let context = resolve_context(&shared, params.context.as_deref(), &headers)?;
    shared.read_barrier().await;
    let aggregate = params
        .aggregate_id
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::InvalidRequest("aggregateId is required".to_string()))?;
    let from = params.initial_sequence.unwrap_or(0).max(0) as u64;
    let end = sequence_bound(params.max_sequence.unwrap_or(0));
    let limit = params.max_events.map_or(usize::MAX, |m| m as usize);
    let (store, reading) = (shared.store.clone(), context.clone());
    let snapshots =
        read_blocking(move || store.snapshots(&reading, &aggregate, from, end, limit)).await?;
    let (sender, receiver) = mpsc::channel(snapshots.len().max(1));
    for (_, bytes) in snapshots {
        let mut event = decode(&bytes)?;
        event.snapshot = true;
        let value = event_json(&event, None);
        // Capacity covers every snapshot, so this never waits.
        let _ = sender.try_send(value);
    }
    Ok(sse(receiver, |_| None, Some(END_OF_STREAM)))
}

#[derive(Debug, Deserialize)]
pub(super) struct AppendRequest {
    messages: Vec<JsonEvent>,
}

/// Appends the events as one transaction (all or nothing).
pub(super) async fn append_events(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
    Json(request): Json<AppendRequest>,
) -> Result<Json<Value>, ApiError> {
    let context = shared.context(&param.resolve(&shared, &headers)?)?;
    let mut transaction = Transaction::default();
    let mut identifiers = Vec::new();
    for event in request.messages {
        let event = event.into_event(false)?;
        identifiers.push(event.message_identifier.clone());
        transaction.push(
            RawEvent::from_message(&event),
            shared.max_message_size_bytes,
        )?;
    }
    if let Err(error) = append_transaction(&shared, &context, transaction.events).await {
        shared.metrics.record_append_error(context.name());
        return Err(error);
    }
    Ok(Json(
        json!({ "appended": identifiers.len(), "messageIdentifiers": identifiers }),
    ))
}

/// Stores a snapshot.
pub(super) async fn append_snapshot(
    State(shared): State<Arc<Shared>>,
    Query(param): Query<ContextParam>,
    headers: HeaderMap,
    Json(snapshot): Json<JsonEvent>,
) -> Result<Json<Value>, ApiError> {
    let context = shared.context(&param.resolve(&shared, &headers)?)?;
    let event = snapshot.into_event(true)?;
    store_snapshot(&shared, &context, RawEvent::from_message(&event)).await?;
    Ok(Json(
        json!({ "messageIdentifier": event.message_identifier }),
    ))
}
