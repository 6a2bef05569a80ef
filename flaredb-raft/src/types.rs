//! openraft type configuration for FlareDB.

use std::fmt;

use bytes::Bytes;

use flaredb_proto::raft as pb;

use crate::namespace::{NamespaceInfo, NamespaceRejection};

/// The application data of a log entry: one state-machine command, kept in
/// its wire form so the log stores exactly what was proposed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlareRequest(pub pb::Command);

impl fmt::Display for FlareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use pb::command::Cmd;
        match &self.0.cmd {
            Some(Cmd::CasPut(c)) => write!(f, "cas_put(key_len={}, expect={})", c.key.len(), c.expected_version),
            Some(Cmd::CasDelete(c)) => write!(f, "cas_delete(key_len={}, expect={})", c.key.len(), c.expected_version),
            Some(Cmd::RawPut(c)) => write!(f, "raw_put(key_len={})", c.key.len()),
            Some(Cmd::RawDelete(c)) => write!(f, "raw_delete(key_len={})", c.key.len()),
            Some(Cmd::CreateNamespace(c)) => write!(f, "create_namespace({})", c.name),
            Some(Cmd::RetireNode(r)) => write!(f, "retire_node({})", r.node_id),
            Some(Cmd::Txn(t)) => {
                write!(
                    f,
                    "txn(compares={}, success={}, failure={})",
                    t.compares.len(),
                    t.success.len(),
                    t.failure.len()
                )
            }
            Some(Cmd::LeaseGrant(g)) => write!(f, "lease_grant(ttl={})", g.ttl_seconds),
            Some(Cmd::LeaseRevoke(r)) => write!(f, "lease_revoke(n={}, expired={})", r.ids.len(), r.expired),
            // Never the password hash or the signing key.
            Some(Cmd::Auth(_)) => write!(f, "auth"),
            Some(Cmd::SetQuota(q)) => write!(f, "set_quota({})", q.namespace),
            None => write!(f, "empty"),
        }
    }
}

/// What applying one entry answered. Rejections are normal outcomes: every
/// replica computes the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlareResponse {
    /// Blank and membership entries.
    None,
    Cas {
        success: bool,
        current_version: u64,
        new_version: u64,
    },
    CasDelete {
        success: bool,
        current_version: u64,
    },
    RawPut,
    RawDelete {
        existed: bool,
    },
    Namespace {
        info: NamespaceInfo,
        created: bool,
    },
    /// A transaction: which branch ran, and one result per op of it.
    /// The revision (the entry's index) is the version of every key it put.
    Txn {
        succeeded: bool,
        revision: u64,
        results: Vec<TxnOpResult>,
    },
    Rejected(NamespaceRejection),
    /// A write refused by its namespace's quota: nothing applied.
    QuotaExceeded(crate::quota::QuotaExceeded),
    /// A namespace's quota was set.
    QuotaSet,
    /// An auth change: the auth revision it applied at, or why not.
    Auth(Result<u64, crate::auth::AuthRejection>),
    /// A lease granted: its id is the entry's index.
    LeaseGranted {
        id: u64,
        ttl_secs: i64,
    },
    /// How many of the leases named existed (and are gone now), and how many
    /// keys they held (deleted).
    LeaseRevoked {
        revoked: u64,
        deleted: u64,
    },
    /// A put named a lease that does not exist: nothing applied.
    LeaseNotFound {
        id: u64,
    },
    /// A transaction whose gets would read more than the limit: nothing applied.
    TxnReadTooLarge {
        bytes: usize,
        limit: usize,
    },
    /// A put or revoke named a lease another user granted: nothing applied.
    LeaseNotOwned {
        id: u64,
    },
    /// A write id whose client's session belongs to another user: nothing
    /// applied, nothing of the session's answers shown.
    SessionNotOwned {
        client_id: String,
    },
    /// A write id whose sequence is below its client's retained window:
    /// whether it applied is no longer known, and it is not applied now.
    StaleWrite {
        sequence: u64,
        oldest: u64,
    },
}

/// The result of one transaction op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    /// The key's new version.
    Put { version: u64 },
    /// How many keys a delete or delete-prefix removed.
    Delete { deleted: u64 },
    /// The key read, with (version, value) when present.
    Get { key: Bytes, found: Option<(u64, Bytes)> },
    /// An op with nothing set (refused at the edge): changed nothing.
    Empty,
}

openraft::declare_raft_types!(
    /// FlareDB's Raft types: u64 node ids, nodes carry their gRPC address.
    pub TypeConfig:
        D = FlareRequest,
        R = FlareResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<TypeConfig, crate::storage::StateMachine>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
