//! What every service handler shares: the node, the limits, forwarding, and
//! the helpers that keep handlers thin (validate, call the node, map).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use flaredb_proto::leader_hint::{is_connect_failure, mark_not_applied};
use flaredb_proto::raft as pb;
use flaredb_raft::{
    auth::Need,
    namespace::{canonical_name, Mode, NamespaceInfo, NamespaceRejection},
    node::FlareNode,
    FlareResponse, NodeError,
};
use tonic::{transport::Channel, Request, Response, Status};

use crate::{
    config::Limits,
    forward::{caller_timeout, is_forwarded, with_cause, Forwarder},
    status,
};

pub struct Ctx {
    pub node: Arc<FlareNode>,
    pub limits: Limits,
    pub auto_create: bool,
    pub timeout: Duration,
    /// How long a follower waits for a reachable leader before answering
    /// UNAVAILABLE (ten election timeouts, at most half the caller's
    /// deadline; see `forward`).
    pub leader_wait: Duration,
    pub fwd: Forwarder,
    /// An idle watcher gets a progress event this often.
    pub watch_progress_ms: u64,
    pub disk: Arc<crate::disk_guard::DiskGuard>,
    pub corruption: Arc<crate::corruption::CorruptionAlarm>,
    /// Who sends each request, and whether they may (auth/gate.rs).
    pub gate: crate::auth::gate::Gate,
    pub token_ttl: Duration,
    /// The Raft transport's address if it is reachable off this machine
    /// without peer TLS and the operator did not accept that: AuthEnable is
    /// refused, since auth could be bypassed through Raft.
    pub raft_exposed: Option<std::net::SocketAddr>,
}

impl Ctx {
    /// Sends `req` on to the leader with `call` when this node should not
    /// serve it; otherwise hands the request back.
    ///
    /// Failover is measured to the first acknowledged write, so a follower
    /// rides out a leader change itself rather than answering UNAVAILABLE and
    /// leaving the client to back off past the election: with no leader
    /// known, or the known one refusing connections (the request never left,
    /// so even a CAS may go elsewhere), it waits up to `leader_wait` for the
    /// next leader and forwards there (or serves, if that is itself).
    pub async fn forward<M, R, F, Fut>(
        &self,
        req: Request<M>,
        timeout: Duration,
        call: F,
    ) -> Result<Result<Response<R>, Status>, Request<M>>
    where
        M: Clone,
        F: Fn(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        if is_forwarded(&req) {
            return Err(req);
        }
        let auth = self.gate.forward_header(&req);
        // Half the caller's deadline at most: it must still hear an answer
        // in time to retry elsewhere (a CAS cut off by its deadline is
        // indeterminate, one answered "no leader" is not).
        let caller = caller_timeout(&req);
        let wait = caller.map_or(self.leader_wait, |t| self.leader_wait.min(t / 2));
        let until = Instant::now() + wait;
        // A forwarded call never outlives the caller's own deadline.
        let call_until = Instant::now() + caller.map_or(timeout, |t| timeout.min(t));
        // The leader a connect just failed to, and that failure.
        let mut unreachable: Option<(u64, Status)> = None;
        loop {
            let known = self.node.leader();
            if self.node.raft().is_leader() || known.as_ref().is_some_and(|(id, _)| *id == self.node.id()) {
                return Err(req);
            }
            let skip = unreachable.as_ref().map(|(id, _)| *id);
            let leader = known.filter(|(id, _)| Some(*id) != skip);
            let Some(leader) = leader else {
                let left = until.saturating_duration_since(Instant::now());
                if self.node.wait_for_new_leader(skip, left).await.is_some() {
                    continue;
                }
                return match unreachable {
                    // Still pointing at a leader that refuses connections: say
                    // so, marked as not applied (nothing was sent).
                    Some((_, mut s)) => {
                        mark_not_applied(s.metadata_mut());
                        Ok(Err(s))
                    }
                    // Serving here answers NotLeader (with a hint if one came up).
                    None => Err(req),
                };
            };
            let id = leader.0;
            let to = leader.clone();
            let left = call_until.saturating_duration_since(Instant::now());
            match self.fwd.call(leader, req.get_ref().clone(), auth.clone(), left, &call).await {
                Err(mut s) if is_connect_failure(&s) => {
                    if Instant::now() >= until {
                        mark_not_applied(s.metadata_mut());
                        return Ok(Err(s));
                    }
                    unreachable = Some((id, s));
                }
                answer => return Ok(answer.map_err(|s| with_cause(s, &to))),
            }
        }
    }

    /// Where a write of `user` (empty: auth off) goes. With auth on, a write
    /// creates a missing namespace only for a user who could create it with
    /// Admin/CreateNamespace (ADMIN on it): WRITE alone does not.
    pub fn target(&self, namespace: &str, user: &str) -> Option<pb::Target> {
        let may_create =
            user.is_empty() || self.node.auth().permits(user, Some(canonical_name(namespace)), Need::Admin);
        Some(pb::Target { namespace: namespace.to_string(), auto_create: self.auto_create && may_create })
    }

    /// Whether `user` (empty: auth off) may read `namespace`.
    pub fn may_read(&self, user: &str, namespace: &str) -> bool {
        user.is_empty() || self.node.auth().permits(user, Some(canonical_name(namespace)), Need::Read)
    }

    /// Fails fast when the namespace is known locally in the other mode; the
    /// state machine checks again when it applies the command.
    pub fn precheck(&self, namespace: &str, mode: Mode) -> Result<(), Status> {
        match self.node.namespace_for_read(namespace, mode) {
            Err(r @ NamespaceRejection::WrongMode { .. }) => Err(status::rejection(r)),
            _ => Ok(()),
        }
    }

    /// Replicates `cmd`. A deadline without commit, or a fatal error after
    /// proposing, answers that the outcome is unknown.
    pub async fn propose(&self, cmd: pb::command::Cmd) -> Result<FlareResponse, Status> {
        self.propose_once(cmd, None, String::new()).await
    }

    /// `propose` for a write carrying a write id: a retry of one that
    /// applied answers what it answered then. `user` (from `Gate::check`,
    /// empty when auth is off) owns the leases and sessions it makes.
    pub async fn propose_once(
        &self,
        cmd: pb::command::Cmd,
        write_id: Option<flaredb_proto::v1::WriteId>,
        user: String,
    ) -> Result<FlareResponse, Status> {
        if let Some(why) = self.node.storage_failure() {
            return Err(status::storage_failed(&why));
        }
        self.disk.check(&cmd)?;
        let write_id = write_id.map(|w| pb::WriteId { client_id: w.client_id, sequence: w.sequence });
        let fut = self.node.propose(pb::Command { cmd: Some(cmd), write_id, user, ..Default::default() });
        let answer = tokio::time::timeout(self.timeout, fut).await;
        if let (Ok(Ok(_)), Some(delay)) = (&answer, self.node.faults().and_then(|f| f.take_reply_delay())) {
            tokio::time::sleep(delay).await;
        }
        match answer {
            Ok(Ok((FlareResponse::Rejected(r), _))) => Err(status::rejection(r)),
            Ok(Ok((FlareResponse::StaleWrite { sequence, oldest }, _))) => Err(status::stale_write(sequence, oldest)),
            Ok(Ok((FlareResponse::LeaseNotFound { id }, _))) => Err(status::lease_not_found(id)),
            Ok(Ok((FlareResponse::LeaseNotOwned { id }, _))) => Err(status::lease_not_owned(id)),
            Ok(Ok((FlareResponse::TxnReadTooLarge { bytes, limit }, _))) => {
                Err(status::txn_read_too_large(bytes, limit))
            }
            Ok(Ok((FlareResponse::SessionNotOwned { client_id }, _))) => Err(status::session_not_owned(&client_id)),
            Ok(Ok((FlareResponse::QuotaExceeded(q), _))) => Err(status::quota_exceeded(q)),
            Ok(Ok((resp, _))) => Ok(resp),
            Ok(Err(e)) => Err(status::write_error(e)),
            Err(_) => Err(status::write_timeout(self.timeout)),
        }
    }

    /// Confirms leadership for a strong read, within the deadline.
    pub async fn linearize(&self) -> Result<(), Status> {
        match tokio::time::timeout(self.timeout, self.node.linearize()).await {
            Ok(r) => r.map_err(status::node_error),
            Err(_) => Err(status::read_timeout(self.timeout)),
        }
    }

    /// The namespace a read targets. `Ok(None)`: it does not exist yet, which
    /// reads as empty when namespaces are created on first write.
    pub fn read_namespace(&self, name: &str, mode: Mode) -> Result<Option<NamespaceInfo>, Status> {
        self.corruption.check_read()?;
        match self.node.namespace_for_read(name, mode) {
            Ok(info) => Ok(Some(info)),
            Err(NamespaceRejection::NotFound(_)) if self.auto_create => Ok(None),
            Err(r) => Err(status::rejection(r)),
        }
    }
}

/// An answer of a kind the command cannot produce: a bug, reported not hidden.
pub fn unexpected(resp: FlareResponse) -> Status {
    Status::internal(format!("unexpected state-machine answer {resp:?}"))
}

pub fn fatal(e: NodeError) -> Status {
    status::node_error(e)
}
