//! What a snapshot build costs as the state grows: ~200k keys of 256 B, then
//! a second build after 10k more writes (FLAREDB_SNAPSHOT_COST_KEYS sets the
//! number of keys). Prints the figures; run with
//! `cargo test --release -p flaredb-raft snapshot_cost -- --ignored --nocapture`.

use std::time::Instant;

use rocksdb::WriteBatch;

use super::{db, sm_meta, SnapshotDir};
use crate::types::{LeaderId, LogId};

fn keys() -> u64 {
    std::env::var("FLAREDB_SNAPSHOT_COST_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000)
}
const VALUE_BYTES: usize = 256;

fn load(db: &rocksdb::DB, from: u64, n: u64) {
    let cas = db::cf(db, db::CF_CAS).unwrap();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(10_000) {
        let mut b = WriteBatch::default();
        for i in chunk {
            let key = crate::keys::encode(1, format!("key-{i:08}").as_bytes());
            b.put_cf(cas, key, crate::keys::encode_versioned(i + 1, &[(i % 251) as u8; VALUE_BYTES]));
        }
        let last = LogId::new(LeaderId { term: 1, node_id: 1 }, chunk[chunk.len() - 1] + 1);
        sm_meta::put_last_applied(db, &mut b, &last).unwrap();
        db.write(b).unwrap();
    }
}

#[test]
#[ignore = "a measurement: prints build times"]
fn snapshot_cost_with_200k_keys_of_256_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = db::open(&tmp.path().join("db")).unwrap();
    let snaps = SnapshotDir::new(tmp.path().join("snapshots")).unwrap();
    let keys = keys();
    load(&db, 0, keys);

    let t = Instant::now();
    let (meta, _) = snaps.build(&db).unwrap();
    let first = t.elapsed();
    load(&db, keys, 10_000);
    let t = Instant::now();
    let (meta2, file) = snaps.build(&db).unwrap();
    let second = t.elapsed();
    let t = Instant::now();
    let size = std::fs::metadata(file.file_path().unwrap()).unwrap().len();
    let send = t.elapsed();
    let t = Instant::now();
    let backup = snaps.temp_path("backup");
    snaps.export(&db, &backup).unwrap();
    let export = t.elapsed();
    eprintln!(
        "snapshot build, {keys} keys x {VALUE_BYTES} B: first {first:?} (index {:?}), after 10k more writes \
         {second:?} (index {:?}); its snapshot file ({size} B) for a follower: {send:?}; a full export (Backup): {export:?}",
        meta.last_log_id.map(|l| l.index),
        meta2.last_log_id.map(|l| l.index)
    );
}
