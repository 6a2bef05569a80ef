//! `flaredb.testing.v1.Faults`: cuts Raft links and delays write answers for fault tests. Registered
//! only when the server runs with --enable-fault-injection.

use std::sync::Arc;

use flaredb_proto::testing::{
    faults_server::Faults as FaultsRpc, SetBlockedPeersRequest, SetBlockedPeersResponse, SetReplyDelayRequest,
    SetReplyDelayResponse,
};
use flaredb_raft::network::Faults;
use tonic::{Request, Response, Status};

pub struct FaultsService {
    pub faults: Arc<Faults>,
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
}
