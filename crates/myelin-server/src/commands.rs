//! `CommandService` on 8124. Handler applications open `OpenStream`, subscribe command names and
//! grant permits; `Dispatch` picks a handler by consistent hashing on the command's routing key,
//! sends it the command as received (when the handler has a permit, else it waits by priority),
//! and answers the caller with the handler's `CommandResponse`. A handler that disconnects fails
//! its in-flight commands at once (AXONIQ-4001) and its queued ones are routed again; commands not
//! answered in time fail with AXONIQ-4002. "No handler" is an in-band response (AXONIQ-4000).
//!
//! In a cluster, each node announces its handlers to the others every second and on every
//! change; a remote handler takes part in the same consistent hashing (the ring hashes client
//! ids, so every node picks the same handler) and a command routed to it is forwarded over 8224
//! to `dispatch_forwarded` on its node. A node that stops announcing loses its handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myelin_protocol::cluster::{
    AnnouncedCommand, AnnouncedHandler, ForwardedCommand, HandlerAnnouncement,
};
use myelin_protocol::grpc::command::CommandResponse;
use myelin_protocol::grpc::{ErrorMessage, ProcessingKey};
use myelin_protocol::wire::command::command_provider_inbound::Request as ToHandler;
use myelin_protocol::wire::command::command_provider_outbound::Request as FromHandler;
use myelin_protocol::wire::command::command_service_server::CommandService;
use myelin_protocol::wire::command::{CommandProviderInbound, CommandProviderOutbound};
use myelin_protocol::wire::InstructionAck;
use myelin_protocol::{
    number_instruction, text_instruction, ErrorCode, RawCommand, RawCommandResponse,
};
use myelin_routing::{FlowQueue, HandlerId, HandlerRegistry, Offer, PendingRequests, RemoteNodes};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api_error::ApiError;
use crate::gateway::call_context;
use crate::handler_stream::read_until_end;
use crate::handler_wait::wait_for_handler;
use crate::node::Shared;

/// Commands waiting for permits per handler (Axon Server's `command-queue-capacity-per-client`).
const HANDLER_QUEUE_COMMANDS_MAX: usize = 10_000;
/// How often a node announces its handlers to the others.
const ANNOUNCE_EVERY_MS: u64 = 1000;
/// A node that has not announced for this long has lost its handlers.
pub(crate) const REMOTE_STALE_MS: u64 = 4000;

type HandlerOutbox = mpsc::UnboundedSender<Result<CommandProviderInbound, Status>>;

/// Command routing state shared by the service's calls.
pub struct CommandRouter {
    state: Mutex<RouterState>,
    default_timeout: Duration,
    /// Bumped whenever a handler subscribes a command.
    registrations: watch::Sender<u64>,
    /// Bumped whenever a local handler changes what it handles (for announcements).
    local_changes: watch::Sender<u64>,
    forwards: Mutex<Option<mpsc::UnboundedReceiver<Forward>>>,
}

struct RouterState {
    registry: HandlerRegistry,
    handlers: HashMap<HandlerId, HandlerStream>,
    pending: PendingRequests<PendingCommand>,
    /// Handlers announced by other nodes.
    remote: RemoteNodes<AnnouncedHandler>,
    forwarder: mpsc::UnboundedSender<Forward>,
}

struct HandlerStream {
    sink: Sink,
    queue: FlowQueue<Routed>,
}

/// Where a handler's commands go.
enum Sink {
    /// A handler connected to this node.
    Local(HandlerOutbox),
    /// Handler `handler` (its id there) on node `node`.
    Remote { node: u64, handler: u64 },
}

/// A command on its way to a handler on another node.
struct Forward {
    node: u64,
    handler: u64,
    routed: Routed,
}

/// A command with what routing needs to send it (again).
struct Routed {
    id: String,
    context: String,
    name: String,
    routing_key: String,
    priority: i64,
    timeout: Duration,
    command: RawCommand,
}

struct PendingCommand {
    reply: oneshot::Sender<RawCommandResponse>,
    /// For counting which client handled it.
    context: String,
    name: String,
}

impl CommandRouter {
    pub(crate) fn new(default_timeout: Duration) -> CommandRouter {
        let (forwarder, forwards) = mpsc::unbounded_channel();
        CommandRouter {
            state: Mutex::new(RouterState {
                registry: HandlerRegistry::default(),
                handlers: HashMap::new(),
                pending: PendingRequests::default(),
                remote: RemoteNodes::default(),
                forwarder,
            }),
            default_timeout,
            registrations: watch::channel(0).0,
            local_changes: watch::channel(0).0,
            forwards: Mutex::new(Some(forwards)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouterState> {
        // Every update below leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current command registrations of a context, as topology additions.
    pub(crate) fn snapshot(&self, context: &str) -> Vec<myelin_routing::TopologyChange> {
        self.lock().registry.snapshot(context)
    }

    /// Answers commands whose deadline has passed with AXONIQ-4002.
    pub(crate) fn expire(&self, now: Instant) {
        let mut state = self.lock();
        for (id, pending) in state.pending.expire(now) {
            state.unqueue(&id);
            let _ = pending.reply.send(error_response(
                &id,
                ErrorCode::CommandTimeout,
                "Command timed out",
            ));
        }
    }
}

/// One handler stream and what it handles, for the REST API and GUI.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Registration {
    /// The node the handler is connected to; `None` for this node.
    pub node: Option<u64>,
    /// The handler stream (client id + `.` + a unique part).
    pub stream_id: String,
    pub context: String,
    pub client_id: String,
    pub component: String,
    /// Command or query names.
    pub names: Vec<String>,
}

impl Registration {
    /// A handler stream's registration; `None` when it handles nothing (yet).
    pub(crate) fn of(
        info: &myelin_routing::HandlerInfo,
        node: Option<u64>,
        names: Vec<String>,
    ) -> Option<Registration> {
        (!names.is_empty()).then(|| Registration {
            node,
            stream_id: info.client_stream_id.clone(),
            context: info.context.clone(),
            client_id: info.client_id.clone(),
            component: info.component.clone(),
            names,
        })
    }

    /// Registrations in a stable order: by context, then client.
    pub(crate) fn sorted(registrations: impl Iterator<Item = Registration>) -> Vec<Registration> {
        let mut registrations: Vec<Registration> = registrations.collect();
        registrations.sort_by(|a, b| (&a.context, &a.client_id).cmp(&(&b.context, &b.client_id)));
        registrations
    }
}

impl CommandRouter {
    /// Commands dispatched through this node and not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Per local handler stream: its stream id and how many commands wait for its permits.
    pub(crate) fn queues(&self) -> Vec<(String, usize)> {
        let state = self.lock();
        let mut queues: Vec<(String, usize)> = state
            .handlers
            .iter()
            .filter(|(_, stream)| matches!(stream.sink, Sink::Local(_)))
            .filter_map(|(id, stream)| {
                let info = state.registry.info(*id)?;
                Some((info.client_stream_id.clone(), stream.queue.waiting()))
            })
            .collect();
        queues.sort();
        queues
    }

    /// Every handler stream that handles at least one command, here and on other nodes.
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
                state
                    .registry
                    .commands_of(*id)
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect(),
            )
        });
        Registration::sorted(registrations)
    }
}

impl RouterState {
    /// Takes a command that is still waiting for permits out of its handler's queue.
    fn unqueue(&mut self, id: &str) {
        for stream in self.handlers.values_mut() {
            if !stream.queue.remove_where(|r| r.id == id).is_empty() {
                return;
            }
        }
    }
}

/// Routes `routed` to a handler; `Err` carries the response for a command that cannot be routed.
fn route(state: &mut RouterState, routed: Routed) -> Result<(), RawCommandResponse> {
    let Some(handler) =
        state
            .registry
            .command_handler(&routed.context, &routed.name, &routed.routing_key)
    else {
        let message = format!("No Handler for command: {}", routed.name);
        return Err(error_response(
            &routed.id,
            ErrorCode::NoHandlerForCommand,
            &message,
        ));
    };
    route_to(state, handler, routed)
}

/// Hands `routed` to one handler: now if it has a permit, else in its queue.
fn route_to(
    state: &mut RouterState,
    handler: HandlerId,
    routed: Routed,
) -> Result<(), RawCommandResponse> {
    let Some(stream) = state.handlers.get_mut(&handler) else {
        return Err(error_response(
            &routed.id,
            ErrorCode::NoHandlerForCommand,
            "handler stream is gone",
        ));
    };
    state.pending.reassign(&routed.id, Some(handler));
    let priority = routed.priority;
    match stream.queue.offer(routed, priority) {
        Offer::SendNow(routed) => {
            send_command(&stream.sink, &state.forwarder, routed);
            Ok(())
        }
        Offer::Queued => Ok(()),
        Offer::Full(routed) => Err(error_response(
            &routed.id,
            ErrorCode::TooManyRequests,
            "The handler's command queue is full",
        )),
    }
}

fn send_command(sink: &Sink, forwarder: &mpsc::UnboundedSender<Forward>, routed: Routed) {
    match sink {
        Sink::Local(outbox) => {
            let message = CommandProviderInbound {
                instruction_id: String::new(),
                request: Some(ToHandler::Command(routed.command)),
            };
            // A closed outbox means the stream is ending; its cleanup answers the command.
            let _ = outbox.send(Ok(message));
        }
        Sink::Remote { node, handler } => {
            let _ = forwarder.send(Forward {
                node: *node,
                handler: *handler,
                routed,
            });
        }
    }
}

/// A `CommandResponse` carrying an Axon error, with `error_message` set (clients test for it).
fn error_response(request_id: &str, code: ErrorCode, message: &str) -> RawCommandResponse {
    RawCommandResponse::from_message(&CommandResponse {
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

fn ack(instruction_id: String) -> CommandProviderInbound {
    CommandProviderInbound {
        instruction_id: String::new(),
        request: Some(ToHandler::Ack(InstructionAck {
            instruction_id,
            success: true,
            error: None,
        })),
    }
}

pub struct CommandServiceImpl {
    shared: Arc<Shared>,
}

impl CommandServiceImpl {
    pub(crate) fn new(shared: Arc<Shared>) -> CommandServiceImpl {
        CommandServiceImpl { shared }
    }
}

/// Forgets a dispatched command if its caller goes away before the answer.
struct PendingGuard<'a> {
    router: &'a CommandRouter,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.router.lock();
        if state.pending.remove(&self.id).is_some() {
            state.unqueue(&self.id);
        }
    }
}

#[tonic::async_trait]
impl CommandService for CommandServiceImpl {
    type OpenStreamStream = UnboundedReceiverStream<Result<CommandProviderInbound, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<CommandProviderOutbound>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let context = call_context(&request)?.context;
        let inbound = request.into_inner();
        let (outbox, receiver) = mpsc::unbounded_channel();
        let router = self.shared.commands.clone();
        let handler = {
            let mut state = router.lock();
            let id = state.registry.add_stream(&context);
            let stream = HandlerStream {
                sink: Sink::Local(outbox.clone()),
                queue: FlowQueue::new(HANDLER_QUEUE_COMMANDS_MAX),
            };
            state.handlers.insert(id, stream);
            id
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            read_until_end(inbound, &shared.shutdown, "command handler", |message| {
                handle_from_handler(&shared, handler, message, &outbox)
            })
            .await;
            remove_handler(&shared, handler);
        });
        Ok(Response::new(UnboundedReceiverStream::new(receiver)))
    }

    async fn dispatch(
        &self,
        request: Request<RawCommand>,
    ) -> Result<Response<RawCommandResponse>, Status> {
        let context = call_context(&request)?.context;
        let response = dispatch_command(&self.shared, context, request.into_inner()).await?;
        Ok(Response::new(response))
    }
}

/// Dispatches a command from a client of this node (gRPC or REST) and waits for its answer;
/// routing failures are in-band error responses, as Axon clients expect.
pub(crate) async fn dispatch_command(
    shared: &Shared,
    context: String,
    command: RawCommand,
) -> Result<RawCommandResponse, ApiError> {
    let started = Instant::now();
    let header = command
        .header()
        .map_err(|e| ApiError::InvalidRequest(format!("the command does not decode: {e}")))?;
    let id = header.message_identifier.clone();
    let instructions = &header.processing_instructions;
    let routing_key = text_instruction(instructions, ProcessingKey::RoutingKey)
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| id.clone());
    let priority = number_instruction(instructions, ProcessingKey::Priority).unwrap_or(0);
    let timeout = number_instruction(instructions, ProcessingKey::Timeout)
        .filter(|ms| *ms > 0)
        .map_or(shared.commands.default_timeout, |ms| {
            Duration::from_millis(ms as u64)
        });
    let router = &shared.commands;
    let registrations = router.registrations.subscribe();
    wait_for_handler(registrations, || {
        router
            .lock()
            .registry
            .command_handler(&context, &header.name, &routing_key)
            .is_some()
    })
    .await;
    let name = header.name;
    let routed = Routed {
        id,
        context: context.clone(),
        name: name.clone(),
        routing_key,
        priority,
        timeout,
        command,
    };
    let response = run_command(router, routed, None).await;
    let ok = response
        .header()
        .is_ok_and(|h| h.error_code.is_empty() && h.error_message.is_none());
    shared
        .metrics
        .record_command(&context, &name, started.elapsed(), ok);
    Ok(response)
}

/// Routes a command (to `handler` if given, else by its routing key) and waits for its answer.
async fn run_command(
    router: &CommandRouter,
    routed: Routed,
    handler: Option<HandlerId>,
) -> RawCommandResponse {
    let id = routed.id.clone();
    let (reply, answer) = oneshot::channel();
    {
        let mut state = router.lock();
        let pending = PendingCommand {
            reply,
            context: routed.context.clone(),
            name: routed.name.clone(),
        };
        if state
            .pending
            .insert(&id, None, Instant::now() + routed.timeout, pending)
            .is_err()
        {
            let message = format!("Command {id} is already being handled");
            return error_response(&id, ErrorCode::CommandDuplicated, &message);
        }
        let routed = match handler {
            Some(handler) => route_to(&mut state, handler, routed),
            None => route(&mut state, routed),
        };
        if let Err(response) = routed {
            state.pending.remove(&id);
            return response;
        }
    }
    let _guard = PendingGuard {
        router,
        id: id.clone(),
    };
    match answer.await {
        Ok(response) => response,
        Err(_) => error_response(
            &id,
            ErrorCode::ConnectionToHandlerLost,
            "The command's handler went away",
        ),
    }
}

/// One message from a handler stream.
fn handle_from_handler(
    shared: &Shared,
    handler: HandlerId,
    message: CommandProviderOutbound,
    outbox: &HandlerOutbox,
) {
    let router = &shared.commands;
    let mut changes = Vec::new();
    let mut moved_here = Vec::new();
    match message.request {
        Some(FromHandler::Subscribe(subscription)) => {
            let mut state = router.lock();
            state.registry.identify(
                handler,
                &subscription.client_id,
                &subscription.component_name,
            );
            let load_factor = u32::try_from(subscription.load_factor).unwrap_or(0);
            changes.extend(state.registry.subscribe_command(
                handler,
                &subscription.command,
                load_factor,
            ));
            tracing::debug!(command = %subscription.command, client = %subscription.client_id, "command handler subscribed");
            // The same application announced by another node has moved here (that node may be
            // gone and not yet known to be): only this registration stands for it now.
            moved_here = state
                .remote
                .handlers_of(&subscription.client_id, &state.registry);
        }
        Some(FromHandler::Unsubscribe(subscription)) => {
            changes.extend(
                router
                    .lock()
                    .registry
                    .unsubscribe_command(handler, &subscription.command),
            );
        }
        Some(FromHandler::FlowControl(flow)) => {
            let mut state = router.lock();
            state.registry.identify(handler, &flow.client_id, "");
            let state = &mut *state;
            if let Some(stream) = state.handlers.get_mut(&handler) {
                for routed in stream.queue.grant(u64::try_from(flow.permits).unwrap_or(0)) {
                    send_command(&stream.sink, &state.forwarder, routed);
                }
            }
        }
        Some(FromHandler::CommandResponse(response)) => match response.header() {
            Ok(header) => {
                let mut state = router.lock();
                if let Some(pending) = state.pending.remove(&header.request_identifier) {
                    let client = state.registry.info(handler).map(|i| i.client_id.clone());
                    drop(state);
                    let client = client.unwrap_or_default();
                    shared
                        .metrics
                        .record_handled(true, &pending.context, &pending.name, &client);
                    let _ = pending.reply.send(response);
                }
            }
            Err(e) => tracing::debug!("undecodable command response from a handler: {e}"),
        },
        Some(FromHandler::Ack(_)) | None => {}
    }
    if !message.instruction_id.is_empty() {
        let _ = outbox.send(Ok(ack(message.instruction_id)));
    }
    if !changes.is_empty() {
        router.local_changes.send_modify(|n| *n += 1);
    }
    shared.topology.publish(&changes);
    for id in moved_here {
        remove_handler(shared, id);
    }
}

/// A handler stream ended: fail what it was working on, route again what it had not received.
fn remove_handler(shared: &Shared, handler: HandlerId) {
    let router = &shared.commands;
    let changes = {
        let mut state = router.lock();
        let changes = state.registry.remove_handler(handler);
        let queued = state
            .handlers
            .remove(&handler)
            .map(|mut s| s.queue.drain())
            .unwrap_or_default();
        // Commands it had not received yet keep their deadline and are routed again below;
        // the ones it had received fail at once.
        for routed in &queued {
            state.pending.reassign(&routed.id, None);
        }
        for (id, pending) in state.pending.remove_handler(handler) {
            let _ = pending.reply.send(error_response(
                &id,
                ErrorCode::ConnectionToHandlerLost,
                "Connection to the command's handler was lost",
            ));
        }
        for routed in queued {
            let id = routed.id.clone();
            if let Err(response) = route(&mut state, routed) {
                if let Some(pending) = state.pending.remove(&id) {
                    let _ = pending.reply.send(response);
                }
            }
        }
        changes
    };
    if let Some(info) = changes.first().map(|c| c.handler.client_id.clone()) {
        tracing::info!(client = %info, "command handler disconnected");
        router.local_changes.send_modify(|n| *n += 1);
    }
    shared.topology.publish(&changes);
}

/// Sweeps overdue commands until shutdown.
pub(crate) async fn run_timeouts(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                shared.commands.expire(Instant::now());
                forget_stale_nodes(&shared);
            }
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers on other nodes

/// Runs a command forwarded by another node on the local handler it names.
pub(crate) async fn dispatch_forwarded(
    shared: &Shared,
    forwarded: ForwardedCommand,
) -> Result<RawCommandResponse, Status> {
    let command = forwarded
        .command
        .ok_or_else(|| Status::invalid_argument("forwarded command without a command"))?;
    let handler = forwarded
        .handler
        .parse()
        .map(HandlerId)
        .map_err(|_| Status::invalid_argument("bad handler id"))?;
    let header = command
        .header()
        .map_err(|e| Status::invalid_argument(format!("the command does not decode: {e}")))?;
    let instructions = &header.processing_instructions;
    let timeout = number_instruction(instructions, ProcessingKey::Timeout)
        .filter(|ms| *ms > 0)
        .map_or(shared.commands.default_timeout, |ms| {
            Duration::from_millis(ms as u64)
        });
    let routed = Routed {
        id: header.message_identifier.clone(),
        context: forwarded.context,
        name: header.name.clone(),
        routing_key: String::new(),
        priority: number_instruction(instructions, ProcessingKey::Priority).unwrap_or(0),
        timeout,
        command,
    };
    if !matches!(
        shared
            .commands
            .lock()
            .handlers
            .get(&handler)
            .map(|h| &h.sink),
        Some(Sink::Local(_))
    ) {
        return Ok(error_response(
            &routed.id,
            ErrorCode::ConnectionToHandlerLost,
            "The command's handler is no longer connected to this node",
        ));
    }
    Ok(run_command(&shared.commands, routed, Some(handler)).await)
}

/// Marks that this node's own handlers changed, so the others hear of it at once.
pub(crate) fn local_handlers_changed(shared: &Shared) {
    shared.commands.local_changes.send_modify(|n| *n += 1);
}

/// Replaces what is known of another node's command handlers with its announcement.
pub(crate) fn remote_handlers(shared: &Shared, announcement: &HandlerAnnouncement) {
    let Some(node) = announcement.from.as_ref().map(|f| f.id) else {
        return;
    };
    let announced: Vec<AnnouncedHandler> = announcement
        .handlers
        .iter()
        .filter(|h| !h.commands.is_empty())
        .cloned()
        .collect();
    let router = &shared.commands;
    let Some(old) = router
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
        let mut state = router.lock();
        // An application announced here and also by another node has moved: the newest stands.
        for handler in &announced {
            moved.extend(
                state
                    .remote
                    .handlers_of(&handler.client_id, &state.registry),
            );
        }
        let mut ids = Vec::new();
        for announced in &announced {
            let Some((info, remote_id)) = crate::cluster::remote_handler_info(node, announced)
            else {
                continue;
            };
            let id = state.registry.add_handler(info);
            let mut queue = FlowQueue::new(HANDLER_QUEUE_COMMANDS_MAX);
            // The remote node applies the handler's own flow control.
            let _ = queue.grant(u64::MAX / 2);
            let sink = Sink::Remote {
                node,
                handler: remote_id,
            };
            state.handlers.insert(id, HandlerStream { sink, queue });
            for command in &announced.commands {
                let load_factor = u32::try_from(command.load_factor).unwrap_or(0);
                changes.extend(
                    state
                        .registry
                        .subscribe_command(id, &command.name, load_factor),
                );
            }
            ids.push(id);
        }
        tracing::info!(
            node,
            handlers = ids.len(),
            "command handlers of another node updated"
        );
        state.remote.insert(node, announced, ids, Instant::now());
    }
    for id in moved {
        remove_handler(shared, id);
    }
    router.registrations.send_modify(|n| *n += 1);
    shared.topology.publish(&changes);
}

/// Drops the handlers of nodes that stopped announcing them.
fn forget_stale_nodes(shared: &Shared) {
    let stale = shared
        .commands
        .lock()
        .remote
        .remove_stale(Instant::now(), Duration::from_millis(REMOTE_STALE_MS));
    for (node, handlers) in stale {
        tracing::info!(
            node,
            "node stopped announcing; its command handlers are gone"
        );
        for id in handlers {
            remove_handler(shared, id);
        }
    }
}

/// This node's own command and query handlers, as announced to the others.
fn local_announcement(shared: &Shared) -> HandlerAnnouncement {
    let state = shared.commands.lock();
    let mut handlers: Vec<AnnouncedHandler> = state
        .handlers
        .iter()
        .filter(|(_, h)| matches!(h.sink, Sink::Local(_)))
        .filter_map(|(id, _)| {
            let info = state.registry.info(*id)?;
            let commands: Vec<AnnouncedCommand> = state
                .registry
                .commands_of(*id)
                .into_iter()
                .map(|(name, load_factor)| AnnouncedCommand {
                    name,
                    load_factor: i32::try_from(load_factor).unwrap_or(i32::MAX),
                })
                .collect();
            (!commands.is_empty()).then(|| AnnouncedHandler {
                handler: id.0.to_string(),
                context: info.context.clone(),
                client_id: info.client_id.clone(),
                component_name: info.component.clone(),
                commands,
                queries: Vec::new(),
            })
        })
        .collect();
    handlers.sort_by(|a, b| a.handler.cmp(&b.handler));
    drop(state);
    handlers.extend(crate::queries::local_handlers(shared));
    HandlerAnnouncement {
        from: Some(shared.cluster.me.clone()),
        handlers,
    }
}

/// Announces this node's handlers to every other known node, every second and on each change.
pub(crate) async fn run_announcer(shared: Arc<Shared>) {
    let mut changes = shared.commands.local_changes.subscribe();
    let mut ticker = tokio::time::interval(Duration::from_millis(ANNOUNCE_EVERY_MS));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = changes.changed() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let peers: Vec<u64> = shared
            .cluster
            .known_nodes()
            .iter()
            .map(|n| n.id)
            .filter(|id| *id != shared.cluster.me.id)
            .collect();
        if peers.is_empty() {
            continue;
        }
        let announcement = local_announcement(&shared);
        for peer in peers {
            let Some(mut client) = shared.cluster.client(peer) else {
                continue;
            };
            let request = shared.cluster.request(announcement.clone());
            tokio::spawn(async move {
                if let Err(status) = client.announce_handlers(request).await {
                    tracing::debug!(peer, "handler announcement not delivered: {status}");
                }
            });
        }
    }
}

/// Sends commands routed to other nodes' handlers, each in its own task.
pub(crate) async fn run_forwarder(shared: Arc<Shared>) {
    let receiver = shared
        .commands
        .forwards
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Some(mut forwards) = receiver else {
        return;
    };
    loop {
        let forward = tokio::select! {
            forward = forwards.recv() => forward,
            _ = shared.shutdown.cancelled() => return,
        };
        let Some(forward) = forward else { return };
        tokio::spawn(forward_command(shared.clone(), forward));
    }
}

/// Sends one command to its handler's node and answers its caller. When the node cannot be
/// reached at all, the command never left: that node's handlers are forgotten and the command is
/// routed again.
async fn forward_command(shared: Arc<Shared>, forward: Forward) {
    let Forward {
        node,
        handler,
        routed,
    } = forward;
    let id = routed.id.clone();
    let outcome = match shared.cluster.client(node) {
        Some(mut client) => {
            let mut request = shared.cluster.request(ForwardedCommand {
                handler: handler.to_string(),
                context: routed.context.clone(),
                command: Some(routed.command.clone()),
            });
            request.set_timeout(routed.timeout);
            client
                .dispatch_command(request)
                .await
                .map(|r| r.into_inner())
        }
        None => Err(Status::unavailable("the node is not reachable")),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(status) if status.code() == tonic::Code::Unavailable => {
            tracing::info!(node, "handler's node unreachable; its command handlers are dropped and the command is routed again");
            // Unassigned first, so dropping the node's handlers does not fail this command.
            shared.commands.lock().pending.reassign(&id, None);
            forget_node(&shared, node);
            let mut state = shared.commands.lock();
            if !state.pending.contains(&id) {
                return;
            }
            match route(&mut state, routed) {
                Ok(()) => return,
                Err(response) => response,
            }
        }
        Err(status) => error_response(
            &id,
            ErrorCode::ConnectionToHandlerLost,
            &format!(
                "Forwarding the command to its handler's node failed: {}",
                status.message()
            ),
        ),
    };
    if let Some(pending) = shared.commands.lock().pending.remove(&id) {
        let _ = pending.reply.send(response);
    }
}

/// Drops every handler of a node that cannot be reached; commands still assigned to one of them
/// fail with AXONIQ-4001.
fn forget_node(shared: &Shared, node: u64) {
    let handlers = shared.commands.lock().remote.remove(node);
    for id in handlers {
        remove_handler(shared, id);
    }
}
