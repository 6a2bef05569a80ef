//! The Raft transport client: one cached gRPC channel per peer, deadlines
//! from openraft's `RPCOption`, snapshots streamed in chunks.

mod append_stream;
mod faults;
mod peer;
mod snapshot_stream;

use std::sync::{atomic::AtomicU64, Arc};

use flaredb_proto::channel::ChannelCache;

pub use faults::Faults;
pub use peer::PeerClient;
pub use snapshot_stream::SNAPSHOT_CHUNK_BYTES;

use crate::types::{Node, NodeId, TypeConfig};

/// Largest internal Raft message: a batch of entries can hold many 1 MiB values.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 256 << 20;

/// Metadata key on every Raft RPC: the sender's cluster id (hex). A node
/// refuses messages from another cluster.
pub const CLUSTER_KEY: &str = "x-flaredb-cluster";

/// This node's cluster id; 0 until known.
pub type ClusterId = Arc<AtomicU64>;

/// Hands out peer clients over channels cached per address, reused and
/// reconnecting lazily after failures.
#[derive(Clone, Default)]
pub struct Network {
    channels: ChannelCache,
    cluster: ClusterId,
    faults: Option<Arc<Faults>>,
}

impl Network {
    pub fn new(
        cluster: ClusterId,
        faults: Option<Arc<Faults>>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Self {
        Self { channels: ChannelCache::default().with_tls(tls), cluster, faults }
    }

    /// The channel cache (shared): to renew its TLS settings.
    pub fn channels(&self) -> ChannelCache {
        self.channels.clone()
    }
}

impl openraft::network::RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        // Raft goes to the member's peer address when it has one (`PUBLIC@PEER`).
        let addr = crate::node::addr::MemberAddr::from_membership(&node.addr);
        // A malformed address (membership is replicated input) makes every
        // RPC to that peer fail as Unreachable; never a panic.
        if let Err(e) = self.channels.get(addr.raft()) {
            tracing::warn!(target, error = %e, "unusable peer address: its RPCs fail as Unreachable");
        }
        PeerClient::new(
            target,
            addr.raft().to_string(),
            self.channels.clone(),
            self.cluster.clone(),
            self.faults.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::{
        errors::RPCError,
        network::{RPCOption, RaftNetworkFactory, RaftNetworkV2},
        raft::VoteRequest,
        BasicNode,
    };

    use super::*;
    use crate::types::Vote;

    #[tokio::test]
    async fn a_peer_with_an_unusable_address_is_unreachable() {
        let mut net = Network::default();
        let mut peer = net.new_client(2, &BasicNode::new("not an address:1")).await;
        let vote = peer.vote(VoteRequest::new(Vote::new(1, 1), None), RPCOption::new(Duration::from_secs(1))).await;
        let Err(RPCError::Unreachable(e)) = vote else { panic!("{vote:?}") };
        assert!(e.to_string().contains("not a usable endpoint"), "{e}");
    }
}
