//! The CORRUPT alarm, on by default (etcd's corruption check is off unless
//! asked for). Every `corruption_check_ms` each node compares its state hash
//! (`Admin/Hash`) with every other member's taken at the same applied index
//! — replicas that applied the same log hash the same. When at least two
//! others agree with each other and not with this node, this node is the one
//! that diverged: it raises the alarm (log, `Status.corrupt`, health
//! NOT_SERVING) and serves no more reads until it is rebuilt. A single
//! disagreeing peer only logs the mismatch: with two voices it cannot say
//! which one is wrong. A busy cluster rarely stands at one index on every
//! node; the check then waits for a quieter round (it hashes only when a
//! cheap Status shows another replica at this node's applied index).

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use flaredb_proto::v1::{admin_client::AdminClient, HashRequest, StatusRequest};
use flaredb_raft::node::FlareNode;
use tokio::sync::Notify;
use tonic::Status;

use crate::forward::Forwarder;

#[derive(Default)]
pub struct CorruptionAlarm {
    /// Set once, never cleared: read on every read request without a lock.
    why: OnceLock<String>,
    raised: Notify,
}

impl CorruptionAlarm {
    /// Why this replica is corrupt, if it is.
    pub fn why(&self) -> Option<&str> {
        self.why.get().map(String::as_str)
    }

    /// UNAVAILABLE for a read while the alarm is raised.
    pub fn check_read(&self) -> Result<(), Status> {
        match self.why() {
            None => Ok(()),
            Some(why) => Err(Status::unavailable(format!(
                "CORRUPT alarm: this replica's state differs from the other replicas' ({why}); it serves no \
                 reads: ask another node, and rebuild this one (remove it, wipe its data dir, add it again)"
            ))),
        }
    }

    /// Resolves once the alarm is raised.
    pub async fn raised(&self) {
        loop {
            let notified = self.raised.notified();
            if self.why().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn raise(&self, why: String) {
        tracing::error!(%why, "CORRUPT alarm: this replica's state hash differs from the cluster's; reads refused");
        let _ = self.why.set(why);
        self.raised.notify_waiters();
    }
}

/// Runs the check every `every` until the node is dropped (`every` zero: never).
pub fn start(node: Arc<FlareNode>, fwd: Forwarder, every: Duration) -> Arc<CorruptionAlarm> {
    let alarm = Arc::new(CorruptionAlarm::default());
    if every.is_zero() {
        return alarm;
    }
    let (weak, a) = (Arc::downgrade(&node), alarm.clone());
    drop(node);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        while a.why().is_none() {
            tick.tick().await;
            let Some(node) = weak.upgrade() else { return };
            if let Some(why) = one_round(&node, &fwd).await {
                a.raise(why);
            }
        }
    });
    alarm
}

fn timed<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(Duration::from_secs(2));
    req
}

/// One comparison; `Some(why)` when this node is the odd one out.
async fn one_round(node: &FlareNode, fwd: &Forwarder) -> Option<String> {
    let status = node.status();
    let others: Vec<(u64, String)> =
        status.members.into_iter().filter(|m| m.id != node.id()).map(|m| (m.id, m.addr.public)).collect();
    // A hash scans the whole state: only when another replica stands at this
    // node's applied index (a cheap Status first) is it worth computing.
    let mut level = 0;
    for (_, addr) in &others {
        let Ok(channel) = fwd.channel(addr) else { continue };
        let mut admin = AdminClient::new(channel);
        let answer = tokio::time::timeout(Duration::from_secs(3), admin.status(timed(StatusRequest {})));
        if let Ok(Ok(s)) = answer.await {
            level += usize::from(s.get_ref().applied_index == status.applied_index);
        }
    }
    if level == 0 {
        return None;
    }
    let (applied, mine) = node.state_hash().await.ok()?;
    let mut same_index: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (id, addr) in others {
        let Ok(channel) = fwd.channel(&addr) else { continue };
        let mut admin = AdminClient::new(channel);
        let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(3), admin.hash(timed(HashRequest {}))).await else {
            continue;
        };
        let r = r.into_inner();
        if r.applied_index == applied {
            same_index.entry(r.hash).or_default().push(id);
        }
    }
    let agree = same_index.get(&mine).map_or(0, Vec::len);
    for (hash, ids) in &same_index {
        if *hash == mine {
            continue;
        }
        tracing::error!(index = applied, mine = %format!("{mine:016x}"), theirs = %format!("{hash:016x}"), nodes = ?ids, "state hash mismatch");
        if ids.len() >= 2 && ids.len() > agree {
            return Some(format!("at applied index {applied} nodes {ids:?} hash {hash:016x}, this node {mine:016x}"));
        }
    }
    None
}
