//! A crash between writing the install marker and finishing the install is
//! repaired when the state machine opens: the snapshot is loaded again, the
//! old state is gone, and nothing half-installed remains.

use prost::Message;
use rocksdb::WriteBatch;

use super::{db, sm_meta, SnapshotDir, StateMachine};
use crate::{codec, read};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_install_is_redone_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    // The source state: two strong keys and a last-applied index.
    let src = db::open(&tmp.path().join("src")).unwrap();
    let mut b = WriteBatch::default();
    b.put_cf(db::cf(&src, db::CF_CAS).unwrap(), crate::keys::encode(1, b"a"), crate::keys::encode_versioned(3, b"A"));
    b.put_cf(db::cf(&src, db::CF_CAS).unwrap(), crate::keys::encode(1, b"b"), crate::keys::encode_versioned(4, b"B"));
    let applied = crate::types::LogId::new(crate::types::LeaderId { term: 1, node_id: 1 }, 4);
    sm_meta::put_last_applied(&src, &mut b, &applied).unwrap();
    src.write(b).unwrap();
    let expected = read::state_hash(&src).unwrap();

    // The target crashed right after step (2): marker written, old state still there.
    let dst_path = tmp.path().join("dst");
    let snaps = SnapshotDir::new(tmp.path().join("snapshots")).unwrap();
    let file = tmp.path().join("snapshots").join("snap-4-1.snap");
    let meta = snaps.export(&src, &file).unwrap();
    {
        let dst = db::open(&dst_path).unwrap();
        let mut b = WriteBatch::default();
        b.put_cf(
            db::cf(&dst, db::CF_CAS).unwrap(),
            crate::keys::encode(1, b"stale"),
            crate::keys::encode_versioned(1, b"x"),
        );
        let pointer = flaredb_proto::raft::SnapshotPointer {
            meta: Some(codec::snapshot_meta_to_pb(&meta)),
            file: "snap-4-1.snap".into(),
        };
        b.put_cf(db::cf(&dst, db::CF_SM_META).unwrap(), sm_meta::INSTALLING_KEY, pointer.encode_to_vec());
        dst.write(b).unwrap();
    }

    let dst = db::open(&dst_path).unwrap();
    let _sm = StateMachine::open(dst.clone(), snaps.clone()).await.unwrap();
    assert_eq!(read::state_hash(&dst).unwrap(), expected, "the snapshot's state, exactly");
    assert_eq!(read::cas_get(&dst, 1, b"stale").unwrap(), None);
    assert_eq!(read::cas_get(&dst, 1, b"b").unwrap(), Some((4, b"B".to_vec())));
    assert!(dst.get_cf(db::cf(&dst, db::CF_SM_META).unwrap(), sm_meta::INSTALLING_KEY).unwrap().is_none());
    assert_eq!(snaps.current().unwrap().map(|(m, _)| m.last_log_id), Some(Some(applied)));
}
