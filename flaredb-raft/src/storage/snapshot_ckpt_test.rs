//! A build makes a checkpoint, not a file; a checkpoint becomes a snapshot
//! file only when read, once for every reader, and stays readable as long as a
//! handle holds it: a newer build or an install only retires it, and its last
//! handle deletes it (with its export).

use std::os::unix::fs::MetadataExt;

use openraft::storage::RaftStateMachine;

use super::{
    snapshot_check,
    snapshot_fixture_test::{assert_at_rest, bytes, Store},
    SnapshotDir,
};

fn names(dir: &SnapshotDir) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_checkpoint_outlives_newer_snapshots_and_goes_with_its_last_handle() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("leader")).await;
    store.write(0, 100).await;
    let (meta, built) = store.snaps.build(&store.db).unwrap();
    assert!(built.path().is_dir(), "a build makes a checkpoint");
    assert_eq!(names(&store.snaps).iter().filter(|n| *n != "CURRENT").count(), 1, "{:?}", names(&store.snaps));
    drop(built);

    // Two followers need it: one export, shared.
    let first = store.sm.get_current_snapshot().await.unwrap().unwrap();
    let second = store.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(first.meta, meta);
    assert!(!names(&store.snaps).iter().any(|n| n.ends_with(".export")), "nothing exported before a read");
    let ino = |s: &super::SnapshotFile| s.reader().unwrap().metadata().unwrap().ino();
    assert_eq!(ino(&first.snapshot), ino(&second.snapshot), "one export for both");

    // A newer build retires it; it stays readable while held.
    store.write(100, 50).await;
    store.snaps.build(&store.db).unwrap();
    assert_eq!(names(&store.snaps).iter().filter(|n| n.ends_with(".ckpt")).count(), 2);
    let path = first.snapshot.file_path().unwrap();
    snapshot_check::check(&path, &meta, u64::MAX).expect("the held checkpoint reads as it was");
    drop(first);
    assert!(path.exists(), "one handle left");
    let mut follower = Store::open(&tmp.path().join("follower")).await;
    let received = follower.snaps.receive_path();
    std::fs::write(&received, bytes(&second.snapshot)).unwrap();
    drop(second);
    assert!(!path.exists(), "the last handle deleted the export");
    assert_eq!(assert_at_rest(&store), Some(150), "and the checkpoint");

    // An install retires a held checkpoint too.
    let file = super::SnapshotFile::open(received).unwrap();
    follower.write(0, 20).await;
    follower.snaps.build(&follower.db).unwrap();
    let held = follower.sm.get_current_snapshot().await.unwrap().unwrap();
    follower.sm.install_snapshot(&meta, file).await.unwrap();
    assert!(held.snapshot.path().is_dir(), "held through the install");
    assert!(names(&follower.snaps).iter().any(|n| n.ends_with(".snap")), "CURRENT: the installed file");
    drop(held);
    assert_eq!(assert_at_rest(&follower), Some(100));
    assert_eq!(follower.hash().1, {
        let mut again = Store::open(&tmp.path().join("again")).await;
        again.write(0, 100).await;
        again.hash().1
    });
}
