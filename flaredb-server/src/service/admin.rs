//! `flaredb.v1.Admin`: cluster status and namespaces.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use tokio::io::AsyncReadExt;

use flaredb_proto::{
    raft as pb,
    v1::{admin_client::AdminClient, admin_server::Admin, *},
};
use flaredb_raft::{
    namespace::{self as ns, NamespaceInfo as Info},
    FlareResponse,
};
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::ctx::{unexpected, Ctx};
use crate::{auth::gate::Scope, status};
use flaredb_raft::auth::Need;

/// Deadline for operations that move a lot of data (catch-up, snapshots).
const LONG_OP: std::time::Duration = std::time::Duration::from_secs(600);

pub struct AdminService {
    pub ctx: Arc<Ctx>,
}

fn mode_to_pb(m: ns::Mode) -> NamespaceMode {
    match m {
        ns::Mode::Strong => NamespaceMode::Strong,
        ns::Mode::Eventual => NamespaceMode::Eventual,
    }
}

fn info_to_pb(ctx: &Ctx, i: &Info) -> NamespaceInfo {
    let u = ctx.node.namespace_usage(i.id);
    NamespaceInfo {
        name: i.name.clone(),
        id: i.id,
        mode: mode_to_pb(i.mode) as i32,
        max_keys: u.max_keys,
        max_bytes: u.max_bytes,
        keys: u.keys,
        bytes: u.bytes,
    }
}

/// Every member with the leader's view of its matched index.
fn members(ctx: &Ctx) -> Vec<Member> {
    let matched = ctx.node.matched_indexes();
    ctx.node
        .status()
        .members
        .into_iter()
        .map(|m| Member {
            id: m.id,
            addr: m.addr.public,
            peer_addr: m.addr.peer.unwrap_or_default(),
            voter: m.voter,
            matched_index: matched.get(&m.id).copied().unwrap_or(0),
        })
        .collect()
}

fn membership(ctx: &Ctx) -> Response<MembershipResponse> {
    Response::new(MembershipResponse { members: members(ctx) })
}

fn role(s: ServerState) -> Role {
    match s {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Unspecified,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.ctx.node.status();
        let (leader_id, leader_addr) = s.leader.unwrap_or_default();
        Ok(Response::new(StatusResponse {
            node_id: s.id,
            addr: s.addr,
            role: role(s.state) as i32,
            leader_id,
            leader_addr,
            term: s.term,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            purged_index: s.purged_index,
            members: members(&self.ctx),
            oldest_watch_revision: self.ctx.node.watch_floor().map_err(status::node_error)?,
            watchers: self.ctx.node.watch_hub().watchers() as u64,
            leases: self.ctx.node.lease_count() as u64,
            corrupt: self.ctx.corruption.why().unwrap_or_default().to_string(),
            raft_exposed: self.ctx.raft_exposed.is_some(),
        }))
    }

    async fn create_namespace(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        ns::validate_name(&r.name).map_err(Status::invalid_argument)?;
        ctx.gate.check(&req, Scope::Namespace(&r.name), &[Need::Admin])?;
        let mode = match NamespaceMode::try_from(r.mode) {
            Ok(NamespaceMode::Strong) => pb::Mode::Strong,
            Ok(NamespaceMode::Eventual) => pb::Mode::Eventual,
            _ => return Err(Status::invalid_argument("mode must be STRONG or EVENTUAL")),
        };
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { AdminClient::new(ch).create_namespace(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let cmd =
            pb::command::Cmd::CreateNamespace(pb::CreateNamespace { name: req.into_inner().name, mode: mode as i32 });
        match ctx.propose(cmd).await? {
            FlareResponse::Namespace { info, created } => {
                Ok(Response::new(CreateNamespaceResponse { namespace: Some(info_to_pb(ctx, &info)), created }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn list_namespaces(
        &self,
        req: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        // With auth on, a user sees the namespaces it has a right on.
        let who = self.ctx.gate.user(&req)?;
        let visible = |i: &&Info| who.as_ref().is_none_or(|(user, state)| state.sees(user, &i.name));
        let namespaces = self.ctx.node.namespaces().iter().filter(visible).map(|i| info_to_pb(&self.ctx, i)).collect();
        Ok(Response::new(ListNamespacesResponse { namespaces }))
    }

    async fn set_namespace_quota(
        &self,
        req: Request<SetNamespaceQuotaRequest>,
    ) -> Result<Response<SetNamespaceQuotaResponse>, Status> {
        let ctx = &self.ctx;
        let name = ns::canonical_name(&req.get_ref().namespace).to_string();
        ns::validate_name(&name).map_err(Status::invalid_argument)?;
        // Quotas protect the cluster from a tenant: ADMIN on one namespace
        // must not let it raise its own, so this is cluster admin.
        ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { AdminClient::new(ch).set_namespace_quota(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        let missing =
            || Status::not_found(format!("namespace {name:?} does not exist: create it first (Admin/CreateNamespace)"));
        if ctx.node.namespaces().iter().all(|i| i.name != name) {
            return Err(missing());
        }
        let cmd = pb::command::Cmd::SetQuota(pb::SetQuota {
            namespace: name.clone(),
            max_keys: r.max_keys,
            max_bytes: r.max_bytes,
        });
        match ctx.propose(cmd).await {
            Ok(FlareResponse::QuotaSet) => {}
            Err(s) if s.code() == tonic::Code::NotFound => return Err(missing()),
            Err(s) => return Err(s),
            Ok(other) => return Err(unexpected(other)),
        }
        let info = ctx.node.namespaces().into_iter().find(|i| i.name == name).ok_or_else(missing)?;
        Ok(Response::new(SetNamespaceQuotaResponse { namespace: Some(info_to_pb(ctx, &info)) }))
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Result<Response<MembershipResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let timeout = if req.get_ref().wait { LONG_OP } else { ctx.timeout };
        let req =
            match ctx.forward(req, timeout, |ch, q| async move { AdminClient::new(ch).add_learner(q).await }).await {
                Ok(forwarded) => return forwarded,
                Err(req) => req,
            };
        let r = req.into_inner();
        if ctx.node.auth().enabled {
            // With auth on, a member whose Raft port is open to strangers would undo it.
            let public = r.addr.split('@').next().unwrap_or_default();
            super::auth::raft_closed(ctx, r.node_id, public).await?;
        }
        ctx.node.add_learner(r.node_id, r.addr, r.wait).await.map_err(status::node_error)?;
        Ok(membership(ctx))
    }

    async fn change_membership(
        &self,
        req: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { AdminClient::new(ch).change_membership(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let voters = req.into_inner().voter_ids.into_iter().collect();
        ctx.node.change_membership(voters).await.map_err(status::node_error)?;
        Ok(membership(ctx))
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Result<Response<MembershipResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let id = req.get_ref().node_id;
        if id == ctx.node.id() && ctx.node.raft().is_leader() {
            // Removing the leader: hand leadership over, then let the new leader remove us.
            ctx.node.check_removal(id).map_err(status::node_error)?;
            ctx.node.step_down(ctx.timeout).await.map_err(status::node_error)?;
        }
        let forwarded = ctx.forward(req, ctx.timeout, |ch, q| async move { AdminClient::new(ch).remove_node(q).await });
        if let Ok(answer) = forwarded.await {
            return answer;
        }
        ctx.node.remove_node(id).await.map_err(status::node_error)?;
        Ok(membership(ctx))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { AdminClient::new(ch).transfer_leader(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let to = req.into_inner().to_node_id;
        ctx.node.transfer_leader(to, ctx.timeout).await.map_err(status::node_error)?;
        Ok(Response::new(TransferLeaderResponse { leader_id: to }))
    }

    async fn snapshot(&self, req: Request<SnapshotRequest>) -> Result<Response<SnapshotResponse>, Status> {
        self.ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let index = self.ctx.node.snapshot_now(LONG_OP).await.map_err(status::node_error)?;
        Ok(Response::new(SnapshotResponse { snapshot_index: index }))
    }

    type BackupStream = Pin<Box<dyn Stream<Item = Result<BackupChunk, Status>> + Send>>;

    async fn backup(&self, req: Request<BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        self.ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let (path, meta) = self.ctx.node.backup_file().await.map_err(status::node_error)?;
        tracing::info!(index = meta.last_log_id.map_or(0, |l| l.index), "streaming a backup");
        let file = tokio::fs::File::open(&path).await.map_err(|e| Status::internal(format!("backup file: {e}")))?;
        // Unlinked now: the open handle keeps the data until the stream ends.
        let _ = tokio::fs::remove_file(&path).await;
        let chunks = futures::stream::try_unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 1 << 20];
            let n = f.read(&mut buf).await.map_err(|e| Status::internal(format!("reading backup: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((BackupChunk { data: buf.into() }, f)))
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.gate.check(&req, Scope::Cluster, &[Need::Admin])?;
        let (applied_index, hash) = self.ctx.node.state_hash().await.map_err(status::node_error)?;
        Ok(Response::new(HashResponse { applied_index, hash }))
    }
}
