//! Seeding a new single-node cluster from a backup file (the state-machine
//! records written by `Admin/Backup`, checksummed).
//!
//! The node starts as if it had installed a snapshot at the backup's applied
//! index: log purged up to it, membership = this node alone. Versions of the
//! restored keys stay below every index the new cluster will write.

use std::{collections::BTreeMap, path::Path};

use flaredb_proto::raft as pb;
use openraft::BasicNode;
use rocksdb::WriteBatch;

use crate::{
    codec,
    data_dir::DataDir,
    error::{OpenError, StoreError},
    storage::{
        db::{self, sync_opts},
        sm_meta,
        snapshot_file::{Section, SnapshotReader},
        LogStore, SnapshotDir,
    },
    types::{LeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote},
};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("backup {path} is corrupt or unreadable: {source}")]
    Backup { path: String, source: std::io::Error },
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

/// The applied log id recorded in a backup.
fn backup_applied(path: &Path) -> Result<LogId, RestoreError> {
    let io = |source| RestoreError::Backup { path: path.display().to_string(), source };
    let mut r = SnapshotReader::open(path).map_err(io)?;
    while let Some((section, k, v)) = r.next_record().map_err(io)? {
        if section == Section::SmMeta && k == sm_meta::LAST_APPLIED_KEY {
            let p: pb::LogId = codec::decode_pb("last applied", &v).map_err(StoreError::from)?;
            return Ok(codec::log_id_from_pb(&p));
        }
    }
    Err(RestoreError::NoAppliedIndex)
}

/// Restores `backup` into `data_dir` as node `id` at `addr`, a one-node cluster.
pub fn restore(backup: &Path, data_dir: &Path, id: u64, addr: &str) -> Result<u64, RestoreError> {
    SnapshotReader::verify(backup)
        .map_err(|source| RestoreError::Backup { path: backup.display().to_string(), source })?;
    if data_dir.join("IDENTITY").exists() || data_dir.join("db").exists() {
        return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
    }
    let applied = backup_applied(backup)?;
    let mut dir = DataDir::open(data_dir, id).map_err(OpenError::from)?;
    // A new cluster: its id must differ from the backed-up one's.
    let cluster = {
        let seed = format!("restore:{id}:{addr}:{}:{:?}", applied.index, std::time::SystemTime::now());
        seed.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3)).max(1)
    };
    dir.set_cluster_id(cluster).map_err(OpenError::from)?;
    let db = db::open(&dir.db_path())?;
    let snaps = SnapshotDir::new(dir.snapshot_dir())?;

    let last = LogId::new(LeaderId { term: applied.leader_id.term, node_id: id }, applied.index);
    let nodes = BTreeMap::from([(id, BasicNode::new(addr))]);
    let membership =
        Membership::new(vec![[id].into()], nodes).map_err(|e| RestoreError::Open(OpenError::Raft(e.to_string())))?;
    let stored = StoredMembership::new(Some(last), membership);
    let meta = SnapshotMeta { last_log_id: Some(last), last_membership: stored.clone() };

    let copy = snaps.temp_path("restore");
    std::fs::copy(backup, &copy).map_err(|source| RestoreError::Backup { path: copy.display().to_string(), source })?;
    snaps.install(&db, &meta, &copy)?;
    let mut b = WriteBatch::default();
    sm_meta::put_membership(&db, &mut b, &stored)?;
    sm_meta::put_last_applied(&db, &mut b, &last)?;
    db.write_opt(b, &sync_opts()).map_err(StoreError::from)?;
    LogStore::seed(&db, &last, &Vote::new(last.leader_id.term, id))?;
    Ok(applied.index)
}
