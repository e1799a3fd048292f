//! `TopologyWatchers`: the instruction streams that asked for topology changes
//! (`subscribe_topology_changes`), per context. When a handler subscribes or unsubscribes a
//! command or query, every watcher of that context gets a `TopologyChange`; a new watcher first
//! gets the current registrations as additions.

use std::collections::HashMap;
use std::sync::Mutex;

use myelin_protocol::wire::control::platform_outbound_instruction::Request as Outbound;
use myelin_protocol::wire::control::topology_change::Subscription as WireSubscription;
use myelin_protocol::wire::control::{
    CommandSubscription, PlatformOutboundInstruction, QuerySubscription,
    TopologyChange as WireChange, UpdateType,
};
use myelin_routing::{Subscription, TopologyChange};
use tokio::sync::mpsc;
use tonic::Status;

pub(crate) type PlatformOutbox = mpsc::Sender<Result<PlatformOutboundInstruction, Status>>;

#[derive(Default)]
pub struct TopologyWatchers {
    /// By platform stream id: (context, outbox).
    watchers: Mutex<HashMap<String, (String, PlatformOutbox)>>,
}

impl TopologyWatchers {
    pub(crate) fn watch(
        &self,
        stream_id: &str,
        context: &str,
        outbox: PlatformOutbox,
        current: Vec<TopologyChange>,
    ) {
        for change in current {
            let _ = outbox.try_send(Ok(to_wire(&change)));
        }
        self.lock()
            .insert(stream_id.to_string(), (context.to_string(), outbox));
    }

    pub(crate) fn unwatch(&self, stream_id: &str) {
        self.lock().remove(stream_id);
    }

    /// Sends changes to the watchers of their context. A watcher that cannot keep up is dropped
    /// (it will see the full picture again when it subscribes anew) rather than buffered forever.
    pub(crate) fn publish(&self, changes: &[TopologyChange]) {
        if changes.is_empty() {
            return;
        }
        let mut watchers = self.lock();
        watchers.retain(|stream_id, (context, outbox)| {
            for change in changes.iter().filter(|c| &c.handler.context == context) {
                if outbox.try_send(Ok(to_wire(change))).is_err() {
                    tracing::warn!(stream = %stream_id, "topology watcher is not reading; dropping it");
                    return false;
                }
            }
            true
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, PlatformOutbox)>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn to_wire(change: &TopologyChange) -> PlatformOutboundInstruction {
    let (update_type, subscription) = match &change.subscription {
        Subscription::Command { name, load_factor } => (
            if change.added {
                UpdateType::AddCommandHandler
            } else {
                UpdateType::RemoveCommandHandler
            },
            WireSubscription::Command(CommandSubscription {
                name: name.clone(),
                load_factor: i32::try_from(*load_factor).unwrap_or(i32::MAX),
            }),
        ),
        Subscription::Query { name } => (
            if change.added {
                UpdateType::AddQueryHandler
            } else {
                UpdateType::RemoveQueryHandler
            },
            WireSubscription::Query(QuerySubscription { name: name.clone() }),
        ),
    };
    PlatformOutboundInstruction {
        instruction_id: String::new(),
        request: Some(Outbound::TopologyChange(WireChange {
            update_type: update_type as i32,
            context: change.handler.context.clone(),
            client_id: change.handler.client_id.clone(),
            client_stream_id: change.handler.client_stream_id.clone(),
            component_name: change.handler.component.clone(),
            subscription: Some(subscription),
        })),
    }
}
