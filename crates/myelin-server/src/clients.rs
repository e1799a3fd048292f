//! `ClientRegistry`: the applications connected through `PlatformService.OpenStream`, per context,
//! with the latest `EventProcessorInfo` each one reported. An entry lives exactly as long as its
//! instruction stream; the REST API and GUI read it. Instructions sent to a client (processor
//! control) wait here for the client's answer: a failed ack, or the `InstructionResult`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use myelin_protocol::wire::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::wire::control::{
    EventProcessorInfo, PlatformOutboundInstruction, RequestReconnect,
};
use myelin_protocol::wire::ErrorMessage;
use tokio::sync::{mpsc, oneshot};

/// Where instructions for one client's platform stream go.
pub(crate) type PlatformOutbox = mpsc::Sender<Result<PlatformOutboundInstruction, tonic::Status>>;

/// One connected application instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedClient {
    /// Unique per platform stream: client id + `.` + a random id, as Axon Server keys them.
    pub stream_id: String,
    pub context: String,
    pub client_id: String,
    pub component_name: String,
    pub version: String,
    pub tags: HashMap<String, String>,
    /// Latest report per processor name.
    pub processors: BTreeMap<String, EventProcessorInfo>,
}

/// How a client answered an instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionOutcome {
    pub success: bool,
    /// The client's error message when it failed.
    pub error: Option<String>,
}

impl InstructionOutcome {
    fn of(success: bool, error: Option<ErrorMessage>) -> InstructionOutcome {
        InstructionOutcome {
            success,
            error: error.map(|e| {
                if e.error_code.is_empty() {
                    e.message
                } else {
                    format!("{} ({})", e.message, e.error_code)
                }
            }),
        }
    }
}

/// An instruction on its way to a client, waiting for its answer.
struct PendingInstruction {
    stream_id: String,
    answer: oneshot::Sender<InstructionOutcome>,
}

#[derive(Default)]
pub struct ClientRegistry {
    /// By client stream id.
    streams: Mutex<HashMap<String, ConnectedClient>>,
    outboxes: Mutex<HashMap<String, PlatformOutbox>>,
    /// By instruction id.
    instructions: Mutex<HashMap<String, PendingInstruction>>,
}

impl ClientRegistry {
    pub(crate) fn register(&self, client: ConnectedClient, outbox: PlatformOutbox) {
        let stream_id = client.stream_id.clone();
        self.lock().insert(stream_id.clone(), client);
        self.outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream_id, outbox);
    }

    /// Sends `request` to the client on `stream_id` with a fresh instruction id; the receiver
    /// gets the client's answer. `None` when the stream is gone or its queue is full.
    pub(crate) fn send_instruction(
        &self,
        stream_id: &str,
        request: Outbound,
    ) -> Option<oneshot::Receiver<InstructionOutcome>> {
        let outbox = self
            .outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream_id)?
            .clone();
        let instruction_id = uuid::Uuid::new_v4().to_string();
        let (answer, receiver) = oneshot::channel();
        self.pending().insert(
            instruction_id.clone(),
            PendingInstruction {
                stream_id: stream_id.to_string(),
                answer,
            },
        );
        let instruction = PlatformOutboundInstruction {
            instruction_id: instruction_id.clone(),
            request: Some(request),
        };
        if outbox.try_send(Ok(instruction)).is_err() {
            self.pending().remove(&instruction_id);
            return None;
        }
        Some(receiver)
    }

    /// A client acknowledged an instruction: a failed ack is its answer; a successful one means
    /// the result follows.
    pub(crate) fn instruction_acknowledged(
        &self,
        instruction_id: &str,
        success: bool,
        error: Option<ErrorMessage>,
    ) {
        if !success {
            self.instruction_result(instruction_id, false, error);
        }
    }

    /// A client reported the result of an instruction.
    pub(crate) fn instruction_result(
        &self,
        instruction_id: &str,
        success: bool,
        error: Option<ErrorMessage>,
    ) {
        if let Some(pending) = self.pending().remove(instruction_id) {
            let _ = pending.answer.send(InstructionOutcome::of(success, error));
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingInstruction>> {
        self.instructions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks every connected client to reconnect (through its routing servers, so it lands on
    /// the node `GetPlatformServer` names now). Returns how many were asked.
    pub(crate) fn request_reconnect_all(&self) -> usize {
        self.request_reconnect(|_| true)
    }

    /// Asks the clients that `which` picks to reconnect; returns how many were asked.
    pub(crate) fn request_reconnect(&self, which: impl Fn(&ConnectedClient) -> bool) -> usize {
        let streams: Vec<String> = self
            .lock()
            .values()
            .filter(|c| which(c))
            .map(|c| c.stream_id.clone())
            .collect();
        let outboxes: Vec<PlatformOutbox> = {
            let outboxes = self.outboxes.lock().unwrap_or_else(|p| p.into_inner());
            streams
                .iter()
                .filter_map(|id| outboxes.get(id).cloned())
                .collect()
        };
        let instruction = PlatformOutboundInstruction {
            instruction_id: uuid::Uuid::new_v4().to_string(),
            request: Some(Outbound::RequestReconnect(RequestReconnect {})),
        };
        outboxes
            .iter()
            .filter(|outbox| outbox.try_send(Ok(instruction.clone())).is_ok())
            .count()
    }

    /// Keeps the latest report of a processor; false if the stream never registered.
    pub(crate) fn processor_info(&self, stream_id: &str, info: EventProcessorInfo) -> bool {
        match self.lock().get_mut(stream_id) {
            Some(client) => {
                client.processors.insert(info.processor_name.clone(), info);
                true
            }
            None => false,
        }
    }

    /// Forgets a stream; instructions still waiting for its answer end without one.
    pub(crate) fn remove(&self, stream_id: &str) -> Option<ConnectedClient> {
        self.outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream_id);
        self.pending().retain(|_, p| p.stream_id != stream_id);
        self.lock().remove(stream_id)
    }

    /// How many applications are connected.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Every connected client, sorted by context and client id.
    pub fn list(&self) -> Vec<ConnectedClient> {
        let mut clients: Vec<_> = self.lock().values().cloned().collect();
        clients.sort_by(|a, b| (&a.context, &a.client_id).cmp(&(&b.context, &b.client_id)));
        clients
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnectedClient>> {
        // A panic while holding this lock leaves a consistent map (every update is one insert or
        // remove), so a poisoned lock is still safe to use.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
