//! The fault-suite workload: concurrent clients doing CompareAndSwap, Get and
//! CompareAndDelete on a few keys (so contention is real), recording every
//! operation's invocation and completion times and outcome.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use flaredb_client::{ClientConfig, ClientError, RdbClient};

use crate::lincheck::{Op, OpKind, Outcome};

/// A small seeded PRNG (xorshift64*): failures must be replayable from the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The seed for this run: `FLAREDB_SEED` to replay, else fresh.
pub fn seed() -> u64 {
    std::env::var("FLAREDB_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Recorded history, shared by the client tasks.
#[derive(Clone)]
pub struct Recorder {
    epoch: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self { epoch: Instant::now(), ops: Arc::default() }
    }
}

impl Recorder {
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn push(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn history(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one operation through `client` and records it.
    pub async fn run(&self, client: &RdbClient, id: usize, key: &str, kind: OpKind) -> Outcome {
        let invoke = self.now();
        let outcome = match &kind {
            OpKind::Cas { expected, value } => match client.cas_put(key.to_string(), value.clone(), *expected).await {
                Ok(o) => Outcome::Cas { success: o.success, current: o.current_version, new_version: o.new_version },
                Err(e) => write_failure(e),
            },
            OpKind::Get => match client.cas_get(key.to_string()).await {
                Ok(Some(v)) => Outcome::Get { found: true, value: v.value.to_vec(), version: v.version },
                Ok(None) => Outcome::Get { found: false, value: Vec::new(), version: 0 },
                Err(_) => Outcome::Failed,
            },
            OpKind::Delete { expected } => match client.cas_delete(key.to_string(), *expected).await {
                Ok(o) => Outcome::Delete { success: o.success, current: o.current_version },
                Err(e) => write_failure(e),
            },
        };
        let complete = self.now();
        self.push(Op { client: id, key: key.as_bytes().to_vec(), kind, invoke, complete, outcome: outcome.clone() });
        outcome
    }
}

/// A write that failed: certainly not applied, or unknown (and why).
fn write_failure(e: ClientError) -> Outcome {
    match e {
        // Sent, outcome not known; or a server-side failure after proposing.
        ClientError::Indeterminate(_) | ClientError::Server { .. } => Outcome::Unknown(e.to_string()),
        // Every attempt was refused by a server that said it did not apply it
        // (the client returns Unavailable for a conditional write only then;
        // a connection failure makes it Indeterminate), or the request was
        // refused as invalid before being proposed.
        ClientError::Unavailable(_)
        | ClientError::InvalidArgument(_)
        | ClientError::NotFound(_)
        | ClientError::FailedPrecondition(_)
        | ClientError::ResourceExhausted(_)
        | ClientError::InvalidEndpoint(_)
        | ClientError::Compacted { .. }
        | ClientError::LockLost(_)
        | ClientError::Unauthenticated(_)
        | ClientError::PermissionDenied(_) => Outcome::Failed,
    }
}

/// Client settings for fault tests: short attempts, bounded retries.
pub fn fault_client(endpoints: Vec<String>) -> RdbClient {
    let cfg = ClientConfig {
        request_timeout: Duration::from_millis(1500),
        retry_budget: Duration::from_secs(3),
        ..ClientConfig::default()
    };
    RdbClient::with_config(endpoints, cfg).expect("client")
}

/// A worker's seeded PRNG: distinct per worker, replayable from the run's seed.
pub fn worker_rng(seed: u64, id: usize) -> Rng {
    Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15))
}

/// A worker's client: each worker prefers a different node, so forwarding is
/// exercised too.
pub fn worker_client(endpoints: &[String], id: usize, namespace: &str) -> RdbClient {
    let mut eps = endpoints.to_vec();
    let n = eps.len().max(1);
    eps.rotate_left(id % n);
    fault_client(eps).namespace(namespace)
}

/// One worker's single-key operations on keys `k0..k{keys}`: Get,
/// CompareAndSwap (mostly on the version last seen) and CompareAndDelete,
/// each recorded for the linearizability checker.
pub struct CasOps {
    id: usize,
    seen: Vec<u64>,
    n: u64,
}

impl CasOps {
    pub fn new(id: usize, keys: usize) -> Self {
        Self { id, seen: vec![0; keys], n: 0 }
    }

    /// Runs and records one random operation.
    pub async fn step(&mut self, rec: &Recorder, client: &RdbClient, rng: &mut Rng) {
        let k = rng.below(self.seen.len() as u64) as usize;
        let key = format!("k{k}");
        let kind = match rng.below(100) {
            0..=44 => OpKind::Get,
            45..=84 => {
                self.n += 1;
                // Mostly the version last seen, sometimes "absent" or stale.
                let expected = if rng.below(5) == 0 { 0 } else { self.seen[k] };
                OpKind::Cas { expected, value: format!("c{}-{}", self.id, self.n).into_bytes() }
            }
            _ => OpKind::Delete { expected: self.seen[k] },
        };
        match rec.run(client, self.id, &key, kind).await {
            Outcome::Get { version, .. } => self.seen[k] = version,
            Outcome::Cas { success: true, new_version, .. } => self.seen[k] = new_version,
            Outcome::Delete { success: true, .. } => self.seen[k] = 0,
            Outcome::Cas { current, .. } | Outcome::Delete { current, .. } => self.seen[k] = current,
            Outcome::Unknown(_) | Outcome::Failed => {}
        }
    }
}

/// Runs `clients` workers against `keys` until `stop` is set.
pub fn spawn_workers(
    rec: &Recorder,
    endpoints: Vec<String>,
    namespace: &str,
    keys: usize,
    clients: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|id| {
            let (rec, stop) = (rec.clone(), stop.clone());
            let client = worker_client(&endpoints, id, namespace);
            let mut rng = worker_rng(seed, id);
            tokio::spawn(async move {
                let mut ops = CasOps::new(id, keys);
                while !stop.load(Ordering::Relaxed) {
                    ops.step(&rec, &client, &mut rng).await;
                }
            })
        })
        .collect()
}
