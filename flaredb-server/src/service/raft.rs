//! `flaredb.raft.v1.Raft`: the peer-only transport, on the public port or,
//! with `--peer-listen`, on its own (see `routes.rs`). Decodes, hands to
//! openraft, encodes; malformed input is INVALID_ARGUMENT, never a panic.

use std::sync::{Arc, Mutex};

use flaredb_proto::raft::{self as pb, raft_server::Raft as RaftRpc};
use flaredb_raft::{
    codec::{self, CodecError},
    network::CLUSTER_KEY,
    node::FlareNode,
    rpc_codec as rc,
    storage::SnapshotFile,
};
use futures::{stream::BoxStream, StreamExt};
use openraft::Snapshot;
use tonic::{Request, Response, Status, Streaming};

use crate::status;

pub struct RaftService {
    pub node: Arc<FlareNode>,
}

impl RaftService {
    /// Every Raft RPC must come from this node's cluster.
    fn admit<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let remote = req
            .metadata()
            .get(CLUSTER_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or(0);
        self.node.admit_cluster(remote).map_err(Status::failed_precondition)
    }
}

fn bad(e: CodecError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn raft_err(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {e}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    type StreamAppendStream = BoxStream<'static, Result<pb::StreamAppendResponse, Status>>;

    /// Pipelined replication: each request goes to openraft as it arrives and
    /// is answered, in order, once durable. A malformed request ends the
    /// input; the answers owed for the requests before it are still sent,
    /// then the stream fails with INVALID_ARGUMENT.
    async fn stream_append(
        &self,
        req: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        self.admit(&req)?;
        let bad_input: Arc<Mutex<Option<Status>>> = Arc::default();
        let slot = bad_input.clone();
        let input = req.into_inner().scan((), move |_, msg| {
            let rpc = msg.and_then(|m| rc::append_req_from_pb(&m).map_err(bad));
            std::future::ready(match rpc {
                Ok(rpc) => Some(rpc),
                Err(status) => {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
                    None
                }
            })
        });
        let answers = self.node.raft().stream_append(input).map(|r| match r {
            Ok(answer) => Ok(rc::stream_resp_to_pb(&answer)),
            Err(fatal) => Err(raft_err(fatal)),
        });
        // Runs once the answers are exhausted, i.e. after the input ended.
        let failure = futures::stream::once(async move { bad_input.lock().unwrap_or_else(|p| p.into_inner()).take() })
            .filter_map(|s| std::future::ready(s.map(Err)));
        // Ends when this node starts to stop: the leader reopens on its next
        // entries (to a refused connection), and the graceful shutdown is not held open.
        Ok(Response::new(answers.chain(failure).take_until(self.node.closing()).boxed()))
    }

    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.admit(&req)?;
        let rpc = rc::append_req_from_pb(req.get_ref()).map_err(bad)?;
        let resp = self.node.raft().append_entries(rpc).await.map_err(raft_err)?;
        Ok(Response::new(rc::append_resp_to_pb(&resp)))
    }

    async fn vote(&self, req: Request<pb::VoteRequest>) -> Result<Response<pb::VoteResponse>, Status> {
        self.admit(&req)?;
        let rpc = rc::vote_req_from_pb(req.get_ref()).map_err(bad)?;
        let raft = self.node.raft();
        let resp = if req.get_ref().pre_vote { raft.pre_vote(rpc).await } else { raft.vote(rpc).await };
        Ok(Response::new(rc::vote_resp_to_pb(&resp.map_err(raft_err)?)))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        self.admit(&req)?;
        let mut stream = req.into_inner();
        let first = stream.next().await.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let vote = codec::req_vote_from_pb(&first.vote, "snapshot").map_err(bad)?;
        let meta = first.meta.as_ref().ok_or_else(|| Status::invalid_argument("first snapshot chunk has no meta"))?;
        let meta = codec::snapshot_meta_from_pb(meta).map_err(bad)?;
        // Capped while it streams in, checked against its meta, and deleted
        // on any path that does not hand it to openraft.
        let file = receive(&self.node, &meta, first.data, &mut stream).await?;
        let resp =
            self.node.raft().install_full_snapshot(vote, Snapshot { meta, snapshot: file }).await.map_err(raft_err)?;
        Ok(Response::new(pb::SnapshotResponse { vote: Some(codec::vote_to_pb(&resp.vote)) }))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        self.admit(&req)?;
        let rpc = rc::transfer_req_from_pb(req.get_ref()).map_err(bad)?;
        let resp = self.node.raft().handle_transfer_leader(rpc).await.map_err(raft_err)?;
        Ok(Response::new(rc::transfer_resp_to_pb(&resp)))
    }
}

/// Receives the streamed chunks into a snapshot file checked against `meta`.
async fn receive(
    node: &FlareNode,
    meta: &flaredb_raft::types::SnapshotMeta,
    first: bytes::Bytes,
    stream: &mut Streaming<pb::SnapshotChunk>,
) -> Result<SnapshotFile, Status> {
    let mut rx = node.snapshots().receive().await.map_err(status::snapshot_receive)?;
    rx.write(&first).await.map_err(status::snapshot_receive)?;
    while let Some(chunk) = stream.next().await {
        rx.write(&chunk?.data).await.map_err(status::snapshot_receive)?;
    }
    rx.finish(meta).await.map_err(status::snapshot_receive)
}
