//! Writes across leader changes: proposing, with a fresh leader's first
//! writes waiting for its lease, and waiting for the next leader.

use std::time::{Duration, Instant};

use flaredb_proto::raft as pb;
use openraft::{
    alias::InstantOf,
    errors::{ClientWriteError, ForwardReason, RaftError},
    Instant as _, RaftMetrics,
};

use super::FlareNode;
use crate::{
    error::NodeError,
    types::{FlareRequest, FlareResponse, NodeId},
    TypeConfig,
};

/// One proposal in flight, counted until it is answered or dropped (a caller's deadline).
struct Pending<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Pending<'a> {
    fn count(n: &'a std::sync::atomic::AtomicU64) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl FlareNode {
    /// Replicates `cmd` and returns what applying it answered, with its log index.
    ///
    /// openraft refuses a write (ForwardToLeader, reason LeaseExpired) on a
    /// leader without a quorum acknowledgement younger than its lease, which
    /// includes a leader elected a moment ago whose first replication round
    /// is not acknowledged yet. Nothing was proposed then, so the write waits
    /// (one lease at most) for the next acknowledgement and is tried again,
    /// instead of telling the client "no leader" right after a failover.
    pub async fn propose(&self, mut cmd: pb::Command) -> Result<(FlareResponse, u64), NodeError> {
        let _pending = Pending::count(&self.pending);
        let until = Instant::now() + self.lease;
        // Only a leader's proposal reaches the log: its clock is the log's.
        cmd.proposed_at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        loop {
            let acked = self.metrics().last_quorum_acked.map(|t| *t);
            // A clone is cheap: values are `Bytes`.
            match self.raft.client_write(FlareRequest(cmd.clone())).await {
                Ok(resp) => return Ok((resp.data, resp.log_id.index)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if matches!(f.reason, ForwardReason::LeaseExpired) && self.wait_for_lease(acked, left).await {
                        tracing::debug!("write refused for an expired lease; retried after a quorum acknowledgement");
                        continue;
                    }
                    return Err(self.not_leader(f.leader_id, f.leader_node));
                }
                Err(RaftError::APIError(e)) => return Err(NodeError::Unavailable(e.to_string())),
                Err(RaftError::Fatal(e)) => return Err(NodeError::Fatal(e.to_string())),
            }
        }
    }

    /// Waits up to `timeout` until this node, still leader, has a quorum
    /// acknowledgement newer than `seen` and within its lease.
    async fn wait_for_lease(&self, seen: Option<InstantOf<TypeConfig>>, timeout: Duration) -> bool {
        let lease = self.lease;
        let renewed = |m: &RaftMetrics<TypeConfig>| {
            let acked = m.last_quorum_acked.map(|t| *t);
            m.state.is_leader() && acked != seen && acked.is_some_and(|t| t + lease > InstantOf::<TypeConfig>::now())
        };
        self.raft.wait(Some(timeout)).metrics(renewed, "a quorum acknowledgement within the lease").await.is_ok()
    }

    /// Waits up to `timeout` until this node knows a leader other than
    /// `previous` (itself included) that membership has an address for, as
    /// [`Self::leader`] returns it; `None` at the deadline.
    pub async fn wait_for_new_leader(&self, previous: Option<NodeId>, timeout: Duration) -> Option<NodeId> {
        let known = |m: &RaftMetrics<TypeConfig>| {
            m.current_leader
                .filter(|id| Some(*id) != previous && m.membership_config.membership().get_node(id).is_some())
        };
        let m = self.raft.wait(Some(timeout)).metrics(|m| known(m).is_some(), "a new leader").await.ok()?;
        known(&m)
    }

    /// Waits up to `timeout` until this node has applied every entry in its
    /// log. After a hand-over, that answers the writes it accepted as leader
    /// (the next leader commits them) before it stops serving.
    pub async fn wait_own_log_applied(&self, timeout: Duration) -> bool {
        let last = self.metrics().last_log_index;
        self.raft.wait(Some(timeout)).applied_index_at_least(last, "own log applied").await.is_ok()
    }
}
