//! The fault suite under the bank workload: multi-key transfers and audits in
//! transactions, with single-key operations mixed in, under a few nemesis
//! schedules. Every audit must see the same total, the single-key history
//! must be linearizable and the replicas must converge.
//! `FLAREDB_SOAK_ROUNDS` / `FLAREDB_SOAK_SECS` lengthen it; `FLAREDB_SEED` replays.

use flaredb_tests::fault_suite::{run_with, Schedule, Workload};

#[tokio::test]
async fn bank_leader_kill_3() {
    run_with(Schedule::LeaderKill, 3, Workload::Bank).await;
}

#[tokio::test]
async fn bank_pause_leader_3() {
    run_with(Schedule::PauseLeader, 3, Workload::Bank).await;
}

#[tokio::test]
async fn bank_symmetric_partition_5() {
    run_with(Schedule::SymmetricPartition, 5, Workload::Bank).await;
}
