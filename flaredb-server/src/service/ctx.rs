//! What every service handler shares: the node, the limits, forwarding, and
//! the helpers that keep handlers thin (validate, call the node, map).

use std::{future::Future, sync::Arc, time::Duration};

use flaredb_proto::raft as pb;
use flaredb_raft::{
    namespace::{Mode, NamespaceInfo, NamespaceRejection},
    node::FlareNode,
    FlareResponse, NodeError,
};
use tonic::{transport::Channel, Request, Response, Status};

use crate::{
    config::Limits,
    forward::{is_forwarded, Forwarder},
    status,
};

pub struct Ctx {
    pub node: Arc<FlareNode>,
    pub limits: Limits,
    pub auto_create: bool,
    pub timeout: Duration,
    pub fwd: Forwarder,
}

impl Ctx {
    /// The leader to forward `req` to, when this node is not the leader.
    pub fn forward_target<T>(&self, req: &Request<T>) -> Option<(u64, String)> {
        if is_forwarded(req) || self.node.raft().is_leader() {
            return None;
        }
        self.node.leader().filter(|(id, _)| *id != self.node.id())
    }

    /// Sends `req` on to the leader with `call` when this node should not
    /// serve it; otherwise hands the request back.
    pub async fn forward<M, R, F, Fut>(
        &self,
        req: Request<M>,
        timeout: Duration,
        call: F,
    ) -> Result<Result<Response<R>, Status>, Request<M>>
    where
        F: FnOnce(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        match self.forward_target(&req) {
            Some(leader) => Ok(self.fwd.call(leader, req.into_inner(), timeout, call).await),
            None => Err(req),
        }
    }

    pub fn target(&self, namespace: &str) -> Option<pb::Target> {
        Some(pb::Target { namespace: namespace.to_string(), auto_create: self.auto_create })
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
        let fut = self.node.propose(pb::Command { cmd: Some(cmd) });
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok((FlareResponse::Rejected(r), _))) => Err(status::rejection(r)),
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
