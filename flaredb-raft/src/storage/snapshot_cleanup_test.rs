//! No temp file outlives its operation: a received snapshot that is too
//! large, abandoned, invalid or declined is deleted, and whatever a crash left
//! is deleted at open. A snapshot's meta must match its records.

use prost::Message;

use super::{
    sm_meta,
    snapshot_check::{self, SnapshotCheckError},
    snapshot_file::{Section, SnapshotWriter},
    snapshot_fixture_test::{assert_at_rest, bytes, Store},
    snapshot_recv::ReceiveError,
    SnapshotDir,
};
use crate::{codec, types::SnapshotMeta};

fn names(dir: &SnapshotDir) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_snapshot_is_capped_checked_and_never_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Store::open(&tmp.path().join("source")).await;
    source.write(0, 30).await;
    let (meta, file) = source.snaps.build(&source.db).unwrap();
    let bytes = bytes(&file);
    let dir = SnapshotDir::new(tmp.path().join("dst")).unwrap();

    let small = dir.clone().with_max_snapshot_bytes(bytes.len() as u64 - 1);
    let mut rx = small.receive().await.unwrap();
    let err = rx.write(&bytes).await.unwrap_err();
    assert!(matches!(err, ReceiveError::TooLarge { .. }), "{err}");
    drop(rx);
    assert_eq!(names(&dir), Vec::<String>::new(), "over the cap: deleted");

    let mut rx = dir.receive().await.unwrap();
    rx.write(&bytes[..100]).await.unwrap();
    drop(rx);
    assert_eq!(names(&dir), Vec::<String>::new(), "abandoned mid-stream: deleted");

    let mut wrong = meta.clone();
    wrong.last_membership = Default::default();
    let mut rx = dir.receive().await.unwrap();
    rx.write(&bytes).await.unwrap();
    let err = rx.finish(&wrong).await.unwrap_err();
    assert!(matches!(err, ReceiveError::Invalid(SnapshotCheckError::MetaMismatch { what: "membership", .. })), "{err}");
    assert_eq!(names(&dir), Vec::<String>::new(), "meta does not match: deleted");

    let mut rx = dir.receive().await.unwrap();
    rx.write(&bytes).await.unwrap();
    let received = rx.finish(&meta).await.unwrap();
    assert_eq!(names(&dir).len(), 1);
    drop(received);
    assert_eq!(names(&dir), Vec::<String>::new(), "declined by openraft (dropped): deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_deletes_what_a_crash_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path()).await;
    store.write(0, 20).await;
    store.snaps.build(&store.db).unwrap();
    let dir = store.snaps.path().to_path_buf();
    for stale in [
        "recv-1-0.tmp",
        "backup-3-0.tmp",
        "restore-4-0.tmp",
        "CURRENT-5-0.tmp",
        "export-6-0.tmp",
        "snap-9-9.snap",
        "ckpt-9-9.export",
    ] {
        std::fs::write(dir.join(stale), b"partial").unwrap();
    }
    // An interrupted checkpoint (RocksDB's own temp dir too), an unreferenced one.
    for stale in ["build-2-0.tmp", "build-2-1.tmp.tmp", "ckpt-9-9.ckpt"] {
        std::fs::create_dir(dir.join(stale)).unwrap();
        std::fs::write(dir.join(stale).join("000001.sst"), b"partial").unwrap();
    }
    let store = store.crash_and_reopen().await;
    assert_eq!(assert_at_rest(&store), Some(20));
}

#[test]
fn check_refuses_markers_overflowing_indexes_and_mismatched_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    let last = crate::types::LogId::new(crate::types::LeaderId { term: 1, node_id: 1 }, u64::MAX);
    let write = |records: &[(&[u8], Vec<u8>)]| {
        let mut w = SnapshotWriter::create(&path).unwrap();
        for (k, v) in records {
            w.record(Section::SmMeta, k, v).unwrap();
        }
        w.finish().unwrap();
    };
    let applied = codec::log_id_to_pb(&last).encode_to_vec();
    let meta = SnapshotMeta { last_log_id: Some(last), last_membership: Default::default() };

    write(&[(sm_meta::LAST_APPLIED_KEY, applied.clone())]);
    assert!(matches!(snapshot_check::check(&path, &meta, u64::MAX), Err(SnapshotCheckError::IndexOverflow(_))));
    let none = SnapshotMeta::default();
    assert!(matches!(snapshot_check::check(&path, &none, u64::MAX), Err(SnapshotCheckError::MetaMismatch { .. })));
    assert!(matches!(snapshot_check::check(&path, &none, 10), Err(SnapshotCheckError::TooLarge { .. })));

    write(&[(sm_meta::INSTALLING_KEY, vec![1])]);
    assert!(matches!(snapshot_check::check(&path, &none, u64::MAX), Err(SnapshotCheckError::HoldsMarker)));
    write(&[]);
    assert!(snapshot_check::check(&path, &none, u64::MAX).is_ok(), "an empty state with an empty meta");
}
