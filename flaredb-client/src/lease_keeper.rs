//! One keep-alive stream per client for all of its leases, like etcd's
//! clientv3: a task renews each lease every third of its TTL, reconnects
//! (not to the node it just left) when the stream breaks or stops
//! answering, and declares a lease lost when the server says it is gone or
//! no renewal was answered for a whole TTL (counted from when it was sent).
//! The task runs while some lease is kept and ends with the last.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use flaredb_proto::{
    leader_hint::LeaderHint,
    v1::{self as pb, kv_cas_client::KvCasClient},
};
use tokio::sync::{mpsc, watch, Notify};

use crate::{lease::LeaseState, RdbClient};

/// Renewals queued for the stream at most.
const QUEUE: usize = 1024;

#[derive(Default)]
pub(crate) struct Keeper {
    table: Mutex<Table>,
    /// A lease was added: the stream sends its first renewal now.
    added: Notify,
}

#[derive(Default)]
struct Table {
    leases: HashMap<u64, Kept>,
    running: bool,
}

struct Kept {
    ttl: Duration,
    every: Duration,
    due: Instant,
    /// When the last answered renewal was sent: the lease holds a TTL from then.
    renewed: Instant,
    /// When each unanswered renewal was sent (answers come in order).
    sent: VecDeque<Instant>,
    state: watch::Sender<LeaseState>,
}

/// Keeps lease `id` while it lives; dropping it stops the renewals.
pub(crate) struct Registration {
    keeper: Arc<Keeper>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.keeper.table().leases.remove(&self.id);
    }
}

impl Keeper {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping lease `id` of `ttl` alive over `client`'s stream.
    pub(crate) fn add(
        self: &Arc<Self>,
        client: &RdbClient,
        id: u64,
        ttl: Duration,
    ) -> (watch::Receiver<LeaseState>, Registration) {
        let (tx, rx) = watch::channel(LeaseState::Alive);
        let now = Instant::now();
        let every = (ttl / 3).max(Duration::from_millis(200));
        let start = {
            let mut t = self.table();
            t.leases.insert(id, Kept { ttl, every, due: now, renewed: now, sent: VecDeque::new(), state: tx });
            !std::mem::replace(&mut t.running, true)
        };
        if start {
            tokio::spawn(run(self.clone(), client.clone()));
        } else {
            self.added.notify_one();
        }
        (rx, Registration { keeper: self.clone(), id })
    }

    /// Stops keeping lease `id`, telling its holders `why`.
    pub(crate) fn drop_lease(&self, id: u64, why: &str) {
        if let Some(k) = self.table().leases.remove(&id) {
            let _ = k.state.send(LeaseState::Lost(why.into()));
        }
    }

    /// Declares lost every lease not renewed for its whole TTL. Whether any is left.
    fn expire_unrenewed(&self, now: Instant, last_error: &str) -> bool {
        let mut t = self.table();
        t.leases.retain(|id, k| {
            let alive = now < k.renewed + k.ttl;
            if !alive {
                let why = format!("lease {id} not renewed for its whole TTL ({:?}); last error: {last_error}", k.ttl);
                let _ = k.state.send(LeaseState::Lost(why));
            }
            alive
        });
        let left = !t.leases.is_empty();
        if !left {
            t.running = false;
        }
        left
    }
}

async fn run(keeper: Arc<Keeper>, client: RdbClient) {
    let mut failed: Option<String> = None;
    let mut backoff = client.conn.config.backoff_initial;
    loop {
        let addr = pick(&client, failed.as_deref());
        let mut answered = false;
        let broke = stream_until_broken(&keeper, &client, &addr, &mut answered).await.err();
        keeper.forget_sent();
        let why = broke.clone().unwrap_or_else(|| "no lease left".into());
        // Also ends the task, atomically with the check, when none is left.
        if !keeper.expire_unrenewed(Instant::now(), &why) {
            return;
        }
        if answered {
            backoff = client.conn.config.backoff_initial;
        }
        if broke.is_some() {
            tracing::debug!(error = %why, "keep-alive stream ended; reconnecting");
            failed = Some(addr);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(client.conn.config.backoff_max);
        }
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

/// What to do next on the stream, decided under the table's lock.
enum Next {
    /// Send these renewals now.
    Send(Vec<u64>),
    /// Wait for an answer until `until`; then `overdue` (a renewal went unanswered too long).
    Wait { until: Instant, overdue: bool },
    /// Nothing is kept any more.
    Done,
}

impl Keeper {
    fn next(&self, now: Instant, patience: Duration) -> Next {
        let mut t = self.table();
        if t.leases.is_empty() {
            return Next::Done;
        }
        let due: Vec<u64> = t.leases.iter().filter(|(_, k)| k.due <= now).map(|(id, _)| *id).collect();
        if !due.is_empty() {
            for id in &due {
                if let Some(k) = t.leases.get_mut(id) {
                    k.sent.push_back(now);
                    k.due = now + k.every;
                }
            }
            return Next::Send(due);
        }
        let next_due = t.leases.values().map(|k| k.due).min().unwrap_or(now);
        let late = t.leases.values().filter_map(|k| k.sent.front()).min().map(|at| *at + patience);
        match late {
            Some(late) if late <= next_due => Next::Wait { until: late, overdue: true },
            _ => Next::Wait { until: next_due, overdue: false },
        }
    }

    /// An answer for lease `id`: renewed (`ttl > 0`) or gone.
    fn answered(&self, id: u64, ttl: i64) {
        let mut t = self.table();
        if ttl <= 0 {
            if let Some(k) = t.leases.remove(&id) {
                let why = format!("lease {id} expired or was revoked (the server no longer has it)");
                let _ = k.state.send(LeaseState::Lost(why));
            }
        } else if let Some(k) = t.leases.get_mut(&id) {
            if let Some(at) = k.sent.pop_front() {
                k.renewed = at;
            }
        }
    }

    /// Renewals in flight on a stream that ended will never be answered.
    fn forget_sent(&self) {
        for k in self.table().leases.values_mut() {
            k.sent.clear();
            k.due = Instant::now();
        }
    }
}

/// Renews over one stream to `addr` until it breaks (`Err`) or no lease is
/// left; `answered` tells whether any renewal was answered.
async fn stream_until_broken(
    keeper: &Keeper,
    client: &RdbClient,
    addr: &str,
    answered: &mut bool,
) -> Result<(), String> {
    let channel = client.conn.channel(addr).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    // How long an answer may be late before another node is tried: a node
    // that stopped (paused, cut off) must be left while the leases still hold.
    let shortest = keeper.table().leases.values().map(|k| k.every).min().unwrap_or(Duration::from_secs(1));
    let patience = shortest.max(Duration::from_secs(1)).min(client.conn.config.request_timeout);
    let mut kv = KvCasClient::new(channel);
    let req = client.conn.request(requests).await.map_err(|e| e.to_string())?;
    let opened = tokio::time::timeout(patience, kv.lease_keep_alive(req));
    let mut answers = match opened.await {
        Ok(Ok(r)) => {
            if let Some(h) = LeaderHint::from_metadata(r.metadata()) {
                client.conn.set_leader(Some(h.addr));
            }
            r.into_inner()
        }
        Ok(Err(s)) => {
            client.conn.set_leader(LeaderHint::from_metadata(s.metadata()).map(|h| h.addr));
            return Err(format!("{addr}: {}", s.message()));
        }
        Err(_) => {
            client.conn.set_leader(None);
            return Err(format!("{addr}: no answer within {patience:?}"));
        }
    };
    loop {
        let (until, overdue) = match keeper.next(Instant::now(), patience) {
            Next::Done => return Ok(()),
            Next::Send(ids) => {
                for lease_id in ids {
                    if tx.send(pb::LeaseKeepAliveRequest { lease_id }).await.is_err() {
                        return Err(format!("{addr}: the request stream closed"));
                    }
                }
                continue;
            }
            Next::Wait { until, overdue } => (tokio::time::Instant::from_std(until), overdue),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {
                if overdue {
                    client.conn.set_leader(None);
                    return Err(format!("{addr}: a renewal went unanswered for {patience:?}"));
                }
            }
            _ = keeper.added.notified() => {}
            msg = answers.message() => match msg {
                Ok(Some(r)) => {
                    *answered = true;
                    keeper.answered(r.lease_id, r.ttl_seconds);
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
