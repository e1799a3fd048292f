//! `ClientRegistry`: the applications connected through `PlatformService.OpenStream`, per context,
//! with the latest `EventProcessorInfo` each one reported. An entry lives exactly as long as its
//! instruction stream; the REST API and GUI read it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use myelin_protocol::wire::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::wire::control::{
    EventProcessorInfo, PlatformOutboundInstruction, RequestReconnect,
};
use tokio::sync::mpsc;

/// Where instructions for one client's platform stream go.
pub(crate) type PlatformOutbox = mpsc::Sender<Result<PlatformOutboundInstruction, tonic::Status>>;

/// One connected application instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedClient {
    pub context: String,
    pub client_id: String,
    pub component_name: String,
    pub version: String,
    pub tags: HashMap<String, String>,
    /// Latest report per processor name.
    pub processors: BTreeMap<String, EventProcessorInfo>,
}

#[derive(Default)]
pub struct ClientRegistry {
    /// By client stream id (client id + `.` + a random id, as Axon Server keys them).
    streams: Mutex<HashMap<String, ConnectedClient>>,
    outboxes: Mutex<HashMap<String, PlatformOutbox>>,
}

impl ClientRegistry {
    pub(crate) fn register(
        &self,
        stream_id: &str,
        client: ConnectedClient,
        outbox: PlatformOutbox,
    ) {
        self.lock().insert(stream_id.to_string(), client);
        self.outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream_id.to_string(), outbox);
    }

    /// Asks every connected client to reconnect (through its routing servers, so it lands on
    /// the node `GetPlatformServer` names now). Returns how many were asked.
    pub(crate) fn request_reconnect_all(&self) -> usize {
        let outboxes: Vec<PlatformOutbox> = self
            .outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
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

    pub(crate) fn remove(&self, stream_id: &str) -> Option<ConnectedClient> {
        self.outboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream_id);
        self.lock().remove(stream_id)
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
