//! The snapshot directory and the rules that keep it race-free and crash-safe.
//!
//! `snapshots/CURRENT` names the current snapshot file (`snap-*.snap`) and its
//! meta; it is replaced by rename, durably. Build (`snapshot_build.rs`) and
//! install (`snapshot_install.rs`) follow three rules:
//!
//! 1. Snapshot files are opened and deleted only under `lock`. A reader takes
//!    its handle under the lock; on Linux an open handle survives the unlink,
//!    so no reader ever sees its file vanish. CURRENT changes under the same lock.
//! 2. A view of the state machine (export, build, backup, hash) is taken under
//!    `gate` held for read; install holds it for write while it replaces the
//!    column families, so every view sees the state before or after an install.
//! 3. Temp files end in `.tmp`: failure paths delete them, and so does `new`
//!    (at open, when no operation can be running).

use std::{
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

use super::{fail_point::FailPoints, snapshot_check::MAX_SNAPSHOT_BYTES};
use crate::{codec, error::StoreError, types::SnapshotMeta};

const CURRENT: &str = "CURRENT";
const TEMP_SUFFIX: &str = ".tmp";
const SNAP_SUFFIX: &str = ".snap";

/// An open snapshot file. The handle stays valid even if a newer snapshot
/// replaces and deletes the file while it is being sent.
///
/// A temp file (a received snapshot, `*.tmp`) belongs to its handle: it is
/// deleted when the handle drops, so a snapshot that openraft declines to
/// install never lingers. Install moves it to its final name first.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: File,
    owns_temp: bool,
}

impl SnapshotFile {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        let owns_temp = is_temp(&path);
        Ok(Self { path, file, owns_temp })
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if self.owns_temp {
            // NotFound: install moved it; anything else only leaves a temp file for the next open.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn is_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TEMP_SUFFIX))
}

/// The snapshot directory; clones share the lock, the gate and the failure points.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
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
            gate: Arc::default(),
            max_bytes: MAX_SNAPSHOT_BYTES,
            fail: FailPoints::default(),
        };
        for path in this.files(TEMP_SUFFIX)? {
            tracing::info!(path = %path.display(), "removing a temp file left by an interrupted operation");
            fs::remove_file(&path).map_err(snap_io(&path))?;
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
        let index = meta.last_log_id.map_or(0, |id| id.index);
        self.dir.join(format!("snap-{index}-{}{SNAP_SUFFIX}", unique_suffix()))
    }

    /// Every file of the directory whose name ends with `suffix`.
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
    pub(crate) fn locked(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
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
        let _lock = self.locked();
        self.open_current()
    }

    /// Caller holds the lock.
    pub(crate) fn open_current(&self) -> Result<Option<(SnapshotMeta, SnapshotFile)>, StoreError> {
        let Some((meta, path)) = self.read_current()? else { return Ok(None) };
        let file = SnapshotFile::open(path.clone()).map_err(snap_io(&path))?;
        Ok(Some((meta, file)))
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
        if p.file.is_empty() || p.file.contains('/') || !p.file.ends_with(SNAP_SUFFIX) {
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

    /// Deletes every snapshot file but `keep`. Caller holds the lock, so no
    /// reader is between reading CURRENT and opening its file (rule 1). A file
    /// that cannot be deleted is only wasted space (the next prune or open
    /// retries): the build or install that called this has succeeded.
    pub(crate) fn prune(&self, keep: Option<&Path>) {
        let files = match self.files(SNAP_SUFFIX) {
            Ok(files) => files,
            Err(e) => return tracing::warn!(error = %e, "listing old snapshots"),
        };
        for path in files.into_iter().filter(|p| Some(p.as_path()) != keep) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing an old snapshot");
            }
        }
    }
}
