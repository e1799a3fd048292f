//! Command and query round trips: callers send through the server to handler applications that
//! run inside this process (tokio tasks, each on an HTTP/2 connection of its own, as separate
//! application instances would be), and a bare unary call (`GetLastToken`) as their baseline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use myelin_protocol::grpc::command::command_provider_inbound::Request as CommandIn;
use myelin_protocol::grpc::command::command_provider_outbound::Request as CommandOut;
use myelin_protocol::grpc::command::{
    Command, CommandProviderInbound, CommandProviderOutbound, CommandResponse, CommandSubscription,
};
use myelin_protocol::grpc::event::GetLastTokenRequest;
use myelin_protocol::grpc::query::query_provider_inbound::Request as QueryIn;
use myelin_protocol::grpc::query::query_provider_outbound::Request as QueryOut;
use myelin_protocol::grpc::query::{
    QueryComplete, QueryProviderInbound, QueryProviderOutbound, QueryRequest, QueryResponse,
    QuerySubscription,
};
use myelin_protocol::grpc::{
    meta_data_value, ErrorMessage, FlowControl, InstructionAck, MetaDataValue,
    ProcessingInstruction, ProcessingKey, SerializedObject,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::grpc::{Client, Commands, Connection, Pool, Queries};
use crate::report::Latencies;
use crate::workloads::{CpuProbe, Window};
use crate::BoxError;

pub const COMMAND_NAME: &str = "BenchCommand";
pub const QUERY_NAME: &str = "BenchQuery";
/// The component every handler instance belongs to: a query goes to one instance of it.
const HANDLER_COMPONENT: &str = "myelin-bench-handlers";
const CALLER_COMPONENT: &str = "myelin-bench-callers";
/// Axon Framework's command and query handler flow control as the brief for this bench states it.
const INITIAL_PERMITS: i64 = 5000;
const REFILL_PERMITS: u64 = 1250;
/// Subscription acks and the end of a handler's stream must come within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one round trip may take before the cell fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the callers of a cell call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `EventStore.GetLastToken`: a unary call the server answers by itself.
    LastToken,
    /// `CommandService.Dispatch` of `BenchCommand`, answered by a command handler.
    Command,
    /// `QueryService.Query` of `BenchQuery` (one result), answered by a query handler.
    Query,
}

// -------------------------------------------------------------------------------------------
// handlers

/// Handler application instances running in this process.
pub struct Handlers {
    instances: Vec<Instance>,
}

struct Instance {
    handled: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), BoxError>>,
}

impl Handlers {
    /// Starts `count` instances handling `kind` (commands or queries), each on its own connection,
    /// and returns once every subscription is acknowledged.
    pub async fn start(
        endpoint: &str,
        kind: Kind,
        count: usize,
        run_id: &str,
    ) -> Result<Handlers, BoxError> {
        let mut handlers = Handlers {
            instances: Vec::with_capacity(count),
        };
        for index in 0..count {
            let client_id = format!("myelin-bench-{run_id}-handler-{index}");
            let started = match kind {
                Kind::Command => start_command_handler(endpoint, client_id).await,
                Kind::Query => start_query_handler(endpoint, client_id).await,
                Kind::LastToken => Err("GetLastToken has no handlers".into()),
            };
            match started {
                Ok(instance) => handlers.instances.push(instance),
                Err(e) => {
                    // Best effort: the error that matters is this one.
                    let _ = handlers.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(handlers)
    }

    /// Messages each instance has answered so far.
    pub fn handled(&self) -> Vec<u64> {
        self.instances
            .iter()
            .map(|i| i.handled.load(Ordering::Relaxed))
            .collect()
    }

    /// Closes every instance's stream and waits until the server has ended it too, i.e. has
    /// removed the handler: the next cell must not route to an instance that is going away.
    pub async fn stop(self) -> Result<(), BoxError> {
        let mut first_error = None;
        for instance in self.instances {
            let _ = instance.stop.send(());
            let outcome = match instance.task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(format!("a handler task failed: {e}").into()),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn bench_payload(r#type: &str, data: Vec<u8>) -> Option<SerializedObject> {
    Some(SerializedObject {
        r#type: r#type.to_string(),
        revision: String::new(),
        data,
    })
}

/// The small result every handler answers with.
fn answer_payload() -> Option<SerializedObject> {
    bench_payload(
        "io.myelin.bench.BenchResult",
        b"{\"accepted\":true}".to_vec(),
    )
}

fn check_ack(ack: &InstructionAck, expected: &str) -> Result<(), BoxError> {
    if ack.instruction_id != expected {
        return Err(format!(
            "expected the ack of {expected}, got one of {}",
            ack.instruction_id
        )
        .into());
    }
    if !ack.success {
        return Err(format!("the subscription was refused: {:?}", ack.error).into());
    }
    Ok(())
}

/// Reads what is left of a stream the client side has closed, until the server ends it.
async fn wait_for_end<T>(mut inbound: Streaming<T>, what: &str) -> Result<(), BoxError> {
    let drained = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    drained.map_err(|_| format!("the server did not end a closed {what} stream").into())
}

async fn start_command_handler(endpoint: &str, client_id: String) -> Result<Instance, BoxError> {
    let connection = Connection::open(endpoint).await?;
    let (requests, outbound) = mpsc::channel::<CommandProviderOutbound>(1024);
    let send = |request: CommandOut, instruction_id: &str| CommandProviderOutbound {
        request: Some(request),
        instruction_id: instruction_id.to_string(),
    };
    requests
        .send(send(
            CommandOut::FlowControl(FlowControl {
                client_id: client_id.clone(),
                permits: INITIAL_PERMITS,
            }),
            "",
        ))
        .await
        .map_err(|_| "the command stream closed")?;
    let subscription_id = uuid::Uuid::new_v4().to_string();
    requests
        .send(send(
            CommandOut::Subscribe(CommandSubscription {
                message_id: subscription_id.clone(),
                command: COMMAND_NAME.to_string(),
                component_name: HANDLER_COMPONENT.to_string(),
                client_id: client_id.clone(),
                load_factor: 100,
            }),
            &subscription_id,
        ))
        .await
        .map_err(|_| "the command stream closed")?;
    let mut inbound = connection
        .commands
        .clone()
        .open_stream(ReceiverStream::new(outbound))
        .await
        .map_err(|s| format!("CommandService.OpenStream failed: {}", s.message()))?
        .into_inner();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message())
        .await
        .map_err(|_| "no ack of the command subscription")?
        .map_err(|s| format!("the command stream failed: {}", s.message()))?;
    match first.and_then(|m| m.request) {
        Some(CommandIn::Ack(ack)) => check_ack(&ack, &subscription_id)?,
        other => return Err(format!("expected the subscription's ack, got {other:?}").into()),
    }
    let handled = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve_commands(
        connection,
        requests,
        inbound,
        client_id,
        handled.clone(),
        stopped,
    ));
    Ok(Instance {
        handled,
        stop,
        task,
    })
}

/// Answers every command at once, and grants permits as Axon Framework does.
async fn serve_commands(
    connection: Connection,
    requests: mpsc::Sender<CommandProviderOutbound>,
    mut inbound: Streaming<CommandProviderInbound>,
    client_id: String,
    handled: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), BoxError> {
    let mut since_refill = 0u64;
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            _ = &mut stop => break,
        };
        let message = message
            .map_err(|s| format!("a command handler's stream failed: {}", s.message()))?
            .ok_or("the server ended a command handler's stream")?;
        let Some(CommandIn::Command(command)) = message.request else {
            continue;
        };
        let response = CommandResponse {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            request_identifier: command.message_identifier,
            payload: answer_payload(),
            ..Default::default()
        };
        let mut out = vec![CommandOut::CommandResponse(response)];
        handled.fetch_add(1, Ordering::Relaxed);
        since_refill += 1;
        if since_refill == REFILL_PERMITS {
            since_refill = 0;
            out.push(CommandOut::FlowControl(FlowControl {
                client_id: client_id.clone(),
                permits: REFILL_PERMITS as i64,
            }));
        }
        for request in out {
            let message = CommandProviderOutbound {
                request: Some(request),
                instruction_id: String::new(),
            };
            requests
                .send(message)
                .await
                .map_err(|_| "a command handler's stream closed")?;
        }
    }
    drop(requests);
    let ended = wait_for_end(inbound, "command handler").await;
    drop(connection);
    ended
}

async fn start_query_handler(endpoint: &str, client_id: String) -> Result<Instance, BoxError> {
    let connection = Connection::open(endpoint).await?;
    let (requests, outbound) = mpsc::channel::<QueryProviderOutbound>(1024);
    let send = |request: QueryOut, instruction_id: &str| QueryProviderOutbound {
        request: Some(request),
        instruction_id: instruction_id.to_string(),
    };
    requests
        .send(send(
            QueryOut::FlowControl(FlowControl {
                client_id: client_id.clone(),
                permits: INITIAL_PERMITS,
            }),
            "",
        ))
        .await
        .map_err(|_| "the query stream closed")?;
    let subscription_id = uuid::Uuid::new_v4().to_string();
    requests
        .send(send(
            QueryOut::Subscribe(QuerySubscription {
                message_id: subscription_id.clone(),
                query: QUERY_NAME.to_string(),
                result_name: "io.myelin.bench.BenchResult".to_string(),
                component_name: HANDLER_COMPONENT.to_string(),
                client_id: client_id.clone(),
            }),
            &subscription_id,
        ))
        .await
        .map_err(|_| "the query stream closed")?;
    let mut inbound = connection
        .queries
        .clone()
        .open_stream(ReceiverStream::new(outbound))
        .await
        .map_err(|s| format!("QueryService.OpenStream failed: {}", s.message()))?
        .into_inner();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message())
        .await
        .map_err(|_| "no ack of the query subscription")?
        .map_err(|s| format!("the query stream failed: {}", s.message()))?;
    match first.and_then(|m| m.request) {
        Some(QueryIn::Ack(ack)) => check_ack(&ack, &subscription_id)?,
        other => return Err(format!("expected the subscription's ack, got {other:?}").into()),
    }
    let handled = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve_queries(
        connection,
        requests,
        inbound,
        client_id,
        handled.clone(),
        stopped,
    ));
    Ok(Instance {
        handled,
        stop,
        task,
    })
}

/// Answers every query at once with one result and its completion, and grants permits as Axon
/// Framework does.
async fn serve_queries(
    connection: Connection,
    requests: mpsc::Sender<QueryProviderOutbound>,
    mut inbound: Streaming<QueryProviderInbound>,
    client_id: String,
    handled: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), BoxError> {
    let mut since_refill = 0u64;
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            _ = &mut stop => break,
        };
        let message = message
            .map_err(|s| format!("a query handler's stream failed: {}", s.message()))?
            .ok_or("the server ended a query handler's stream")?;
        let query = match message.request {
            Some(QueryIn::Query(query)) => query,
            Some(QueryIn::QueryCancel(cancel)) => {
                return Err(format!("the server cancelled query {cancel:?}").into())
            }
            _ => continue,
        };
        let response = QueryResponse {
            message_identifier: uuid::Uuid::new_v4().to_string(),
            request_identifier: query.message_identifier.clone(),
            payload: answer_payload(),
            ..Default::default()
        };
        let complete = QueryComplete {
            message_id: uuid::Uuid::new_v4().to_string(),
            request_id: query.message_identifier,
        };
        let mut out = vec![
            QueryOut::QueryResponse(response),
            QueryOut::QueryComplete(complete),
        ];
        handled.fetch_add(1, Ordering::Relaxed);
        since_refill += 1;
        if since_refill == REFILL_PERMITS {
            since_refill = 0;
            out.push(QueryOut::FlowControl(FlowControl {
                client_id: client_id.clone(),
                permits: REFILL_PERMITS as i64,
            }));
        }
        for request in out {
            let message = QueryProviderOutbound {
                request: Some(request),
                instruction_id: String::new(),
            };
            requests
                .send(message)
                .await
                .map_err(|_| "a query handler's stream closed")?;
        }
    }
    drop(requests);
    let ended = wait_for_end(inbound, "query handler").await;
    drop(connection);
    ended
}

// -------------------------------------------------------------------------------------------
// callers

enum Caller {
    LastToken(Client),
    Command { client: Commands, client_id: String },
    Query { client: Queries, client_id: String },
}

fn instruction(key: ProcessingKey, value: meta_data_value::Data) -> ProcessingInstruction {
    ProcessingInstruction {
        key: key as i32,
        value: Some(MetaDataValue { data: Some(value) }),
    }
}

fn describe(code: &str, message: Option<&ErrorMessage>) -> String {
    let text = message.map_or("", |m| m.message.as_str());
    format!("{code} {text}")
}

impl Caller {
    fn new(kind: Kind, connection: Connection, client_id: String) -> Caller {
        match kind {
            Kind::LastToken => Caller::LastToken(connection.events),
            Kind::Command => Caller::Command {
                client: connection.commands,
                client_id,
            },
            Kind::Query => Caller::Query {
                client: connection.queries,
                client_id,
            },
        }
    }

    /// One round trip; fails on any error, in band or not.
    async fn call(&mut self) -> Result<(), BoxError> {
        match self {
            Caller::LastToken(client) => {
                client
                    .get_last_token(GetLastTokenRequest {})
                    .await
                    .map_err(|s| format!("GetLastToken failed: {}", s.message()))?;
                Ok(())
            }
            Caller::Command { client, client_id } => {
                let id = uuid::Uuid::new_v4().to_string();
                // A random routing key, as an aggregate identifier would be.
                let routing_key = uuid::Uuid::new_v4().to_string();
                let payload = format!("{{\"id\":\"{routing_key}\"}}").into_bytes();
                let command = Command {
                    message_identifier: id.clone(),
                    name: COMMAND_NAME.to_string(),
                    timestamp: myelin_testkit::now_ms(),
                    payload: bench_payload("io.myelin.bench.BenchCommand", payload),
                    processing_instructions: vec![instruction(
                        ProcessingKey::RoutingKey,
                        meta_data_value::Data::TextValue(routing_key),
                    )],
                    client_id: client_id.clone(),
                    component_name: CALLER_COMPONENT.to_string(),
                    ..Default::default()
                };
                let response = client
                    .dispatch(command)
                    .await
                    .map_err(|s| format!("Dispatch failed: {}", s.message()))?
                    .into_inner();
                if !response.error_code.is_empty() || response.error_message.is_some() {
                    let error = describe(&response.error_code, response.error_message.as_ref());
                    return Err(format!("command {id} failed: {error}").into());
                }
                if response.request_identifier != id {
                    return Err(format!(
                        "command {id} was answered for {}",
                        response.request_identifier
                    )
                    .into());
                }
                Ok(())
            }
            Caller::Query { client, client_id } => {
                let id = uuid::Uuid::new_v4().to_string();
                let query = QueryRequest {
                    message_identifier: id.clone(),
                    query: QUERY_NAME.to_string(),
                    timestamp: myelin_testkit::now_ms(),
                    payload: bench_payload(
                        "io.myelin.bench.BenchQuery",
                        b"{\"what\":\"anything\"}".to_vec(),
                    ),
                    processing_instructions: vec![instruction(
                        ProcessingKey::NrOfResults,
                        meta_data_value::Data::NumberValue(1),
                    )],
                    client_id: client_id.clone(),
                    component_name: CALLER_COMPONENT.to_string(),
                    ..Default::default()
                };
                let mut stream = client
                    .query(query)
                    .await
                    .map_err(|s| format!("Query failed: {}", s.message()))?
                    .into_inner();
                let mut results = 0;
                while let Some(response) = stream
                    .message()
                    .await
                    .map_err(|s| format!("query {id} broke: {}", s.message()))?
                {
                    if !response.error_code.is_empty() || response.error_message.is_some() {
                        let error = describe(&response.error_code, response.error_message.as_ref());
                        return Err(format!("query {id} failed: {error}").into());
                    }
                    if response.request_identifier != id {
                        return Err(format!(
                            "query {id} got a result for {}",
                            response.request_identifier
                        )
                        .into());
                    }
                    results += 1;
                }
                if results != 1 {
                    return Err(format!("query {id} got {results} results, expected 1").into());
                }
                Ok(())
            }
        }
    }
}

pub struct CallResult {
    pub calls: usize,
    /// From the end of the warm-up to the last measured call's answer.
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub cores: (Option<f64>, Option<f64>),
    /// Messages each handler instance answered during the measured window (about: calls that
    /// straddle its edges count where they were answered).
    pub handled: Vec<u64>,
}

/// `callers` callers, each making `kind` calls one after the other as fast as answers come back,
/// for the window; calls started during the measured window count. Callers share the pool's
/// connections (as append clients do).
pub async fn call_cell(
    pool: &Pool,
    kind: Kind,
    callers: usize,
    handlers: Option<&Handlers>,
    run_id: &str,
    window: Window,
    cpu: &CpuProbe,
) -> Result<CallResult, BoxError> {
    let start = Instant::now();
    let measured_from = start + window.warmup;
    let end = measured_from + window.measure;
    let mut tasks = JoinSet::new();
    for index in 0..callers {
        let client_id = format!("myelin-bench-{run_id}-caller-{index}");
        let mut caller = Caller::new(kind, pool.connection(index), client_id);
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            let mut last_done = None;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                tokio::time::timeout(CALL_TIMEOUT, caller.call())
                    .await
                    .map_err(|_| format!("a {kind:?} call took longer than {CALL_TIMEOUT:?}"))??;
                let done = Instant::now();
                if began >= measured_from {
                    latencies.push(done - began);
                    last_done = Some(done);
                }
            }
            Ok::<_, BoxError>((latencies, last_done))
        });
    }
    tokio::time::sleep_until(measured_from).await;
    let mark = cpu.mark();
    let handled_before = handlers.map(Handlers::handled).unwrap_or_default();
    tokio::time::sleep_until(end).await;
    let cores = cpu.cores_since(&mark);

    let mut latencies = Latencies::default();
    let mut last_done = measured_from;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((caller_latencies, caller_last))) => {
                latencies.extend(caller_latencies);
                if let Some(done) = caller_last {
                    last_done = last_done.max(done);
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("a caller task failed: {e}").into());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let handled = handlers
        .map(Handlers::handled)
        .unwrap_or_default()
        .iter()
        .zip(handled_before.iter().chain(std::iter::repeat(&0)))
        .map(|(after, before)| after - before)
        .collect();
    latencies.sort();
    Ok(CallResult {
        calls: latencies.len(),
        elapsed: last_done - measured_from,
        latencies,
        cores,
        handled,
    })
}
