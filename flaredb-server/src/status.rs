//! The one place where FlareDB errors become gRPC statuses. Every status
//! carries a message a person can act on; NotLeader carries the leader hint.

use std::time::Duration;

use flaredb_proto::leader_hint::{mark_not_applied, LeaderHint};
use flaredb_raft::{
    auth::AuthRejection, namespace::NamespaceRejection, storage::snapshot_recv::ReceiveError, NodeError,
};
use tonic::{Code, Status};

pub fn rejection(r: NamespaceRejection) -> Status {
    match r {
        NamespaceRejection::NotFound(name) => Status::not_found(format!(
            "namespace {name:?} does not exist and is not created by this write (auto_create_namespaces is off, \
             or auth is on and the writer has no ADMIN on it); create it with Admin/CreateNamespace"
        )),
        NamespaceRejection::WrongMode { name, mode } => {
            let api = match mode {
                flaredb_raft::namespace::Mode::Strong => "KvCas",
                flaredb_raft::namespace::Mode::Eventual => "KvRaw",
            };
            Status::failed_precondition(format!("namespace {name:?} is {mode}; use the {api} service for it"))
        }
        NamespaceRejection::Invalid(why) => Status::invalid_argument(why),
    }
}

/// A write past its namespace's quota: certainly not applied.
pub fn quota_exceeded(q: flaredb_raft::quota::QuotaExceeded) -> Status {
    let mut s = Status::resource_exhausted(q.to_string());
    mark_not_applied(s.metadata_mut());
    s
}

pub fn txn_read_too_large(bytes: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "the transaction's gets would read {bytes} bytes of values, over the limit of {limit}; nothing was applied: \
         read large values with fewer gets per transaction"
    ))
}

pub fn lease_not_owned(id: u64) -> Status {
    Status::permission_denied(format!(
        "lease {id} was granted by another user: only its owner (or a cluster admin) may use, renew, read or revoke it"
    ))
}

pub fn session_not_owned(client_id: &str) -> Status {
    Status::permission_denied(format!(
        "write_id.client_id {client_id:?} is another user's session: each client needs a client id of its own \
         (a random one per client process)"
    ))
}

pub fn raft_exposed(node: u64, addr: std::net::SocketAddr) -> Status {
    Status::failed_precondition(format!(
        "node {node} serves the Raft transport on {addr}, off loopback and without peer TLS: anyone who reaches that \
         port could rewrite the auth state through Raft, so auth would protect nothing. Serve Raft with \
         --peer-listen, --peer-cert, --peer-key and --peer-trusted-ca (mTLS), or, to accept the risk, set \
         allow_auth_without_peer_tls = true in its config file"
    ))
}

pub fn auth_rejection(r: AuthRejection) -> Status {
    let msg = r.to_string();
    match r {
        AuthRejection::UserExists(_) | AuthRejection::RoleExists(_) => Status::already_exists(msg),
        AuthRejection::UserNotFound(_) | AuthRejection::RoleNotFound(_) => Status::not_found(msg),
        AuthRejection::RoleNotGranted { .. }
        | AuthRejection::PermissionNotGranted { .. }
        | AuthRejection::NoRoot
        | AuthRejection::RootInUse => Status::failed_precondition(msg),
        AuthRejection::Invalid(_) => Status::invalid_argument(msg),
    }
}

pub fn node_error(e: NodeError) -> Status {
    match e {
        NodeError::NotLeader { leader: Some((id, addr)) } => {
            let mut s = Status::new(Code::Unavailable, format!("not the leader; the leader is node {id} at {addr}"));
            LeaderHint { id, addr }.insert_into(s.metadata_mut());
            mark_not_applied(s.metadata_mut());
            s
        }
        NodeError::NotLeader { leader: None } => {
            let mut s =
                Status::unavailable("no leader is known right now (election in progress or no quorum); retry shortly");
            mark_not_applied(s.metadata_mut());
            s
        }
        NodeError::Unavailable(why) => Status::unavailable(why),
        NodeError::Rejected(r) => rejection(r),
        NodeError::Invalid(why) => Status::invalid_argument(why),
        NodeError::Precondition(why) => Status::failed_precondition(why),
        NodeError::Denied(why) => Status::permission_denied(why),
        NodeError::Fatal(why) => storage_failed(&why),
    }
}

/// This node stopped serving (its storage failed): nothing was applied by
/// this request; another node can serve it.
pub fn storage_failed(why: &str) -> Status {
    let mut s = Status::unavailable(format!(
        "this node's storage failed and it serves nothing until it is restarted (after fixing the cause): {why}; \
         ask another node"
    ));
    mark_not_applied(s.metadata_mut());
    s
}

/// The failure of a write that was handed to Raft. A fatal error then comes
/// after the proposal: the entry may already be in the log and commit, so
/// the answer says the outcome is unknown (INTERNAL without the not-applied
/// mark; clients report a conditional write answered so as indeterminate).
pub fn write_error(e: NodeError) -> Status {
    match e {
        NodeError::Fatal(why) => Status::internal(format!(
            "the node failed while the write was pending ({why}); its outcome is unknown: it may have been \
             applied or may still apply; read the key to learn which"
        )),
        other => node_error(other),
    }
}

/// Metadata on a refused retry whose outcome is unknown.
pub const STALE_WRITE_HEADER: &str = "flaredb-write-stale";

/// A write id below its client's retained window.
pub fn stale_write(sequence: u64, oldest: u64) -> Status {
    let mut s = Status::failed_precondition(format!(
        "write sequence {sequence} is older than this client's retained window (oldest kept: {oldest}); \
         whether it applied is unknown and it was not applied now: read the keys to learn the outcome"
    ));
    s.metadata_mut().insert(STALE_WRITE_HEADER, tonic::metadata::MetadataValue::from_static("1"));
    s
}

/// A put or transaction naming a lease that does not exist (nothing applied).
pub fn lease_not_found(id: u64) -> Status {
    Status::not_found(format!(
        "lease {id} not found: it expired or was revoked (or never existed); nothing was written. \
         Grant a new lease (LeaseGrant) and write again"
    ))
}

/// A write not committed within the request deadline.
pub fn write_timeout(after: Duration) -> Status {
    Status::unavailable(format!(
        "the write was not committed within {after:?} (no leader or no quorum); its outcome is unknown"
    ))
}

/// A strong read whose leadership check did not finish in time.
pub fn read_timeout(after: Duration) -> Status {
    Status::unavailable(format!("leadership could not be confirmed within {after:?} (no quorum); retry"))
}

/// A request over the gRPC message limit (`detail` is tonic's text, which
/// names the size and the limit). Not retryable as it is.
pub fn message_too_large(detail: &str) -> Status {
    Status::resource_exhausted(format!(
        "the request is larger than this server accepts (max_message_bytes; keys and values have their own, \
         smaller limits): {detail}"
    ))
}

/// A snapshot a leader sent that could not be received.
pub fn snapshot_receive(e: ReceiveError) -> Status {
    match e {
        ReceiveError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        ReceiveError::Invalid(_) => Status::data_loss(e.to_string()),
        ReceiveError::Io { .. } | ReceiveError::Join(_) => Status::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_hint() {
        let s = node_error(NodeError::NotLeader { leader: Some((2, "127.0.0.1:9".into())) });
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(LeaderHint::from_metadata(s.metadata()), Some(LeaderHint { id: 2, addr: "127.0.0.1:9".into() }));
        assert!(flaredb_proto::leader_hint::is_not_applied(s.metadata()));
    }

    #[test]
    fn a_fatal_error_on_a_pending_write_says_the_outcome_is_unknown() {
        let s = write_error(NodeError::Fatal("storage stopped".into()));
        assert_eq!(s.code(), Code::Internal);
        assert!(
            s.message().contains("outcome is unknown") && s.message().contains("storage stopped"),
            "{}",
            s.message()
        );
        assert!(!flaredb_proto::leader_hint::is_not_applied(s.metadata()));
        // Errors raised before proposing keep their own mapping.
        let s = write_error(NodeError::NotLeader { leader: None });
        assert!(s.code() == Code::Unavailable && flaredb_proto::leader_hint::is_not_applied(s.metadata()));
    }

    #[test]
    fn rejections_map_to_their_codes() {
        assert_eq!(rejection(NamespaceRejection::NotFound("a".into())).code(), Code::NotFound);
        let wrong = NamespaceRejection::WrongMode { name: "a".into(), mode: flaredb_raft::namespace::Mode::Eventual };
        let s = rejection(wrong);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("EVENTUAL") && s.message().contains("KvRaw"), "{}", s.message());
        assert_eq!(rejection(NamespaceRejection::Invalid("x".into())).code(), Code::InvalidArgument);
    }
}
