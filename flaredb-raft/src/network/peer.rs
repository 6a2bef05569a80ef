//! `RaftNetworkV2` for one peer.

use std::{
    future::Future,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use flaredb_proto::{channel::ChannelCache, raft::raft_client::RaftClient};
use futures::Stream;
use openraft::{
    base::{BoxFuture, BoxStream},
    errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable},
    network::{RPCOption, RaftNetworkV2},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, TransferLeaderRequest,
        TransferLeaderResponse, VoteRequest, VoteResponse,
    },
    OptionalSend,
};
use tonic::{metadata::MetadataValue, transport::Channel, Code};

use super::{
    append_stream::AppendStream,
    faults::{Faults, LinkCut},
    snapshot_stream, ClusterId, CLUSTER_KEY, MAX_RAFT_MESSAGE_BYTES,
};
use crate::{
    rpc_codec as rc,
    storage::SnapshotFile,
    types::{NodeId, TypeConfig, Vote},
};

pub struct PeerClient {
    target: NodeId,
    /// The peer's Raft address; its channel is taken from the cache for each
    /// RPC, so renewed TLS settings (which empty the cache) apply at once.
    addr: String,
    channels: ChannelCache,
    cluster: ClusterId,
    faults: Option<Arc<Faults>>,
}

impl PeerClient {
    pub(super) fn new(
        target: NodeId,
        addr: String,
        channels: ChannelCache,
        cluster: ClusterId,
        faults: Option<Arc<Faults>>,
    ) -> Self {
        Self { target, addr, channels, cluster, faults }
    }

    /// A vote or (with `pre_vote`) a pre-vote probe: one RPC, a flag apart.
    async fn send_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
        pre_vote: bool,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let req = self.request(rc::vote_req_to_pb(&rpc, pre_vote), Some(option.hard_ttl()));
        let resp = client.vote(req).await.map_err(rpc_error)?;
        rc::vote_resp_from_pb(resp.get_ref()).map_err(decode_error)
    }

    /// A client for one RPC; fails like an unreachable peer when the address
    /// is unusable or fault injection cuts the link.
    fn client(&self) -> Result<RaftClient<Channel>, RPCError<TypeConfig>> {
        if let Some(f) = &self.faults {
            if f.is_blocked(self.target) {
                return Err(RPCError::Unreachable(Unreachable::new(&LinkCut(self.target))));
            }
        }
        // An unusable address (membership is replicated input) fails each RPC as Unreachable.
        let channel = self.channels.get(&self.addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES))
    }

    /// A request carrying this node's cluster id, with a gRPC deadline
    /// unless it opens a long-lived stream.
    fn request<T>(&self, msg: T, timeout: Option<Duration>) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let id = self.cluster.load(Ordering::Relaxed);
        if let Ok(v) = MetadataValue::try_from(format!("{id:016x}")) {
            req.metadata_mut().insert(CLUSTER_KEY, v);
        }
        req
    }
}

/// Transport failures and UNAVAILABLE mean "peer down" (openraft backs off);
/// anything else is a network error for this one call.
pub(super) fn rpc_error(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

fn decode_error(e: crate::codec::CodecError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let resp = client
            .append_entries(self.request(rc::append_req_to_pb(&rpc), Some(option.hard_ttl())))
            .await
            .map_err(rpc_error)?;
        rc::append_resp_from_pb(resp.get_ref()).map_err(decode_error)
    }

    /// Replication: one bidi stream instead of openraft's one-RPC-at-a-time
    /// default (see `append_stream`); each request must be answered within
    /// the RPC timeout, as a unary AppendEntries must.
    #[allow(clippy::type_complexity)]
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        // A heartbeat is a stream of one request: a unary call costs less
        // than opening and closing a stream for it (ReadIndex waits on it).
        if input.size_hint().1.is_some_and(|n| n <= 1) {
            return openraft::network::stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let mut client = self.client()?;
            let timeout = option.hard_ttl();
            let (stream, requests) = AppendStream::requests(input, self.target, self.faults.clone(), timeout);
            let open = client.stream_append(self.request(requests, None));
            let resp = match tokio::time::timeout(timeout, open).await {
                Ok(resp) => resp.map_err(rpc_error)?,
                Err(_) => return Err(rpc_error(tonic::Status::deadline_exceeded("opening the append stream"))),
            };
            Ok(stream.answers(resp.into_inner()))
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, true).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let to_streaming = |e: RPCError<TypeConfig>| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            other => StreamingError::Network(NetworkError::new(&other)),
        };
        let mut client = self.client().map_err(to_streaming)?;
        let chunks = snapshot_stream::chunks(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // A snapshot may take long; the per-chunk progress is the real liveness signal.
        let req = self.request(chunks, Some(option.hard_ttl().max(Duration::from_secs(600))));
        let send = async move { client.install_snapshot(req).await };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            resp = send => {
                let resp = resp.map_err(|s| to_streaming(rpc_error(s)))?;
                rc::snapshot_resp_from_pb(resp.get_ref()).map_err(|e| to_streaming(decode_error(e)))
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client()?;
        let resp = client
            .transfer_leader(self.request(rc::transfer_req_to_pb(&req), Some(option.hard_ttl())))
            .await
            .map_err(rpc_error)?;
        rc::transfer_resp_from_pb(resp.get_ref()).map_err(decode_error)
    }
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerClient({})", self.target)
    }
}
