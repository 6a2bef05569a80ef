//! `flaredb.testing.v1.Faults`: cuts Raft links and delays write answers for fault tests. Registered
//! only when the server runs with --enable-fault-injection.

use std::sync::Arc;

use flaredb_proto::testing::{
    faults_server::Faults as FaultsRpc, CorruptLocalKeyRequest, CorruptLocalKeyResponse, SetBlockedPeersRequest,
    SetBlockedPeersResponse, SetReplyDelayRequest, SetReplyDelayResponse,
};
use flaredb_raft::{namespace::Mode, network::Faults, node::FlareNode};
use tonic::{Request, Response, Status};

pub struct FaultsService {
    pub faults: Arc<Faults>,
    pub node: Arc<FlareNode>,
}

#[tonic::async_trait]
impl FaultsRpc for FaultsService {
    async fn set_blocked_peers(
        &self,
        req: Request<SetBlockedPeersRequest>,
    ) -> Result<Response<SetBlockedPeersResponse>, Status> {
        let ids = req.into_inner().node_ids;
        tracing::warn!(blocked = ?ids, "fault injection: Raft links cut");
        self.faults.set_blocked(ids);
        Ok(Response::new(SetBlockedPeersResponse {}))
    }

    async fn set_reply_delay(
        &self,
        req: Request<SetReplyDelayRequest>,
    ) -> Result<Response<SetReplyDelayResponse>, Status> {
        let r = req.into_inner();
        tracing::warn!(delay_ms = r.delay_ms, writes = r.writes, "fault injection: write answers delayed");
        self.faults.set_reply_delay(std::time::Duration::from_millis(r.delay_ms), r.writes);
        Ok(Response::new(SetReplyDelayResponse {}))
    }

    async fn corrupt_local_key(
        &self,
        req: Request<CorruptLocalKeyRequest>,
    ) -> Result<Response<CorruptLocalKeyResponse>, Status> {
        let r = req.into_inner();
        let ns = self.node.namespace_for_read(&r.namespace, Mode::Strong).map_err(crate::status::rejection)?;
        tracing::warn!(namespace = %r.namespace, "fault injection: a key overwritten on this replica alone");
        self.node.corrupt_local_key(&ns, &r.key, &r.value).map_err(crate::status::node_error)?;
        Ok(Response::new(CorruptLocalKeyResponse {}))
    }
}
