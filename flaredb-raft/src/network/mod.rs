//! The Raft transport client: one cached gRPC channel per peer, deadlines
//! from openraft's `RPCOption`, snapshots streamed in chunks.

mod faults;
mod peer;
mod snapshot_stream;

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::Duration,
};

use tonic::transport::{Channel, Endpoint};

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

/// Hands out peer clients; channels are created once per (peer, address)
/// and reused, reconnecting lazily after failures.
#[derive(Clone, Default)]
pub struct Network {
    channels: Arc<Mutex<HashMap<(NodeId, String), Channel>>>,
    cluster: ClusterId,
    faults: Option<Arc<Faults>>,
}

impl Network {
    pub fn new(cluster: ClusterId, faults: Option<Arc<Faults>>) -> Self {
        Self { channels: Default::default(), cluster, faults }
    }

    fn channel(&self, target: NodeId, addr: &str) -> Channel {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((target, addr.to_string()))
            .or_insert_with(|| {
                match Endpoint::from_shared(format!("http://{addr}")) {
                    Ok(ep) => ep
                        .connect_timeout(Duration::from_millis(500))
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(5))
                        .keep_alive_while_idle(true)
                        .connect_lazy(),
                    // A malformed address (from membership) yields a channel that always
                    // fails, reported as Unreachable by the caller; never a panic.
                    Err(_) => Endpoint::from_static("http://0.0.0.0:1").connect_lazy(),
                }
            })
            .clone()
    }
}

impl openraft::network::RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        // Raft goes to the member's peer address when it has one (`PUBLIC@PEER`).
        let addr = crate::node::addr::MemberAddr::from_membership(&node.addr);
        PeerClient::new(target, self.channel(target, addr.raft()), self.cluster.clone(), self.faults.clone())
    }
}
