//! The bank workload for the fault suite: money moves between a few accounts
//! in multi-key transactions (read two balances, then write both only if
//! neither version changed), audits read every account in one transaction and
//! must always see the same total, and a share of single-key operations keeps
//! a history for the linearizability checker.

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc, Mutex,
};

use flaredb_client::{ClientError, Compare, CompareOp, RdbClient, TxnOp, TxnOpResult, TxnResult};

use crate::{
    wait_until,
    workload::{fault_client, worker_client, worker_rng, CasOps, Recorder, Rng},
    DEADLINE,
};

pub const ACCOUNTS: usize = 5;
pub const INITIAL: u64 = 100;
pub const TOTAL: u64 = INITIAL * ACCOUNTS as u64;
/// Percent of a worker's operations that are single-key (recorded) ones.
const SINGLE_KEY_PCT: u64 = 30;
/// Percent that are audits; the rest are transfers.
const AUDIT_PCT: u64 = 20;
/// The most kept of the audits that saw a wrong total.
const MAX_VIOLATIONS: usize = 20;

pub fn account(i: usize) -> String {
    format!("acct/{i}")
}

/// Moves `amount` from one account to another, each given as (index,
/// version read, balance read): applied only if neither changed since.
pub async fn transfer(
    client: &RdbClient,
    (from, fv, fb): (usize, u64, u64),
    (to, tv, tb): (usize, u64, u64),
    amount: u64,
) -> Result<TxnResult, ClientError> {
    client
        .txn()
        .when([
            Compare::version(account(from), CompareOp::Equal, fv),
            Compare::version(account(to), CompareOp::Equal, tv),
        ])
        .and_then([
            TxnOp::put(account(from), (fb - amount).to_string()),
            TxnOp::put(account(to), (tb + amount).to_string()),
        ])
        .commit()
        .await
}

/// What the bank workers did, shared by them.
#[derive(Debug, Default)]
pub struct BankStats {
    pub transfers_ok: AtomicU64,
    pub compare_failed: AtomicU64,
    pub indeterminate: AtomicU64,
    /// Refused before applying (not applied), or the read before it failed.
    pub not_applied: AtomicU64,
    /// Nothing to move: the source account was empty.
    pub skipped: AtomicU64,
    pub audits_ok: AtomicU64,
    pub audits_failed: AtomicU64,
    /// Audits that answered with a wrong total or a broken account.
    violations: Mutex<Vec<String>>,
}

impl BankStats {
    /// Bank operations finished so far (single-key ones are in the recorder).
    pub fn ops(&self) -> usize {
        [
            &self.transfers_ok,
            &self.compare_failed,
            &self.indeterminate,
            &self.not_applied,
            &self.skipped,
            &self.audits_ok,
            &self.audits_failed,
        ]
        .iter()
        .map(|n| n.load(Ordering::Relaxed) as usize)
        .sum()
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn violation(&self, what: String) {
        let mut v = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < MAX_VIOLATIONS {
            v.push(what);
        }
    }

    pub fn summary(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "transfers ok {} / compare-failed {} / indeterminate {} / not applied {} / skipped {}, audits ok {} / failed {}",
            n(&self.transfers_ok),
            n(&self.compare_failed),
            n(&self.indeterminate),
            n(&self.not_applied),
            n(&self.skipped),
            n(&self.audits_ok),
            n(&self.audits_failed),
        )
    }
}

/// Creates every account with [`INITIAL`] in one transaction (before faults).
pub async fn open_accounts(endpoints: Vec<String>, namespace: &str) {
    let client = fault_client(endpoints).namespace(namespace);
    let open = wait_until("the accounts are opened", DEADLINE, || async {
        client
            .txn()
            .when((0..ACCOUNTS).map(|i| Compare::version(account(i), CompareOp::Equal, 0)))
            .and_then((0..ACCOUNTS).map(|i| TxnOp::put(account(i), INITIAL.to_string())))
            .or_else((0..ACCOUNTS).map(|i| TxnOp::get(account(i))))
            .commit()
            .await
            .ok()
    })
    .await;
    // Retried after an unknown outcome, the compares fail: the first attempt
    // applied, so the failure branch must read every account at INITIAL.
    if !open.succeeded {
        let balances: Result<Vec<u64>, String> = open.results.iter().map(|r| balance(r).map(|(_, b)| b)).collect();
        assert_eq!(balances, Ok(vec![INITIAL; ACCOUNTS]), "the accounts after a retried opening");
    }
}

/// One account's (version, balance), or why it is not a valid account.
fn balance(r: &TxnOpResult) -> Result<(u64, u64), String> {
    let TxnOpResult::Get(Some(kv)) = r else { return Err(format!("an account is missing: {r:?}")) };
    let n = std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok());
    n.map(|n| (kv.version, n)).ok_or_else(|| format!("not a decimal balance: {:?}", kv.value))
}

/// Reads every account in one transaction: `Ok(Ok(total))`, `Ok(Err(why))`
/// when the answer breaks the invariant's shape, `Err` when no answer.
async fn audit(client: &RdbClient) -> Result<Result<u64, String>, ClientError> {
    let r = client.txn().and_then((0..ACCOUNTS).map(|i| TxnOp::get(account(i)))).commit().await?;
    if r.results.len() != ACCOUNTS {
        return Ok(Err(format!("{} results for {ACCOUNTS} gets: {:?}", r.results.len(), r.results)));
    }
    let balances: Result<Vec<(u64, u64)>, String> = r.results.iter().map(balance).collect();
    Ok(balances.map(|b| b.iter().map(|(_, n)| n).sum()))
}

/// Runs `clients` bank workers until `stop` is set; single-key operations on
/// `keys` keys go through `rec`.
pub fn spawn_workers(
    rec: &Recorder,
    endpoints: Vec<String>,
    namespace: &str,
    keys: usize,
    clients: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<BankStats>) {
    let stats = Arc::new(BankStats::default());
    let workers = (0..clients)
        .map(|id| {
            let (rec, stop, stats) = (rec.clone(), stop.clone(), stats.clone());
            let client = worker_client(&endpoints, id, namespace);
            let mut rng = worker_rng(seed, id);
            tokio::spawn(async move {
                let mut single = CasOps::new(id, keys);
                while !stop.load(Ordering::Relaxed) {
                    let pick = rng.below(100);
                    if pick < SINGLE_KEY_PCT {
                        single.step(&rec, &client, &mut rng).await;
                    } else if pick < SINGLE_KEY_PCT + AUDIT_PCT {
                        match audit(&client).await {
                            Ok(Ok(TOTAL)) => stats.audits_ok.fetch_add(1, Ordering::Relaxed),
                            Ok(Ok(total)) => {
                                stats.violation(format!("client {id}: an audit summed to {total}, not {TOTAL}"));
                                stats.audits_ok.fetch_add(1, Ordering::Relaxed)
                            }
                            Ok(Err(why)) => {
                                stats.violation(format!("client {id}: an audit answered badly: {why}"));
                                stats.audits_ok.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(_) => stats.audits_failed.fetch_add(1, Ordering::Relaxed),
                        };
                    } else {
                        random_transfer(&client, id, &mut rng, &stats).await;
                    }
                }
            })
        })
        .collect();
    (workers, stats)
}

/// Reads two distinct random accounts, then moves a random amount (never
/// more than the source holds) if neither changed since.
async fn random_transfer(client: &RdbClient, id: usize, rng: &mut Rng, stats: &BankStats) {
    let from = rng.below(ACCOUNTS as u64) as usize;
    let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
    let read = match client.txn().and_then([TxnOp::get(account(from)), TxnOp::get(account(to))]).commit().await {
        Ok(r) => r,
        Err(_) => {
            stats.not_applied.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let (f, t) = match (read.results.first().map(balance), read.results.get(1).map(balance)) {
        (Some(Ok(f)), Some(Ok(t))) if read.results.len() == 2 => (f, t),
        _ => {
            stats.violation(format!("client {id}: reading two accounts answered {:?}", read.results));
            return;
        }
    };
    let ((fv, fb), (tv, tb)) = (f, t);
    if fb == 0 {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let amount = 1 + rng.below(fb.min(20));
    let moved = transfer(client, (from, fv, fb), (to, tv, tb), amount).await;
    let counter = match moved {
        Ok(r) if r.succeeded => {
            let put = TxnOpResult::Put { version: r.revision };
            if r.results != [put.clone(), put] {
                stats.violation(format!("client {id}: a transfer's puts answered {:?} at {}", r.results, r.revision));
            }
            &stats.transfers_ok
        }
        Ok(_) => &stats.compare_failed,
        // Applied or not, a transfer is whole: the audits still hold.
        Err(ClientError::Indeterminate(_) | ClientError::Server { .. }) => &stats.indeterminate,
        Err(_) => &stats.not_applied,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// After healing: polls until one audit answers, which must sum to [`TOTAL`].
pub async fn final_audit(endpoints: Vec<String>, namespace: &str, seed: u64) {
    let client = fault_client(endpoints).namespace(namespace);
    let total = wait_until(&format!("the final audit after healing (seed={seed})"), DEADLINE, || async {
        audit(&client).await.ok()
    })
    .await;
    assert_eq!(total, Ok(TOTAL), "seed={seed}: the final audit after healing");
}
