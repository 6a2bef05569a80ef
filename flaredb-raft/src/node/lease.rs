//! Leases on this node: keep-alives and time-to-live from the leader's
//! table, and the leader's expiry loop, which proposes each expiry as one
//! log command (`LeaseRevoke{expired}`).

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use flaredb_proto::raft as pb;

use openraft::async_runtime::WatchReceiver;

use super::FlareNode;
use crate::{error::NodeError, keys::NamespaceId, lease::LeaseInfo};

/// How often the leader looks for expired leases: the slack of an expiry.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Leases expired by one log entry at most, so one entry stays small.
const EXPIRE_PER_ENTRY: usize = 256;

impl FlareNode {
    /// Renews lease `id` on the leader: its TTL, or `None` if it does not
    /// exist; `NotLeader` elsewhere (deadlines mean nothing there). A lease
    /// this leader does not know yet may be granted by an entry it has not
    /// applied: it catches up (ReadIndex) before saying no.
    /// `may` decides, given the lease's owner, whether the caller may renew it.
    pub async fn lease_keep_alive(&self, id: u64, may: impl Fn(&str) -> bool) -> Result<Option<i64>, NodeError> {
        if !self.lead_leases() {
            return Err(NodeError::NotLeader { leader: self.leader() });
        }
        let denied = || NodeError::Denied(format!("lease {id} was granted by another user"));
        if let Some(ttl) = self.shared.leases.keep_alive(id, Instant::now(), &may).map_err(|_| denied())? {
            return Ok(Some(ttl));
        }
        self.linearize().await?;
        self.shared.leases.keep_alive(id, Instant::now(), &may).map_err(|_| denied())
    }

    /// Who granted lease `id` (empty: auth was off), as applied here.
    pub fn lease_owner(&self, id: u64) -> Option<std::sync::Arc<str>> {
        self.shared.leases.owner(id)
    }

    /// What the leader knows of lease `id`, once caught up (ReadIndex).
    pub async fn lease_info(&self, id: u64) -> Result<Option<LeaseInfo>, NodeError> {
        self.linearize().await?;
        self.lead_leases();
        Ok(self.shared.leases.get(id, Instant::now()))
    }

    /// The (namespace name, key) pairs attached to lease `id`, from the local state.
    pub async fn lease_keys(&self, id: u64) -> Result<Vec<(String, Vec<u8>)>, NodeError> {
        let keys = self.store.lease_keys(id).await.map_err(|e| NodeError::Fatal(e.to_string()))?;
        let registry = self.shared.registry();
        let name = |ns: NamespaceId| registry.by_id(ns).map_or_else(|| format!("#{ns}"), |n| n.name.clone());
        Ok(keys.into_iter().map(|(ns, k)| (name(ns), k)).collect())
    }

    /// Whether this node leads. Restarts every deadline the first time it
    /// leads in a term; the table's deadlines are only meaningful then.
    fn lead_leases(&self) -> bool {
        // Borrowed, not cloned: this runs for every keep-alive.
        let term = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            m.state.is_leader().then_some(m.current_term)
        };
        match term {
            Some(term) => self.shared.leases.lead(term, Instant::now()),
            None => self.shared.leases.follow(),
        }
        term.is_some()
    }

    /// How many leases exist (as applied here).
    pub fn lease_count(&self) -> usize {
        self.shared.leases.len()
    }

    /// Expires leases while this node leads, until the node is dropped. A new
    /// term of leadership first restarts every deadline at now + TTL.
    pub(super) fn spawn_lease_expiry(node: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(node);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                if !node.lead_leases() {
                    continue;
                }
                let table = &node.shared.leases;
                loop {
                    let ids = table.take_expired(Instant::now(), EXPIRE_PER_ENTRY);
                    if ids.is_empty() {
                        break;
                    }
                    tracing::debug!(n = ids.len(), "expiring leases");
                    tokio::spawn(Self::expire(node.clone(), ids));
                }
            }
        });
    }

    async fn expire(node: Arc<Self>, ids: Vec<u64>) {
        let cmd = pb::command::Cmd::LeaseRevoke(pb::LeaseRevoke { ids: ids.clone(), expired: true });
        if let Err(e) = node.propose(pb::Command { cmd: Some(cmd), ..Default::default() }).await {
            tracing::info!(error = %e, n = ids.len(), "lease expiry not proposed; the leader decides again");
            node.shared.leases.release(&ids, Instant::now());
        }
    }
}
