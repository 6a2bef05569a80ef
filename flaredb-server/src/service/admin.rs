//! `flaredb.v1.Admin`: cluster status and namespaces.

use std::sync::Arc;

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

pub struct AdminService {
    pub ctx: Arc<Ctx>,
}

fn mode_to_pb(m: ns::Mode) -> NamespaceMode {
    match m {
        ns::Mode::Strong => NamespaceMode::Strong,
        ns::Mode::Eventual => NamespaceMode::Eventual,
    }
}

fn info_to_pb(i: &Info) -> NamespaceInfo {
    NamespaceInfo { name: i.name.clone(), id: i.id, mode: mode_to_pb(i.mode) as i32 }
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
            members: s.members.into_iter().map(|(id, addr, voter)| Member { id, addr, voter }).collect(),
        }))
    }

    async fn create_namespace(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        ns::validate_name(&r.name).map_err(Status::invalid_argument)?;
        let mode = match NamespaceMode::try_from(r.mode) {
            Ok(NamespaceMode::Strong) => pb::Mode::Strong,
            Ok(NamespaceMode::Eventual) => pb::Mode::Eventual,
            _ => return Err(Status::invalid_argument("mode must be STRONG or EVENTUAL")),
        };
        if let Some(leader) = ctx.forward_target(&req) {
            let msg = req.into_inner();
            return ctx
                .fwd
                .call(leader, msg, ctx.timeout, |ch, q| async move { AdminClient::new(ch).create_namespace(q).await })
                .await;
        }
        let cmd =
            pb::command::Cmd::CreateNamespace(pb::CreateNamespace { name: req.into_inner().name, mode: mode as i32 });
        match ctx.propose(cmd).await? {
            FlareResponse::Namespace { info, created } => {
                Ok(Response::new(CreateNamespaceResponse { namespace: Some(info_to_pb(&info)), created }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn list_namespaces(
        &self,
        _req: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let namespaces = self.ctx.node.namespaces().iter().map(info_to_pb).collect();
        Ok(Response::new(ListNamespacesResponse { namespaces }))
    }
}
