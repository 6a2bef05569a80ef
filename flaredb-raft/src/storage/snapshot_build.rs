//! Building a snapshot: a point-in-time view of the state machine written to
//! a checksummed file (`export`, also used by Backup), then made current
//! (`build`).
//!
//! Build steps: (1) export to `build-*.tmp`, (2) rename to `snap-*.snap` and
//! sync the directory, (3) point CURRENT at it, (4) delete older snapshots.
//! A crash before (3) leaves files that the next open deletes; after (3) the
//! new snapshot is current. The state machine is never touched.

use std::{fs, path::Path};

use rocksdb::{IteratorMode, DB};

use super::{
    db::{cf, CF_CAS, CF_RAW, CF_SM_META},
    fail_point::Step,
    sm_meta,
    snapshot::{snap_io, SnapshotDir, SnapshotFile},
    snapshot_file::{Section, SnapshotWriter},
    temp_file::TempFile,
};
use crate::{codec, error::StoreError, types::SnapshotMeta};

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
        let read = |key: &[u8]| view.get_cf(cf(db, CF_SM_META)?, key).map_err(StoreError::from);
        let last_log_id = match read(sm_meta::LAST_APPLIED_KEY)? {
            Some(raw) => Some(codec::log_id_from_pb(&codec::decode_pb("last applied", &raw)?)),
            None => None,
        };
        let last_membership = match read(sm_meta::MEMBERSHIP_KEY)? {
            Some(raw) => codec::stored_membership_from_pb(&codec::decode_pb("membership", &raw)?)?,
            None => Default::default(),
        };
        let mut w = SnapshotWriter::create(path).map_err(snap_io(path))?;
        for (section, name) in [(Section::Cas, CF_CAS), (Section::Raw, CF_RAW), (Section::SmMeta, CF_SM_META)] {
            for item in view.iterator_cf(cf(db, name)?, IteratorMode::Start) {
                let (k, v) = item?;
                // Unreachable while views respect the gate; kept so no exported
                // file can ever carry a marker (install refuses such a file).
                if section == Section::SmMeta && k.as_ref() == sm_meta::INSTALLING_KEY {
                    continue;
                }
                w.record(section, &k, &v).map_err(snap_io(path))?;
            }
            if section == Section::Cas {
                self.fail.hit(Step::ExportWriting)?;
            }
        }
        w.finish().map_err(snap_io(path))?;
        out.keep();
        Ok(SnapshotMeta { last_log_id, last_membership })
    }

    /// Writes a snapshot of the state machine as of now and makes it current,
    /// unless a newer one became current meanwhile (an install); returns the
    /// current snapshot, opened under the lock. Blocking.
    pub fn build(&self, db: &DB) -> Result<(SnapshotMeta, SnapshotFile), StoreError> {
        let tmp = TempFile::new(self.temp_path("build"), &self.fail);
        let meta = self.export(db, tmp.path())?;
        self.fail.hit(Step::BuildExported)?;

        let _lock = self.locked();
        if let Some((current, file)) = self.open_current()? {
            // The view predates an install that finished since: keep the newer one.
            if current.last_log_id > meta.last_log_id {
                return Ok((current, file));
            }
        }
        // Renamed under the lock: a concurrent prune cannot delete it before CURRENT names it.
        let final_path = self.snap_path(&meta);
        fs::rename(tmp.path(), &final_path).map_err(snap_io(&final_path))?;
        let unreferenced = TempFile::new(final_path.clone(), &self.fail);
        tmp.keep();
        self.sync_dir()?;
        self.fail.hit(Step::BuildRenamed)?;

        let file = SnapshotFile::open(final_path.clone()).map_err(snap_io(&final_path))?;
        self.set_current(&meta, &final_path)?;
        unreferenced.keep();
        self.fail.hit(Step::BuildCurrent)?;
        self.prune(Some(&final_path));
        Ok((meta, file))
    }
}
