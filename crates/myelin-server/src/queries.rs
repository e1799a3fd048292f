//! `QueryService` on 8124. Handler applications open `OpenStream`, subscribe query names and grant
//! permits. `Query` goes to one instance of every component that handles the name; responses are
//! forwarded as they come, errors held back unless no target succeeds, and the call ends when every
//! target completed (or the query timed out, ending with what arrived). Streaming queries keep the
//! first target that answers and pace it with `query_flow_control` to the caller's reading speed.
//! `Subscription` fans a subscription query out to every instance and forwards its initial result,
//! updates and completion under the subscriber's permits, with a bounded buffer.
//!
//! In a cluster, handlers announced by other nodes (see `commands.rs`) are instances like local
//! ones for `Query`: a query sent to one is forwarded over 8224 to `dispatch_forwarded` on its
//! node, whose responses stream back. Subscription queries reach handlers on the caller's node.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myelin_protocol::cluster::{
    AnnouncedHandler, AnnouncedQuery, ForwardedQuery, HandlerAnnouncement,
};
use myelin_protocol::grpc::query::QueryResponse;
use myelin_protocol::grpc::{meta_data_value, ErrorMessage, ProcessingKey};
use myelin_protocol::headers::ResponseHeader;
use myelin_protocol::wire::query::query_provider_inbound::Request as ToHandler;
use myelin_protocol::wire::query::query_provider_outbound::Request as FromHandler;
use myelin_protocol::wire::query::query_service_server::QueryService;
use myelin_protocol::wire::query::subscription_query_request::Request as SubscriptionRequest;
use myelin_protocol::wire::query::{
    QueryFlowControl, QueryProviderInbound, QueryProviderOutbound, QueryReference,
    SubscriptionQuery, SubscriptionQueryRequest,
};
use myelin_protocol::wire::InstructionAck;
use myelin_protocol::{
    bool_instruction, number_instruction, ErrorCode, RawQuery, RawQueryResponse,
    RawSubscriptionResponse,
};
use myelin_routing::{
    FlowQueue, HandlerId, HandlerRegistry, Offer, PendingRequests, RemoteNodes, TopologyChange,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::api_error::ApiError;
use crate::commands::Registration;
use crate::gateway::call_context;
use crate::handler_stream::read_until_end;
use crate::handler_wait::wait_for_handler;
use crate::node::Shared;

/// Queries waiting for permits per handler.
const HANDLER_QUEUE_QUERIES_MAX: usize = 10_000;
/// Responses buffered towards one caller; a streaming query's handler runs at most this far ahead.
const CALLER_QUEUE_RESPONSES_MAX: usize = 32;
/// Updates one subscriber may have waiting for permits before its subscription is failed.
const SUBSCRIBER_BUFFER_MAX: usize = 1024;
/// Timeout of a query that names none (Axon Server's `default-query-timeout`).
const DEFAULT_QUERY_TIMEOUT_MS: u64 = 300_000;

type HandlerOutbox = mpsc::UnboundedSender<Result<QueryProviderInbound, Status>>;

/// What happens to a running query, delivered to the task that runs it.
enum QueryEvent {
    Response(HandlerId, RawQueryResponse),
    Complete(HandlerId),
    HandlerGone(HandlerId),
    Expired,
}

struct ActiveQuery {
    events: mpsc::UnboundedSender<QueryEvent>,
    targets: Vec<HandlerId>,
    /// For counting which clients handled it.
    context: String,
    name: String,
}

struct ActiveSubscription {
    context: String,
    query: String,
    /// The subscribe request, to replay to handlers that register later.
    subscribe: SubscriptionQuery,
    handlers: BTreeSet<HandlerId>,
    responses: mpsc::UnboundedSender<RawSubscriptionResponse>,
}

struct HandlerStream {
    sink: Sink,
    queue: FlowQueue<QueryProviderInbound>,
}

/// Where a handler's queries go.
enum Sink {
    Local(HandlerOutbox),
    /// Handler `handler` (its id there) on node `node`; it paces itself there.
    Remote {
        node: u64,
        handler: u64,
    },
}

impl Sink {
    fn send(&self, message: QueryProviderInbound) {
        if let Sink::Local(outbox) = self {
            let _ = outbox.send(Ok(message));
        }
    }
}

#[derive(Default)]
struct RouterState {
    registry: HandlerRegistry,
    handlers: HashMap<HandlerId, HandlerStream>,
    active: PendingRequests<ActiveQuery>,
    subscriptions: HashMap<String, ActiveSubscription>,
    /// Handlers announced by other nodes.
    remote: RemoteNodes<AnnouncedHandler>,
}

/// Query routing state shared by the service's calls.
pub struct QueryRouter {
    state: Mutex<RouterState>,
    /// Bumped whenever a handler subscribes a query.
    registrations: watch::Sender<u64>,
}

impl Default for QueryRouter {
    fn default() -> Self {
        QueryRouter {
            state: Mutex::new(RouterState::default()),
            registrations: watch::channel(0).0,
        }
    }
}

impl QueryRouter {
    /// Every handler stream that handles at least one query, here and on other nodes.
    pub(crate) fn registrations(&self) -> Vec<Registration> {
        let state = self.lock();
        let registrations = state.handlers.iter().filter_map(|(id, stream)| {
            let node = match stream.sink {
                Sink::Local(_) => None,
                Sink::Remote { node, .. } => Some(node),
            };
            Registration::of(
                state.registry.info(*id)?,
                node,
                state.registry.queries_of(*id),
            )
        });
        Registration::sorted(registrations)
    }
}

impl QueryRouter {
    fn lock(&self) -> std::sync::MutexGuard<'_, RouterState> {
        // Every update leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self, context: &str) -> Vec<TopologyChange> {
        self.lock().registry.snapshot(context)
    }

    /// Tells overdue queries that their time is up.
    pub(crate) fn expire(&self, now: Instant) {
        for (_, query) in self.lock().active.expire(now) {
            let _ = query.events.send(QueryEvent::Expired);
        }
    }
}

impl RouterState {
    /// Sends a query to a handler, spending a permit or waiting for one.
    fn send_query(&mut self, handler: HandlerId, query: RawQuery, priority: i64) -> bool {
        let Some(stream) = self.handlers.get_mut(&handler) else {
            return false;
        };
        let message = to_handler(ToHandler::Query(query));
        match stream.queue.offer(message, priority) {
            Offer::SendNow(message) => {
                stream.sink.send(message);
                true
            }
            Offer::Queued => true,
            Offer::Full(_) => false,
        }
    }

    /// Sends a control message (cancel, flow control) at once; it still counts against permits.
    fn send_control(&mut self, handler: HandlerId, request: ToHandler) {
        if let Some(stream) = self.handlers.get_mut(&handler) {
            stream.queue.spend();
            stream.sink.send(to_handler(request));
        }
    }

    /// Subscription query messages bypass permits, as in Axon Server.
    fn send_subscription(&self, handler: HandlerId, request: SubscriptionRequest) {
        if let Some(stream) = self.handlers.get(&handler) {
            let message = SubscriptionQueryRequest {
                request: Some(request),
            };
            stream
                .sink
                .send(to_handler(ToHandler::SubscriptionQueryRequest(message)));
        }
    }

    /// The node and remote id of a handler on another node.
    fn remote_target(&self, handler: HandlerId) -> Option<(u64, u64)> {
        match self.handlers.get(&handler)?.sink {
            Sink::Remote { node, handler } => Some((node, handler)),
            Sink::Local(_) => None,
        }
    }

    fn is_local(&self, handler: HandlerId) -> bool {
        matches!(
            self.handlers.get(&handler).map(|h| &h.sink),
            Some(Sink::Local(_))
        )
    }

    fn cancel(&mut self, query_id: &str, targets: impl IntoIterator<Item = HandlerId>) {
        for target in targets {
            let reference = QueryReference {
                request_id: query_id.to_string(),
            };
            // A query still waiting for permits is simply taken back.
            let taken_back = self.handlers.get_mut(&target).is_some_and(|s| {
                !s.queue
                    .remove_where(|m| matches!(&m.request, Some(ToHandler::Query(q)) if q.header().is_ok_and(|h| h.message_identifier == query_id)))
                    .is_empty()
            });
            if !taken_back {
                self.send_control(target, ToHandler::QueryCancel(reference));
            }
        }
    }
}

fn to_handler(request: ToHandler) -> QueryProviderInbound {
    QueryProviderInbound {
        instruction_id: String::new(),
        request: Some(request),
    }
}

fn is_error(header: &ResponseHeader) -> bool {
    header.error_message.is_some() || !header.error_code.is_empty()
}

fn error_response(request_id: &str, code: ErrorCode, message: &str) -> RawQueryResponse {
    RawQueryResponse::from_message(&QueryResponse {
        message_identifier: uuid::Uuid::new_v4().to_string(),
        request_identifier: request_id.to_string(),
        error_code: code.code().to_string(),
        error_message: Some(ErrorMessage {
            message: message.to_string(),
            location: "AxonServer".to_string(),
            details: Vec::new(),
            error_code: code.code().to_string(),
        }),
        ..Default::default()
    })
}

pub struct QueryServiceImpl {
    shared: Arc<Shared>,
}

impl QueryServiceImpl {
    pub(crate) fn new(shared: Arc<Shared>) -> QueryServiceImpl {
        QueryServiceImpl { shared }
    }
}

#[tonic::async_trait]
impl QueryService for QueryServiceImpl {
    type OpenStreamStream = UnboundedReceiverStream<Result<QueryProviderInbound, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<QueryProviderOutbound>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let context = call_context(&request)?.context;
        let inbound = request.into_inner();
        let (outbox, receiver) = mpsc::unbounded_channel();
        let handler = {
            let mut state = self.shared.queries.lock();
            let id = state.registry.add_stream(&context);
            let stream = HandlerStream {
                sink: Sink::Local(outbox.clone()),
                queue: FlowQueue::new(HANDLER_QUEUE_QUERIES_MAX),
            };
            state.handlers.insert(id, stream);
            id
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            read_until_end(inbound, &shared.shutdown, "query handler", |message| {
                handle_from_handler(&shared, handler, message, &outbox)
            })
            .await;
            remove_handler(&shared, handler);
        });
        Ok(Response::new(UnboundedReceiverStream::new(receiver)))
    }

    type QueryStream = ReceiverStream<Result<RawQueryResponse, Status>>;

    async fn query(
        &self,
        request: Request<RawQuery>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let context = call_context(&request)?.context;
        let responses = dispatch_query(&self.shared, context, request.into_inner()).await?;
        Ok(Response::new(responses))
    }

    type SubscriptionStream = ReceiverStream<Result<RawSubscriptionResponse, Status>>;

    async fn subscription(
        &self,
        request: Request<Streaming<SubscriptionQueryRequest>>,
    ) -> Result<Response<Self::SubscriptionStream>, Status> {
        let context = call_context(&request)?.context;
        let inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(CALLER_QUEUE_RESPONSES_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut subscriber = Subscriber {
                context,
                subscription_id: None,
                permits: 0,
                buffer: VecDeque::new(),
            };
            let result = subscriber.run(&shared, inbound, &sender).await;
            subscriber.unsubscribe_all(&shared);
            if let Err(status) = result {
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Dispatches a query from a client of this node (gRPC or REST): the returned stream carries its
/// responses; "no handler" is an in-band error response, as Axon clients expect.
pub(crate) async fn dispatch_query(
    shared: &Arc<Shared>,
    context: String,
    mut query: RawQuery,
) -> Result<ReceiverStream<Result<RawQueryResponse, Status>>, ApiError> {
    let header = query
        .header()
        .map_err(|e| ApiError::InvalidRequest(format!("the query does not decode: {e}")))?;
    let mut options = QueryOptions::of(&header, ProcessingKey::ClientSupportsStreaming);
    options.measured = true;
    let router = &shared.queries;
    wait_for_handler(router.registrations.subscribe(), || {
        !router
            .lock()
            .registry
            .query_handlers(&context, &header.query)
            .is_empty()
    })
    .await;
    let targets = router
        .lock()
        .registry
        .query_targets(&context, &header.query);
    if targets.is_empty() {
        shared
            .metrics
            .record_query(&context, &header.query, Duration::ZERO, false);
        let message = format!("No handler for query: {}", header.query);
        let response = error_response(
            &header.message_identifier,
            ErrorCode::NoHandlerForQuery,
            &message,
        );
        return Ok(single_response(response));
    }
    if options.streaming {
        query.add_instruction(
            ProcessingKey::ServerSupportsStreaming,
            meta_data_value::Data::BooleanValue(true),
        );
    }
    let id = header.message_identifier;
    Ok(start_query(shared, &context, id, query, targets, options))
}

/// What a query's processing instructions ask of routing.
struct QueryOptions {
    streaming: bool,
    priority: i64,
    timeout: Duration,
    /// The query's name.
    name: String,
    /// Whether it counts in the metrics (queries from this node's clients only).
    measured: bool,
}

impl QueryOptions {
    /// `streaming_key` names the instruction that makes it a streaming query: the client's on
    /// the node it called, the server's on a node it was forwarded to.
    fn of(header: &myelin_protocol::headers::QueryHeader, streaming_key: ProcessingKey) -> Self {
        let instructions = &header.processing_instructions;
        QueryOptions {
            streaming: bool_instruction(instructions, streaming_key).unwrap_or(false),
            priority: number_instruction(instructions, ProcessingKey::Priority).unwrap_or(0),
            timeout: Duration::from_millis(
                number_instruction(instructions, ProcessingKey::Timeout)
                    .filter(|ms| *ms > 0)
                    .map_or(DEFAULT_QUERY_TIMEOUT_MS, |ms| ms as u64),
            ),
            name: header.query.clone(),
            measured: false,
        }
    }
}

/// A response stream holding one response.
fn single_response(response: RawQueryResponse) -> ReceiverStream<Result<RawQueryResponse, Status>> {
    let (caller, receiver) = mpsc::channel(1);
    let _ = caller.try_send(Ok(response));
    ReceiverStream::new(receiver)
}

/// Sends a query to its targets (handlers here, or on other nodes through 8224) and runs it to
/// its end in a task; the returned stream carries the responses.
fn start_query(
    shared: &Arc<Shared>,
    context: &str,
    id: String,
    query: RawQuery,
    targets: Vec<HandlerId>,
    options: QueryOptions,
) -> ReceiverStream<Result<RawQueryResponse, Status>> {
    let (caller, receiver) = mpsc::channel(CALLER_QUEUE_RESPONSES_MAX);
    let (events, events_rx) = mpsc::unbounded_channel();
    let reached = {
        let mut state = shared.queries.lock();
        let active = ActiveQuery {
            events: events.clone(),
            targets: targets.clone(),
            context: context.to_string(),
            name: options.name.clone(),
        };
        if state
            .active
            .insert(&id, None, Instant::now() + options.timeout, active)
            .is_err()
        {
            let message = format!("Query {id} is already being handled");
            return single_response(error_response(&id, ErrorCode::QueryDuplicated, &message));
        }
        let mut reached = Vec::new();
        for target in targets {
            if let Some((node, remote)) = state.remote_target(target) {
                let forward = Forward {
                    target,
                    node,
                    remote,
                    context: context.to_string(),
                    timeout: options.timeout,
                };
                forward_query(shared, forward, query.clone(), events.clone());
                reached.push(target);
            } else if state.send_query(target, query.clone(), options.priority) {
                reached.push(target);
            }
        }
        reached
    };
    let shared = shared.clone();
    let context = context.to_string();
    tokio::spawn(async move {
        let started = Instant::now();
        let succeeded = if options.streaming {
            run_streaming_query(&shared, &id, reached, events_rx, caller).await
        } else {
            run_query(&shared, &id, reached, events_rx, caller).await
        };
        shared.queries.lock().active.remove(&id);
        if options.measured {
            shared
                .metrics
                .record_query(&context, &options.name, started.elapsed(), succeeded);
        }
    });
    ReceiverStream::new(receiver)
}

/// Runs a point-to-point or scatter-gather query to its end.
async fn run_query(
    shared: &Shared,
    id: &str,
    targets: Vec<HandlerId>,
    mut events: mpsc::UnboundedReceiver<QueryEvent>,
    caller: mpsc::Sender<Result<RawQueryResponse, Status>>,
) -> bool {
    let mut remaining: BTreeSet<HandlerId> = targets.into_iter().collect();
    let mut held_errors = Vec::new();
    let mut succeeded = false;
    while !remaining.is_empty() {
        let event = tokio::select! {
            event = events.recv() => event.unwrap_or(QueryEvent::Expired),
            _ = caller.closed() => QueryEvent::Expired,
        };
        match event {
            QueryEvent::Response(_, response) => match response.header() {
                Ok(header) if is_error(&header) => held_errors.push(response),
                _ => {
                    succeeded = true;
                    if caller.send(Ok(response)).await.is_err() {
                        break;
                    }
                }
            },
            QueryEvent::Complete(handler) => {
                remaining.remove(&handler);
            }
            QueryEvent::HandlerGone(handler) => {
                remaining.remove(&handler);
                held_errors.push(error_response(
                    id,
                    ErrorCode::ConnectionToHandlerLost,
                    "Connection to a query handler was lost",
                ));
            }
            QueryEvent::Expired => break,
        }
    }
    if !remaining.is_empty() {
        shared.queries.lock().cancel(id, remaining);
    }
    if !succeeded {
        for error in held_errors {
            if caller.send(Ok(error)).await.is_err() {
                break;
            }
        }
    }
    succeeded
}

/// Runs a streaming query: the first target to answer is kept (the others are cancelled) and is
/// granted one response at a time, each only once the caller has room for it.
async fn run_streaming_query(
    shared: &Shared,
    id: &str,
    targets: Vec<HandlerId>,
    mut events: mpsc::UnboundedReceiver<QueryEvent>,
    caller: mpsc::Sender<Result<RawQueryResponse, Status>>,
) -> bool {
    let mut candidates: BTreeSet<HandlerId> = targets.into_iter().collect();
    let mut selected: Option<HandlerId> = None;
    let mut held_errors = Vec::new();
    let mut succeeded = false;
    'outer: while !candidates.is_empty() {
        let Ok(slot) = caller.reserve().await else {
            break;
        };
        {
            let mut state = shared.queries.lock();
            let grant_to: Vec<HandlerId> =
                selected.map_or_else(|| candidates.iter().copied().collect(), |s| vec![s]);
            for target in grant_to {
                let flow = QueryFlowControl {
                    query_reference: Some(QueryReference {
                        request_id: id.to_string(),
                    }),
                    permits: 1,
                };
                state.send_control(target, ToHandler::QueryFlowControl(flow));
            }
        }
        loop {
            let event = tokio::select! {
                event = events.recv() => event.unwrap_or(QueryEvent::Expired),
                _ = caller.closed() => QueryEvent::Expired,
            };
            match event {
                QueryEvent::Response(from, response) => {
                    if selected.is_some_and(|s| s != from) {
                        continue;
                    }
                    if response.header().is_ok_and(|h| is_error(&h)) && selected.is_none() {
                        held_errors.push(response);
                        continue;
                    }
                    if selected.is_none() {
                        selected = Some(from);
                        let others: Vec<HandlerId> =
                            candidates.iter().copied().filter(|c| *c != from).collect();
                        shared.queries.lock().cancel(id, others.iter().copied());
                        candidates.retain(|c| *c == from);
                    }
                    succeeded = true;
                    slot.send(Ok(response));
                    break;
                }
                QueryEvent::Complete(from) | QueryEvent::HandlerGone(from) => {
                    candidates.remove(&from);
                    if candidates.is_empty() || selected == Some(from) {
                        candidates.clear();
                        break 'outer;
                    }
                }
                QueryEvent::Expired => break 'outer,
            }
        }
    }
    if !candidates.is_empty() {
        shared.queries.lock().cancel(id, candidates);
    }
    if !succeeded {
        for error in held_errors {
            if caller.send(Ok(error)).await.is_err() {
                break;
            }
        }
    }
    succeeded
}

/// The requester side of one `Subscription` call.
struct Subscriber {
    context: String,
    subscription_id: Option<String>,
    permits: u64,
    buffer: VecDeque<RawSubscriptionResponse>,
}

impl Subscriber {
    async fn run(
        &mut self,
        shared: &Shared,
        mut inbound: Streaming<SubscriptionQueryRequest>,
        sender: &mpsc::Sender<Result<RawSubscriptionResponse, Status>>,
    ) -> Result<(), Status> {
        let (responses, mut responses_rx) = mpsc::unbounded_channel();
        loop {
            let can_send = self.permits > 0 && !self.buffer.is_empty();
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(request)) => {
                        if !self.handle(shared, request, &responses).await? {
                            return Ok(());
                        }
                    }
                    Ok(None) | Err(_) => return Ok(()),
                },
                response = responses_rx.recv() => {
                    let Some(response) = response else { return Ok(()) };
                    if self.buffer.len() >= SUBSCRIBER_BUFFER_MAX {
                        return Err(Status::resource_exhausted(format!(
                            "subscription query {} failed: the subscriber has not read its last {SUBSCRIBER_BUFFER_MAX} updates",
                            self.subscription_id.as_deref().unwrap_or_default()
                        )));
                    }
                    self.buffer.push_back(response);
                },
                slot = sender.reserve(), if can_send => {
                    let Ok(slot) = slot else { return Ok(()) };
                    if let Some(response) = self.buffer.pop_front() {
                        self.permits -= 1;
                        let last = response.header().is_ok_and(|h| h.complete.is_some() || h.complete_exceptionally.is_some());
                        slot.send(Ok(response));
                        if last {
                            return Ok(());
                        }
                    }
                },
                _ = shared.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Handles one request of the subscriber; false when the subscription is over.
    async fn handle(
        &mut self,
        shared: &Shared,
        request: SubscriptionQueryRequest,
        responses: &mpsc::UnboundedSender<RawSubscriptionResponse>,
    ) -> Result<bool, Status> {
        match request.request {
            Some(SubscriptionRequest::FlowControl(flow)) => {
                self.permits = self
                    .permits
                    .saturating_add(u64::try_from(flow.number_of_permits).unwrap_or(0));
            }
            Some(SubscriptionRequest::Subscribe(subscribe)) => {
                let name = query_name(&subscribe)?;
                let router = &shared.queries;
                wait_for_handler(router.registrations.subscribe(), || {
                    !router
                        .lock()
                        .registry
                        .query_handlers(&self.context, &name)
                        .is_empty()
                })
                .await;
                let id = subscribe.subscription_identifier.clone();
                let mut state = shared.queries.lock();
                let mut handlers = state.registry.query_handlers(&self.context, &name);
                handlers.retain(|h| state.is_local(*h));
                if handlers.is_empty() {
                    let status: Status = crate::api_error::ApiError::NoHandlerForQuery(name).into();
                    return Err(status);
                }
                for handler in &handlers {
                    state.send_subscription(
                        *handler,
                        SubscriptionRequest::Subscribe(subscribe.clone()),
                    );
                }
                state.subscriptions.insert(
                    id.clone(),
                    ActiveSubscription {
                        context: self.context.clone(),
                        query: name,
                        subscribe,
                        handlers: handlers.into_iter().collect(),
                        responses: responses.clone(),
                    },
                );
                self.subscription_id = Some(id);
            }
            // Deprecated in the API, but Axon Framework 4 still asks for initial results this way.
            #[allow(deprecated)]
            Some(SubscriptionRequest::GetInitialResult(query)) => {
                let name = query_name(&query)?;
                let mut state = shared.queries.lock();
                let mut targets = state.registry.query_targets(&self.context, &name);
                if targets.iter().any(|t| !state.is_local(*t)) {
                    // Initial results come from handlers on this node, like the updates.
                    targets = state.registry.query_handlers(&self.context, &name);
                    targets.retain(|h| state.is_local(*h));
                    targets.truncate(1);
                }
                for target in targets {
                    #[allow(deprecated)]
                    let request = SubscriptionRequest::GetInitialResult(query.clone());
                    state.send_subscription(target, request);
                }
            }
            Some(SubscriptionRequest::Unsubscribe(_)) => return Ok(false),
            None => {}
        }
        Ok(true)
    }

    /// Tells every handler of this subscription that it is over, and forgets it.
    fn unsubscribe_all(&mut self, shared: &Shared) {
        let Some(id) = self.subscription_id.take() else {
            return;
        };
        let mut state = shared.queries.lock();
        if let Some(subscription) = state.subscriptions.remove(&id) {
            for handler in &subscription.handlers {
                state.send_subscription(
                    *handler,
                    SubscriptionRequest::Unsubscribe(subscription.subscribe.clone()),
                );
            }
        }
    }
}

fn query_name(subscription: &SubscriptionQuery) -> Result<String, Status> {
    subscription
        .query_request
        .as_ref()
        .and_then(|q| q.header().ok())
        .map(|h| h.query)
        .ok_or_else(|| {
            Status::invalid_argument("subscription query without a decodable query_request")
        })
}

/// One message from a handler stream.
fn handle_from_handler(
    shared: &Shared,
    handler: HandlerId,
    message: QueryProviderOutbound,
    outbox: &HandlerOutbox,
) {
    let mut changes = Vec::new();
    let mut moved_here = Vec::new();
    match message.request {
        Some(FromHandler::Subscribe(subscription)) => {
            let mut state = shared.queries.lock();
            state.registry.identify(
                handler,
                &subscription.client_id,
                &subscription.component_name,
            );
            // The same application announced by another node has moved here.
            moved_here = state
                .remote
                .handlers_of(&subscription.client_id, &state.registry);
            if let Some(change) = state.registry.subscribe_query(handler, &subscription.query) {
                shared
                    .queries
                    .registrations
                    .send_modify(|generation| *generation += 1);
                // Live subscription queries reach handlers that arrive later too.
                let context = change.handler.context.clone();
                let live: Vec<SubscriptionQuery> = state
                    .subscriptions
                    .values_mut()
                    .filter(|s| s.context == context && s.query == subscription.query)
                    .filter_map(|s| s.handlers.insert(handler).then(|| s.subscribe.clone()))
                    .collect();
                for subscribe in live {
                    state.send_subscription(handler, SubscriptionRequest::Subscribe(subscribe));
                }
                changes.push(change);
            }
        }
        Some(FromHandler::Unsubscribe(subscription)) => {
            changes.extend(
                shared
                    .queries
                    .lock()
                    .registry
                    .unsubscribe_query(handler, &subscription.query),
            );
        }
        Some(FromHandler::FlowControl(flow)) => {
            let mut state = shared.queries.lock();
            state.registry.identify(handler, &flow.client_id, "");
            if let Some(stream) = state.handlers.get_mut(&handler) {
                for message in stream.queue.grant(u64::try_from(flow.permits).unwrap_or(0)) {
                    stream.sink.send(message);
                }
            }
        }
        Some(FromHandler::QueryResponse(response)) => {
            if let Ok(header) = response.header() {
                if let Some(query) = shared
                    .queries
                    .lock()
                    .active
                    .get_mut(&header.request_identifier)
                {
                    let _ = query.events.send(QueryEvent::Response(handler, response));
                }
            }
        }
        Some(FromHandler::QueryComplete(complete)) => {
            let mut state = shared.queries.lock();
            let client = state.registry.info(handler).map(|i| i.client_id.clone());
            if let Some(query) = state.active.get_mut(&complete.request_id) {
                let client = client.unwrap_or_default();
                shared
                    .metrics
                    .record_handled(false, &query.context, &query.name, &client);
                let _ = query.events.send(QueryEvent::Complete(handler));
            }
        }
        Some(FromHandler::SubscriptionQueryResponse(response)) => {
            if let Ok(header) = response.header() {
                let state = shared.queries.lock();
                match state.subscriptions.get(&header.subscription_identifier) {
                    Some(subscription) => {
                        let _ = subscription.responses.send(response);
                    }
                    None if header.initial_result.is_none() => {
                        // An update for a subscription nobody holds: tell the handler to stop.
                        let unsubscribe = SubscriptionQuery {
                            subscription_identifier: header.subscription_identifier,
                            ..Default::default()
                        };
                        state.send_subscription(
                            handler,
                            SubscriptionRequest::Unsubscribe(unsubscribe),
                        );
                    }
                    None => {}
                }
            }
        }
        Some(FromHandler::Ack(_)) | None => {}
    }
    if !message.instruction_id.is_empty() {
        let ack = QueryProviderInbound {
            instruction_id: String::new(),
            request: Some(ToHandler::Ack(InstructionAck {
                instruction_id: message.instruction_id,
                success: true,
                error: None,
            })),
        };
        let _ = outbox.send(Ok(ack));
    }
    if !changes.is_empty() {
        crate::commands::local_handlers_changed(shared);
    }
    shared.topology.publish(&changes);
    for id in moved_here {
        remove_handler(shared, id);
    }
}

/// A handler stream ended: the queries it owed answers to count it as gone, and it leaves every
/// subscription.
fn remove_handler(shared: &Shared, handler: HandlerId) {
    let (changes, local) = {
        let mut state = shared.queries.lock();
        let local = state.is_local(handler);
        let changes = state.registry.remove_handler(handler);
        state.handlers.remove(&handler);
        for subscription in state.subscriptions.values_mut() {
            subscription.handlers.remove(&handler);
        }
        // Every active query that targeted it: scan the few running queries.
        let ids: Vec<String> = state.active_ids_targeting(handler);
        for id in ids {
            if let Some(query) = state.active.get_mut(&id) {
                let _ = query.events.send(QueryEvent::HandlerGone(handler));
            }
        }
        (changes, local)
    };
    if local && !changes.is_empty() {
        crate::commands::local_handlers_changed(shared);
    }
    shared.topology.publish(&changes);
}

impl RouterState {
    fn active_ids_targeting(&mut self, handler: HandlerId) -> Vec<String> {
        let mut ids = Vec::new();
        self.active.for_each(|id, query| {
            if query.targets.contains(&handler) {
                ids.push(id.to_string());
            }
        });
        ids
    }
}

/// Sweeps overdue queries until shutdown.
pub(crate) async fn run_timeouts(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                shared.queries.expire(Instant::now());
                forget_stale_nodes(&shared);
            }
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers on other nodes

/// A query's way to a handler on another node.
struct Forward {
    /// The local id standing for the remote handler.
    target: HandlerId,
    node: u64,
    /// The handler's id on its node.
    remote: u64,
    context: String,
    timeout: Duration,
}

/// Sends a query to a handler on another node; its responses come back as events of the query.
fn forward_query(
    shared: &Arc<Shared>,
    forward: Forward,
    query: RawQuery,
    events: mpsc::UnboundedSender<QueryEvent>,
) {
    let Forward {
        target,
        node,
        remote,
        context,
        timeout,
    } = forward;
    let client = shared.cluster.client(node);
    let shared = shared.clone();
    let mut request = shared.cluster.request(ForwardedQuery {
        handlers: vec![remote.to_string()],
        context,
        query: Some(query),
    });
    request.set_timeout(timeout);
    tokio::spawn(async move {
        let Some(mut client) = client else {
            let _ = events.send(QueryEvent::HandlerGone(target));
            return;
        };
        let mut responses = match client.dispatch_query(request).await {
            Ok(responses) => responses.into_inner(),
            Err(status) => {
                tracing::debug!(node, "forwarding a query failed: {status}");
                let _ = events.send(QueryEvent::HandlerGone(target));
                if status.code() == tonic::Code::Unavailable {
                    // The node is gone: its handlers are not asked again.
                    let handlers = shared.queries.lock().remote.remove(node);
                    for id in handlers {
                        remove_handler(&shared, id);
                    }
                }
                return;
            }
        };
        loop {
            match responses.message().await {
                Ok(Some(response)) => {
                    if events.send(QueryEvent::Response(target, response)).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = events.send(QueryEvent::Complete(target));
                    return;
                }
                Err(status) => {
                    tracing::debug!(node, "forwarded query ended: {status}");
                    let _ = events.send(QueryEvent::HandlerGone(target));
                    return;
                }
            }
        }
    });
}

/// Runs a query forwarded by another node on the local handlers it names, streaming back every
/// response until they all completed.
pub(crate) fn dispatch_forwarded(
    shared: &Arc<Shared>,
    forwarded: ForwardedQuery,
) -> Result<ReceiverStream<Result<RawQueryResponse, Status>>, Status> {
    let query = forwarded
        .query
        .ok_or_else(|| Status::invalid_argument("forwarded query without a query"))?;
    let header = query
        .header()
        .map_err(|e| Status::invalid_argument(format!("the query does not decode: {e}")))?;
    let options = QueryOptions::of(&header, ProcessingKey::ServerSupportsStreaming);
    let targets: Vec<HandlerId> = {
        let state = shared.queries.lock();
        forwarded
            .handlers
            .iter()
            .filter_map(|h| h.parse().ok().map(HandlerId))
            .filter(|h| state.is_local(*h))
            .collect()
    };
    if targets.is_empty() {
        let response = error_response(
            &header.message_identifier,
            ErrorCode::ConnectionToHandlerLost,
            "The query's handler is no longer connected to this node",
        );
        return Ok(single_response(response));
    }
    let id = header.message_identifier;
    Ok(start_query(
        shared,
        &forwarded.context,
        id,
        query,
        targets,
        options,
    ))
}

/// This node's own query handlers, as announced to the others.
pub(crate) fn local_handlers(shared: &Shared) -> Vec<AnnouncedHandler> {
    let state = shared.queries.lock();
    let mut handlers: Vec<AnnouncedHandler> = state
        .handlers
        .iter()
        .filter(|(_, h)| matches!(h.sink, Sink::Local(_)))
        .filter_map(|(id, _)| {
            let info = state.registry.info(*id)?;
            let queries: Vec<AnnouncedQuery> = state
                .registry
                .queries_of(*id)
                .into_iter()
                .map(|query| AnnouncedQuery {
                    query,
                    result_name: String::new(),
                })
                .collect();
            (!queries.is_empty()).then(|| AnnouncedHandler {
                handler: id.0.to_string(),
                context: info.context.clone(),
                client_id: info.client_id.clone(),
                component_name: info.component.clone(),
                commands: Vec::new(),
                queries,
            })
        })
        .collect();
    handlers.sort_by(|a, b| a.handler.cmp(&b.handler));
    handlers
}

/// Replaces what is known of another node's query handlers with its announcement.
pub(crate) fn remote_handlers(shared: &Shared, announcement: &HandlerAnnouncement) {
    let Some(node) = announcement.from.as_ref().map(|f| f.id) else {
        return;
    };
    let announced: Vec<AnnouncedHandler> = announcement
        .handlers
        .iter()
        .filter(|h| !h.queries.is_empty())
        .cloned()
        .collect();
    let Some(old) = shared
        .queries
        .lock()
        .remote
        .replace(node, &announced, Instant::now())
    else {
        return;
    };
    for id in old {
        remove_handler(shared, id);
    }
    let mut changes = Vec::new();
    let mut moved = Vec::new();
    {
        let mut state = shared.queries.lock();
        for handler in &announced {
            moved.extend(
                state
                    .remote
                    .handlers_of(&handler.client_id, &state.registry),
            );
        }
        let mut ids = Vec::new();
        for handler in &announced {
            let Some((info, remote_id)) = crate::cluster::remote_handler_info(node, handler) else {
                continue;
            };
            let id = state.registry.add_handler(info);
            let mut queue = FlowQueue::new(HANDLER_QUEUE_QUERIES_MAX);
            // The remote node applies the handler's own flow control.
            let _ = queue.grant(u64::MAX / 2);
            let sink = Sink::Remote {
                node,
                handler: remote_id,
            };
            state.handlers.insert(id, HandlerStream { sink, queue });
            for query in &handler.queries {
                changes.extend(state.registry.subscribe_query(id, &query.query));
            }
            ids.push(id);
        }
        state.remote.insert(node, announced, ids, Instant::now());
    }
    for id in moved {
        remove_handler(shared, id);
    }
    shared.queries.registrations.send_modify(|n| *n += 1);
    shared.topology.publish(&changes);
}

/// Drops the query handlers of nodes that stopped announcing them.
fn forget_stale_nodes(shared: &Shared) {
    let stale = shared.queries.lock().remote.remove_stale(
        Instant::now(),
        Duration::from_millis(crate::commands::REMOTE_STALE_MS),
    );
    for id in stale.into_iter().flat_map(|(_, handlers)| handlers) {
        remove_handler(shared, id);
    }
}
