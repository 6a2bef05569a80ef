//! A restored node's snapshot describes the new cluster, not the backed-up
//! one: its records, CURRENT and the state machine agree, and a first learner
//! installs it as it is.

use openraft::storage::RaftStateMachine;

use super::snapshot_fixture_test::{assert_at_rest, Store};
use crate::restore::{restore, RestoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_snapshot_is_self_consistent_and_installs_on_a_learner() {
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Store::open(&tmp.path().join("source")).await;
    source.write(0, 120).await;
    let backup = tmp.path().join("backup.snap");
    source.snaps.export(&source.db, &backup).unwrap();
    drop(source);

    let data_dir = tmp.path().join("restored");
    assert_eq!(restore(&backup, &data_dir, 7, "127.0.0.1:7007").unwrap(), 120);
    let mut restored = Store::open(&data_dir).await;
    assert_eq!(assert_at_rest(&restored), Some(120), "CURRENT matches its file and the state machine");
    let (meta, path) = restored.snaps.current().unwrap().unwrap();
    let last = meta.last_log_id.unwrap();
    assert_eq!((last.leader_id.node_id, last.index), (7, 120), "the new cluster's log id, not the old leader's");
    assert_eq!(meta.last_membership.membership().voter_ids().collect::<Vec<_>>(), vec![7]);
    assert_eq!(restored.sm.applied_state().await.unwrap(), (meta.last_log_id, meta.last_membership.clone()));

    // The first learner of the restored cluster receives that file.
    let mut learner = Store::open(&tmp.path().join("learner")).await;
    let received = learner.snaps.receive_path();
    std::fs::copy(&path, &received).unwrap();
    let file = super::SnapshotFile::open(received).unwrap();
    learner.sm.install_snapshot(&meta, file).await.unwrap();
    assert_eq!(learner.sm.applied_state().await.unwrap(), (meta.last_log_id, meta.last_membership.clone()));
    assert_eq!(learner.hash(), restored.hash(), "the learner holds exactly the restored state");
    assert_eq!(assert_at_rest(&learner), Some(120));

    // Restoring into a used directory is refused, and a file that is not a backup too.
    let used = restore(&backup, &data_dir, 8, "127.0.0.1:7008");
    assert!(matches!(used, Err(RestoreError::NotEmpty(_))), "{used:?}");
    std::fs::write(tmp.path().join("junk"), b"not a snapshot").unwrap();
    let junk = restore(&tmp.path().join("junk"), &tmp.path().join("other"), 9, "127.0.0.1:7009");
    assert!(matches!(junk, Err(RestoreError::Invalid { .. } | RestoreError::Backup { .. })), "{junk:?}");
    assert!(!tmp.path().join("other").exists(), "nothing created for a bad backup");
    let bad_addr = restore(&backup, &tmp.path().join("third"), 10, "not-an-address");
    assert!(matches!(&bad_addr, Err(RestoreError::Address(m)) if m.contains("PUBLIC@PEER")), "{bad_addr:?}");
    assert!(!tmp.path().join("third").exists(), "nothing created for a bad address");
}
