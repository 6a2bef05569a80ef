//! Leases: grant, revoke, time-to-live, and a [`Lease`] handle whose
//! background task keeps the lease alive (over `KvCas/LeaseKeepAlive`,
//! reconnecting to another node when one fails) until it is dropped, revoked
//! or lost.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use flaredb_proto::{
    leader_hint::LeaderHint,
    v1::{self as pb, kv_cas_client::KvCasClient},
};
use tokio::{sync::mpsc, sync::watch, task::JoinHandle};
use tonic::Request;

use crate::{conn::Retry, ClientError, RdbClient};

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

    /// Keeps an existing lease `id` of `ttl_secs` alive in the background.
    pub fn keep_alive(&self, id: u64, ttl_secs: i64) -> Lease {
        let (tx, rx) = watch::channel(LeaseState::Alive);
        let ttl = Duration::from_secs(ttl_secs.max(1) as u64);
        let task = tokio::spawn(keeper(self.clone(), id, ttl, tx));
        Lease { id, ttl_secs, state: rx, task: Arc::new(Abort(task)), client: self.clone() }
    }
}

/// A lease kept alive by a background task. Clones share the task, which
/// stops (without revoking) when the last clone is dropped.
#[derive(Clone)]
pub struct Lease {
    id: u64,
    ttl_secs: i64,
    state: watch::Receiver<LeaseState>,
    task: Arc<Abort>,
    client: RdbClient,
}

struct Abort(JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        self.task.0.abort();
        self.client.lease_revoke(self.id).await
    }
}

/// Renews every third of the TTL over one stream, reconnecting when it
/// breaks; declares the lease lost when the server says it is gone or when
/// no renewal was acknowledged for a whole TTL.
async fn keeper(client: RdbClient, id: u64, ttl: Duration, state: watch::Sender<LeaseState>) {
    let every = (ttl / 3).max(Duration::from_millis(200));
    let mut renewed = Instant::now();
    let mut backoff = client.conn.config.backoff_initial;
    let mut failed: Option<String> = None;
    loop {
        let addr = pick(&client, failed.as_deref());
        let why = match renew_over_one_stream(&client, &addr, id, every, ttl, &mut renewed).await {
            Ok(gone) => {
                let _ = state.send(LeaseState::Lost(gone));
                return;
            }
            Err(why) => why,
        };
        failed = Some(addr);
        if renewed.elapsed() >= ttl {
            let lost = format!("lease {id} not renewed for its whole TTL ({ttl:?}); last error: {why}");
            let _ = state.send(LeaseState::Lost(lost));
            return;
        }
        tracing::debug!(lease = id, error = %why, "keep-alive stream ended; reconnecting");
        tokio::time::sleep(backoff.min(ttl.saturating_sub(renewed.elapsed()))).await;
        backoff = (backoff * 2).min(client.conn.config.backoff_max);
    }
}

/// The leader if known, else the next endpoint in turn; not `failed` (the
/// node the last stream broke on) while another is left to try.
fn pick(client: &RdbClient, failed: Option<&str>) -> String {
    if let Some(l) = client.conn.leader().filter(|l| Some(l.as_str()) != failed) {
        return l;
    }
    let mut addr = client.conn.next_endpoint();
    for _ in 1..client.conn.endpoint_count() {
        if Some(addr.as_str()) != failed {
            break;
        }
        addr = client.conn.next_endpoint();
    }
    addr
}

/// `Ok(why)`: the lease is gone for good; `Err(why)`: the stream broke.
async fn renew_over_one_stream(
    client: &RdbClient,
    addr: &str,
    id: u64,
    every: Duration,
    ttl: Duration,
    renewed: &mut Instant,
) -> Result<String, String> {
    let channel = client.conn.channel(addr).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel(4);
    let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let _ = tx.try_send(pb::LeaseKeepAliveRequest { lease_id: id });
    // When each unanswered renewal was sent (answers come in order).
    let mut sent = VecDeque::from([Instant::now()]);
    // How long an answer may be late before another node is tried: a node
    // that stopped (paused, cut off) must be left while the lease still holds.
    let patience = every.max(Duration::from_secs(1)).min(client.conn.config.request_timeout);
    let opened = tokio::time::timeout(patience, async {
        KvCasClient::new(channel).lease_keep_alive(Request::new(requests)).await
    });
    let resp = match opened.await {
        Ok(Ok(r)) => r,
        Ok(Err(s)) => {
            client.conn.set_leader(LeaderHint::from_metadata(s.metadata()).map(|h| h.addr));
            return Err(format!("{addr}: {}", s.message()));
        }
        Err(_) => {
            // Try another node next time.
            client.conn.set_leader(None);
            return Err(format!("{addr}: no answer within {patience:?}"));
        }
    };
    if let Some(h) = LeaderHint::from_metadata(resp.metadata()) {
        client.conn.set_leader(Some(h.addr));
    }
    let mut answers = resp.into_inner();
    let mut next = tokio::time::Instant::now() + every;
    loop {
        // A renewal unanswered for longer than `patience` means this stream is stuck.
        let overdue = sent.front().map_or(*renewed + ttl, |at| *at + patience);
        let stuck = tokio::time::Instant::from_std(overdue.min(*renewed + ttl));
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                sent.push_back(Instant::now());
                if tx.send(pb::LeaseKeepAliveRequest { lease_id: id }).await.is_err() {
                    return Err(format!("{addr}: the request stream closed"));
                }
                next += every;
            }
            _ = tokio::time::sleep_until(stuck) => {
                client.conn.set_leader(None);
                return Err(format!("{addr}: no renewal answered"));
            }
            msg = answers.message() => match msg {
                Ok(Some(r)) if r.ttl_seconds <= 0 => {
                    return Ok(format!("lease {id} expired or was revoked (the server no longer has it)"));
                }
                // The lease holds for a TTL from when its renewal was sent.
                Ok(Some(_)) => {
                    if let Some(at) = sent.pop_front() {
                        *renewed = at;
                    }
                }
                Ok(None) => return Err(format!("{addr}: the server ended the stream")),
                Err(s) => {
                    client.conn.set_leader(LeaderHint::from_metadata(s.metadata()).map(|h| h.addr));
                    return Err(format!("{addr}: {}", s.message()));
                }
            },
        }
    }
}
