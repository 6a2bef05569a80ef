//! The fault suite: each nemesis schedule under a contended CAS workload,
//! checked for linearizability, lost writes, version order and convergence.
//! `FLAREDB_SOAK_ROUNDS` / `FLAREDB_SOAK_SECS` lengthen it; `FLAREDB_SEED` replays.

use flaredb_tests::fault_suite::{run, Schedule};

#[tokio::test]
async fn leader_kill_3() {
    run(Schedule::LeaderKill, 3).await;
}

#[tokio::test]
async fn member_kill_5() {
    run(Schedule::MemberKill, 5).await;
}

#[tokio::test]
async fn pause_leader_3() {
    run(Schedule::PauseLeader, 3).await;
}

#[tokio::test]
async fn isolate_leader_5() {
    run(Schedule::IsolateLeader, 5).await;
}

#[tokio::test]
async fn symmetric_partition_5() {
    run(Schedule::SymmetricPartition, 5).await;
}

#[tokio::test]
async fn asymmetric_partition_3() {
    run(Schedule::AsymmetricPartition, 3).await;
}

#[tokio::test]
async fn membership_change_during_partition_3() {
    run(Schedule::MembershipDuringPartition, 3).await;
}

#[tokio::test]
async fn full_cluster_restart_3() {
    run(Schedule::FullRestart, 3).await;
}
