//! Installing a snapshot, crash-atomically, and finishing one a crash
//! interrupted.
//!
//! Install steps, all under the directory lock:
//! 1. check the file: intact, within the cap, its records match the meta;
//! 2. give it its final name, sync the directory;
//! 3. write the `installing` marker naming it to `sm_meta` (synced);
//! 4. replace the state-machine column families in batches, holding the view
//!    gate; the last batch is synced (one WAL: every earlier batch with it);
//! 5. point CURRENT at the file (durable);
//! 6. clear the marker (synced) — last, so CURRENT is never older than the
//!    state machine;
//! 7. delete older snapshots (checkpoints a reader holds: when it lets go).
//!
//! A crash before (3) leaves the old state and an unreferenced file that the
//! next open deletes; from (3) until (6) the marker makes the next open redo
//! (4)–(7), which are idempotent.

use std::{fs, path::Path};

use prost::Message;
use rocksdb::{WriteBatch, DB};

use super::{
    db::{cf, sync_opts, CF_CAS, CF_RAW, CF_SM_META},
    fail_point::Step,
    history, sm_meta,
    snapshot::{snap_io, Entries, SnapshotDir},
    snapshot_check::{self, SnapshotCheckError},
    snapshot_file::{Section, SnapshotReader},
    temp_file::TempFile,
};
use crate::{codec, error::StoreError, types::SnapshotMeta};

/// Above any stored key: keys are limited far below this length.
static KEY_SPACE_END: [u8; 1 << 17] = [0xFF; 1 << 17];
/// Small in tests so the failure point between batches is reached.
const INSTALL_BATCH_BYTES: usize = if cfg!(test) { 4 << 10 } else { 4 << 20 };

fn refused(path: &Path, e: SnapshotCheckError) -> StoreError {
    StoreError::SnapshotIo { path: path.to_path_buf(), source: e.into_io() }
}

impl SnapshotDir {
    /// Replaces the state machine with the snapshot at `received`, which
    /// must match `meta`. A temp file of this directory is moved into place
    /// (and deleted if the install fails before the marker); any other file is
    /// copied and left alone. An error here stops Raft. Blocking.
    pub fn install(&self, db: &DB, meta: &SnapshotMeta, received: &Path) -> Result<(), StoreError> {
        // Checked before the lock: reading a large file must not hold up
        // readers of CURRENT. Only the rename onwards races with prune.
        let src = if self.is_own_temp(received) {
            TempFile::new(received.to_path_buf(), &self.fail)
        } else {
            let copy = TempFile::new(self.temp_path("install"), &self.fail);
            fs::copy(received, copy.path()).map_err(snap_io(copy.path()))?;
            copy
        };
        snapshot_check::check(src.path(), meta, self.max_snapshot_bytes()).map_err(|e| refused(received, e))?;
        self.fail.hit(Step::InstallChecked)?;

        let mut entries = self.locked();
        let final_path = self.snap_path(meta);
        fs::rename(src.path(), &final_path).map_err(snap_io(&final_path))?;
        let unreferenced = TempFile::new(final_path.clone(), &self.fail);
        src.keep();
        self.sync_dir()?;
        self.fail.hit(Step::InstallRenamed)?;

        let mut b = WriteBatch::default();
        b.put_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY, Self::pointer(meta, &final_path).encode_to_vec());
        db.write_opt(b, &sync_opts())?;
        // From here the marker owns the file: recovery needs it.
        unreferenced.keep();
        self.fail.hit(Step::InstallMarked)?;
        self.load(db, &mut entries, meta, &final_path)
    }

    /// Steps (4)–(7). Caller holds the lock and has written the marker.
    fn load(&self, db: &DB, entries: &mut Entries, meta: &SnapshotMeta, path: &Path) -> Result<(), StoreError> {
        let marker = db
            .get_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY)?
            .ok_or_else(|| StoreError::corrupt("snapshot install", "marker missing"))?;
        {
            let _replacing = self.replacing();
            let mut b = WriteBatch::default();
            for name in [CF_CAS, CF_RAW, CF_SM_META] {
                b.delete_range_cf(cf(db, name)?, &[][..], &KEY_SPACE_END[..]);
            }
            let index = meta.last_log_id.map_or(0, |l| l.index);
            history::clear_for_install(db, &mut b, index)?;
            b.put_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY, &marker);
            db.write(b)?;
            self.fail.hit(Step::InstallCleared)?;
            let mut r = SnapshotReader::open(path).map_err(snap_io(path))?;
            let mut b = WriteBatch::default();
            while let Some((section, k, v)) = r.next_record().map_err(snap_io(path))? {
                let name = match section {
                    Section::Cas => CF_CAS,
                    Section::Raw => CF_RAW,
                    // The check refused files with a marker; never overwrite ours.
                    Section::SmMeta if k == sm_meta::INSTALLING_KEY => continue,
                    Section::SmMeta => CF_SM_META,
                };
                b.put_cf(cf(db, name)?, k, v);
                if b.size_in_bytes() >= INSTALL_BATCH_BYTES {
                    db.write(std::mem::take(&mut b))?;
                    self.fail.hit(Step::InstallBatch)?;
                }
            }
            // The synced last batch makes every earlier batch durable too (one WAL).
            db.write_opt(b, &sync_opts())?;
        }
        self.fail.hit(Step::InstallLoaded)?;
        self.set_current(meta, path)?;
        self.fail.hit(Step::InstallCurrent)?;
        let mut b = WriteBatch::default();
        b.delete_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY);
        db.write_opt(b, &sync_opts())?;
        self.fail.hit(Step::InstallDone)?;
        self.prune(entries, Some(path));
        Ok(())
    }

    /// At open: finishes an install a crash interrupted, then deletes
    /// snapshots (and exports) CURRENT does not name. Returns whether it redid an
    /// install. Blocking.
    pub fn recover(&self, db: &DB) -> Result<bool, StoreError> {
        let mut entries = self.locked();
        let redo = match db.get_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY)? {
            Some(raw) => {
                let p = codec::decode_pb("install marker", &raw)?;
                let (meta, path) = self.resolve_pointer(&p)?;
                // The file was checked before the marker; a failure now is disk damage.
                snapshot_check::check(&path, &meta, u64::MAX).map_err(|e| refused(&path, e))?;
                tracing::warn!(snapshot = %path.display(), "finishing a snapshot install interrupted by a crash");
                self.load(db, &mut entries, &meta, &path)?;
                true
            }
            None => false,
        };
        let current = self.read_current()?.map(|(_, path)| path);
        self.prune(&mut entries, current.as_deref());
        Ok(redo)
    }
}
