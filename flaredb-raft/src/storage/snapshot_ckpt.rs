//! Checkpoints: what a build makes, and the snapshot file a checkpoint
//! becomes when a follower first needs it.
//!
//! A RocksDB checkpoint flushes the memtables and hard-links every live SST
//! (and copies the WAL tail) into a new directory: a consistent image of the
//! whole DB as of one instant, at a cost that grows with what was written
//! since the last flush, not with the state. Its meta is read back from its
//! own `sm_meta`, so the meta always matches its records.
//!
//! Export steps, one export at a time (`SnapshotDir::exporting`), the
//! checkpoint held by the caller's handle: (1) write its records to
//! `export-*.tmp` (synced), (2) under the lock, rename it to
//! `ckpt-*.export` and sync the directory. A crash before (2) leaves a temp
//! file that the next open deletes; after it, the export is reused, or
//! deleted with its checkpoint.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use rocksdb::{checkpoint::Checkpoint, Options, DB};

use super::{
    db::ALL_CFS,
    fail_point::Step,
    snapshot::{snap_io, SnapshotDir},
    snapshot_build::{read_meta, write_view},
    temp_file::TempFile,
};
use crate::{error::StoreError, types::SnapshotMeta};

/// Opens a checkpoint for reading. Every column family it has is listed, so
/// that replaying the checkpoint's WAL tail never meets one it does not know
/// (one taken by an older build may lack a newer family).
fn open_read_only(path: &Path) -> Result<DB, StoreError> {
    let present = DB::list_cf(&Options::default(), path)?;
    let names = ALL_CFS.into_iter().filter(|name| present.iter().any(|p| p == name));
    Ok(DB::open_cf_for_read_only(&Options::default(), path, names, false)?)
}

impl SnapshotDir {
    /// Makes a checkpoint of `db` at `path` (which must not exist) and returns
    /// the meta its records hold. Blocking.
    pub(crate) fn checkpoint(&self, db: &DB, path: &Path) -> Result<SnapshotMeta, StoreError> {
        {
            // Rule 2: the checkpoint is taken before or after an install, never during one.
            let _view = self.view();
            Checkpoint::new(db)?.create_checkpoint(path)?;
        }
        // The checkpoint holds the WAL tail as of now, synced or not; syncing
        // it here too keeps CURRENT (written next) never ahead of what the
        // live state machine holds after a crash.
        db.flush_wal(true)?;
        let ckpt = open_read_only(path)?;
        let view = ckpt.snapshot();
        read_meta(&ckpt, &view)
    }

    /// The checkpoint at `ckpt` as a snapshot file: its path and an open
    /// handle. Exported on the first call, reused by later ones. The caller
    /// holds the checkpoint (a `SnapshotFile`). Blocking.
    pub(crate) fn export_checkpoint(&self, ckpt: &Path, meta: &SnapshotMeta) -> Result<(PathBuf, File), StoreError> {
        let _one = self.exporting();
        let export = Self::export_path(ckpt);
        {
            let _lock = self.locked();
            match File::open(&export) {
                Ok(file) => return Ok((export, file)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(snap_io(&export)(e)),
            }
        }
        let tmp = TempFile::new(self.temp_path("export"), &self.fail);
        let found = {
            let db = open_read_only(ckpt)?;
            let view = db.snapshot();
            write_view(&db, &view, tmp.path(), &self.fail)?
        };
        if found != *meta {
            let detail = format!("{} holds {found:?}, CURRENT said {meta:?}", ckpt.display());
            return Err(StoreError::corrupt("snapshot checkpoint", detail));
        }
        self.fail.hit(Step::ExportWritten)?;
        let _lock = self.locked();
        fs::rename(tmp.path(), &export).map_err(snap_io(&export))?;
        let renamed = TempFile::new(export.clone(), &self.fail);
        tmp.keep();
        self.sync_dir()?;
        let file = File::open(&export).map_err(snap_io(&export))?;
        renamed.keep();
        Ok((export, file))
    }
}
