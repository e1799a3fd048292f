//! `GrpcTransport`: raft messages to peers over 8224. One queue and one task per peer keep each
//! link's messages in order; a task sends everything queued as one `Raft` call. A `MsgSnapshot`
//! streams the checkpoint directory it names, file by file, in 1 MiB chunks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use myelin_protocol::cluster::{RaftBatch, SnapshotChunk};
use myelin_replication::{
    encode_message, snapshot_checkpoint, RaftMessage, ReplicationGroup, SnapshotReport, Transport,
};
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::Cluster;

/// Messages queued per peer before newer ones are dropped (raft resends what matters).
const PEER_QUEUE_MAX: usize = 8192;
/// Messages per `Raft` call at most.
const BATCH_MAX: usize = 512;
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

pub(crate) struct GrpcTransport {
    cluster: Arc<Cluster>,
    runtime: Handle,
    group: OnceLock<Weak<ReplicationGroup>>,
    queues: Mutex<HashMap<u64, mpsc::Sender<RaftMessage>>>,
}

impl GrpcTransport {
    pub fn new(cluster: Arc<Cluster>, runtime: Handle) -> Arc<GrpcTransport> {
        Arc::new(GrpcTransport {
            cluster,
            runtime,
            group: OnceLock::new(),
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// Connects the transport to the group it carries (for unreachable reports).
    pub fn attach(&self, group: &Arc<ReplicationGroup>) {
        let _ = self.group.set(Arc::downgrade(group));
    }

    fn unreachable(&self, node: u64) {
        if let Some(group) = self.group.get().and_then(Weak::upgrade) {
            group.report_unreachable(node);
        }
    }

    fn queue(self: &Arc<Self>, group_id: u32, to: u64) -> mpsc::Sender<RaftMessage> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = queues.get(&to) {
            if !queue.is_closed() {
                return queue.clone();
            }
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
        queues.insert(to, tx.clone());
        let transport = self.clone();
        self.runtime
            .spawn(async move { transport.run_peer(group_id, to, rx).await });
        tx
    }

    async fn run_peer(
        self: Arc<Self>,
        group: u32,
        to: u64,
        mut queue: mpsc::Receiver<RaftMessage>,
    ) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        while queue.recv_many(&mut batch, BATCH_MAX).await > 0 {
            let Some(mut client) = self.cluster.client(to) else {
                batch.clear();
                self.unreachable(to);
                continue;
            };
            let messages: Vec<Vec<u8>> = batch
                .drain(..)
                .filter_map(|m| encode_message(&m).ok())
                .collect();
            let request = self.cluster.request(RaftBatch {
                group,
                from: Some(self.cluster.me.clone()),
                messages,
            });
            if let Err(status) = client.raft(request).await {
                tracing::debug!(to, "raft messages not delivered: {status}");
                self.unreachable(to);
            }
        }
    }

    async fn stream_snapshot(&self, group: u32, message: RaftMessage) -> Result<(), String> {
        let dir = snapshot_checkpoint(&message).ok_or("not a snapshot message")?;
        let to = message.to;
        let mut client = self
            .cluster
            .client(to)
            .ok_or_else(|| format!("node {to} is not reachable"))?;
        let first = SnapshotChunk {
            group,
            from: Some(self.cluster.me.clone()),
            message: encode_message(&message)?,
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(4);
        let reader = tokio::spawn(async move {
            if tx.send(first).await.is_err() {
                return Err("snapshot stream closed".to_string());
            }
            let mut bytes = 0u64;
            for file in files_under(&dir).map_err(|e| e.to_string())? {
                let relative = file
                    .strip_prefix(&dir)
                    .map_err(|e| e.to_string())?
                    .display()
                    .to_string();
                let mut f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                let mut offset = 0u64;
                loop {
                    let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                    let n = f.read(&mut data).await.map_err(|e| e.to_string())?;
                    if n == 0 && offset > 0 {
                        break;
                    }
                    data.truncate(n);
                    let chunk = SnapshotChunk {
                        group,
                        file: relative.clone(),
                        offset,
                        data,
                        ..Default::default()
                    };
                    if tx.send(chunk).await.is_err() {
                        return Err("snapshot stream closed".to_string());
                    }
                    offset += n as u64;
                    bytes += n as u64;
                    if n == 0 {
                        break;
                    }
                }
            }
            Ok(bytes)
        });
        let mut request = self
            .cluster
            .request(tokio_stream::wrappers::ReceiverStream::new(rx));
        // A snapshot may take longer than an ordinary call.
        request.set_timeout(std::time::Duration::from_secs(600));
        let sent = client.install_snapshot(request).await;
        let read = reader.await.map_err(|e| e.to_string())?;
        sent.map_err(|s| s.to_string())?;
        let bytes = read?;
        tracing::info!(to, bytes, "raft snapshot delivered");
        Ok(())
    }
}

/// The group's side of the transport (raft-rs calls it from the group's thread).
pub(crate) struct TransportHandle(pub Arc<GrpcTransport>);

impl Transport for TransportHandle {
    fn send(&self, group: u32, messages: Vec<RaftMessage>) {
        for message in messages {
            let to = message.to;
            if self.0.queue(group, to).try_send(message).is_err() {
                tracing::debug!(to, "peer queue full; raft message dropped");
            }
        }
    }

    fn send_snapshot(&self, group: u32, message: RaftMessage, report: SnapshotReport) {
        let transport = self.0.clone();
        self.0.runtime.spawn(async move {
            let to = message.to;
            match transport.stream_snapshot(group, message).await {
                Ok(()) => report.done(true),
                Err(e) => {
                    tracing::warn!(to, "raft snapshot not delivered: {e}");
                    report.done(false);
                }
            }
        });
    }
}

/// Every file below `dir`, sorted, so both sides see the same order.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}
