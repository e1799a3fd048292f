//! Applications connected to other nodes, for the REST API and GUI of any node: listing every
//! node's connected clients with their processor reports (`ConnectedClients` on 8224), and running
//! a processor action on the node where its instances are connected (`ProcessorAction`). Behind a
//! load balancer an operator's GUI may land on any node; applications are connected to the leader.

use std::time::Duration;

use myelin_protocol::cluster::{
    Ack, ClientInfo, ClientList, InstanceResult, ProcessorActionReply, ProcessorActionRequest,
};
use myelin_protocol::ErrorCode;

use crate::api_error::ApiError;
use crate::clients::ConnectedClient;
use crate::node::Shared;
use crate::processors::{ActionResult, InstanceOutcome, ProcessorAction, ProcessorRef};

/// How long a listing waits for the other nodes; a node that does not answer in time is left out.
const LIST_WAIT_MS: u64 = 2000;
/// How long a forwarded action may take: the instances' results are awaited 10 s on their node.
const ACTION_WAIT_MS: u64 = 15_000;

/// A connected application and the node it is connected to.
#[derive(Debug, Clone)]
pub(crate) struct NodeClient {
    pub node: String,
    pub client: ConnectedClient,
}

pub(crate) fn client_info(client: &ConnectedClient) -> ClientInfo {
    ClientInfo {
        stream_id: client.stream_id.clone(),
        context: client.context.clone(),
        client_id: client.client_id.clone(),
        component_name: client.component_name.clone(),
        version: client.version.clone(),
        tags: client.tags.clone(),
        processors: client.processors.values().cloned().collect(),
    }
}

fn connected_client(info: ClientInfo) -> ConnectedClient {
    ConnectedClient {
        stream_id: info.stream_id,
        context: info.context,
        client_id: info.client_id,
        component_name: info.component_name,
        version: info.version,
        tags: info.tags,
        processors: info
            .processors
            .into_iter()
            .map(|p| (p.processor_name.clone(), p))
            .collect(),
    }
}

/// This node's clients as the cluster service hands them out.
pub(crate) fn local_list(shared: &Shared) -> ClientList {
    ClientList {
        from: Some(shared.cluster.me.clone()),
        clients: shared.clients.list().iter().map(client_info).collect(),
    }
}

/// The other voters, as (raft id, name).
fn peers(shared: &Shared) -> Vec<(u64, String)> {
    let status = shared.group.status().borrow().clone();
    status
        .voters
        .iter()
        .filter(|id| **id != shared.cluster.me.id)
        .map(|id| {
            let name = shared
                .cluster
                .node(*id)
                .map_or_else(|| format!("node-{id}"), |n| n.name);
            (*id, name)
        })
        .collect()
}

/// Every connected application in the cluster: this node's, then each other node's (those that
/// answer within `LIST_WAIT_MS`).
pub(crate) async fn everywhere(shared: &Shared) -> Vec<NodeClient> {
    let me = shared.cluster.me.name.clone();
    let mut clients: Vec<NodeClient> = shared
        .clients
        .list()
        .into_iter()
        .map(|client| NodeClient {
            node: me.clone(),
            client,
        })
        .collect();
    let calls = peers(shared).into_iter().map(|(id, name)| async move {
        let mut client = shared.cluster.client(id)?;
        let mut request = shared.cluster.request(Ack {});
        request.set_timeout(Duration::from_millis(LIST_WAIT_MS));
        match client.connected_clients(request).await {
            Ok(reply) => Some((name, reply.into_inner())),
            Err(status) => {
                tracing::debug!(node = %name, "listing its clients failed: {status}");
                None
            }
        }
    });
    for (node, list) in futures::future::join_all(calls).await.into_iter().flatten() {
        clients.extend(list.clients.into_iter().map(|info| NodeClient {
            node: node.clone(),
            client: connected_client(info),
        }));
    }
    clients
}

fn action_fields(action: &ProcessorAction) -> (&'static str, i32, String) {
    match action {
        ProcessorAction::Pause => ("pause", 0, String::new()),
        ProcessorAction::Start => ("start", 0, String::new()),
        ProcessorAction::Split => ("split", 0, String::new()),
        ProcessorAction::Merge => ("merge", 0, String::new()),
        ProcessorAction::Move {
            segment,
            target_client,
        } => ("move", *segment, target_client.clone()),
    }
}

/// The action a forwarded request asks for.
pub(crate) fn requested_action(
    request: &ProcessorActionRequest,
) -> Result<(ProcessorRef, ProcessorAction), ApiError> {
    let action = match request.action.as_str() {
        "pause" => ProcessorAction::Pause,
        "start" => ProcessorAction::Start,
        "split" => ProcessorAction::Split,
        "merge" => ProcessorAction::Merge,
        "move" => ProcessorAction::Move {
            segment: request.segment,
            target_client: request.target_client.clone(),
        },
        other => {
            return Err(ApiError::InvalidRequest(format!(
                "unknown processor action {other}"
            )))
        }
    };
    let processor = ProcessorRef {
        context: request.context.clone(),
        component: Some(request.component.clone()).filter(|c| !c.is_empty()),
        name: request.processor.clone(),
        token_store: Some(request.token_store.clone()).filter(|t| !t.is_empty()),
    };
    Ok((processor, action))
}

/// How a node answers a forwarded action.
pub(crate) fn action_reply(
    outcome: Result<Vec<InstanceOutcome>, ApiError>,
) -> ProcessorActionReply {
    match outcome {
        Ok(instances) => ProcessorActionReply {
            error_code: String::new(),
            error_message: String::new(),
            instances: instances
                .into_iter()
                .map(|i| InstanceResult {
                    client_id: i.client_id,
                    instruction: i.instruction.to_string(),
                    answered: i.success.is_some(),
                    success: i.success.unwrap_or(false),
                    error: i.error.unwrap_or_default(),
                })
                .collect(),
        },
        Err(error) => ProcessorActionReply {
            error_code: error
                .error_code()
                .unwrap_or(ErrorCode::Other)
                .code()
                .to_string(),
            error_message: error.to_string(),
            instances: Vec::new(),
        },
    }
}

/// Runs `action` on the nodes where `processor`'s instances are connected (this node has none)
/// and gathers what their instances answered.
pub(crate) async fn act_elsewhere(
    shared: &Shared,
    processor: &ProcessorRef,
    action: &ProcessorAction,
) -> Result<Vec<InstanceOutcome>, ApiError> {
    let holders: Vec<String> = everywhere(shared)
        .await
        .into_iter()
        .filter(|c| crate::processors::runs(&c.client, processor))
        .map(|c| c.node)
        .collect();
    let (name, segment, target_client) = action_fields(action);
    let mut outcomes = Vec::new();
    let mut asked = false;
    for (id, node) in peers(shared) {
        if !holders.contains(&node) {
            continue;
        }
        let Some(mut client) = shared.cluster.client(id) else {
            continue;
        };
        asked = true;
        let mut request = shared.cluster.request(ProcessorActionRequest {
            context: processor.context.clone(),
            component: processor.component.clone().unwrap_or_default(),
            processor: processor.name.clone(),
            token_store: processor.token_store.clone().unwrap_or_default(),
            action: name.to_string(),
            segment,
            target_client: target_client.clone(),
        });
        request.set_timeout(Duration::from_millis(ACTION_WAIT_MS));
        let reply = client
            .processor_action(request)
            .await
            .map_err(|status| ApiError::Peer(format!("{node}: {}", status.message())))?
            .into_inner();
        if !reply.error_code.is_empty() {
            return Err(ApiError::FromPeer {
                code: ErrorCode::from_code(&reply.error_code).unwrap_or(ErrorCode::Other),
                message: reply.error_message,
            });
        }
        outcomes.extend(reply.instances.into_iter().map(|i| InstanceOutcome {
            client_id: i.client_id,
            instruction: instruction_name(&i.instruction),
            success: i.answered.then_some(i.success),
            error: Some(i.error).filter(|e| !e.is_empty()),
        }));
    }
    if !asked {
        return Err(ApiError::ProcessorNotFound(processor.name.clone()));
    }
    Ok(outcomes)
}

/// The instruction names `processors` reports, as static strings again.
fn instruction_name(name: &str) -> &'static str {
    match name {
        "pause" => "pause",
        "start" => "start",
        "split" => "split",
        "merge" => "merge",
        "release" => "release",
        _ => "other",
    }
}

/// `SUCCESS` when every instance answered.
pub(crate) fn result_of(outcomes: &[InstanceOutcome]) -> ActionResult {
    if outcomes.iter().all(|o| o.success.is_some()) {
        ActionResult::Success
    } else {
        ActionResult::Accepted
    }
}
