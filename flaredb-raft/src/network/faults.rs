//! Test-only fault injection in the Raft transport: RPCs to blocked peers
//! fail as Unreachable without being sent. Exists only on nodes started with
//! fault injection enabled (`NodeConfig::fault_injection`).

use std::{
    collections::BTreeSet,
    sync::{Mutex, RwLock},
    time::Duration,
};

use crate::types::NodeId;

#[derive(Debug, Default)]
pub struct Faults {
    blocked: RwLock<BTreeSet<NodeId>>,
    /// (delay, writes left): answers to writes this node proposes wait
    /// after they applied, so a client gives up on a write that committed.
    reply_delay: Mutex<(Duration, u32)>,
}

impl Faults {
    /// Replaces the set of peers this node cannot send to.
    pub fn set_blocked(&self, peers: impl IntoIterator<Item = NodeId>) {
        *self.blocked.write().unwrap_or_else(|p| p.into_inner()) = peers.into_iter().collect();
    }

    pub fn is_blocked(&self, peer: NodeId) -> bool {
        self.blocked.read().unwrap_or_else(|p| p.into_inner()).contains(&peer)
    }

    /// Delays the answers to the next `writes` writes by `delay`.
    pub fn set_reply_delay(&self, delay: Duration, writes: u32) {
        *self.reply_delay.lock().unwrap_or_else(|p| p.into_inner()) = (delay, writes);
    }

    /// The delay for the answer to a write just applied, if any is left.
    pub fn take_reply_delay(&self) -> Option<Duration> {
        let mut d = self.reply_delay.lock().unwrap_or_else(|p| p.into_inner());
        if d.1 == 0 {
            return None;
        }
        d.1 -= 1;
        Some(d.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fault injection: the link to node {0} is cut")]
pub struct LinkCut(pub NodeId);
