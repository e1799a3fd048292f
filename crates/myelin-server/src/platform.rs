//! `PlatformService` on 8124: where an application starts. `GetPlatformServer` names the leader's
//! node (or this one, when it leads or no leader is known); `OpenStream` is the instruction stream:
//! registration, heartbeats and processor reports come in; acknowledgements (for every message
//! that carries an `instruction_id`) go out, and `RequestReconnect` when leadership moves away.

use std::collections::BTreeMap;
use std::sync::Arc;

use myelin_protocol::wire::control::platform_inbound_instruction::Request as Inbound;
use myelin_protocol::wire::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::wire::control::platform_service_server::PlatformService;
use myelin_protocol::wire::control::{
    ClientIdentification, NodeInfo, PlatformInboundInstruction, PlatformInfo,
    PlatformOutboundInstruction,
};
use myelin_protocol::wire::{ErrorMessage, InstructionAck};
use myelin_protocol::ErrorCode;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::clients::ConnectedClient;
use crate::gateway::call_context;
use crate::node::Shared;

/// Outbound instructions buffered per client before the stream applies back-pressure.
const OUTBOUND_QUEUE_MAX: usize = 1024;

pub struct Platform {
    shared: Arc<Shared>,
}

impl Platform {
    pub(crate) fn new(shared: Arc<Shared>) -> Platform {
        Platform { shared }
    }
}

#[tonic::async_trait]
impl PlatformService for Platform {
    async fn get_platform_server(
        &self,
        request: Request<ClientIdentification>,
    ) -> Result<Response<PlatformInfo>, Status> {
        let context = call_context(&request)?;
        let client = request.into_inner();
        tracing::debug!(client = %client.client_id, component = %client.component_name, context = %context.context, "platform server requested");
        let status = self.shared.group.status().borrow().clone();
        let leader = status
            .leader_id
            .filter(|id| *id != self.shared.cluster.me.id)
            .and_then(|id| self.shared.cluster.node(id));
        if let Some(leader) = leader {
            tracing::debug!(leader = %leader.name, "client sent to the leader's node");
            return Ok(Response::new(PlatformInfo {
                primary: Some(NodeInfo {
                    host_name: leader.hostname,
                    grpc_port: i32::try_from(leader.grpc_port).unwrap_or(0),
                    http_port: i32::try_from(leader.http_port).unwrap_or(0),
                    version: 0,
                    node_name: leader.name,
                }),
                same_connection: false,
            }));
        }
        let advertised = &self.shared.advertised;
        Ok(Response::new(PlatformInfo {
            primary: Some(NodeInfo {
                host_name: advertised.hostname.clone(),
                grpc_port: i32::from(advertised.grpc_port),
                http_port: i32::from(advertised.http_port),
                version: 0,
                node_name: advertised.name.clone(),
            }),
            same_connection: true,
        }))
    }

    type OpenStreamStream = ReceiverStream<Result<PlatformOutboundInstruction, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<PlatformInboundInstruction>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let context = call_context(&request)?.context;
        let mut inbound = request.into_inner();
        let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE_MAX);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut stream_id: Option<String> = None;
            let watch_id = uuid::Uuid::new_v4().to_string();
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    _ = shared.shutdown.cancelled() => break,
                };
                let instruction = match message {
                    Ok(Some(instruction)) => instruction,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!("platform stream ended: {status}");
                        break;
                    }
                };
                let ack_needed = !instruction.instruction_id.is_empty();
                let handled = match instruction.request {
                    Some(Inbound::Register(client)) => {
                        let id = format!("{}.{}", client.client_id, uuid::Uuid::new_v4());
                        tracing::info!(client = %client.client_id, component = %client.component_name, context = %context, "application connected");
                        shared.clients.register(
                            ConnectedClient {
                                stream_id: id.clone(),
                                context: context.clone(),
                                client_id: client.client_id,
                                component_name: client.component_name,
                                version: client.version,
                                tags: client.tags,
                                processors: BTreeMap::new(),
                            },
                            outbound.clone(),
                        );
                        if let Some(previous) = stream_id.replace(id) {
                            shared.clients.remove(&previous);
                        }
                        true
                    }
                    Some(Inbound::EventProcessorInfo(info)) => match &stream_id {
                        Some(id) => shared.clients.processor_info(id, info),
                        None => false,
                    },
                    Some(Inbound::Heartbeat(_)) => true,
                    // Answers to the instructions we sent (processor control).
                    Some(Inbound::Ack(ack)) => {
                        shared.clients.instruction_acknowledged(
                            &ack.instruction_id,
                            ack.success,
                            ack.error,
                        );
                        true
                    }
                    Some(Inbound::Result(result)) => {
                        shared.clients.instruction_result(
                            &result.instruction_id,
                            result.success,
                            result.error,
                        );
                        true
                    }
                    Some(Inbound::SubscribeTopologyChanges(_)) => {
                        let mut current = shared.commands.snapshot(&context);
                        current.extend(shared.queries.snapshot(&context));
                        shared
                            .topology
                            .watch(&watch_id, &context, outbound.clone(), current);
                        true
                    }
                    Some(Inbound::UnsubscribeTopologyChanges(_)) => {
                        shared.topology.unwatch(&watch_id);
                        true
                    }
                    None => false,
                };
                if ack_needed {
                    let ack = acknowledgement(instruction.instruction_id, handled);
                    if outbound.send(Ok(ack)).await.is_err() {
                        break;
                    }
                }
            }
            shared.topology.unwatch(&watch_id);
            if let Some(id) = stream_id {
                if let Some(client) = shared.clients.remove(&id) {
                    tracing::info!(client = %client.client_id, context = %client.context, "application disconnected");
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Sends `RequestReconnect` to this node's clients whenever another node becomes the leader, so
/// applications follow the leader (where appends are not forwarded).
pub(crate) async fn run_leader_watch(shared: Arc<Shared>) {
    let mut status = shared.group.status();
    let mut leader = status.borrow().leader_id;
    loop {
        tokio::select! {
            changed = status.wait_for(|s| s.leader_id.is_some() && s.leader_id != leader) => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shared.shutdown.cancelled() => return,
        }
        let new_leader = status.borrow().leader_id;
        let elsewhere = new_leader.is_some_and(|id| id != shared.cluster.me.id);
        if leader.is_some() && elsewhere {
            let asked = shared.clients.request_reconnect_all();
            if asked > 0 {
                tracing::info!(leader = ?new_leader, clients = asked, "leadership moved to another node; clients asked to reconnect");
            }
        }
        leader = new_leader;
    }
}

/// The answer to a message that carried an instruction id: success, or AXONIQ-1002 when the
/// message was not understood (clients count that as alive too).
fn acknowledgement(instruction_id: String, success: bool) -> PlatformOutboundInstruction {
    let error = (!success).then(|| ErrorMessage {
        message: "Unsupported instruction".to_string(),
        location: String::new(),
        details: Vec::new(),
        error_code: ErrorCode::UnsupportedInstruction.code().to_string(),
    });
    PlatformOutboundInstruction {
        instruction_id: String::new(),
        request: Some(Outbound::Ack(InstructionAck {
            instruction_id,
            success,
            error,
        })),
    }
}
