//! The cluster id: which cluster a node belongs to. Computed once, at
//! bootstrap of an empty data dir (or learned from the first Raft message of
//! a joining node), stored in IDENTITY, and carried on every Raft RPC; peers
//! refuse messages from another cluster. Like etcd, a node with data uses the
//! stored id and ignores `--initial-cluster`.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use super::FlareNode;
use crate::types::NodeId;

/// The id of a new cluster formed from `members`: every node bootstrapping
/// with the same `--initial-cluster` computes the same one. It is computed
/// once, at bootstrap of an empty data dir, and stored in IDENTITY; from then
/// on the stored id is the node's cluster id, whatever the flag says later
/// (the membership itself lives in the log, so the flag may go stale).
pub(super) fn cluster_id(members: &BTreeMap<NodeId, String>) -> u64 {
    let mut h = crate::fnv::Fnv1a::default();
    for (id, addr) in members {
        h.write(format!("{id}={addr};").as_bytes());
    }
    h.finish().max(1)
}

/// Says that `--initial-cluster` is ignored on a node whose data dir already
/// belongs to cluster `stored`; loudly when the flag describes another one
/// (e.g. updated after the cluster grew), since nothing is refused for it.
pub(super) fn note_flag_ignored(stored: u64, flag: &BTreeMap<NodeId, String>) {
    let from_flag = cluster_id(flag);
    if from_flag == stored {
        tracing::info!(cluster = %format!("{stored:016x}"), "the data dir holds this node's state; --initial-cluster is ignored");
    } else {
        tracing::warn!(
            cluster = %format!("{stored:016x}"),
            flag_cluster = %format!("{from_flag:016x}"),
            "--initial-cluster is ignored: this data dir already belongs to a cluster (its id was stored at bootstrap; \
             membership comes from the Raft log, not the flag)"
        );
    }
}

impl FlareNode {
    /// Admits a Raft message from cluster `remote`: refuses another cluster's,
    /// and adopts the first one seen if this node does not know its own yet.
    pub fn admit_cluster(&self, remote: u64) -> Result<(), String> {
        let local = self.cluster.load(Ordering::Relaxed);
        if local == remote && local != 0 {
            return Ok(());
        }
        if remote == 0 {
            return Err("Raft message without a cluster id".into());
        }
        let mut dir = self.data_dir.lock().unwrap_or_else(|p| p.into_inner());
        // The ids go to this node's log only: the answer goes to whoever
        // sent the message and must not tell a stranger the right id.
        dir.set_cluster_id(remote).map_err(|e| {
            tracing::error!(error = %e, "refusing a Raft message from another cluster (is this node's data dir from another cluster?)");
            "refusing a Raft message for another cluster: the cluster ids differ (the receiving node's log names both)"
                .to_string()
        })?;
        self.cluster.store(remote, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_depends_on_the_whole_text_and_is_never_zero() {
        let three = BTreeMap::from([(1, "127.0.0.1:1".to_string()), (2, "127.0.0.1:2".into())]);
        let mut four = three.clone();
        four.insert(4, "127.0.0.1:4".into());
        // Pinned: ids already stored in IDENTITY files must not change.
        assert_eq!(cluster_id(&BTreeMap::from([(1, "127.0.0.1:2479".to_string())])), 0xfc497c9b0c01fd71);
        assert_ne!(cluster_id(&three), cluster_id(&four));
        assert_ne!(cluster_id(&BTreeMap::new()), 0);
    }
}
