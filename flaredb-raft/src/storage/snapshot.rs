//! Snapshots: built from a RocksDB point-in-time view into a checksummed file,
//! installed crash-atomically.
//!
//! `snapshots/CURRENT` names the current snapshot file and its meta. Install:
//! (1) the verified file gets its final name, (2) an `installing` marker
//! pointing at it is written to `sm_meta` (synced), (3) the state-machine
//! column families are replaced in batches, (4) the last batch clears the
//! marker (synced), (5) CURRENT is replaced. A node that crashes between (2)
//! and (4) redoes (3)–(5) when it opens.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use flaredb_proto::raft as pb;
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::{
    db::{cf, sync_opts, CF_CAS, CF_RAW, CF_SM_META},
    sm_meta,
    snapshot_file::{Section, SnapshotReader, SnapshotWriter},
};
use crate::{codec, error::StoreError, types::SnapshotMeta};

const CURRENT: &str = "CURRENT";
/// Above any stored key: keys are limited far below this length.
static KEY_SPACE_END: [u8; 1 << 17] = [0xFF; 1 << 17];
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// An open snapshot file; the handle stays valid even if a newer snapshot
/// replaces and deletes the file while it is being sent.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: File,
}

impl SnapshotFile {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        Ok(Self { path, file })
    }
}

/// The snapshot directory; the mutex orders CURRENT updates and clean-up
/// between a concurrent build and install.
#[derive(Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

fn unique_suffix() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn snap_io(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::SnapshotIo { path: path.to_path_buf(), source }
}

impl SnapshotDir {
    pub fn new(dir: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(snap_io(&dir))?;
        Ok(Self { dir, lock: Arc::new(Mutex::new(())) })
    }

    /// A fresh path for a snapshot being received from the leader.
    pub fn receive_path(&self) -> PathBuf {
        self.dir.join(format!("recv-{}.tmp", unique_suffix()))
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(snap_io(&self.dir))
    }

    pub fn current(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, StoreError> {
        let path = self.dir.join(CURRENT);
        let raw = match fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_io(&path)(e)),
        };
        let p: pb::SnapshotPointer = codec::decode_pb("snapshot pointer", &raw)?;
        self.resolve_pointer(&p).map(Some)
    }

    fn resolve_pointer(&self, p: &pb::SnapshotPointer) -> Result<(SnapshotMeta, PathBuf), StoreError> {
        let meta = p.meta.as_ref().ok_or_else(|| StoreError::corrupt("snapshot pointer", "no meta"))?;
        if p.file.contains('/') || p.file.is_empty() {
            return Err(StoreError::corrupt("snapshot pointer", "bad file name"));
        }
        Ok((codec::snapshot_meta_from_pb(meta)?, self.dir.join(&p.file)))
    }

    /// Points CURRENT at `file` and removes every other snapshot file.
    /// Caller holds `self.lock`.
    fn set_current(&self, meta: &SnapshotMeta, file: &Path) -> Result<(), StoreError> {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let p = pb::SnapshotPointer { meta: Some(codec::snapshot_meta_to_pb(meta)), file: name.clone() };
        let tmp = self.dir.join("CURRENT.tmp");
        fs::write(&tmp, p.encode_to_vec()).map_err(snap_io(&tmp))?;
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(snap_io(&tmp))?;
        fs::rename(&tmp, self.dir.join(CURRENT)).map_err(snap_io(&tmp))?;
        self.sync_dir()?;
        for entry in fs::read_dir(&self.dir).map_err(snap_io(&self.dir))?.flatten() {
            let n = entry.file_name().to_string_lossy().to_string();
            if n.ends_with(".snap") && n != name {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Writes a snapshot of `db` as of now to `path` (not registered as
    /// current: for backups). Blocking.
    pub fn export(db: &DB, path: &Path) -> Result<SnapshotMeta, StoreError> {
        let view = db.snapshot();
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
                if section == Section::SmMeta && k.as_ref() == sm_meta::INSTALLING_KEY {
                    continue;
                }
                w.record(section, &k, &v).map_err(snap_io(path))?;
            }
        }
        w.finish().map_err(snap_io(path))?;
        Ok(SnapshotMeta { last_log_id, last_membership })
    }

    /// A fresh temp path in the snapshot dir (same filesystem as the DB).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}-{}.tmp", unique_suffix()))
    }

    /// Writes a snapshot of `db` as of now and makes it current. Blocking.
    pub fn build(&self, db: &DB) -> Result<(SnapshotMeta, PathBuf), StoreError> {
        let suffix = unique_suffix();
        let tmp = self.dir.join(format!("build-{suffix}.tmp"));
        let meta = Self::export(db, &tmp)?;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        let final_path = self.dir.join(format!("snap-{index}-{suffix}.snap"));
        fs::rename(&tmp, &final_path).map_err(snap_io(&tmp))?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // A snapshot installed meanwhile may be newer; keep the newest.
        if let Some((cur, _)) = self.current()? {
            if cur.last_log_id > meta.last_log_id {
                let _ = fs::remove_file(&final_path);
                return self.current()?.ok_or_else(|| StoreError::corrupt("snapshot", "CURRENT vanished"));
            }
        }
        self.set_current(&meta, &final_path)?;
        Ok((meta, final_path))
    }

    /// Replaces the state machine with the snapshot at `received`. The caller
    /// has verified it (`SnapshotReader::verify`): an error here stops Raft. Blocking.
    pub fn install(&self, db: &DB, meta: &SnapshotMeta, received: &Path) -> Result<PathBuf, StoreError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let index = meta.last_log_id.map_or(0, |id| id.index);
        let final_path = self.dir.join(format!("snap-{index}-{}.snap", unique_suffix()));
        fs::rename(received, &final_path).map_err(snap_io(received))?;
        self.sync_dir()?;
        let name = final_path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let pointer = pb::SnapshotPointer { meta: Some(codec::snapshot_meta_to_pb(meta)), file: name };
        let mut b = WriteBatch::default();
        b.put_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY, pointer.encode_to_vec());
        db.write_opt(b, &sync_opts())?;
        self.load(db, meta, &final_path)?;
        Ok(final_path)
    }

    /// Steps (3)–(5): replace the column families with the file's records.
    fn load(&self, db: &DB, meta: &SnapshotMeta, path: &Path) -> Result<(), StoreError> {
        let marker = db
            .get_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY)?
            .ok_or_else(|| StoreError::corrupt("snapshot install", "marker missing"))?;
        let mut b = WriteBatch::default();
        for name in [CF_CAS, CF_RAW, CF_SM_META] {
            b.delete_range_cf(cf(db, name)?, &[][..], &KEY_SPACE_END[..]);
        }
        b.put_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY, marker);
        db.write(b)?;
        let mut r = SnapshotReader::open(path).map_err(snap_io(path))?;
        let mut b = WriteBatch::default();
        while let Some((section, k, v)) = r.next_record().map_err(snap_io(path))? {
            let name = match section {
                Section::Cas => CF_CAS,
                Section::Raw => CF_RAW,
                Section::SmMeta => CF_SM_META,
            };
            b.put_cf(cf(db, name)?, k, v);
            if b.size_in_bytes() >= INSTALL_BATCH_BYTES {
                db.write(std::mem::take(&mut b))?;
            }
        }
        b.delete_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY);
        // The synced last batch makes every earlier batch durable too (one WAL).
        db.write_opt(b, &sync_opts())?;
        self.set_current(meta, path)
    }

    /// Finishes an install interrupted by a crash, if the marker says so. Blocking.
    pub fn recover(&self, db: &DB) -> Result<bool, StoreError> {
        let Some(raw) = db.get_cf(cf(db, CF_SM_META)?, sm_meta::INSTALLING_KEY)? else { return Ok(false) };
        let p: pb::SnapshotPointer = codec::decode_pb("install marker", &raw)?;
        let (meta, path) = self.resolve_pointer(&p)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        tracing::warn!(snapshot = %path.display(), "finishing a snapshot install interrupted by a crash");
        self.load(db, &meta, &path)?;
        Ok(true)
    }
}
