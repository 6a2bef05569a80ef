//! Nemesis schedules run against a real cluster under the workload, then
//! checked: linearizability of the whole history (acknowledged writes not
//! lost: final reads after healing are part of it), strictly increasing
//! versions, and identical state hashes on every node.

use std::{
    collections::BTreeSet,
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use crate::{
    bank,
    lincheck::{check, OpKind, Outcome},
    lockers::{self, Lockers},
    wait_until,
    watchers::Watchers,
    workload::{fault_client, seed, spawn_workers, Recorder, Rng},
    Cluster, ClusterOpts, DEADLINE,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    LeaderKill,
    MemberKill,
    PauseLeader,
    IsolateLeader,
    SymmetricPartition,
    AsymmetricPartition,
    MembershipDuringPartition,
    FullRestart,
}

/// How long a schedule runs: short in CI, `FLAREDB_SOAK_SECS` per round and
/// `FLAREDB_SOAK_ROUNDS` rounds when soaking.
fn rounds() -> u32 {
    std::env::var("FLAREDB_SOAK_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

fn fault_secs() -> u64 {
    std::env::var("FLAREDB_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

const KEYS: usize = 5;
const CLIENTS: usize = 8;
/// A schedule's workload runs at least this long and this many operations
/// (whichever comes later, up to `MAX_RUN`), so every history means something.
const MIN_RUN: Duration = Duration::from_secs(6);
const MIN_OPS: usize = 3_000;
const MAX_RUN: Duration = Duration::from_secs(40);

/// What the clients do while the nemesis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Contended single-key Get / CompareAndSwap / CompareAndDelete.
    Cas,
    /// Multi-key transfers and audits in transactions (see [`bank`]), with
    /// single-key operations mixed in.
    Bank,
    /// The CAS workload followed by watchers (see [`crate::watchers`]).
    Watch,
    /// The CAS workload with clients contending for a lock (see [`crate::lockers`]).
    Lock,
}

const LOCKERS: usize = 4;

const WATCHERS: usize = 3;

const NAMESPACE: &str = "fault";

/// Runs `schedule` on `nodes` nodes under the single-key workload.
pub async fn run(schedule: Schedule, nodes: u64) {
    run_with(schedule, nodes, Workload::Cas).await;
}

/// Runs `schedule` on `nodes` nodes under `workload` and checks everything;
/// panics with the seed and the offending history excerpt on failure.
pub async fn run_with(schedule: Schedule, nodes: u64, workload: Workload) {
    let seed = seed();
    eprintln!(
        "fault suite: schedule={schedule:?} nodes={nodes} workload={workload:?} seed={seed} (replay with FLAREDB_SEED={seed})"
    );
    let mut rng = Rng::new(seed);
    let opts = ClusterOpts {
        fault_injection: true,
        extra_toml: "heartbeat_ms = 100\nelection_timeout_ms = 600\nrequest_timeout_ms = 2000\n".into(),
        ..ClusterOpts::default()
    };
    let mut c = Cluster::start_with(nodes, opts).await;
    let rec = Recorder::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (workers, bank) = match workload {
        Workload::Cas | Workload::Watch | Workload::Lock => {
            (spawn_workers(&rec, c.endpoints(), NAMESPACE, KEYS, CLIENTS, seed, stop.clone()), None)
        }
        Workload::Bank => {
            bank::open_accounts(c.endpoints(), NAMESPACE).await;
            let (w, stats) = bank::spawn_workers(&rec, c.endpoints(), NAMESPACE, KEYS, CLIENTS, seed, stop.clone());
            (w, Some(stats))
        }
    };
    let watchers = (workload == Workload::Watch).then(|| Watchers::spawn(&c.endpoints(), NAMESPACE, WATCHERS));
    let lockers =
        (workload == Workload::Lock).then(|| Lockers::spawn(&c.endpoints(), "fault-lock", LOCKERS, seed, stop.clone()));
    let ops = || rec.len() + bank.as_ref().map_or(0, |b| b.ops());

    for _ in 0..rounds() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        nemesis(schedule, &mut c, &mut rng).await;
        heal_all(&mut c).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while (started.elapsed() < MIN_RUN || ops() < MIN_OPS) && started.elapsed() < MAX_RUN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let run_time = started.elapsed();

    final_reads(&c, &rec, seed).await;
    let history = rec.history();
    let count = |f: fn(&Outcome) -> bool| history.iter().filter(|o| f(&o.outcome)).count();
    eprintln!(
        "fault suite: {schedule:?}: {} ops in {run_time:.1?}, {} successful writes, {} unknown, {} failed",
        history.len(),
        count(|o| matches!(o, Outcome::Cas { success: true, .. } | Outcome::Delete { success: true, .. })),
        count(Outcome::is_unknown),
        count(|o| *o == Outcome::Failed),
    );
    for (why, n) in unknown_reasons(&history) {
        eprintln!("fault suite: {schedule:?}: {n} unknown: {why}");
    }
    match check(&history) {
        Ok(stats) => eprintln!("fault suite: {schedule:?} seed={seed}: linearizable ({stats:?})"),
        Err(v) => panic!("fault suite: {schedule:?} seed={seed}: NOT linearizable\n{v}"),
    }
    let completed =
        history.iter().filter(|o| matches!(o.outcome, crate::lincheck::Outcome::Cas { success: true, .. })).count();
    assert!(completed > 0, "seed={seed}: no write succeeded at all; the schedule left no working cluster");
    if let Some(stats) = bank {
        eprintln!("fault suite: {schedule:?} bank: {}", stats.summary());
        let violations = stats.violations();
        assert!(violations.is_empty(), "seed={seed}: the bank invariant broke:\n{}", violations.join("\n"));
        bank::final_audit(c.endpoints(), NAMESPACE, seed).await;
        let moved = stats.transfers_ok.load(std::sync::atomic::Ordering::Relaxed);
        assert!(moved > 0, "seed={seed}: no transfer succeeded: {}", stats.summary());
    }
    if let Some(w) = watchers {
        // The leader's applied index covers every acknowledged write.
        let leader = c.wait_leader().await;
        let applied = c.client_for(leader).status().await.expect("the leader's status").applied_index;
        let events = w.verify(&history, applied, seed).await;
        eprintln!("fault suite: {schedule:?}: {WATCHERS} watchers each saw all {events} changes in order");
    }
    if let Some(l) = lockers {
        // A dead holder's lease runs out; a failover may restart it once
        // (a new leader gives every lease its full TTL) after the fault.
        let ttl = Duration::from_secs(lockers::TTL_SECS as u64);
        let bound = 2 * ttl + Duration::from_secs(fault_secs()) + Duration::from_secs(6);
        eprintln!("fault suite: {schedule:?} locks: {}", l.verify(seed, bound).await);
    }
    converged(&c, seed).await;
}

/// After healing, one read per key: every acknowledged write must still be
/// there. A read that fails fails the suite (else "no lost write" would be
/// vacuous for that key).
async fn final_reads(c: &Cluster, rec: &Recorder, seed: u64) {
    let reader = fault_client(c.endpoints()).namespace(NAMESPACE);
    for k in 0..KEYS {
        let key = format!("k{k}");
        // A failed attempt is recorded (as Failed, which the checker drops);
        // only a read that answers ends the wait.
        wait_until(&format!("the final read of {key} after healing (seed={seed})"), DEADLINE, || async {
            matches!(rec.run(&reader, usize::MAX, &key, OpKind::Get).await, Outcome::Get { .. }).then_some(())
        })
        .await;
    }
}

/// Why outcomes were unknown, grouped by the error text without addresses
/// and numbers, most frequent first.
fn unknown_reasons(history: &[crate::lincheck::Op]) -> Vec<(String, usize)> {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for op in history {
        if let Outcome::Unknown(why) = &op.outcome {
            let general: String = why.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
            *by.entry(general).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = by.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// Every node running, resumed, fully connected.
async fn heal_all(c: &mut Cluster) {
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    for id in &ids {
        c.resume(*id);
    }
    c.heal().await;
    for id in ids {
        if c.nodes[&id].proc.is_none() {
            c.start_node(id);
        }
    }
    c.wait_leader().await;
}

/// Waits until every voter reports the same applied index and state hash.
async fn converged(c: &Cluster, seed: u64) {
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    wait_until(&format!("replicas converge (seed={seed})"), DEADLINE, || async {
        let mut seen = BTreeSet::new();
        for id in &ids {
            seen.insert(c.client_for(*id).hash().await.ok()?);
        }
        (seen.len() == 1).then_some(())
    })
    .await;
}

fn others(c: &Cluster, but: u64) -> Vec<u64> {
    c.nodes.keys().copied().filter(|id| *id != but).collect()
}

async fn nemesis(schedule: Schedule, c: &mut Cluster, rng: &mut Rng) {
    let under_fault = Duration::from_secs(fault_secs());
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    match schedule {
        Schedule::LeaderKill => {
            let leader = c.wait_leader().await;
            c.kill(leader);
            tokio::time::sleep(under_fault).await;
        }
        Schedule::MemberKill => {
            let victim = ids[rng.below(ids.len() as u64) as usize];
            c.kill(victim);
            tokio::time::sleep(under_fault).await;
        }
        Schedule::PauseLeader => {
            // Longer than the election timeout: the others elect a new leader,
            // and the old one wakes up believing it still leads.
            let leader = c.wait_leader().await;
            c.pause(leader);
            tokio::time::sleep(under_fault).await;
        }
        Schedule::IsolateLeader => {
            let leader = c.wait_leader().await;
            let rest = others(c, leader);
            c.partition(&[&[leader], &rest]).await;
            wait_until("a new leader in the majority", DEADLINE, || async {
                let s = c.client_for(rest[0]).status().await.ok()?;
                (s.leader_id != 0 && s.leader_id != leader).then_some(())
            })
            .await;
            // The deposed leader must refuse strong reads and writes.
            let old = fault_client(vec![c.addr(leader)]).namespace(NAMESPACE);
            let got = old.cas_get("k0").await;
            assert!(got.is_err(), "a deposed leader served a strong read: {got:?}");
            let put = old.cas_put("k-deposed", "x", 0).await;
            assert!(put.is_err(), "a deposed leader acknowledged a write: {put:?}");
            tokio::time::sleep(under_fault).await;
        }
        Schedule::SymmetricPartition => {
            let mut shuffled = ids.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let cut = 1 + rng.below(shuffled.len() as u64 - 1) as usize;
            let (a, b) = shuffled.split_at(cut);
            c.partition(&[a, b]).await;
            tokio::time::sleep(under_fault).await;
        }
        Schedule::AsymmetricPartition => {
            // The leader can no longer send to one follower, which still sends to it.
            let leader = c.wait_leader().await;
            let rest = others(c, leader);
            let victim = rest[rng.below(rest.len() as u64) as usize];
            c.cut(leader, victim).await;
            tokio::time::sleep(under_fault).await;
            // Then the other way round for another follower.
            let second = rest[rng.below(rest.len() as u64) as usize];
            c.cut(second, leader).await;
            tokio::time::sleep(under_fault).await;
        }
        Schedule::MembershipDuringPartition => {
            // One follower is cut off while a new node joins and the voter set changes.
            let leader = c.wait_leader().await;
            let rest = others(c, leader);
            let isolated = rest[0];
            let majority: Vec<u64> = ids.iter().copied().filter(|id| *id != isolated).collect();
            c.partition(&[&[isolated], &majority]).await;
            let new_id = ids.iter().max().copied().unwrap_or(0) + 1;
            let addr = c.start_joining(new_id);
            let admin = fault_client(majority.iter().map(|id| c.addr(*id)).collect());
            let added = admin.add_learner(new_id, &addr, true).await;
            assert!(added.is_ok(), "add learner during a partition: {added:?}");
            let mut voters: BTreeSet<u64> = ids.iter().copied().collect();
            voters.insert(new_id);
            voters.remove(&isolated);
            let changed = admin.change_membership(voters).await;
            assert!(changed.is_ok(), "change membership during a partition: {changed:?}");
            tokio::time::sleep(under_fault).await;
        }
        Schedule::FullRestart => {
            for id in &ids {
                c.kill(*id);
            }
            for id in &ids {
                c.start_node(*id);
            }
            c.wait_leader().await;
        }
    }
}
