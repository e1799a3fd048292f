//! Key encodings for the column families. Numbers are big-endian so RocksDB's byte order is token
//! and sequence order; aggregate ids are length-prefixed so no id is a prefix of another's keys.

/// A context's short id, the first four bytes of every per-context key.
pub(crate) type ContextId = u32;

pub(crate) fn event_key(ctx: ContextId, token: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&ctx.to_be_bytes());
    k[4..].copy_from_slice(&token.to_be_bytes());
    k
}

pub(crate) fn token_of_event_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(4..12)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Prefix shared by every key of one aggregate (in `aggregates` and `snapshots`).
pub(crate) fn aggregate_prefix(ctx: ContextId, aggregate_id: &str) -> Vec<u8> {
    let id = aggregate_id.as_bytes();
    let mut k = Vec::with_capacity(4 + 4 + id.len() + 8);
    k.extend_from_slice(&ctx.to_be_bytes());
    k.extend_from_slice(&(id.len() as u32).to_be_bytes());
    k.extend_from_slice(id);
    k
}

pub(crate) fn aggregate_key(ctx: ContextId, aggregate_id: &str, sequence: u64) -> Vec<u8> {
    let mut k = aggregate_prefix(ctx, aggregate_id);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

/// The sequence number at the end of an aggregate key with the given prefix length.
pub(crate) fn sequence_of_aggregate_key(key: &[u8], prefix_len: usize) -> Option<u64> {
    let bytes: [u8; 8] = key.get(prefix_len..prefix_len + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub(crate) fn meta_key(ctx: ContextId, name: &str) -> Vec<u8> {
    let mut k = ctx.to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// `schedule/<token>` in the meta family: the scheduled event itself.
pub(crate) fn schedule_key(ctx: ContextId, schedule_token: &str) -> Vec<u8> {
    meta_key(ctx, &format!("schedule/{schedule_token}"))
}

pub(crate) fn due_prefix(ctx: ContextId) -> Vec<u8> {
    meta_key(ctx, "due/")
}

/// `due/<instant><token>` in the meta family: the schedule index, earliest first.
pub(crate) fn due_key(ctx: ContextId, instant_ms: i64, schedule_token: &str) -> Vec<u8> {
    let mut k = due_prefix(ctx);
    // Offset so negative instants still sort before positive ones.
    k.extend_from_slice(&((instant_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(schedule_token.as_bytes());
    k
}

pub(crate) fn parse_due_key(key: &[u8], prefix_len: usize) -> Option<(i64, String)> {
    let raw: [u8; 8] = key.get(prefix_len..prefix_len + 8)?.try_into().ok()?;
    let instant = (u64::from_be_bytes(raw) ^ (1 << 63)) as i64;
    let token = std::str::from_utf8(key.get(prefix_len + 8..)?).ok()?;
    Some((instant, token.to_string()))
}

/// Raft keys: group id, then a tag, then (for entries) the index.
pub(crate) fn raft_entry_key(group: u32, index: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4] = b'e';
    k[5..].copy_from_slice(&index.to_be_bytes());
    k
}

pub(crate) fn raft_index_of_entry_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(5..13)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub(crate) fn raft_state_key(group: u32, tag: u8) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&group.to_be_bytes());
    k[4] = tag;
    k
}

/// The pseudo-context of cluster-wide keys in the meta family (the address book).
const CLUSTER_PREFIX: ContextId = u32::MAX;

/// `node/<id>` of the cluster pseudo-context: one node's encoded addresses.
pub(crate) fn cluster_node_key(node_id: u64) -> Vec<u8> {
    let mut k = cluster_node_prefix();
    k.extend_from_slice(&node_id.to_be_bytes());
    k
}

pub(crate) fn cluster_node_prefix() -> Vec<u8> {
    meta_key(CLUSTER_PREFIX, "node/")
}

/// `admin/<key>` of the cluster pseudo-context: one entry of the replicated `_admin` state.
pub(crate) fn admin_key(key: &str) -> Vec<u8> {
    meta_key(CLUSTER_PREFIX, &format!("admin/{key}"))
}

/// Keys of this node only, in the raft family (never part of a raft snapshot).
pub(crate) const LOCAL_NODE_ID: &[u8] = b"local/node_id";
/// Present while a raft snapshot is being installed; found at start-up, the install was cut short.
pub(crate) const LOCAL_INSTALLING: &[u8] = b"local/installing";

pub(crate) const RAFT_HARD_STATE: u8 = b'h';
pub(crate) const RAFT_CONF_STATE: u8 = b'c';
pub(crate) const RAFT_APPLIED: u8 = b'a';
pub(crate) const RAFT_TRUNCATED: u8 = b't';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_token() {
        let a = event_key(0, 255);
        let b = event_key(0, 256);
        assert!(a < b);
        assert_eq!(token_of_event_key(&b), Some(256));
    }

    #[test]
    fn aggregate_ids_never_prefix_each_other() {
        let short = aggregate_key(0, "ab", 7);
        let long = aggregate_prefix(0, "abc");
        assert!(!long.starts_with(&aggregate_prefix(0, "ab")));
        assert_eq!(
            sequence_of_aggregate_key(&short, aggregate_prefix(0, "ab").len()),
            Some(7)
        );
    }

    #[test]
    fn due_keys_sort_by_instant_including_negative() {
        let p = due_prefix(3).len();
        let a = due_key(3, -5, "x");
        let b = due_key(3, 10, "a");
        assert!(a < b);
        assert_eq!(parse_due_key(&a, p), Some((-5, "x".to_string())));
    }
}
