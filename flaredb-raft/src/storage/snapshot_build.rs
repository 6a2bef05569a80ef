//! Building a snapshot: a RocksDB checkpoint made current (`build`), and the
//! snapshot file of a point-in-time view (`export`, for Backup; `write_view`,
//! also for a checkpoint a follower needs).
//!
//! Build steps: (1) checkpoint to `build-*.tmp` (hard links: its cost grows
//! with the writes since the last flush, not with the state), (2) rename it to
//! `ckpt-*.ckpt` and sync the directory, (3) point CURRENT at it, (4) delete
//! older snapshots. A crash before (3) leaves entries that the next open
//! deletes; after (3) the new snapshot is current. The state machine is
//! never touched.

use std::{fs, path::Path};

use rocksdb::{IteratorMode, Snapshot, DB};

use super::{
    db::{cf, CF_CAS, CF_RAW, CF_SM_META},
    fail_point::{FailPoints, Step},
    sm_meta,
    snapshot::{snap_io, SnapshotDir, SnapshotFile},
    snapshot_file::{Section, SnapshotWriter},
    temp_file::TempFile,
};
use crate::{codec, error::StoreError, types::SnapshotMeta};

/// The meta `view`'s own records hold.
pub(crate) fn read_meta(db: &DB, view: &Snapshot<'_>) -> Result<SnapshotMeta, StoreError> {
    let read = |key: &[u8]| view.get_cf(cf(db, CF_SM_META)?, key).map_err(StoreError::from);
    let last_log_id = match read(sm_meta::LAST_APPLIED_KEY)? {
        Some(raw) => Some(codec::log_id_from_pb(&codec::decode_pb("last applied", &raw)?)),
        None => None,
    };
    let last_membership = match read(sm_meta::MEMBERSHIP_KEY)? {
        Some(raw) => codec::stored_membership_from_pb(&codec::decode_pb("membership", &raw)?)?,
        None => Default::default(),
    };
    Ok(SnapshotMeta { last_log_id, last_membership })
}

/// Writes every state-machine record of `view` to a new snapshot file at
/// `path` (synced) and returns the meta they hold. The caller deletes `path`
/// on failure.
pub(crate) fn write_view(
    db: &DB,
    view: &Snapshot<'_>,
    path: &Path,
    fail: &FailPoints,
) -> Result<SnapshotMeta, StoreError> {
    let meta = read_meta(db, view)?;
    let mut w = SnapshotWriter::create(path).map_err(snap_io(path))?;
    for (section, name) in [(Section::Cas, CF_CAS), (Section::Raw, CF_RAW), (Section::SmMeta, CF_SM_META)] {
        for item in view.iterator_cf(cf(db, name)?, IteratorMode::Start) {
            let (k, v) = item?;
            // A view or checkpoint taken between an install's marker and its
            // gate holds the marker (and the old state): no exported file may
            // carry one (install refuses such a file).
            if section == Section::SmMeta && k.as_ref() == sm_meta::INSTALLING_KEY {
                continue;
            }
            w.record(section, &k, &v).map_err(snap_io(path))?;
        }
        if section == Section::Cas {
            fail.hit(Step::ExportWriting)?;
        }
    }
    w.finish().map_err(snap_io(path))?;
    Ok(meta)
}

impl SnapshotDir {
    /// Writes the state machine as of now to `path`, which the caller owns on
    /// success (it is deleted on failure). Not made current: for backups. Blocking.
    pub fn export(&self, db: &DB, path: &Path) -> Result<SnapshotMeta, StoreError> {
        let out = TempFile::new(path.to_path_buf(), &self.fail);
        // Rule 2: the view is taken before or after an install, never during one.
        let view = {
            let _view = self.view();
            db.snapshot()
        };
        let meta = write_view(db, &view, path, &self.fail)?;
        out.keep();
        Ok(meta)
    }

    /// Checkpoints the state machine as of now and makes it current, unless
    /// a newer snapshot became current meanwhile (an install); returns the
    /// current snapshot, held under the lock. Blocking.
    pub fn build(&self, db: &DB) -> Result<(SnapshotMeta, SnapshotFile), StoreError> {
        let tmp = TempFile::new(self.temp_path("build"), &self.fail);
        let meta = self.checkpoint(db, tmp.path())?;
        self.fail.hit(Step::BuildCheckpointed)?;

        let mut entries = self.locked();
        if let Some((current, path)) = self.read_current()? {
            // The checkpoint predates an install that finished since: keep the newer one.
            if current.last_log_id > meta.last_log_id {
                let file = self.open_entry(&mut entries, &current, path)?;
                return Ok((current, file));
            }
        }
        // Renamed under the lock: a concurrent prune cannot delete it before CURRENT names it.
        let final_path = self.ckpt_path(&meta);
        fs::rename(tmp.path(), &final_path).map_err(snap_io(&final_path))?;
        let unreferenced = TempFile::new(final_path.clone(), &self.fail);
        tmp.keep();
        self.sync_dir()?;
        self.fail.hit(Step::BuildRenamed)?;

        self.set_current(&meta, &final_path)?;
        unreferenced.keep();
        self.fail.hit(Step::BuildCurrent)?;
        self.prune(&mut entries, Some(&final_path));
        let file = self.open_entry(&mut entries, &meta, final_path)?;
        Ok((meta, file))
    }
}
