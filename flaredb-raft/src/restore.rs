//! Seeding a new single-node cluster from a backup file (the state-machine
//! records written by `Admin/Backup`, checksummed).
//!
//! The node starts as if it had installed a snapshot at the backup's applied
//! index: log purged up to it, membership = this node alone. The backup is
//! rewritten into that snapshot first, with the new `last_applied` and
//! membership records in place of the old cluster's, so the state machine,
//! CURRENT and the file the first learner receives all agree. Versions of
//! the restored keys stay below every index the new cluster will write.

use std::{collections::BTreeMap, path::Path};

use openraft::BasicNode;
use prost::Message;

use crate::{
    data_dir::DataDir,
    error::{OpenError, StoreError},
    storage::{
        sm_meta,
        snapshot_check::{self, SnapshotCheckError},
        snapshot_file::{Section, SnapshotReader, SnapshotWriter},
        temp_file::TempFile,
        SnapshotDir, Store,
    },
    types::{LeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote},
};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("backup {path} is corrupt or unreadable: {source}")]
    Backup { path: String, source: std::io::Error },
    #[error("backup {path} is not a usable FlareDB backup: {source}")]
    Invalid { path: String, source: SnapshotCheckError },
    #[error("writing the restored snapshot {path}: {source}")]
    Output { path: String, source: std::io::Error },
    #[error("address of the restored node: {0}")]
    Address(String),
    #[error("data dir {0} already holds a node; restore needs an empty or absent directory")]
    NotEmpty(String),
    #[error("backup has no applied index: it is not a FlareDB backup")]
    NoAppliedIndex,
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl From<StoreError> for RestoreError {
    fn from(e: StoreError) -> Self {
        RestoreError::Open(e.into())
    }
}

/// Copies `backup` to `out`, replacing its `last_applied` and membership
/// records with the new cluster's (an install marker is never copied).
fn rewrite_meta(backup: &Path, out: &Path, meta: &SnapshotMeta) -> Result<(), RestoreError> {
    // A read error is the backup's fault, a write error the output's.
    let read = |source| RestoreError::Backup { path: backup.display().to_string(), source };
    let write = |source| RestoreError::Output { path: out.display().to_string(), source };
    let mut r = SnapshotReader::open(backup).map_err(read)?;
    let mut w = SnapshotWriter::create(out).map_err(write)?;
    let replaced = [sm_meta::LAST_APPLIED_KEY, sm_meta::MEMBERSHIP_KEY, sm_meta::INSTALLING_KEY];
    while let Some((section, k, v)) = r.next_record().map_err(read)? {
        if section == Section::SmMeta && replaced.contains(&k.as_slice()) {
            continue;
        }
        w.record(section, &k, &v).map_err(write)?;
    }
    if let Some(last) = &meta.last_log_id {
        let applied = crate::codec::log_id_to_pb(last).encode_to_vec();
        w.record(Section::SmMeta, sm_meta::LAST_APPLIED_KEY, &applied).map_err(write)?;
    }
    let membership = crate::codec::stored_membership_to_pb(&meta.last_membership).encode_to_vec();
    w.record(Section::SmMeta, sm_meta::MEMBERSHIP_KEY, &membership).map_err(write)?;
    w.finish().map_err(write)
}

/// Restores `backup` into `data_dir` as node `id` at `addr`, a one-node cluster.
pub fn restore(backup: &Path, data_dir: &Path, id: u64, addr: &str) -> Result<u64, RestoreError> {
    // `PUBLIC` or `PUBLIC@PEER`, checked as AddLearner checks a new member's.
    let addr = crate::node::addr::MemberAddr::parse(addr).map_err(RestoreError::Address)?.to_string();
    let addr = addr.as_str();
    let invalid = |source| RestoreError::Invalid { path: backup.display().to_string(), source };
    let applied =
        snapshot_check::embedded_meta(backup).map_err(invalid)?.last_applied.ok_or(RestoreError::NoAppliedIndex)?;
    if applied.index == u64::MAX {
        return Err(invalid(SnapshotCheckError::IndexOverflow(applied.index)));
    }
    if data_dir.join("IDENTITY").exists() || data_dir.join("db").exists() {
        return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
    }
    let existed = data_dir.exists();
    // A foreign or locked dir is refused here, before anything is written or removed.
    let mut dir = DataDir::open(data_dir, id).map_err(OpenError::from)?;
    let seeded = seed(&mut dir, id, addr, backup, &applied);
    if seeded.is_err() {
        // Nothing half-restored stays behind (removed while this process
        // still holds the dir's lock): the next attempt finds it empty again.
        for made in [dir.db_path(), dir.snapshot_dir(), dir.identity_path()] {
            let _ = if made.is_dir() { std::fs::remove_dir_all(&made) } else { std::fs::remove_file(&made) };
        }
        drop(dir);
        let _ = std::fs::remove_file(data_dir.join("LOCK"));
        if !existed {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    seeded.map(|()| applied.index)
}

/// Writes the new node's identity, store and seeded snapshot into `dir`.
fn seed(dir: &mut DataDir, id: u64, addr: &str, backup: &Path, applied: &LogId) -> Result<(), RestoreError> {
    // A new cluster: its id must differ from the backed-up one's.
    let cluster = {
        let seed = format!("restore:{id}:{addr}:{}:{:?}", applied.index, std::time::SystemTime::now());
        crate::fnv::hash(seed.as_bytes()).max(1)
    };
    dir.set_cluster_id(cluster).map_err(OpenError::from)?;
    let store = Store::open(&dir.db_path())?;
    let snaps = SnapshotDir::new(dir.snapshot_dir())?;

    let last = LogId::new(LeaderId { term: applied.leader_id.term, node_id: id }, applied.index);
    let nodes = BTreeMap::from([(id, BasicNode::new(addr))]);
    let membership =
        Membership::new(vec![[id].into()], nodes).map_err(|e| RestoreError::Open(OpenError::Raft(e.to_string())))?;
    let meta = SnapshotMeta { last_log_id: Some(last), last_membership: StoredMembership::new(Some(last), membership) };

    // Install checks the rewritten file's records against `meta`, then owns it.
    let snapshot = TempFile::new(snaps.temp_path("restore"), &snaps.fail);
    rewrite_meta(backup, snapshot.path(), &meta)?;
    store.seed(&snaps, &meta, snapshot.path(), &Vote::new(last.leader_id.term, id))?;
    Ok(())
}
