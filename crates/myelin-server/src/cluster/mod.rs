//! The cluster as one node sees it: its own identity, the address book of the others (replicated
//! through the log, and learnt from their traffic), the links between nodes (with a filter tests
//! use to cut them), and the task that makes this node a member: the node named by
//! `autocluster.first` creates the group, the others ask the leader to add them.

mod clients;
mod service;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use myelin_protocol::cluster::cluster_client::ClusterClient;
use myelin_protocol::cluster::{AnnouncedHandler, JoinRequest, NodeInfo, RemoveNodeRequest};
use myelin_protocol::log::{log_command::Command, RegisterNode};
use myelin_routing::HandlerInfo;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::api_error::ApiError;
use crate::config::NodeConfig;
use crate::node::Shared;

pub(crate) use clients::{act_elsewhere, everywhere, result_of, NodeClient};
pub(crate) use service::ClusterService;
pub(crate) use transport::{GrpcTransport, TransportHandle};

/// Metadata key of the internal token on node-to-node calls.
pub(crate) const INTERNAL_TOKEN_KEY: &str = "axoniq-internal-token";
/// How often an unfinished membership is retried (joining, registering this node's address).
const MEMBERSHIP_RETRY_MS: u64 = 500;
/// Limit of one node-to-node call (a snapshot stream excepted).
const CALL_TIMEOUT_MS: u64 = 5000;

/// Decides whether traffic may flow from one node to another; tests cut links with it.
pub type LinkFilter = Arc<dyn Fn(u64, u64) -> bool + Send + Sync>;

/// This node's view of the cluster.
pub(crate) struct Cluster {
    pub me: NodeInfo,
    /// Internal address of the node that creates the cluster, if this node is in one.
    first: Option<String>,
    contexts: Vec<String>,
    internal_token: Option<String>,
    filter: Option<LinkFilter>,
    /// How other nodes are verified when cluster traffic uses TLS; `None` dials in plaintext.
    peer_tls: Option<Arc<crate::tls::TrustFile>>,
    /// Known nodes by id, with a lazily connected channel to each.
    peers: RwLock<HashMap<u64, Peer>>,
}

#[derive(Clone)]
struct Peer {
    info: NodeInfo,
    channel: Channel,
}

impl Cluster {
    pub fn new(
        config: &NodeConfig,
        node_id: u64,
        ports: (u16, u16, u16),
        filter: Option<LinkFilter>,
        peer_tls: Option<Arc<crate::tls::TrustFile>>,
    ) -> Cluster {
        let (grpc_port, http_port, internal_port) = ports;
        let internal_host = config
            .internal_hostname
            .clone()
            .unwrap_or_else(|| config.hostname.clone());
        Cluster {
            me: NodeInfo {
                id: node_id,
                name: config.name.clone(),
                internal_address: format!("{internal_host}:{internal_port}"),
                hostname: config.hostname.clone(),
                grpc_port: u32::from(grpc_port),
                http_port: u32::from(http_port),
            },
            first: config.autocluster_first.clone(),
            contexts: config.autocluster_contexts.clone(),
            internal_token: config.internal_token.clone().filter(|t| !t.is_empty()),
            filter,
            peer_tls,
            peers: RwLock::new(HashMap::new()),
        }
    }

    /// True when this node creates the cluster (or runs alone): `autocluster.first` names it, or
    /// nothing is named.
    pub fn creates_cluster(&self) -> bool {
        match &self.first {
            None => true,
            Some(first) => {
                let (host, port) = match first.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (first.as_str(), None),
                };
                let (my_host, my_port) = self
                    .me
                    .internal_address
                    .rsplit_once(':')
                    .unwrap_or((self.me.internal_address.as_str(), ""));
                host == my_host && port.is_none_or(|p| p == my_port)
            }
        }
    }

    /// False when the link filter cuts traffic from this node to `to`.
    pub fn link_up(&self, to: u64) -> bool {
        self.filter.as_ref().is_none_or(|f| f(self.me.id, to))
    }

    pub fn link_up_from(&self, from: u64) -> bool {
        self.filter.as_ref().is_none_or(|f| f(from, self.me.id))
    }

    pub fn internal_token(&self) -> Option<&str> {
        self.internal_token.as_deref()
    }

    /// Records (or updates) how to reach a node.
    pub fn learn(&self, info: &NodeInfo) {
        if info.id == self.me.id || info.id == 0 {
            return;
        }
        let mut peers = self.peers.write().unwrap_or_else(|p| p.into_inner());
        if peers.get(&info.id).is_some_and(|p| p.info == *info) {
            return;
        }
        match endpoint(&info.internal_address) {
            Ok(endpoint) => {
                let channel = match &self.peer_tls {
                    Some(trust) => endpoint
                        .connect_with_connector_lazy(crate::tls::PeerConnector::new(trust.clone())),
                    None => endpoint.connect_lazy(),
                };
                tracing::info!(node = %info.name, id = info.id, address = %info.internal_address, "peer address known");
                peers.insert(
                    info.id,
                    Peer {
                        info: info.clone(),
                        channel,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(node = %info.name, "bad peer address {}: {e}", info.internal_address)
            }
        }
    }

    /// Reloads the replicated address book into the peer map; returns whether it holds this
    /// node's current addresses.
    pub fn learn_address_book(&self, store: &myelin_storage::Store) -> bool {
        let nodes = match store.cluster_nodes() {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!("cannot read the address book: {e}");
                return false;
            }
        };
        let mut registered = false;
        for (_, bytes) in nodes {
            if let Ok(info) = NodeInfo::decode(bytes.as_slice()) {
                registered |= info == self.me;
                self.learn(&info);
            }
        }
        registered
    }

    /// What this node knows about `id` (itself included).
    pub fn node(&self, id: u64) -> Option<NodeInfo> {
        if id == self.me.id {
            return Some(self.me.clone());
        }
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|p| p.info.clone())
    }

    pub fn known_nodes(&self) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.info.clone())
            .collect();
        nodes.push(self.me.clone());
        nodes.sort_by_key(|n| n.name.clone());
        nodes
    }

    /// A client for node `id`, if its address is known and the link is up.
    pub fn client(&self, id: u64) -> Option<ClusterClient<Channel>> {
        if !self.link_up(id) {
            return None;
        }
        let channel = self
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|p| p.channel.clone())?;
        Some(
            ClusterClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    }

    /// A request with the internal token attached and the default call limit.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_millis(CALL_TIMEOUT_MS));
        if let Some(token) = &self.internal_token {
            if let Ok(value) = token.parse() {
                request.metadata_mut().insert(INTERNAL_TOKEN_KEY, value);
            }
        }
        request
    }
}

fn endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_millis(1000))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10)))
}

/// Keeps this node a registered member until shutdown: joins the cluster when it is not a voter,
/// and (re-)registers its addresses in the address book when they are missing or changed.
pub(crate) async fn run_membership(shared: Arc<Shared>) {
    let cluster = &shared.cluster;
    let mut retry = tokio::time::interval(Duration::from_millis(MEMBERSHIP_RETRY_MS));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced_join = false;
    loop {
        tokio::select! {
            _ = retry.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let registered = cluster.learn_address_book(&shared.store);
        let status = shared.group.status().borrow().clone();
        if !status.voters.contains(&cluster.me.id) {
            if !announced_join {
                tracing::info!(first = ?cluster.first, "not a member yet: asking to join the cluster");
                announced_join = true;
            }
            join(&shared).await;
            continue;
        }
        if status.leader_id.is_none() {
            continue;
        }
        if !registered {
            let command = Command::RegisterNode(RegisterNode {
                node_id: cluster.me.id,
                info: cluster.me.encode_to_vec(),
            });
            match shared.propose(command).await {
                Ok(_) => {
                    tracing::info!(address = %cluster.me.internal_address, "this node's addresses are registered")
                }
                Err(e) => {
                    tracing::debug!("registering this node's addresses failed, retrying: {e}")
                }
            }
        }
    }
}

/// One round of asking to be added: the `first` node, then every node known.
async fn join(shared: &Shared) {
    let cluster = &shared.cluster;
    let mut targets: Vec<String> = cluster.first.iter().cloned().collect();
    targets.extend(
        cluster
            .known_nodes()
            .into_iter()
            .filter(|n| n.id != cluster.me.id)
            .map(|n| n.internal_address),
    );
    for address in targets {
        let Some(address) = with_default_port(&address, cluster) else {
            continue;
        };
        let Ok(endpoint) = endpoint(&address) else {
            continue;
        };
        let connected = match &cluster.peer_tls {
            Some(trust) => {
                endpoint
                    .connect_with_connector(crate::tls::PeerConnector::new(trust.clone()))
                    .await
            }
            None => endpoint.connect().await,
        };
        let Ok(channel) = connected else {
            tracing::debug!(%address, "cannot reach node to join through");
            continue;
        };
        let request = cluster.request(JoinRequest {
            node: Some(cluster.me.clone()),
            contexts: cluster.contexts.clone(),
        });
        match ClusterClient::new(channel).join(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                if let Some(leader) = &reply.leader {
                    cluster.learn(leader);
                }
                if reply.accepted {
                    tracing::info!(through = %address, "joined the cluster");
                    return;
                }
                tracing::debug!(through = %address, "join not accepted: {}", reply.message);
            }
            Err(status) => tracing::debug!(through = %address, "join failed: {status}"),
        }
    }
}

/// `first` may name a host without a port: the internal port is the same on every node.
fn with_default_port(address: &str, cluster: &Cluster) -> Option<String> {
    if address.contains(':') {
        return Some(address.to_string());
    }
    let port = cluster.me.internal_address.rsplit_once(':')?.1;
    Some(format!("{address}:{port}"))
}

/// Removes the node called `name` from the cluster: here when this node leads, else through the
/// leader. Its data stays where it is; a node still running with it asks to join again.
pub(crate) async fn remove_node(shared: &Shared, name: &str) -> Result<(), ApiError> {
    let status = shared.group.status().borrow().clone();
    if !status.is_leader() {
        let leader = status.leader_id.ok_or(ApiError::Replication(
            myelin_replication::ReplicationError::NoLeader {
                group: 0,
                waited_ms: 0,
            },
        ))?;
        let mut client = shared
            .cluster
            .client(leader)
            .ok_or_else(|| ApiError::Peer(format!("the leader ({leader}) is not reachable")))?;
        let request = shared.cluster.request(RemoveNodeRequest {
            name: name.to_string(),
        });
        return match client.remove_node(request).await {
            Ok(reply) if reply.get_ref().accepted => Ok(()),
            Ok(reply) => Err(ApiError::Peer(reply.into_inner().message)),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err(ApiError::NoSuchNode(name.to_string()))
            }
            Err(status) => Err(ApiError::Peer(status.message().to_string())),
        };
    }
    let members: Vec<u64> = shared
        .cluster
        .known_nodes()
        .iter()
        .filter(|n| n.name == name && status.voters.contains(&n.id))
        .map(|n| n.id)
        .collect();
    if members.is_empty() {
        return Err(ApiError::NoSuchNode(name.to_string()));
    }
    if status.voters.len() <= members.len() {
        return Err(ApiError::CannotRemoveLastNode(name.to_string()));
    }
    for id in members {
        tracing::info!(node = %name, id, "removing node from the cluster");
        shared.group.remove_voter(id).await?;
    }
    Ok(())
}

/// Who stands behind a handler another node announced, and its id there.
pub(crate) fn remote_handler_info(
    node: u64,
    announced: &AnnouncedHandler,
) -> Option<(HandlerInfo, u64)> {
    let remote_id = announced.handler.parse::<u64>().ok()?;
    let info = HandlerInfo {
        context: announced.context.clone(),
        client_id: announced.client_id.clone(),
        component: announced.component_name.clone(),
        client_stream_id: format!("{}.{node}.{remote_id}", announced.client_id),
    };
    Some((info, remote_id))
}
