//! Test-only fault injection in the Raft transport: RPCs to blocked peers
//! fail as Unreachable without being sent. Exists only on nodes started with
//! fault injection enabled (`NodeConfig::fault_injection`).

use std::{collections::BTreeSet, sync::RwLock};

use crate::types::NodeId;

#[derive(Debug, Default)]
pub struct Faults {
    blocked: RwLock<BTreeSet<NodeId>>,
}

impl Faults {
    /// Replaces the set of peers this node cannot send to.
    pub fn set_blocked(&self, peers: impl IntoIterator<Item = NodeId>) {
        *self.blocked.write().unwrap_or_else(|p| p.into_inner()) = peers.into_iter().collect();
    }

    pub fn is_blocked(&self, peer: NodeId) -> bool {
        self.blocked.read().unwrap_or_else(|p| p.into_inner()).contains(&peer)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fault injection: the link to node {0} is cut")]
pub struct LinkCut(pub NodeId);
