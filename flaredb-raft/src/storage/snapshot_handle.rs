//! `SnapshotFile`: what openraft holds as the current snapshot, sends to
//! followers and installs.
//!
//! It is either a snapshot file (received, installed or restored), open, or
//! a checkpoint that a build made, held. A held checkpoint is not deleted
//! (rule 1 of `snapshot.rs`: a prune retires it and the last handle deletes
//! it), and its snapshot file is exported only when someone first reads it,
//! once for every reader (`snapshot_ckpt.rs`).

use std::{
    fs::{self, File},
    io::{self, Seek},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use super::snapshot::{Entries, SnapshotDir};
use crate::{error::StoreError, types::SnapshotMeta};

/// An open snapshot. The handle stays valid even if a newer snapshot
/// replaces and deletes it while it is being sent.
///
/// A temp file (a received snapshot, `*.tmp`) belongs to its handle: it is
/// deleted when the handle drops, so a snapshot that openraft declines to
/// install never lingers. Install moves it to its final name first.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    data: Data,
}

#[derive(Debug)]
enum Data {
    File { file: File, owns_temp: bool },
    Checkpoint(Box<Held>),
}

/// A checkpoint, held, and its snapshot file once exported.
#[derive(Debug)]
struct Held {
    hold: Hold,
    meta: SnapshotMeta,
    export: OnceLock<(PathBuf, File)>,
}

impl SnapshotFile {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        let owns_temp = super::snapshot::is_temp(&path);
        Ok(Self { path, data: Data::File { file, owns_temp } })
    }

    /// A handle on the checkpoint at `path`, held until it drops. Caller holds the lock.
    pub(crate) fn checkpoint(dir: &SnapshotDir, entries: &mut Entries, path: PathBuf, meta: SnapshotMeta) -> Self {
        let hold = Hold::new(dir, entries, &path);
        Self { path, data: Data::Checkpoint(Box::new(Held { hold, meta, export: OnceLock::new() })) }
    }

    /// The snapshot file, or the checkpoint directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot file as it goes on the wire, exported first when this is
    /// a checkpoint; blocking then (a pass over the state), and shared by every
    /// handle of the checkpoint.
    pub fn file_path(&self) -> Result<PathBuf, StoreError> {
        match &self.data {
            Data::File { .. } => Ok(self.path.clone()),
            Data::Checkpoint(held) => Ok(self.exported(held)?.0.clone()),
        }
    }

    /// The snapshot file's bytes from the start (see `file_path`). The handle
    /// shares its offset with this one's other readers.
    pub fn reader(&self) -> io::Result<File> {
        let file = match &self.data {
            Data::File { file, .. } => file,
            Data::Checkpoint(held) => &self.exported(held)?.1,
        };
        let mut out = file.try_clone()?;
        out.rewind()?;
        Ok(out)
    }

    fn exported<'a>(&self, held: &'a Held) -> Result<&'a (PathBuf, File), StoreError> {
        if let Some(done) = held.export.get() {
            return Ok(done);
        }
        let done = held.hold.dir.export_checkpoint(&self.path, &held.meta)?;
        Ok(held.export.get_or_init(|| done))
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if let Data::File { owns_temp: true, .. } = self.data {
            // NotFound: install moved it; anything else only leaves a temp file for the next open.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Keeps a checkpoint from being deleted; the last one of a retired
/// checkpoint deletes it. Never dropped while its thread holds the lock.
#[derive(Debug)]
struct Hold {
    dir: SnapshotDir,
    name: String,
}

impl Hold {
    fn new(dir: &SnapshotDir, entries: &mut Entries, path: &Path) -> Self {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        *entries.held.entry(name.clone()).or_default() += 1;
        Self { dir: dir.clone(), name }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut entries = self.dir.locked();
        let Some(n) = entries.held.get_mut(&self.name) else { return };
        *n -= 1;
        if *n == 0 {
            entries.held.remove(&self.name);
            if entries.retired.remove(&self.name) {
                self.dir.remove_entry(&self.name);
            }
        }
    }
}
