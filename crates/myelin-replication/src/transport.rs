//! How a group's raft messages leave the node: the `Transport` trait the server implements over
//! 8224 (and a no-op one for a node alone), and helpers to encode messages as opaque bytes.
//!
//! A `MsgSnapshot` carries no data in raft: its `data` is the path of a checkpoint directory on the
//! sending node. The transport streams that directory to the peer, which stages it locally and
//! steps the message with `data` replaced by the staged path (`with_checkpoint`).

use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;

use crate::group::Inbound;

pub use raft::eraftpb::Message as RaftMessage;

/// Carries a group's raft messages to its peers. Sending is best effort: raft retries.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages (any targets) of `group`; must not block.
    fn send(&self, group: u32, messages: Vec<Message>);
    /// Streams the checkpoint named by a `MsgSnapshot` to its target, then calls `report`.
    fn send_snapshot(&self, group: u32, message: Message, report: SnapshotReport);
}

/// A node alone has no one to talk to.
pub struct NoTransport;

impl Transport for NoTransport {
    fn send(&self, _group: u32, _messages: Vec<Message>) {}
    fn send_snapshot(&self, _group: u32, _message: Message, report: SnapshotReport) {
        report.done(false);
    }
}

/// Tells the group whether a snapshot reached its target.
pub struct SnapshotReport {
    pub(crate) to: u64,
    pub(crate) inbox: mpsc::Sender<Inbound>,
}

impl SnapshotReport {
    pub fn done(self, delivered: bool) {
        let _ = self.inbox.try_send(Inbound::SnapshotSent {
            to: self.to,
            delivered,
        });
    }
}

pub fn encode_message(message: &Message) -> Result<Vec<u8>, String> {
    message.write_to_bytes().map_err(|e| e.to_string())
}

pub fn decode_message(bytes: &[u8]) -> Result<Message, String> {
    Message::parse_from_bytes(bytes).map_err(|e| e.to_string())
}

/// The checkpoint directory a `MsgSnapshot` names, if it is one.
pub fn snapshot_checkpoint(message: &Message) -> Option<PathBuf> {
    if message.get_msg_type() != MessageType::MsgSnapshot {
        return None;
    }
    let data = message.get_snapshot().get_data();
    std::str::from_utf8(data).ok().map(PathBuf::from)
}

/// The snapshot's log position: (index, term).
pub fn snapshot_position(message: &Message) -> (u64, u64) {
    let meta = message.get_snapshot().get_metadata();
    (meta.index, meta.term)
}

/// The same message naming a local (staged) checkpoint directory.
pub fn with_checkpoint(mut message: Message, dir: &Path) -> Message {
    let path = dir.display().to_string().into_bytes();
    message.mut_snapshot().set_data(path.into());
    message
}
