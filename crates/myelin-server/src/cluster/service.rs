//! `ClusterService` on 8224: what other nodes call. Raft batches are stepped into the group; a
//! raft snapshot is staged in the checkpoint directory and then stepped; `Join` adds a node (on
//! the leader); dispatch calls run commands and queries on handlers connected here; the REST API
//! of other nodes lists the applications connected here and runs processor actions on them.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use myelin_protocol::cluster::cluster_server::Cluster as ClusterRpc;
use myelin_protocol::cluster::{
    Ack, ClientList, CommitIndexReply, ForwardedCommand, ForwardedQuery, HandlerAnnouncement,
    JoinReply, JoinRequest, ProcessorActionReply, ProcessorActionRequest, RaftBatch,
    RemoveNodeRequest, SnapshotChunk,
};
use myelin_protocol::log::{log_command::Command, RegisterNode};
use myelin_protocol::RawCommandResponse;
use myelin_replication::{decode_message, snapshot_position, with_checkpoint};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::INTERNAL_TOKEN_KEY;
use crate::api_error::ApiError;
use crate::node::Shared;

pub(crate) struct ClusterService {
    shared: Arc<Shared>,
}

impl ClusterService {
    pub fn new(shared: Arc<Shared>) -> ClusterService {
        ClusterService { shared }
    }

    /// Every call must carry the internal token when one is configured.
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = self.shared.cluster.internal_token() else {
            return Ok(());
        };
        let presented = request
            .metadata()
            .get(INTERNAL_TOKEN_KEY)
            .and_then(|v| v.to_str().ok());
        match presented {
            Some(token) if crate::access::secrets_equal(token, expected) => Ok(()),
            Some(_) => Err(ApiError::InvalidToken {
                method: "internal".to_string(),
            }
            .into()),
            None => Err(ApiError::TokenMissing {
                method: "internal".to_string(),
            }
            .into()),
        }
    }

    /// Drops traffic from a node the test link filter has cut off.
    fn link_up_from(&self, from: Option<&myelin_protocol::cluster::NodeInfo>) -> bool {
        from.is_none_or(|f| self.shared.cluster.link_up_from(f.id))
    }
}

#[tonic::async_trait]
impl ClusterRpc for ClusterService {
    async fn raft(&self, request: Request<RaftBatch>) -> Result<Response<Ack>, Status> {
        self.authorize(&request)?;
        let batch = request.into_inner();
        if !self.link_up_from(batch.from.as_ref()) {
            return Err(Status::unavailable("link cut"));
        }
        if let Some(from) = &batch.from {
            self.shared.cluster.learn(from);
        }
        for bytes in &batch.messages {
            let message = decode_message(bytes)
                .map_err(|e| Status::invalid_argument(format!("raft message: {e}")))?;
            if message.to != self.shared.cluster.me.id {
                // Meant for an earlier identity at this address (a node whose data was wiped).
                continue;
            }
            self.shared
                .group
                .step(message)
                .await
                .map_err(ApiError::from)?;
        }
        Ok(Response::new(Ack {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Ack>, Status> {
        self.authorize(&request)?;
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        if !self.link_up_from(first.from.as_ref()) {
            return Err(Status::unavailable("link cut"));
        }
        if let Some(from) = &first.from {
            self.shared.cluster.learn(from);
        }
        let message = decode_message(&first.message)
            .map_err(|e| Status::invalid_argument(format!("snapshot message: {e}")))?;
        if message.to != self.shared.cluster.me.id {
            return Err(Status::failed_precondition(format!(
                "snapshot for node {}, this is node {}",
                message.to, self.shared.cluster.me.id
            )));
        }
        let (index, term) = snapshot_position(&message);
        let staged = self.shared.checkpoint_dir.join(format!(
            "in-{}-{index}-{term}-{}",
            first.group,
            uuid::Uuid::new_v4()
        ));
        tracing::info!(index, term, dir = %staged.display(), "receiving a raft snapshot");
        match receive_files(&staged, &mut chunks).await {
            Ok(bytes) => {
                tracing::info!(index, bytes, "raft snapshot received; installing");
                self.shared
                    .group
                    .step_snapshot(with_checkpoint(message, &staged))
                    .await
                    .map_err(ApiError::from)?;
                Ok(Response::new(Ack {}))
            }
            Err(status) => {
                let _ = tokio::fs::remove_dir_all(&staged).await;
                Err(status)
            }
        }
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let node = request
            .node
            .ok_or_else(|| Status::invalid_argument("join without a node"))?;
        if !self.shared.cluster.link_up_from(node.id) {
            return Err(Status::unavailable("link cut"));
        }
        let status = self.shared.group.status().borrow().clone();
        if !status.is_leader() {
            let leader = status.leader_id.and_then(|id| self.shared.cluster.node(id));
            return Ok(Response::new(JoinReply {
                accepted: false,
                leader,
                message: "not the leader".to_string(),
            }));
        }
        self.shared.cluster.learn(&node);
        let register = Command::RegisterNode(RegisterNode {
            node_id: node.id,
            info: node.encode_to_vec(),
        });
        self.shared.propose(register).await?;
        // A node that comes back with a wiped disk has a new id: its old self leaves first.
        let replaced: Vec<u64> = self
            .shared
            .cluster
            .known_nodes()
            .iter()
            .filter(|n| n.name == node.name && n.id != node.id && status.voters.contains(&n.id))
            .map(|n| n.id)
            .collect();
        for old in replaced {
            tracing::info!(node = %node.name, old, new = node.id, "node came back with a new identity; removing the old one");
            self.shared
                .group
                .remove_voter(old)
                .await
                .map_err(ApiError::from)?;
        }
        if !status.voters.contains(&node.id) {
            tracing::info!(node = %node.name, id = node.id, address = %node.internal_address, "adding node to the cluster");
            self.shared
                .group
                .add_voter(node.id)
                .await
                .map_err(ApiError::from)?;
        }
        let added = self
            .shared
            .group
            .status()
            .borrow()
            .voters
            .contains(&node.id);
        Ok(Response::new(JoinReply {
            accepted: added,
            leader: Some(self.shared.cluster.me.clone()),
            message: if added {
                String::new()
            } else {
                "membership change pending; ask again".to_string()
            },
        }))
    }

    async fn dispatch_command(
        &self,
        request: Request<ForwardedCommand>,
    ) -> Result<Response<RawCommandResponse>, Status> {
        self.authorize(&request)?;
        crate::commands::dispatch_forwarded(&self.shared, request.into_inner())
            .await
            .map(Response::new)
    }

    type DispatchQueryStream =
        tokio_stream::wrappers::ReceiverStream<Result<myelin_protocol::RawQueryResponse, Status>>;

    async fn dispatch_query(
        &self,
        request: Request<ForwardedQuery>,
    ) -> Result<Response<Self::DispatchQueryStream>, Status> {
        self.authorize(&request)?;
        crate::queries::dispatch_forwarded(&self.shared, request.into_inner()).map(Response::new)
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<JoinReply>, Status> {
        self.authorize(&request)?;
        let name = request.into_inner().name;
        super::remove_node(&self.shared, &name).await?;
        Ok(Response::new(JoinReply {
            accepted: true,
            leader: Some(self.shared.cluster.me.clone()),
            message: String::new(),
        }))
    }

    async fn commit_index(
        &self,
        request: Request<Ack>,
    ) -> Result<Response<CommitIndexReply>, Status> {
        self.authorize(&request)?;
        let status = self.shared.group.status().borrow().clone();
        Ok(Response::new(CommitIndexReply {
            leader: status.is_leader(),
            commit_index: status.commit_index,
        }))
    }

    async fn connected_clients(
        &self,
        request: Request<Ack>,
    ) -> Result<Response<ClientList>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(super::clients::local_list(&self.shared)))
    }

    async fn processor_action(
        &self,
        request: Request<ProcessorActionRequest>,
    ) -> Result<Response<ProcessorActionReply>, Status> {
        self.authorize(&request)?;
        let request = request.into_inner();
        let outcome = match super::clients::requested_action(&request) {
            Ok((processor, action)) => {
                crate::processors::control_here(&self.shared, &processor, &action).await
            }
            Err(error) => Err(error),
        };
        Ok(Response::new(super::clients::action_reply(outcome)))
    }

    async fn announce_handlers(
        &self,
        request: Request<HandlerAnnouncement>,
    ) -> Result<Response<Ack>, Status> {
        self.authorize(&request)?;
        let announcement = request.into_inner();
        if !self.link_up_from(announcement.from.as_ref()) {
            return Err(Status::unavailable("link cut"));
        }
        crate::commands::remote_handlers(&self.shared, &announcement);
        crate::queries::remote_handlers(&self.shared, &announcement);
        Ok(Response::new(Ack {}))
    }
}

/// Writes the streamed checkpoint files under `dir`; returns the bytes received.
async fn receive_files(dir: &Path, chunks: &mut Streaming<SnapshotChunk>) -> Result<u64, Status> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Status::internal(format!("{}: {e}", dir.display())))?;
    let mut current: Option<(String, tokio::fs::File)> = None;
    let mut bytes = 0u64;
    while let Some(chunk) = chunks.message().await? {
        if current.as_ref().is_none_or(|(name, _)| *name != chunk.file) {
            if let Some((_, mut file)) = current.take() {
                file.sync_all().await.map_err(io_status)?;
                file.flush().await.map_err(io_status)?;
            }
            let path = safe_join(dir, &chunk.file)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(io_status)?;
            }
            let file = tokio::fs::File::create(&path).await.map_err(io_status)?;
            current = Some((chunk.file.clone(), file));
        }
        if let Some((_, file)) = current.as_mut() {
            file.write_all(&chunk.data).await.map_err(io_status)?;
            bytes += chunk.data.len() as u64;
        }
    }
    if let Some((_, mut file)) = current.take() {
        file.flush().await.map_err(io_status)?;
        file.sync_all().await.map_err(io_status)?;
    }
    Ok(bytes)
}

/// `relative` under `dir`, refusing anything that would leave it.
fn safe_join(dir: &Path, relative: &str) -> Result<PathBuf, Status> {
    let path = Path::new(relative);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || relative.is_empty() {
        return Err(Status::invalid_argument(format!(
            "bad checkpoint file name {relative:?}"
        )));
    }
    Ok(dir.join(path))
}

fn io_status(e: std::io::Error) -> Status {
    Status::internal(format!("staging a snapshot: {e}"))
}
