//! Leases: grant, revoke, time-to-live, and a [`Lease`] handle kept alive
//! in the background (`lease_keeper.rs`: one `KvCas/LeaseKeepAlive` stream
//! per client, reconnecting to another node when one fails) until it is
//! dropped, revoked or lost.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use tokio::sync::watch;

use crate::{conn::Retry, lease_keeper::Registration, ClientError, RdbClient};

/// What the leader knows of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTtl {
    pub id: u64,
    /// Seconds left (rounded up) before the leader expires it.
    pub ttl_secs: i64,
    pub granted_ttl_secs: i64,
    /// (namespace, key) of each key attached, when asked for.
    pub keys: Vec<(String, Bytes)>,
}

/// Whether a kept lease still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    Alive,
    /// The lease is gone or cannot be trusted any more: the server said it
    /// does not exist, or no renewal was acknowledged for a whole TTL. Once
    /// lost, a lease is never alive again.
    Lost(String),
}

impl RdbClient {
    /// Grants a lease of `ttl_secs` (raised to the server's minimum, 2 s);
    /// its id. Not deduplicated: if a retried grant's first attempt applied,
    /// that lease is orphaned and expires after its TTL.
    pub async fn lease_grant(&self, ttl_secs: i64) -> Result<(u64, i64), ClientError> {
        let msg = pb::LeaseGrantRequest { ttl_seconds: ttl_secs };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { KvCasClient::new(ch).lease_grant(q).await })
            .await?;
        Ok((r.lease_id, r.ttl_seconds))
    }

    /// Revokes lease `id`, deleting its keys; how many it deleted, or `None`
    /// if it does not exist (also when an earlier attempt of this call revoked it).
    pub async fn lease_revoke(&self, id: u64) -> Result<Option<u64>, ClientError> {
        let msg = pb::LeaseRevokeRequest { lease_id: id };
        let r = self.conn.call(Retry::Always, msg, |ch, q| async move { KvCasClient::new(ch).lease_revoke(q).await });
        match r.await {
            Ok(r) => Ok(Some(r.deleted)),
            Err(ClientError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the leader knows of lease `id` (with its keys if `keys`), or
    /// `None` if it does not exist.
    pub async fn lease_time_to_live(&self, id: u64, keys: bool) -> Result<Option<LeaseTtl>, ClientError> {
        let msg = pb::LeaseTimeToLiveRequest { lease_id: id, keys };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { KvCasClient::new(ch).lease_time_to_live(q).await })
            .await;
        let r = match r {
            Ok(r) => r,
            Err(ClientError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(LeaseTtl {
            id: r.lease_id,
            ttl_secs: r.ttl_seconds,
            granted_ttl_secs: r.granted_ttl_seconds,
            keys: r.namespaces.into_iter().zip(r.keys).collect(),
        }))
    }

    /// Grants a lease of `ttl_secs` and keeps it alive until the handle is
    /// dropped or revoked.
    pub async fn lease(&self, ttl_secs: i64) -> Result<Lease, ClientError> {
        let (id, ttl) = self.lease_grant(ttl_secs).await?;
        Ok(self.keep_alive(id, ttl))
    }

    /// Keeps an existing lease `id` of `ttl_secs` alive in the background,
    /// over the one keep-alive stream this client shares among its leases.
    pub fn keep_alive(&self, id: u64, ttl_secs: i64) -> Lease {
        let ttl = Duration::from_secs(ttl_secs.max(1) as u64);
        let (state, reg) = self.conn.leases.add(self, id, ttl);
        Lease { id, ttl_secs, state, _reg: Arc::new(reg), client: self.clone() }
    }
}

/// A lease kept alive in the background. Clones share it; renewals stop
/// (without revoking) when the last clone is dropped.
#[derive(Clone)]
pub struct Lease {
    id: u64,
    ttl_secs: i64,
    state: watch::Receiver<LeaseState>,
    /// Held for its `Drop`: the last clone gone stops the renewals.
    _reg: Arc<Registration>,
    client: RdbClient,
}

impl Lease {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        *self.state.borrow() == LeaseState::Alive
    }

    /// Resolves when the lease is lost, with why.
    pub async fn lost(&self) -> String {
        let mut rx = self.state.clone();
        let lost = match rx.wait_for(|s| *s != LeaseState::Alive).await {
            Ok(s) => match &*s {
                LeaseState::Lost(why) => why.clone(),
                LeaseState::Alive => "lost".into(),
            },
            Err(_) => "the keep-alive task ended".into(),
        };
        lost
    }

    /// Stops keeping it alive and revokes it (deleting its keys); how many
    /// keys that deleted (`None`: it was already gone).
    pub async fn revoke(self) -> Result<Option<u64>, ClientError> {
        self.client.conn.leases.drop_lease(self.id, "revoked by this client");
        self.client.lease_revoke(self.id).await
    }
}
