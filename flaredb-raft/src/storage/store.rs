//! `Store`: the handle to a node's database held outside `storage`. It offers
//! just the operations the node and restore need, so RocksDB's types never
//! leave this module.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rocksdb::DB;

use super::{
    db,
    history::{self, Cursor, Replay},
    read::{self, PageLimit, ScanPage},
    LogStore, SnapshotDir, StateMachine,
};
use crate::{
    error::StoreError,
    keys::NamespaceId,
    namespace::Mode,
    types::{SnapshotMeta, Vote},
    watch::WatchFilter,
};

/// What RocksDB holds, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskStats {
    pub sst_bytes: u64,
    pub memtable_bytes: u64,
    pub block_cache_bytes: u64,
    pub pending_compaction_bytes: u64,
}

/// One open database; clones share it.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    /// Opens or creates the database, refusing another on-disk format.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { db: db::open(path)? })
    }

    /// RocksDB's own accounting, summed over the column families (for metrics).
    pub fn disk_stats(&self) -> DiskStats {
        let sum = |prop: &str| {
            db::ALL_CFS
                .iter()
                .filter_map(|name| self.db.cf_handle(name))
                .filter_map(|cf| self.db.property_int_value_cf(&cf, prop).ok().flatten())
                .sum()
        };
        DiskStats {
            sst_bytes: sum("rocksdb.total-sst-files-size"),
            memtable_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            // One cache is shared by every column family: any one reports it.
            block_cache_bytes: self
                .db
                .cf_handle(db::CF_CAS)
                .and_then(|cf| self.db.property_int_value_cf(&cf, "rocksdb.block-cache-usage").ok().flatten())
                .unwrap_or(0),
            pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
        }
    }

    pub fn log_store(&self) -> Result<LogStore, StoreError> {
        LogStore::new(self.db.clone())
    }

    pub async fn state_machine(&self, snapshots: SnapshotDir) -> Result<StateMachine, StoreError> {
        StateMachine::open(self.db.clone(), snapshots).await
    }

    pub fn cas_get(&self, ns: NamespaceId, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        read::cas_get(&self.db, ns, key)
    }

    /// Test-only fault: overwrites `key`'s value here alone (its version kept), outside Raft.
    pub fn corrupt_local_key(&self, ns: NamespaceId, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let version = read::cas_get(&self.db, ns, key)?.map_or(1, |(v, _)| v);
        let cf = self.db.cf_handle(db::CF_CAS).ok_or_else(|| StoreError::corrupt("column family", "cas"))?;
        self.db.put_cf(&cf, crate::keys::encode(ns, key), crate::keys::encode_versioned(version, value))?;
        Ok(())
    }

    pub fn raw_get(&self, ns: NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        read::raw_get(&self.db, ns, key)
    }

    /// The (namespace id, key) pairs attached to lease `id`, off the async workers.
    pub async fn lease_keys(&self, id: u64) -> Result<Vec<(NamespaceId, Vec<u8>)>, StoreError> {
        let db = self.db.clone();
        db::blocking(move || super::lease::lease_keys(&db, id)).await
    }

    /// One page of `[start, end)` (see `read::scan`), off the async workers.
    pub async fn scan(
        &self,
        mode: Mode,
        ns: NamespaceId,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: PageLimit,
    ) -> Result<ScanPage, StoreError> {
        let db = self.db.clone();
        db::blocking(move || read::scan(&db, mode, ns, &start, &end, limit)).await
    }

    /// (applied index, state hash) taken before or after a snapshot install,
    /// never during one.
    pub async fn state_hash(&self, snapshots: &SnapshotDir) -> Result<(u64, u64), StoreError> {
        let (db, snapshots) = (self.db.clone(), snapshots.clone());
        db::blocking(move || {
            // `state_hash` takes its own RocksDB view inside; the gate covers it.
            let _view = snapshots.view();
            read::state_hash(&db)
        })
        .await
    }

    /// A backup of the state machine at `path` (see `SnapshotDir::export`).
    pub async fn export(&self, snapshots: &SnapshotDir, path: PathBuf) -> Result<SnapshotMeta, StoreError> {
        let (db, snapshots) = (self.db.clone(), snapshots.clone());
        db::blocking(move || snapshots.export(&db, &path)).await
    }

    /// One step of a watch's replay, from a view taken before or after any install.
    pub async fn history_replay(
        &self,
        snapshots: &SnapshotDir,
        filter: WatchFilter,
        from: Cursor,
        until: u64,
        budget: usize,
    ) -> Result<Replay, StoreError> {
        let (db, snapshots) = (self.db.clone(), snapshots.clone());
        db::blocking(move || {
            let _view = snapshots.view();
            history::replay(&db, &filter, from, until, budget)
        })
        .await
    }

    pub fn history_floor(&self) -> Result<u64, StoreError> {
        history::floor(&self.db)
    }

    /// Raises the history floor to `floor` (never lowers it); kept apart from installs, which move it too.
    pub async fn prune_history(&self, snapshots: &SnapshotDir, floor: u64) -> Result<u64, StoreError> {
        let (db, snapshots) = (self.db.clone(), snapshots.clone());
        db::blocking(move || {
            let _view = snapshots.view();
            history::prune(&db, floor)
        })
        .await
    }

    /// Installs `snapshot` and makes the log look as if Raft had installed
    /// it, with `vote` saved: how a restored node starts.
    pub(crate) fn seed(
        &self,
        snapshots: &SnapshotDir,
        meta: &SnapshotMeta,
        snapshot: &Path,
        vote: &Vote,
    ) -> Result<(), StoreError> {
        let last = meta.last_log_id.ok_or_else(|| StoreError::corrupt("restored snapshot", "no last log id"))?;
        snapshots.install(&self.db, meta, snapshot)?;
        // What the node loads at start must load now: a backup whose records
        // only pass the checksum is refused here, not at the node's first start.
        super::sm_meta::load_registry(&self.db)?;
        super::sm_meta::load_retired(&self.db)?;
        super::sm_meta::load_auth(&self.db)?;
        super::sm_meta::load_usage(&self.db)?;
        super::lease::load_leases(&self.db)?;
        LogStore::seed(&self.db, &last, vote)
    }
}
