//! A build, a checkpoint export or an install that fails at any step — by an
//! I/O error or by a kill — leaves a store that reopens consistent: no marker,
//! no temp file, no stray snapshot, CURRENT not newer than the state machine
//! and matching its records, and the state machine wholly before or wholly
//! after the install.

use super::{
    fail_point::{Mode, Step},
    snapshot_fixture_test::{assert_at_rest, bytes, Store},
};

fn temp_files(store: &Store) -> Vec<String> {
    std::fs::read_dir(store.snaps.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_failing_at_any_step_leaves_a_consistent_store() {
    for mode in [Mode::Error, Mode::Crash] {
        for step in Step::BUILD {
            let tmp = tempfile::tempdir().unwrap();
            let mut store = Store::open(tmp.path()).await;
            store.write(0, 200).await;
            store.snaps.build(&store.db).unwrap();
            store.write(200, 100).await;
            let before = store.hash();

            store.snaps.fail.arm(step, mode);
            assert!(store.snaps.build(&store.db).is_err(), "{step:?} {mode:?}: the build fails");
            assert!(!store.snaps.fail.pending(), "{step:?} was reached");
            if mode == Mode::Error {
                assert_eq!(temp_files(&store), Vec::<String>::new(), "{step:?}: failure path cleans up");
            }

            let mut store = store.crash_and_reopen().await;
            let current = assert_at_rest(&store);
            assert_eq!(store.hash(), before, "{step:?} {mode:?}: a build never changes the state");
            let expected = if step == Step::BuildCurrent { 300 } else { 200 };
            assert_eq!(current, Some(expected), "{step:?} {mode:?}: CURRENT");

            store.write(300, 10).await;
            let (meta, _) = store.snaps.build(&store.db).unwrap();
            assert_eq!(meta.last_log_id.map(|l| l.index), Some(310), "{step:?} {mode:?}: builds again");
            assert_eq!(assert_at_rest(&store), Some(310));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_export_failing_at_any_step_is_redone_by_the_next_reader() {
    for mode in [Mode::Error, Mode::Crash] {
        for step in Step::EXPORT {
            let tmp = tempfile::tempdir().unwrap();
            let mut store = Store::open(tmp.path()).await;
            store.write(0, 200).await;
            let backup = store.snaps.temp_path("backup");
            store.snaps.export(&store.db, &backup).unwrap();
            let (_, file) = store.snaps.build(&store.db).unwrap();
            store.write(200, 50).await;

            store.snaps.fail.arm(step, mode);
            assert!(file.reader().is_err(), "{step:?} {mode:?}: the export fails");
            assert!(!store.snaps.fail.pending(), "{step:?} was reached");
            if mode == Mode::Error {
                assert_eq!(temp_files(&store), vec![backup.file_name().unwrap().to_string_lossy()]);
                // The same handle tries again.
                assert_eq!(bytes(&file), std::fs::read(&backup).unwrap(), "{step:?}: the state as of the build");
            }
            drop(file);
            std::fs::remove_file(&backup).unwrap();

            let store = store.crash_and_reopen().await;
            assert_eq!(assert_at_rest(&store), Some(200), "{step:?} {mode:?}: CURRENT");
            let (_, again) = store.snaps.current_file().unwrap().unwrap();
            let (_, other) = store.snaps.current_file().unwrap().unwrap();
            // The same file, not merely the same bytes: exported once, shared.
            let ino =
                |f: &super::SnapshotFile| std::os::unix::fs::MetadataExt::ino(&f.reader().unwrap().metadata().unwrap());
            assert_eq!(ino(&again), ino(&other), "exported once, shared");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_failing_at_any_step_leaves_the_old_or_the_new_state() {
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Store::open(&tmp.path().join("source")).await;
    source.write(0, 400).await;
    let (meta, file) = source.snaps.build(&source.db).unwrap();
    let new_state = source.hash();

    for mode in [Mode::Error, Mode::Crash] {
        for step in Step::INSTALL {
            let root = tmp.path().join(format!("{step:?}-{mode:?}"));
            let mut store = Store::open(&root).await;
            store.write(0, 150).await;
            store.snaps.build(&store.db).unwrap();
            let old_state = store.hash();
            // As the Raft service leaves a received snapshot: a temp file of the directory.
            let received = store.snaps.receive_path();
            std::fs::copy(file.file_path().unwrap(), &received).unwrap();

            store.snaps.fail.arm(step, mode);
            assert!(store.snaps.install(&store.db, &meta, &received).is_err(), "{step:?} {mode:?}: fails");
            assert!(!store.snaps.fail.pending(), "{step:?} was reached");
            if mode == Mode::Error {
                assert_eq!(temp_files(&store), Vec::<String>::new(), "{step:?}: failure path cleans up");
            }

            // openraft stops on an install error; the node restarts.
            let mut store = store.crash_and_reopen().await;
            let current = assert_at_rest(&store);
            let marked = Step::INSTALL.iter().position(|s| *s == step)
                >= Step::INSTALL.iter().position(|s| *s == Step::InstallMarked);
            let (state, index) = if marked { (new_state, 400) } else { (old_state, 150) };
            assert_eq!(store.hash(), state, "{step:?} {mode:?}: wholly before or after");
            assert_eq!(current, Some(index), "{step:?} {mode:?}: CURRENT");

            let last = store.write(index, 10).await;
            let (built, _) = store.snaps.build(&store.db).unwrap();
            assert_eq!(built.last_log_id.map(|l| l.index), Some(last), "{step:?} {mode:?}: goes on");
            assert_at_rest(&store);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_a_snapshot_whose_meta_does_not_match_its_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Store::open(&tmp.path().join("source")).await;
    source.write(0, 50).await;
    let (meta, file) = source.snaps.build(&source.db).unwrap();

    let mut store = Store::open(&tmp.path().join("target")).await;
    store.write(0, 20).await;
    let before = store.hash();
    let mut wrong = meta.clone();
    wrong.last_log_id = wrong.last_log_id.map(|mut l| {
        l.index += 1;
        l
    });
    let received = store.snaps.receive_path();
    std::fs::copy(file.file_path().unwrap(), &received).unwrap();
    let err = store.snaps.install(&store.db, &wrong, &received).unwrap_err();
    assert!(err.to_string().contains("last applied"), "{err}");
    assert_eq!(store.hash(), before, "nothing touched");
    assert!(!received.exists(), "the refused file is deleted");
    assert_at_rest(&store);

    // The same file with its own meta installs; a foreign path is copied, not moved.
    let exported = file.file_path().unwrap();
    store.snaps.install(&store.db, &meta, &exported).unwrap();
    assert!(exported.exists(), "the source's snapshot is left alone");
    assert_eq!(store.hash(), source.hash());
    assert_eq!(assert_at_rest(&store), Some(50));
}
