//! Conversions between openraft's types and their protobuf encodings, used by
//! the log store (on disk) and the Raft transport (on the wire).
//!
//! openraft's own serde derives are not a stable format, so FlareDB owns this
//! encoding. Decoding never panics: malformed input is a `CodecError`.

use std::collections::{BTreeMap, BTreeSet};

use flaredb_proto::raft as pb;
use openraft::{entry::EntryPayload, BasicNode};
use prost::Message;

use crate::types::{Entry, FlareRequest, LeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote};

#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {detail}")]
pub struct CodecError {
    pub what: &'static str,
    pub detail: String,
}

fn missing(what: &'static str, field: &str) -> CodecError {
    CodecError { what, detail: format!("missing {field}") }
}

pub fn log_id_to_pb(id: &LogId) -> pb::LogId {
    pb::LogId { term: id.leader_id.term, node_id: id.leader_id.node_id, index: id.index }
}

pub fn log_id_from_pb(p: &pb::LogId) -> LogId {
    LogId::new(LeaderId { term: p.term, node_id: p.node_id }, p.index)
}

pub fn opt_log_id_to_pb(id: &Option<LogId>) -> Option<pb::LogId> {
    id.as_ref().map(log_id_to_pb)
}

pub fn opt_log_id_from_pb(p: &Option<pb::LogId>) -> Option<LogId> {
    p.as_ref().map(log_id_from_pb)
}

pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote { term: v.leader_id.term, node_id: v.leader_id.node_id, committed: v.committed }
}

pub fn vote_from_pb(p: &pb::Vote) -> Vote {
    if p.committed {
        Vote::new_committed(p.term, p.node_id)
    } else {
        Vote::new(p.term, p.node_id)
    }
}

pub fn req_vote_from_pb(p: &Option<pb::Vote>, what: &'static str) -> Result<Vote, CodecError> {
    p.as_ref().map(vote_from_pb).ok_or_else(|| missing(what, "vote"))
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m.get_joint_config().iter().map(|c| pb::NodeIdSet { ids: c.iter().copied().collect() }).collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
    }
}

pub fn membership_from_pb(p: &pb::Membership) -> Result<Membership, CodecError> {
    let configs: Vec<BTreeSet<u64>> = p.configs.iter().map(|c| c.ids.iter().copied().collect()).collect();
    let nodes: BTreeMap<u64, BasicNode> = p.nodes.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
    Membership::new(configs, nodes).map_err(|e| CodecError { what: "membership", detail: e.to_string() })
}

pub fn stored_membership_to_pb(m: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership { log_id: opt_log_id_to_pb(m.log_id()), membership: Some(membership_to_pb(m.membership())) }
}

pub fn stored_membership_from_pb(p: &pb::StoredMembership) -> Result<StoredMembership, CodecError> {
    let m = p.membership.as_ref().ok_or_else(|| missing("stored membership", "membership"))?;
    Ok(StoredMembership::new(opt_log_id_from_pb(&p.log_id), membership_from_pb(m)?))
}

pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    use pb::entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(req) => Payload::Normal(req.0.encode_to_vec().into()),
        EntryPayload::Membership(m) => Payload::Membership(membership_to_pb(m)),
    };
    pb::Entry { log_id: Some(log_id_to_pb(&e.log_id)), payload: Some(payload) }
}

pub fn entry_from_pb(p: &pb::Entry) -> Result<Entry, CodecError> {
    use pb::entry::Payload;
    let log_id = p.log_id.as_ref().map(log_id_from_pb).ok_or_else(|| missing("entry", "log_id"))?;
    let payload = match p.payload.as_ref().ok_or_else(|| missing("entry", "payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Normal(bytes) => EntryPayload::Normal(FlareRequest(
            pb::Command::decode(bytes.as_ref()).map_err(|e| CodecError { what: "command", detail: e.to_string() })?,
        )),
        Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(m)?),
    };
    Ok(Entry { log_id, payload })
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    entry_to_pb(e).encode_to_vec()
}

pub fn decode_entry(raw: &[u8]) -> Result<Entry, CodecError> {
    let p = pb::Entry::decode(raw).map_err(|e| CodecError { what: "entry", detail: e.to_string() })?;
    entry_from_pb(&p)
}

pub fn snapshot_meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: opt_log_id_to_pb(&m.last_log_id),
        last_membership: Some(stored_membership_to_pb(&m.last_membership)),
    }
}

pub fn snapshot_meta_from_pb(p: &pb::SnapshotMeta) -> Result<SnapshotMeta, CodecError> {
    let m = p.last_membership.as_ref().ok_or_else(|| missing("snapshot meta", "last_membership"))?;
    Ok(SnapshotMeta { last_log_id: opt_log_id_from_pb(&p.last_log_id), last_membership: stored_membership_from_pb(m)? })
}

/// Decodes a stored protobuf value, naming what was corrupt.
pub fn decode_pb<M: Message + Default>(what: &'static str, raw: &[u8]) -> Result<M, CodecError> {
    M::decode(raw).map_err(|e| CodecError { what, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership {
        let nodes = BTreeMap::from([
            (1, BasicNode::new("127.0.0.1:1")),
            (2, BasicNode::new("127.0.0.1:2")),
            (3, BasicNode::new("127.0.0.1:3")),
        ]);
        Membership::new(vec![BTreeSet::from([1, 2])], nodes).unwrap()
    }

    #[test]
    fn entries_round_trip() {
        let id = LogId::new(LeaderId { term: 3, node_id: 2 }, 17);
        let cmd = pb::Command {
            cmd: Some(pb::command::Cmd::RawDelete(pb::RawDelete { target: None, key: b"k".to_vec().into() })),
            write_id: Some(pb::WriteId { client_id: "c".into(), sequence: 9 }),
            proposed_at_ms: 1_700_000_000_000,
            user: "alice".into(),
        };
        for payload in
            [EntryPayload::Blank, EntryPayload::Normal(FlareRequest(cmd)), EntryPayload::Membership(membership())]
        {
            let e = Entry { log_id: id, payload };
            let back = decode_entry(&encode_entry(&e)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }

    #[test]
    fn votes_and_metas_round_trip() {
        for v in [Vote::new(5, 1), Vote::new_committed(5, 1)] {
            assert_eq!(vote_from_pb(&vote_to_pb(&v)), v);
        }
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(LeaderId { term: 1, node_id: 1 }, 9)),
            last_membership: StoredMembership::new(None, membership()),
        };
        assert_eq!(snapshot_meta_from_pb(&snapshot_meta_to_pb(&meta)).unwrap(), meta);
    }

    #[test]
    fn membership_encoding_is_deterministic() {
        // Replicas hash their state: the same membership must encode to the same bytes.
        let first = membership_to_pb(&membership()).encode_to_vec();
        for _ in 0..20 {
            assert_eq!(membership_to_pb(&membership()).encode_to_vec(), first);
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(decode_entry(b"\xff\xff\xff").is_err());
        assert!(decode_entry(&pb::Entry::default().encode_to_vec()).is_err());
        let bad = pb::Membership { configs: vec![pb::NodeIdSet { ids: vec![9] }], nodes: Default::default() };
        assert!(membership_from_pb(&bad).is_err());
    }
}
