//! The lock workload of the fault suite: clients contend for one lock with
//! the client's `Lock` helper while the nemesis runs. A holder makes a few
//! fenced writes to a resource that refuses tokens older than the newest it
//! has seen, then releases the lock or "dies" (drops it unreleased, so only
//! its lease's expiry frees it).
//!
//! Checked afterwards: every acquisition got its own token; an acquisition
//! that began after another ended got a larger token (tokens follow real
//! time), which is what lets the resource's fence keep an older holder's
//! writes out (accepted and refused writes are reported); and each dead
//! holder's lock was taken over within TTL + failover time, none never.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use flaredb_client::RdbClient;
use tokio::task::JoinHandle;

use crate::workload::{worker_client, worker_rng};

/// The lock's lease TTL.
pub const TTL_SECS: i64 = 2;
const LOCK: &str = "the-lock";
const FENCED_WRITES: usize = 3;

#[derive(Debug, Clone)]
struct Acquisition {
    holder: usize,
    token: u64,
    asked: Instant,
    got: Instant,
}

/// A resource guarded by fencing tokens: it accepts a write only with a
/// token at least the largest it has accepted.
#[derive(Debug, Default)]
struct Resource {
    newest: u64,
    /// Tokens of the accepted writes, in the order they were accepted.
    accepted: Vec<u64>,
    refused: usize,
}

#[derive(Debug, Default)]
struct Log {
    acquisitions: Vec<Acquisition>,
    /// When a holder died, and its token.
    deaths: Vec<(Instant, u64)>,
    resource: Resource,
    errors: BTreeMap<String, usize>,
}

pub struct Lockers {
    log: Arc<Mutex<Log>>,
    workers: Vec<JoinHandle<()>>,
}

impl Lockers {
    pub fn spawn(endpoints: &[String], namespace: &str, n: usize, seed: u64, stop: Arc<AtomicBool>) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let workers = (0..n)
            .map(|id| {
                let client = worker_client(endpoints, 1000 + id, namespace);
                let (log, stop) = (log.clone(), stop.clone());
                tokio::spawn(async move { work(client, id, seed, log, stop).await })
            })
            .collect();
        Self { log, workers }
    }

    /// Waits for the workers (stopped by the flag given to `spawn`), then
    /// checks the log; panics naming the seed on a violation. A summary.
    pub async fn verify(self, seed: u64, takeover_bound: Duration) -> String {
        for w in self.workers {
            w.await.expect("lock worker");
        }
        let ended = Instant::now();
        let log = self.log.lock().unwrap();
        let acq = &log.acquisitions;
        assert!(acq.len() >= 2, "seed={seed}: only {} lock acquisitions; errors: {:?}", acq.len(), log.errors);
        let mut tokens: Vec<u64> = acq.iter().map(|a| a.token).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), acq.len(), "seed={seed}: two acquisitions got the same token: {acq:?}");
        for a in acq {
            for b in acq {
                assert!(
                    !(a.got < b.asked && a.token >= b.token),
                    "seed={seed}: holder {} got token {} after holder {} got {} (tokens must follow real time)",
                    b.holder,
                    b.token,
                    a.holder,
                    a.token
                );
            }
        }
        let accepted = &log.resource.accepted;
        let mut worst = Duration::ZERO;
        for (died, token) in &log.deaths {
            // The first acquisition after the death (by anyone, the dead
            // holder's own next attempt included) is the takeover.
            let next = acq.iter().filter(|a| a.token > *token).map(|a| a.got).min();
            let Some(next) = next else {
                // Nobody took it before the end: only a death near the end may be left.
                assert!(
                    ended.saturating_duration_since(*died) <= takeover_bound + Duration::from_secs(5),
                    "seed={seed}: a dead holder's lock (token {token}) was never taken over"
                );
                continue;
            };
            let took = next.saturating_duration_since(*died);
            worst = worst.max(took);
            assert!(
                took <= takeover_bound,
                "seed={seed}: a dead holder's lock (token {token}) was taken over after {took:?}, over {takeover_bound:?}"
            );
        }
        format!(
            "{} acquisitions, {} deaths (slowest takeover {worst:.1?}), {} fenced writes accepted, {} refused, errors {:?}",
            acq.len(),
            log.deaths.len(),
            accepted.len(),
            log.resource.refused,
            log.errors
        )
    }
}

async fn work(client: RdbClient, id: usize, seed: u64, log: Arc<Mutex<Log>>, stop: Arc<AtomicBool>) {
    let mut rng = worker_rng(seed ^ 0x10c4, id);
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        let attempt = tokio::time::timeout(Duration::from_secs(5), client.lock(LOCK, format!("holder-{id}"), TTL_SECS));
        let guard = match attempt.await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                note(&log, &e.to_string());
                continue;
            }
            Err(_) => {
                note(&log, "lock not acquired within 5 s (waiting)");
                continue;
            }
        };
        let token = guard.fencing_token();
        log.lock().unwrap().acquisitions.push(Acquisition { holder: id, token, asked, got: Instant::now() });
        for _ in 0..FENCED_WRITES {
            {
                let mut l = log.lock().unwrap();
                let r = &mut l.resource;
                if token >= r.newest {
                    r.newest = token;
                    r.accepted.push(token);
                } else {
                    r.refused += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
        }
        if rng.below(3) == 0 {
            // Dies: the keep-alive stops; only the lease's expiry frees the lock.
            log.lock().unwrap().deaths.push((Instant::now(), token));
            drop(guard);
        } else if let Err(e) = guard.release().await {
            note(&log, &format!("release: {e}"));
        }
    }
}

fn note(log: &Mutex<Log>, why: &str) {
    let general: String = why.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(120).collect();
    *log.lock().unwrap().errors.entry(general).or_default() += 1;
}
