//! Shared by the snapshot tests: a store opened from a directory (and
//! reopened after a simulated crash), a write load through the real apply
//! path, and the invariants every snapshot directory must satisfy at rest.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use flaredb_proto::raft as pb;
use openraft::{entry::EntryPayload, storage::RaftStateMachine, BasicNode};
use rocksdb::DB;

use super::{db, sm_meta, snapshot_check, SnapshotDir, StateMachine};
use crate::{
    read,
    types::{Entry, FlareRequest, LeaderId, LogId, Membership},
};

/// One node's storage: DB, snapshot directory and state machine.
pub struct Store {
    pub root: PathBuf,
    pub db: Arc<DB>,
    pub snaps: SnapshotDir,
    pub sm: StateMachine,
}

impl Store {
    /// Opens (or reopens, after a crash) the store under `root`.
    pub async fn open(root: &Path) -> Store {
        let db = db::open(&root.join("db")).expect("open db");
        let snaps = SnapshotDir::new(root.join("snapshots")).expect("open snapshot dir");
        let sm = StateMachine::open(db.clone(), snaps.clone()).await.expect("open state machine");
        Store { root: root.to_path_buf(), db, snaps, sm }
    }

    /// Drops everything, as a killed process would, and opens it again.
    pub async fn crash_and_reopen(self) -> Store {
        let root = self.root.clone();
        drop(self);
        Store::open(&root).await
    }

    /// Applies `n` entries after `from` (a membership entry first when
    /// `from == 0`); returns the last index. Values are sized so an install
    /// spans several batches.
    pub async fn write(&mut self, from: u64, n: u64) -> u64 {
        let mut entries = Vec::new();
        for index in from + 1..=from + n {
            let log_id = LogId::new(LeaderId { term: 1, node_id: 1 }, index);
            let payload = if index == 1 {
                let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]);
                EntryPayload::Membership(Membership::new(vec![[1].into()], nodes).expect("membership"))
            } else {
                EntryPayload::Normal(FlareRequest(command(index)))
            };
            entries.push(Ok((Entry { log_id, payload }, None)));
        }
        self.sm.apply(futures::stream::iter(entries)).await.expect("apply");
        from + n
    }

    /// (applied index, state hash) from a gated view.
    pub fn hash(&self) -> (u64, u64) {
        let _view = self.snaps.view();
        read::state_hash(&self.db).expect("state hash")
    }
}

/// A strong put, a raw put and now and then a delete, over a few hundred keys.
fn command(index: u64) -> pb::Command {
    use pb::command::Cmd;
    let key: bytes::Bytes = format!("k{:03}", index % 300).into_bytes().into();
    let target = |ns: &str| Some(pb::Target { namespace: ns.into(), auto_create: true });
    let cmd = match index % 7 {
        0 => Cmd::RawDelete(pb::RawDelete { target: target("ev"), key }),
        1 | 3 | 5 => Cmd::RawPut(pb::RawPut { target: target("ev"), key, value: vec![index as u8; 100].into() }),
        // Expected version 0: succeeds on new keys, answers a conflict on existing ones.
        _ => Cmd::CasPut(pb::CasPut {
            target: target("st"),
            key,
            value: vec![7; 60].into(),
            expected_version: 0,
            lease_id: 0,
        }),
    };
    pb::Command { cmd: Some(cmd), ..Default::default() }
}

/// What a snapshot directory and its state machine look like at rest: no
/// marker, no temp file, at most one snapshot (a checkpoint or a file) and it
/// is the one CURRENT names, no export but its own, its records match
/// CURRENT's meta, and it is not newer than the state machine. Returns
/// CURRENT's index.
pub fn assert_at_rest(store: &Store) -> Option<u64> {
    let meta_cf = db::cf(&store.db, db::CF_SM_META).unwrap();
    assert!(store.db.get_cf(meta_cf, sm_meta::INSTALLING_KEY).unwrap().is_none(), "install marker left");
    let names: Vec<String> = std::fs::read_dir(store.snaps.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "temp files left: {names:?}");
    let snaps: Vec<&String> = names.iter().filter(|n| n.ends_with(".snap") || n.ends_with(".ckpt")).collect();
    let exports: Vec<&String> = names.iter().filter(|n| n.ends_with(".export")).collect();
    let applied = sm_meta::read_last_applied(&store.db).unwrap();
    let Some((meta, file)) = store.snaps.current_file().unwrap() else {
        assert!(snaps.is_empty() && exports.is_empty(), "snapshots but no CURRENT: {names:?}");
        return None;
    };
    assert_eq!(snaps.len(), 1, "exactly CURRENT's snapshot: {names:?}");
    assert_eq!(file.path().file_name().unwrap().to_string_lossy(), snaps[0].as_str());
    for export in exports {
        assert_eq!(export.strip_suffix(".export"), snaps[0].strip_suffix(".ckpt"), "a stray export: {names:?}");
    }
    // A checkpoint is exported here if it was not yet: its records are checked too.
    let path = file.file_path().expect("CURRENT's snapshot reads");
    snapshot_check::check(&path, &meta, u64::MAX).expect("CURRENT's snapshot matches its meta");
    assert!(meta.last_log_id <= applied, "CURRENT {:?} is newer than the state machine {applied:?}", meta.last_log_id);
    meta.last_log_id.map(|id| id.index)
}

/// The bytes a follower would receive for `file`.
pub fn bytes(file: &super::SnapshotFile) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut file.reader().expect("snapshot reads"), &mut out).expect("snapshot reads");
    out
}
