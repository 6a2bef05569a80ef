//! Snapshot builds, sends, installs, Backups and hashes, all at once, in a
//! loop, under a write load: no operation fails, and no view is torn.
//!
//! A leader store applies writes and builds; a sender streams its current
//! snapshot (held open while builds delete older files) into a follower,
//! which installs it, applies more writes and builds too; Backups and hashes
//! run on both. The state after applying index n is the same everywhere (the
//! commands are a function of the index), so every view — a hash, or a
//! backup or built file installed into a third store and hashed — must give
//! one hash per applied index. A view taken in the middle of an install would
//! not. Runs 5 s; set FLAREDB_SNAPSHOT_STRESS_SECS to run longer.

use std::{
    collections::BTreeMap,
    io::Read,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use openraft::storage::RaftStateMachine;
use rocksdb::DB;
use tokio::sync::{mpsc, Mutex as AsyncMutex};

use super::{
    sm_meta,
    snapshot_fixture_test::{assert_at_rest, bytes, Store},
    SnapshotDir,
};
use crate::types::SnapshotMeta;

type Seen = Arc<Mutex<Vec<(&'static str, u64, u64)>>>;
/// A file to verify: its meta and an open handle (the file may be deleted already).
type Job = (SnapshotMeta, std::fs::File);

fn stress_duration() -> Duration {
    let secs = std::env::var("FLAREDB_SNAPSHOT_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    Duration::from_secs(secs)
}

fn record(seen: &Seen, what: &'static str, (index, hash): (u64, u64)) {
    seen.lock().unwrap().push((what, index, hash));
}

/// Hashes, Backups and builds on one store, until `end`.
fn views(db: Arc<DB>, snaps: SnapshotDir, name: &'static str, end: Instant, seen: Seen, jobs: mpsc::Sender<Job>) {
    let mut round = 0u64;
    while Instant::now() < end {
        round += 1;
        record(&seen, name, {
            let _view = snaps.view();
            crate::read::state_hash(&db).unwrap()
        });
        let path = snaps.temp_path("backup");
        let meta = snaps.export(&db, &path).unwrap();
        // As the Backup RPC does: open, unlink, stream from the handle.
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        jobs.blocking_send((meta, file)).unwrap();
        if round.is_multiple_of(2) {
            let (meta, file) = snaps.build(&db).unwrap();
            // A checkpoint: exported here (or by the sender first), the file shared.
            jobs.blocking_send((meta, file.reader().unwrap())).unwrap();
        }
    }
}

/// Installs every file it is sent into a third store and hashes it there.
async fn verify(mut verifier: Store, mut jobs: mpsc::Receiver<Job>, seen: Seen) -> (Store, u64) {
    let mut n = 0;
    while let Some((meta, mut file)) = jobs.recv().await {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        let mut rx = verifier.snaps.receive().await.unwrap();
        rx.write(&bytes).await.unwrap();
        let received = rx.finish(&meta).await.expect("every exported file matches its meta");
        verifier.sm.install_snapshot(&meta, received).await.unwrap();
        record(&seen, "verifier", verifier.hash());
        n += 1;
    }
    (verifier, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_sends_installs_and_backups_race_under_writes_without_error() {
    let tmp = tempfile::tempdir().unwrap();
    let end = Instant::now() + stress_duration();
    let seen: Seen = Arc::default();
    let leader_applied = Arc::new(AtomicU64::new(0));
    let (jobs, jobs_rx) = mpsc::channel::<Job>(8);

    let mut l = Store::open(&tmp.path().join("leader")).await;
    leader_applied.store(l.write(0, 50).await, Ordering::SeqCst);
    l.snaps.build(&l.db).unwrap();
    let f = Store::open(&tmp.path().join("follower")).await;
    let v = Store::open(&tmp.path().join("verifier")).await;
    let verifier = tokio::spawn(verify(v, jobs_rx, seen.clone()));

    let mut blocking = Vec::new();
    for (store, name) in [(&l, "leader"), (&f, "follower")] {
        let (db, snaps, seen, jobs) = (store.db.clone(), store.snaps.clone(), seen.clone(), jobs.clone());
        blocking.push(tokio::task::spawn_blocking(move || views(db, snaps, name, end, seen, jobs)));
    }
    // Hashes are the cheapest view: a tight loop on the follower, where installs happen.
    let (db, snaps, hashes_seen) = (f.db.clone(), f.snaps.clone(), seen.clone());
    blocking.push(tokio::task::spawn_blocking(move || {
        while Instant::now() < end {
            let _view = snaps.view();
            record(&hashes_seen, "follower hash", crate::read::state_hash(&db).unwrap());
        }
    }));
    drop(jobs);
    let (l, f) = (Arc::new(AsyncMutex::new(l)), Arc::new(AsyncMutex::new(f)));

    let writer = {
        let (l, applied) = (l.clone(), leader_applied.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let last = applied.load(Ordering::SeqCst);
                applied.store(l.lock().await.write(last, 20).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let follower_writer = {
        let (f, applied) = (f.clone(), leader_applied.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let mut f = f.lock().await;
                let mine = sm_meta::read_last_applied(&f.db).unwrap().map_or(0, |l| l.index);
                let n = applied.load(Ordering::SeqCst).saturating_sub(mine).min(5);
                if mine > 0 && n > 0 {
                    f.write(mine, n).await;
                }
                drop(f);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let sender = {
        let (l, f, seen) = (l.clone(), f.clone(), seen.clone());
        tokio::spawn(async move {
            let mut installs = 0u64;
            while Instant::now() < end {
                // As openraft does: the current snapshot, from the state-machine task.
                let snap = l.lock().await.sm.get_current_snapshot().await.unwrap().expect("a snapshot");
                // As the network does: read (a checkpoint: exported) off the async workers.
                let data = snap.snapshot;
                let bytes = tokio::task::spawn_blocking(move || bytes(&data)).await.unwrap();
                let mut f = f.lock().await;
                let mine = sm_meta::read_last_applied(&f.db).unwrap();
                if snap.meta.last_log_id <= mine {
                    drop(f);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let mut rx = f.snaps.receive().await.unwrap();
                for chunk in bytes.chunks(16 << 10) {
                    rx.write(chunk).await.unwrap();
                }
                let received = rx.finish(&snap.meta).await.unwrap();
                f.sm.install_snapshot(&snap.meta, received).await.unwrap();
                record(&seen, "installed", f.hash());
                installs += 1;
            }
            installs
        })
    };

    writer.await.unwrap();
    follower_writer.await.unwrap();
    let installs = sender.await.unwrap();
    for b in blocking {
        b.await.unwrap();
    }
    let (v, verified) = verifier.await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let mut by_index: BTreeMap<u64, (u64, &str)> = BTreeMap::new();
    for (what, index, hash) in &seen {
        let (first, by) = *by_index.entry(*index).or_insert((*hash, what));
        assert_eq!(*hash, first, "index {index}: {what} saw a state {by} did not (a torn view)");
    }
    eprintln!(
        "stress: {} views, {installs} installs, {verified} files verified, {} indexes",
        seen.len(),
        by_index.len()
    );
    assert!(installs > 0 && verified > 0, "the loop ran");

    let (l, f) = (Arc::try_unwrap(l).ok().unwrap().into_inner(), Arc::try_unwrap(f).ok().unwrap().into_inner());
    for store in [l, f, v] {
        let state = store.hash();
        let store = store.crash_and_reopen().await;
        assert_at_rest(&store);
        assert_eq!(store.hash(), state);
    }
}
