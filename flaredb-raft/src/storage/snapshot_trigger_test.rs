//! With a byte limit the state machine builds as soon as the commands applied
//! since the last snapshot reach it, and refuses before (openraft asks again
//! later); a forced build (a follower needs a snapshot) is never refused.

use openraft::storage::RaftStateMachine;

use super::{snapshot_fixture_test::Store, SnapshotTrigger, StateMachine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_limit_builds_before_the_entry_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path()).await;
    let trigger = SnapshotTrigger { logs_since_last: 10_000, log_bytes_since_last: Some(8 << 10) };
    store.sm = StateMachine::open(store.db.clone(), store.snaps.clone()).await.unwrap().with_snapshot_trigger(trigger);

    // The fixture's commands carry about 100 bytes each.
    store.write(0, 20).await;
    assert!(store.sm.try_create_snapshot_builder(false).await.is_none(), "below both limits");
    assert!(store.sm.try_create_snapshot_builder(true).await.is_some(), "forced");
    // Admin/Snapshot: openraft asks with force = false; the flag makes it build, once.
    store.sm.shared().force_snapshot.store(true, std::sync::atomic::Ordering::Release);
    assert!(store.sm.try_create_snapshot_builder(false).await.is_some(), "a manual snapshot is never refused");
    assert!(store.sm.try_create_snapshot_builder(false).await.is_none(), "the flag is used up");
    store.write(20, 150).await;
    let mut builder = store.sm.try_create_snapshot_builder(false).await.expect("past the byte limit");
    let snap = openraft::storage::RaftSnapshotBuilder::build_snapshot(&mut builder).await.unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(170));
    assert!(store.sm.try_create_snapshot_builder(false).await.is_none(), "counted from the build");

    let entries_only = SnapshotTrigger { logs_since_last: 50, log_bytes_since_last: Some(u64::MAX) };
    store.sm =
        StateMachine::open(store.db.clone(), store.snaps.clone()).await.unwrap().with_snapshot_trigger(entries_only);
    store.write(170, 49).await;
    assert!(store.sm.try_create_snapshot_builder(false).await.is_none(), "49 entries since CURRENT");
    store.write(219, 1).await;
    assert!(store.sm.try_create_snapshot_builder(false).await.is_some(), "50 entries since CURRENT");
}
