//! The fault suite with watchers: the CAS workload (checked for
//! linearizability) runs while three watchers, attached to different nodes,
//! follow the namespace. After each schedule every watcher must hold every
//! acknowledged write exactly once, in version order, and no write that
//! certainly did not apply. `FLAREDB_SEED` replays.

use flaredb_tests::fault_suite::{run_with, Schedule, Workload};

#[tokio::test]
async fn watch_leader_kill_3() {
    run_with(Schedule::LeaderKill, 3, Workload::Watch).await;
}

#[tokio::test]
async fn watch_pause_leader_3() {
    run_with(Schedule::PauseLeader, 3, Workload::Watch).await;
}

#[tokio::test]
async fn watch_symmetric_partition_5() {
    run_with(Schedule::SymmetricPartition, 5, Workload::Watch).await;
}
