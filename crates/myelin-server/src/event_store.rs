//! `EventStore` on 8124: appends go through the replication group (validated here, sequence-checked
//! in `Store::apply`); reads — aggregate streams, snapshots, tracking streams, tokens — are served
//! from this node's applied state.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use myelin_protocol::headers::EventHeader;
use myelin_protocol::limits::{
    APPEND_TRANSACTION_BYTES_MAX, APPEND_TRANSACTION_EVENTS_MAX, BLACKLISTED_SEND_AFTER_EVENTS,
};
use myelin_protocol::log::{log_command::Command, AppendEvents, AppendSnapshot};
use myelin_protocol::wire::event::event_store_server::EventStore;
use myelin_protocol::wire::event::{
    Confirmation, ConfirmationWithConsistencyMarker, EventWithToken, GetAggregateEventsRequest,
    GetAggregateSnapshotsRequest, GetEventsRequest, GetFirstTokenRequest, GetLastTokenRequest,
    GetTokenAtRequest, QueryEventsRequest, QueryEventsResponse, ReadHighestSequenceNrRequest,
    ReadHighestSequenceNrResponse, TrackingToken,
};
use myelin_protocol::RawEvent;
use myelin_storage::{ApplyOutcome, Context, StorageError, Store};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api_error::ApiError;
use crate::gateway::call_context;
use crate::node::Shared;

/// Events read from storage per round trip, for aggregate and tracking streams.
const READ_BATCH_EVENTS_MAX: usize = 1024;
/// Events buffered per outgoing stream before waiting for the client to read.
const STREAM_QUEUE_EVENTS_MAX: usize = 64;

pub struct EventStoreService {
    shared: Arc<Shared>,
}

impl EventStoreService {
    pub(crate) fn new(shared: Arc<Shared>) -> EventStoreService {
        EventStoreService { shared }
    }

    fn context<T>(&self, request: &Request<T>) -> Result<Arc<Context>, Status> {
        let name = call_context(request)?.context;
        Ok(self.shared.context(&name)?)
    }

    /// Reads a transaction to its end (limits checked as events arrive) and appends it.
    async fn read_and_append(
        &self,
        context: Arc<Context>,
        request: Request<Streaming<RawEvent>>,
    ) -> Result<Response<ConfirmationWithConsistencyMarker>, Status> {
        let mut stream = request.into_inner();
        let mut transaction = Transaction::default();
        // The transaction is whatever arrives before the client half-closes; a cancelled or broken
        // stream ends here with nothing written.
        while let Some(event) = stream.message().await.map_err(transport_error)? {
            transaction.push(event, self.shared.max_message_size_bytes)?;
        }
        let events = transaction.events;
        append_transaction(&self.shared, &context, events).await?;
        Ok(Response::new(ConfirmationWithConsistencyMarker {
            success: true,
            consistency_marker: None,
        }))
    }
}

/// The events of one append transaction, checked against the limits as they arrive.
#[derive(Default)]
pub(crate) struct Transaction {
    pub events: Vec<Vec<u8>>,
    bytes: usize,
}

impl Transaction {
    pub fn push(&mut self, event: RawEvent, max_message_size_bytes: usize) -> Result<(), ApiError> {
        validate_event(&event, max_message_size_bytes)?;
        if self.events.len() == APPEND_TRANSACTION_EVENTS_MAX {
            return Err(ApiError::TooManyEvents {
                max: APPEND_TRANSACTION_EVENTS_MAX,
            });
        }
        let bytes = event.into_vec();
        self.bytes += bytes.len();
        if self.bytes > APPEND_TRANSACTION_BYTES_MAX {
            return Err(ApiError::PayloadTooLarge {
                size: self.bytes,
                max: APPEND_TRANSACTION_BYTES_MAX,
            });
        }
        self.events.push(bytes);
        Ok(())
    }
}

/// Appends one transaction through the replication group (nothing for an empty one) and counts
/// it; the REST API appends through here too.
pub(crate) async fn append_transaction(
    shared: &Shared,
    context: &Context,
    events: Vec<Vec<u8>>,
) -> Result<(), ApiError> {
    if events.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let count = events.len();
    let command = Command::AppendEvents(AppendEvents {
        context: context.name().to_string(),
        events,
    });
    match shared.propose(command).await? {
        ApplyOutcome::Appended { .. } => {
            shared
                .metrics
                .record_append(context.name(), count, started.elapsed());
            Ok(())
        }
        ApplyOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
        other => Err(ApiError::Internal(format!(
            "unexpected outcome of an append: {other:?}"
        ))),
    }
}

/// Stores a snapshot through the replication group and counts it; REST snapshots too.
pub(crate) async fn store_snapshot(
    shared: &Shared,
    context: &Context,
    snapshot: RawEvent,
) -> Result<(), ApiError> {
    let header = validate_event(&snapshot, shared.max_message_size_bytes)?;
    if header.aggregate_identifier.is_empty() {
        return Err(ApiError::InvalidEvent(
            "a snapshot needs an aggregate identifier".to_string(),
        ));
    }
    let command = Command::AppendSnapshot(AppendSnapshot {
        context: context.name().to_string(),
        snapshot: snapshot.into_vec(),
    });
    match shared.propose(command).await? {
        ApplyOutcome::SnapshotStored => {
            shared.metrics.record_snapshot(context.name());
            Ok(())
        }
        ApplyOutcome::Rejected(rejection) => Err(ApiError::Rejected(rejection)),
        other => Err(ApiError::Internal(format!(
            "unexpected outcome of a snapshot: {other:?}"
        ))),
    }
}

/// Checks an event's size and what Axon's aggregate rules need before it may enter the log;
/// returns its decoded header.
pub(crate) fn validate_event(
    event: &RawEvent,
    max_message_size_bytes: usize,
) -> Result<EventHeader, ApiError> {
    let size = event.encoded_len();
    if size > max_message_size_bytes {
        return Err(ApiError::PayloadTooLarge {
            size,
            max: max_message_size_bytes,
        });
    }
    let header = event
        .header()
        .map_err(|e| ApiError::InvalidEvent(format!("the event does not decode: {e}")))?;
    if header.aggregate_identifier.is_empty() {
        if header.aggregate_sequence_number != 0 || !header.aggregate_type.is_empty() {
            return Err(ApiError::InvalidEvent(format!(
                "event {} has an aggregate type or sequence number but no aggregate identifier",
                header.message_identifier
            )));
        }
    } else if header.aggregate_sequence_number < 0 {
        return Err(ApiError::InvalidEvent(format!(
            "event {} has negative sequence number {} for aggregate {}",
            header.message_identifier,
            header.aggregate_sequence_number,
            header.aggregate_identifier
        )));
    }
    Ok(header)
}

/// Sends an aggregate's events in `[start, end)` (from its newest snapshot on, when allowed),
/// reading batches on a blocking thread and sending at the client's pace; the REST API reads
/// aggregates through here too.
pub(crate) async fn stream_aggregate(
    store: Arc<Store>,
    context: Arc<Context>,
    query: GetAggregateEventsRequest,
    start: u64,
    end: u64,
    sender: &mpsc::Sender<Result<RawEvent, Status>>,
) -> Result<(), Status> {
    let aggregate_id = Arc::new(query.aggregate_id);
    let mut next = start;
    if query.allow_snapshots {
        let (store, context, id) = (store.clone(), context.clone(), aggregate_id.clone());
        let newest = blocking(move || store.snapshots(&context, &id, start, end, 1)).await?;
        if let Some((sequence, bytes)) = newest.into_iter().next() {
            let mut snapshot = RawEvent::from_vec(bytes);
            snapshot.mark_snapshot();
            if sender.send(Ok(snapshot)).await.is_err() {
                return Ok(());
            }
            next = sequence + 1;
        }
    }
    while next < end {
        let (store, context, id) = (store.clone(), context.clone(), aggregate_id.clone());
        let from = next;
        let batch = blocking(move || {
            store.aggregate_events(&context, &id, from, end, READ_BATCH_EVENTS_MAX)
        })
        .await?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        next = last + 1;
        let full = batch.len() == READ_BATCH_EVENTS_MAX;
        for (_, bytes) in batch {
            if sender.send(Ok(RawEvent::from_vec(bytes))).await.is_err() {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
    Ok(())
}

/// Runs a RocksDB read on a blocking thread.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, Status> {
    Ok(read_blocking(read).await?)
}

/// Runs a RocksDB read on a blocking thread (the REST API reads through here too).
pub(crate) async fn read_blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ApiError::Internal(format!("read task failed: {e}")))?
        .map_err(ApiError::from)
}

/// tonic reports a message over its decoding limit as OUT_OF_RANGE, which Axon Framework 5 would
/// read as a sequence conflict; report it as Axon's "payload too large" instead.
fn transport_error(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange {
        ApiError::TransportLimit(status.message().to_string()).into()
    } else {
        status
    }
}

/// Sequence bounds of an aggregate read: Axon treats `max_sequence` as exclusive, 0 or less as none.
pub(crate) fn sequence_bound(max_sequence: i64) -> u64 {
    if max_sequence <= 0 {
        u64::MAX
    } else {
        max_sequence as u64
    }
}

#[tonic::async_trait]
impl EventStore for EventStoreService {
    async fn append_event(
        &self,
        request: Request<Streaming<RawEvent>>,
    ) -> Result<Response<ConfirmationWithConsistencyMarker>, Status> {
        let context = self.context(&request)?;
        let result = self.read_and_append(context.clone(), request).await;
        if result.is_err() {
            self.shared.metrics.record_append_error(context.name());
        }
        result
    }

    async fn append_snapshot(
        &self,
        request: Request<RawEvent>,
    ) -> Result<Response<Confirmation>, Status> {
        let context = self.context(&request)?;
        store_snapshot(&self.shared, &context, request.into_inner()).await?;
        Ok(Response::new(Confirmation { success: true }))
    }

    type ListAggregateEventsStream = ReceiverStream<Result<RawEvent, Status>>;

    async fn list_aggregate_events(
        &self,
        request: Request<GetAggregateEventsRequest>,
    ) -> Result<Response<Self::ListAggregateEventsStream>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        let query = request.into_inner();
        if query.aggregate_id.is_empty() {
            return Err(ApiError::InvalidRequest("aggregate_id is empty".to_string()).into());
        }
        if query.initial_sequence < 0 {
            return Err(ApiError::InvalidRequest(format!(
                "initial_sequence {} is negative",
                query.initial_sequence
            ))
            .into());
        }
        let store = self.shared.store.clone();
        let end = sequence_bound(query.max_sequence);
        let start = query.initial_sequence as u64;
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE_EVENTS_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let name = context.name().to_string();
            if let Err(status) = stream_aggregate(store, context, query, start, end, &sender).await
            {
                let _ = sender.send(Err(status)).await;
            }
            shared
                .metrics
                .record_aggregate_read(&name, started.elapsed());
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    type ListAggregateSnapshotsStream = ReceiverStream<Result<RawEvent, Status>>;

    async fn list_aggregate_snapshots(
        &self,
        request: Request<GetAggregateSnapshotsRequest>,
    ) -> Result<Response<Self::ListAggregateSnapshotsStream>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        let query = request.into_inner();
        if query.aggregate_id.is_empty() {
            return Err(ApiError::InvalidRequest("aggregate_id is empty".to_string()).into());
        }
        let from = query.initial_sequence.max(0) as u64;
        // A negative bound returns nothing (Axon Framework pages down to -1); 0 means none.
        let end = if query.max_sequence < 0 {
            0
        } else {
            sequence_bound(query.max_sequence)
        };
        let limit = if query.max_results <= 0 {
            usize::MAX
        } else {
            query.max_results as usize
        };
        let snapshots = self
            .shared
            .store
            .snapshots(&context, &query.aggregate_id, from, end, limit)
            .map_err(ApiError::from)?;
        let (sender, receiver) = mpsc::channel(snapshots.len().max(1));
        for (_, bytes) in snapshots {
            let mut snapshot = RawEvent::from_vec(bytes);
            snapshot.mark_snapshot();
            // Capacity covers every snapshot, so this never waits.
            let _ = sender.try_send(Ok(snapshot));
        }
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    type ListEventsStream = ReceiverStream<Result<EventWithToken, Status>>;

    async fn list_events(
        &self,
        request: Request<Streaming<GetEventsRequest>>,
    ) -> Result<Response<Self::ListEventsStream>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        let head =
            self.shared.group.head(context.name()).ok_or_else(|| {
                Status::from(ApiError::ContextNotFound(context.name().to_string()))
            })?;
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            Status::from(ApiError::InvalidRequest(
                "event stream closed before its first request".into(),
            ))
        })?;
        if first.tracking_token < 0 {
            return Err(ApiError::InvalidRequest(format!(
                "tracking_token {} is negative",
                first.tracking_token
            ))
            .into());
        }
        let mut tracker = Tracker {
            next_token: first.tracking_token as u64,
            permits: 0,
            blacklist: HashSet::new(),
            skipped_in_a_row: 0,
        };
        tracker.update(&first)?;
        if first.force_read_from_leader {
            self.shared.catch_up_with_leader().await?;
        }
        tracing::debug!(context = %context.name(), client = %first.client_id, processor = %first.processor, from = tracker.next_token, "tracking stream opened");

        // Further requests (permits, blacklist) arrive on their own task so the sender never blocks
        // them. It lets go of the request stream as soon as the tracker ends, so a client that never
        // half-closes does not keep the call open.
        let (requests_tx, requests) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(request)) => {
                            if requests_tx.send(request).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) | Err(_) => return,
                    },
                    _ = requests_tx.closed() => return,
                }
            }
        });
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE_EVENTS_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Err(status) = tracker
                .run(&shared, &context, head, requests, &sender)
                .await
            {
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn read_highest_sequence_nr(
        &self,
        request: Request<ReadHighestSequenceNrRequest>,
    ) -> Result<Response<ReadHighestSequenceNrResponse>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        let query = request.into_inner();
        let highest = self
            .shared
            .store
            .highest_sequence(&context, &query.aggregate_id)
            .map_err(ApiError::from)?;
        Ok(Response::new(ReadHighestSequenceNrResponse {
            to_sequence_nr: highest.map_or(-1, |s| s as i64),
        }))
    }

    type QueryEventsStream = ReceiverStream<Result<QueryEventsResponse, Status>>;

    async fn query_events(
        &self,
        _request: Request<Streaming<QueryEventsRequest>>,
    ) -> Result<Response<Self::QueryEventsStream>, Status> {
        Err(ApiError::Unimplemented(
            "QueryEvents (the event query language) is not available yet".into(),
        )
        .into())
    }

    async fn get_first_token(
        &self,
        request: Request<GetFirstTokenRequest>,
    ) -> Result<Response<TrackingToken>, Status> {
        self.context(&request)?;
        // Nothing is ever truncated, so the first token is always 0, even in an empty store.
        Ok(Response::new(TrackingToken { token: 0 }))
    }

    async fn get_last_token(
        &self,
        request: Request<GetLastTokenRequest>,
    ) -> Result<Response<TrackingToken>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        Ok(Response::new(TrackingToken {
            token: context.next_token() as i64 - 1,
        }))
    }

    async fn get_token_at(
        &self,
        request: Request<GetTokenAtRequest>,
    ) -> Result<Response<TrackingToken>, Status> {
        let context = self.context(&request)?;
        self.shared.read_barrier().await;
        let instant = request.into_inner().instant;
        let store = self.shared.store.clone();
        let token = blocking(move || store.token_at(&context, instant)).await?;
        Ok(Response::new(TrackingToken {
            token: token as i64,
        }))
    }
}

/// The state of one tracking stream: where it is, how many events it may still send, and which
/// payload types the client asked not to get.
struct Tracker {
    next_token: u64,
    permits: u64,
    blacklist: HashSet<(String, String)>,
    skipped_in_a_row: u64,
}

impl Tracker {
    /// Adds a request's permits and blacklist entries.
    fn update(&mut self, request: &GetEventsRequest) -> Result<(), Status> {
        if request.number_of_permits < 0 {
            return Err(ApiError::InvalidRequest(format!(
                "number_of_permits {} is negative",
                request.number_of_permits
            ))
            .into());
        }
        self.permits = self
            .permits
            .saturating_add(request.number_of_permits as u64);
        for payload in &request.blacklist {
            self.blacklist
                .insert((payload.r#type.clone(), payload.revision.clone()));
        }
        Ok(())
    }

    async fn run(
        &mut self,
        shared: &Shared,
        context: &Arc<Context>,
        mut head: tokio::sync::watch::Receiver<u64>,
        mut requests: mpsc::Receiver<GetEventsRequest>,
        sender: &mpsc::Sender<Result<EventWithToken, Status>>,
    ) -> Result<(), Status> {
        loop {
            while let Ok(request) = requests.try_recv() {
                self.update(&request)?;
            }
            if self.permits > 0 && self.next_token < context.next_token() {
                let limit = (self.permits as usize).min(READ_BATCH_EVENTS_MAX);
                let (store, reading, from) =
                    (shared.store.clone(), context.clone(), self.next_token);
                let batch = blocking(move || store.read_events(&reading, from, limit)).await?;
                let mut sent = 0;
                let outcome = self.send_batch(batch, sender, &mut sent).await;
                shared.metrics.record_events_read(context.name(), sent);
                if outcome? {
                    return Ok(());
                }
                continue;
            }
            // Nothing to send: wait for permits, a new commit, the client leaving or shutdown.
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.update(&request)?,
                    None => return Ok(()),
                },
                changed = head.changed() => if changed.is_err() { return Ok(()) },
                _ = sender.closed() => return Ok(()),
                _ = shared.shutdown.cancelled() => return Err(ApiError::ShuttingDown.into()),
            }
        }
    }

    /// Sends a batch read from storage under the stream's permits, counting what it sent in
    /// `sent`; true when the client went away.
    async fn send_batch(
        &mut self,
        batch: Vec<(u64, Vec<u8>)>,
        sender: &mpsc::Sender<Result<EventWithToken, Status>>,
        sent: &mut usize,
    ) -> Result<bool, Status> {
        for (token, bytes) in batch {
            self.next_token = token + 1;
            let event = RawEvent::from_vec(bytes);
            if self.skip(&event)? {
                continue;
            }
            self.permits -= 1;
            let message = EventWithToken {
                token: token as i64,
                event: Some(event),
            };
            if sender.send(Ok(message)).await.is_err() {
                return Ok(true);
            }
            *sent += 1;
        }
        Ok(false)
    }

    /// Whether to leave out a blacklisted event; every so often one is sent anyway so the client's
    /// token keeps moving.
    fn skip(&mut self, event: &RawEvent) -> Result<bool, Status> {
        if self.blacklist.is_empty() {
            return Ok(false);
        }
        let payload = event
            .header()
            .map_err(|e| ApiError::Storage(StorageError::corrupt_event(e)))?
            .payload
            .unwrap_or_default();
        if self.blacklist.contains(&(payload.r#type, payload.revision))
            && self.skipped_in_a_row < BLACKLISTED_SEND_AFTER_EVENTS
        {
            self.skipped_in_a_row += 1;
            return Ok(true);
        }
        self.skipped_in_a_row = 0;
        Ok(false)
    }
}
