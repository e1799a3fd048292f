//! `CommandService` on 8124. Handler applications open `OpenStream`, subscribe command names and
//! grant permits; `Dispatch` picks a handler by consistent hashing on the command's routing key,
//! sends it the command as received (when the handler has a permit, else it waits by priority),
//! and answers the caller with the handler's `CommandResponse`. A handler that disconnects fails
//! its in-flight commands at once (AXONIQ-4001) and its queued ones are routed again; commands not
//! answered in time fail with AXONIQ-4002. "No handler" is an in-band response (AXONIQ-4000).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use myelin_routing::{FlowQueue, HandlerId, HandlerRegistry, Offer, PendingRequests};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::gateway::call_context;
use crate::handler_stream::read_until_end;
use crate::handler_wait::wait_for_handler;
use crate::node::Shared;

/// Commands waiting for permits per handler (Axon Server's `command-queue-capacity-per-client`).
const HANDLER_QUEUE_COMMANDS_MAX: usize = 10_000;

type HandlerOutbox = mpsc::UnboundedSender<Result<CommandProviderInbound, Status>>;

/// Command routing state shared by the service's calls.
pub struct CommandRouter {
    state: Mutex<RouterState>,
    default_timeout: Duration,
    /// Bumped whenever a handler subscribes a command.
    registrations: watch::Sender<u64>,
}

#[derive(Default)]
struct RouterState {
    registry: HandlerRegistry,
    handlers: HashMap<HandlerId, HandlerStream>,
    pending: PendingRequests<PendingCommand>,
}

struct HandlerStream {
    outbox: HandlerOutbox,
    queue: FlowQueue<Routed>,
}

/// A command with what routing needs to send it (again).
struct Routed {
    id: String,
    context: String,
    name: String,
    routing_key: String,
    priority: i64,
    command: RawCommand,
}

struct PendingCommand {
    reply: oneshot::Sender<RawCommandResponse>,
}

impl CommandRouter {
    pub(crate) fn new(default_timeout: Duration) -> CommandRouter {
        CommandRouter {
            state: Mutex::new(RouterState::default()),
            default_timeout,
            registrations: watch::channel(0).0,
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
            send_command(&stream.outbox, routed.command);
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

fn send_command(outbox: &HandlerOutbox, command: RawCommand) {
    let message = CommandProviderInbound {
        instruction_id: String::new(),
        request: Some(ToHandler::Command(command)),
    };
    // A closed outbox means the stream is ending; its cleanup answers the command.
    let _ = outbox.send(Ok(message));
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
                outbox: outbox.clone(),
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
        let command = request.into_inner();
        let header = command
            .header()
            .map_err(|e| Status::invalid_argument(format!("the command does not decode: {e}")))?;
        let id = header.message_identifier.clone();
        let instructions = &header.processing_instructions;
        let routing_key = text_instruction(instructions, ProcessingKey::RoutingKey)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| id.clone());
        let priority = number_instruction(instructions, ProcessingKey::Priority).unwrap_or(0);
        let timeout = number_instruction(instructions, ProcessingKey::Timeout)
            .filter(|ms| *ms > 0)
            .map_or(self.shared.commands.default_timeout, |ms| {
                Duration::from_millis(ms as u64)
            });
        let router = &self.shared.commands;
        let registrations = router.registrations.subscribe();
        wait_for_handler(registrations, || {
            router
                .lock()
                .registry
                .command_handler(&context, &header.name, &routing_key)
                .is_some()
        })
        .await;
        let (reply, answer) = oneshot::channel();
        {
            let mut state = router.lock();
            let pending = PendingCommand { reply };
            if state
                .pending
                .insert(&id, None, Instant::now() + timeout, pending)
                .is_err()
            {
                let message = format!("Command {id} is already being handled");
                return Ok(Response::new(error_response(
                    &id,
                    ErrorCode::CommandDuplicated,
                    &message,
                )));
            }
            let routed = Routed {
                id: id.clone(),
                context,
                name: header.name,
                routing_key,
                priority,
                command,
            };
            if let Err(response) = route(&mut state, routed) {
                state.pending.remove(&id);
                return Ok(Response::new(response));
            }
        }
        let _guard = PendingGuard {
            router,
            id: id.clone(),
        };
        match answer.await {
            Ok(response) => Ok(Response::new(response)),
            Err(_) => Ok(Response::new(error_response(
                &id,
                ErrorCode::ConnectionToHandlerLost,
                "The command's handler went away",
            ))),
        }
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
            if let Some(stream) = state.handlers.get_mut(&handler) {
                for routed in stream.queue.grant(u64::try_from(flow.permits).unwrap_or(0)) {
                    send_command(&stream.outbox, routed.command);
                }
            }
        }
        Some(FromHandler::CommandResponse(response)) => match response.header() {
            Ok(header) => {
                if let Some(pending) = router.lock().pending.remove(&header.request_identifier) {
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
    shared.topology.publish(&changes);
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
    }
    shared.topology.publish(&changes);
}

/// Sweeps overdue commands until shutdown.
pub(crate) async fn run_timeouts(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => shared.commands.expire(Instant::now()),
            _ = shared.shutdown.cancelled() => return,
        }
    }
}
