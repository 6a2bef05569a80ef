//! The snapshot directory and the rules that keep it race-free and crash-safe.
//!
//! `snapshots/CURRENT` names the current snapshot and its meta; it is
//! replaced by rename, durably. The current snapshot is either a checkpoint
//! (`ckpt-*.ckpt`, a RocksDB checkpoint of the whole DB: hard-linked SSTs, made
//! by a build, `snapshot_build.rs`) or a snapshot file (`snap-*.snap`, made by
//! an install, `snapshot_install.rs`, or a restore). A checkpoint is exported to
//! a snapshot file (`ckpt-*.export`) only when a follower needs it
//! (`snapshot_ckpt.rs`). Build and install follow three rules:
//!
//! 1. Snapshots are opened and deleted only under `lock`. A reader takes its
//!    handle under the lock: a file handle survives the unlink (Linux); a
//!    checkpoint handle is counted in `Entries::held`, and a prune only retires
//!    a held checkpoint: its last handle deletes it. So no reader ever sees its
//!    snapshot vanish. CURRENT changes under the same lock.
//! 2. A view of the state machine (export, checkpoint, backup, hash) is taken
//!    under `gate` held for read; install holds it for write while it replaces
//!    the column families, so every view sees the state before or after an install.
//! 3. Temp files and directories end in `.tmp`: failure paths delete them, and
//!    so does `new` (at open, when no operation can be running).

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use flaredb_proto::raft as pb;
use prost::Message;

pub use super::snapshot_handle::SnapshotFile;
use super::{fail_point::FailPoints, snapshot_check::MAX_SNAPSHOT_BYTES, snapshot_prune::remove_any};
use crate::{codec, error::StoreError, types::SnapshotMeta};

const CURRENT: &str = "CURRENT";
const TEMP_SUFFIX: &str = ".tmp";
pub(crate) const SNAP_SUFFIX: &str = ".snap";
pub(crate) const CKPT_SUFFIX: &str = ".ckpt";
pub(crate) const EXPORT_SUFFIX: &str = ".export";

pub(crate) fn is_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TEMP_SUFFIX))
}

/// What the lock guards besides the directory itself (rule 1).
#[derive(Debug, Default)]
pub(crate) struct Entries {
    /// Checkpoint name → number of open handles.
    pub(crate) held: HashMap<String, usize>,
    /// Held checkpoints no longer current: the last handle deletes them.
    pub(crate) retired: HashSet<String>,
}

/// The snapshot directory; clones share the lock, the gate and the failure points.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    lock: Arc<Mutex<Entries>>,
    /// One checkpoint export at a time: a second reader waits and shares it.
    exporting: Arc<Mutex<()>>,
    gate: Arc<RwLock<()>>,
    max_bytes: u64,
    pub(crate) fail: FailPoints,
}

/// Unique within the process (counter) and across restarts (clock).
fn unique_suffix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn snap_io(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::SnapshotIo { path: path.to_path_buf(), source }
}

impl SnapshotDir {
    /// Opens (or creates) the directory and deletes temp files a crash left.
    /// Only at open: no build, install or receive can be running yet.
    pub fn new(dir: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(snap_io(&dir))?;
        let this = Self {
            dir,
            lock: Arc::default(),
            exporting: Arc::default(),
            gate: Arc::default(),
            max_bytes: MAX_SNAPSHOT_BYTES,
            fail: FailPoints::default(),
        };
        for path in this.files(TEMP_SUFFIX)? {
            tracing::info!(path = %path.display(), "removing a temp file left by an interrupted operation");
            remove_any(&path).map_err(snap_io(&path))?;
        }
        Ok(this)
    }

    /// Sets the largest snapshot this node accepts (default `MAX_SNAPSHOT_BYTES`).
    pub fn with_max_snapshot_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    pub fn max_snapshot_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh path for a snapshot being received from the leader.
    pub fn receive_path(&self) -> PathBuf {
        self.temp_path("recv")
    }

    /// A fresh temp path in the snapshot dir (same filesystem as the DB).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}-{}{TEMP_SUFFIX}", unique_suffix()))
    }

    /// Whether `path` is a temp file of this directory (install may move it).
    pub(crate) fn is_own_temp(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path()) && is_temp(path)
    }

    pub(crate) fn snap_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.entry_path("snap", meta, SNAP_SUFFIX)
    }

    pub(crate) fn ckpt_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.entry_path("ckpt", meta, CKPT_SUFFIX)
    }

    fn entry_path(&self, kind: &str, meta: &SnapshotMeta, suffix: &str) -> PathBuf {
        let index = meta.last_log_id.map_or(0, |id| id.index);
        self.dir.join(format!("{kind}-{index}-{}{suffix}", unique_suffix()))
    }

    /// Where the checkpoint at `ckpt` is exported to.
    pub(crate) fn export_path(ckpt: &Path) -> PathBuf {
        ckpt.with_extension(&EXPORT_SUFFIX[1..])
    }

    /// Every file or directory of the directory whose name ends with `suffix`.
    pub(crate) fn files(&self, suffix: &str) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(snap_io(&self.dir))? {
            let entry = entry.map_err(snap_io(&self.dir))?;
            if entry.file_name().to_str().is_some_and(|n| n.ends_with(suffix)) {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    /// Rule 1: held to open, rename or delete snapshot files and to change CURRENT.
    pub(crate) fn locked(&self) -> MutexGuard<'_, Entries> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Held while a checkpoint is exported (taken before the lock, never inside it).
    pub(crate) fn exporting(&self) -> MutexGuard<'_, ()> {
        self.exporting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rule 2: hold while taking a point-in-time view of the state machine
    /// (`DB::snapshot`, or a whole read such as the state hash).
    pub fn view(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Rule 2: held by install while the column families are being replaced.
    pub(crate) fn replacing(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(snap_io(&self.dir))
    }

    /// The current snapshot's meta and path (the file may be replaced any
    /// time after this returns: open it with `current_file` instead).
    pub fn current(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, StoreError> {
        let _lock = self.locked();
        self.read_current()
    }

    /// The current snapshot, opened under the lock (rule 1).
    pub fn current_file(&self) -> Result<Option<(SnapshotMeta, SnapshotFile)>, StoreError> {
        let mut entries = self.locked();
        let Some((meta, path)) = self.read_current()? else { return Ok(None) };
        let file = self.open_entry(&mut entries, &meta, path)?;
        Ok(Some((meta, file)))
    }

    /// Opens (holds) the snapshot at `path`. Caller holds the lock.
    pub(crate) fn open_entry(
        &self,
        entries: &mut Entries,
        meta: &SnapshotMeta,
        path: PathBuf,
    ) -> Result<SnapshotFile, StoreError> {
        if !has_suffix(&path, CKPT_SUFFIX) {
            return SnapshotFile::open(path.clone()).map_err(snap_io(&path));
        }
        if !path.is_dir() {
            let missing = io::Error::new(io::ErrorKind::NotFound, "checkpoint directory is missing");
            return Err(snap_io(&path)(missing));
        }
        Ok(SnapshotFile::checkpoint(self, entries, path, meta.clone()))
    }

    /// Caller holds the lock (or the directory is not in use yet).
    pub(crate) fn read_current(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, StoreError> {
        let path = self.dir.join(CURRENT);
        let raw = match fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_io(&path)(e)),
        };
        let p: pb::SnapshotPointer = codec::decode_pb("snapshot pointer", &raw)?;
        self.resolve_pointer(&p).map(Some)
    }

    pub(crate) fn resolve_pointer(&self, p: &pb::SnapshotPointer) -> Result<(SnapshotMeta, PathBuf), StoreError> {
        let meta = p.meta.as_ref().ok_or_else(|| StoreError::corrupt("snapshot pointer", "no meta"))?;
        let named = [SNAP_SUFFIX, CKPT_SUFFIX].iter().any(|s| p.file.len() > s.len() && p.file.ends_with(s));
        if p.file.contains('/') || !named {
            return Err(StoreError::corrupt("snapshot pointer", format!("bad file name {:?}", p.file)));
        }
        Ok((codec::snapshot_meta_from_pb(meta)?, self.dir.join(&p.file)))
    }

    /// The pointer CURRENT (or the install marker) stores for `file`.
    pub(crate) fn pointer(meta: &SnapshotMeta, file: &Path) -> pb::SnapshotPointer {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        pb::SnapshotPointer { meta: Some(codec::snapshot_meta_to_pb(meta)), file: name }
    }

    /// Points CURRENT at `file`, durably. Caller holds the lock.
    pub(crate) fn set_current(&self, meta: &SnapshotMeta, file: &Path) -> Result<(), StoreError> {
        let tmp = super::temp_file::TempFile::new(self.temp_path("CURRENT"), &self.fail);
        let path = tmp.path().to_path_buf();
        let write = || -> io::Result<()> {
            let mut f = File::create(&path)?;
            io::Write::write_all(&mut f, &Self::pointer(meta, file).encode_to_vec())?;
            f.sync_all()?;
            fs::rename(&path, self.dir.join(CURRENT))
        };
        write().map_err(snap_io(&path))?;
        tmp.keep();
        self.sync_dir()
    }
}

pub(crate) fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix))
}
