//! The fault suite with a lock service: while the CAS workload (checked for
//! linearizability) runs, four clients contend for one lock with the
//! client's `Lock` helper, make fenced writes while holding it, and release
//! it or die holding it. Checked: unique tokens that follow real time (what
//! the resource's fence relies on), and every dead holder's lock taken over
//! within TTL + failover time. `FLAREDB_SEED` replays.

use flaredb_tests::fault_suite::{run_with, Schedule, Workload};

#[tokio::test]
async fn lock_leader_kill_3() {
    run_with(Schedule::LeaderKill, 3, Workload::Lock).await;
}

#[tokio::test]
async fn lock_pause_leader_3() {
    run_with(Schedule::PauseLeader, 3, Workload::Lock).await;
}

#[tokio::test]
async fn lock_isolate_leader_5() {
    run_with(Schedule::IsolateLeader, 5, Workload::Lock).await;
}
