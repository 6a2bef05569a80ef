//! The data directory: an exclusive lock while a node runs, and an identity
//! file recording which node of which cluster the directory belongs to.
//!
//! Layout: `LOCK` (flock held for the life of the process), `IDENTITY`
//! (format, node id, cluster id), `db/` (RocksDB), `snapshots/`.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use fs4::fs_std::FileExt;

use crate::error::DataDirError;

const IDENTITY: &str = "IDENTITY";
const FORMAT: u32 = 1;

/// What `IDENTITY` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub node_id: u64,
    /// 0 until the node has joined a cluster and learned its id.
    pub cluster_id: u64,
}

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    identity: Identity,
    /// Held for the life of the node: dropping it releases the flock.
    _lock: File,
}

impl DataDir {
    /// Opens (or creates) `root` for node `node_id`.
    ///
    /// Refuses a directory locked by another process, one that holds files but
    /// no FlareDB identity (a foreign directory), a corrupt identity, and one
    /// that belongs to another node id.
    pub fn open(root: &Path, node_id: u64) -> Result<Self, DataDirError> {
        fs::create_dir_all(root).map_err(|e| DataDirError::io(root, e))?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| DataDirError::io(&lock_path, e))?;
        if !lock.try_lock_exclusive().map_err(|e| DataDirError::io(&lock_path, e))? {
            return Err(DataDirError::Locked(root.to_path_buf()));
        }
        let id_path = root.join(IDENTITY);
        let identity = if id_path.exists() {
            let text = fs::read_to_string(&id_path).map_err(|e| DataDirError::io(&id_path, e))?;
            let found = parse_identity(&text).ok_or_else(|| DataDirError::Corrupt(id_path.clone()))?;
            if found.node_id != node_id {
                return Err(DataDirError::WrongNode { dir: root.to_path_buf(), found: found.node_id, wanted: node_id });
            }
            found
        } else {
            let foreign = fs::read_dir(root)
                .map_err(|e| DataDirError::io(root, e))?
                .filter_map(Result::ok)
                .any(|e| e.file_name() != "LOCK");
            if foreign {
                return Err(DataDirError::Foreign(root.to_path_buf()));
            }
            let id = Identity { node_id, cluster_id: 0 };
            write_identity(root, id)?;
            id
        };
        Ok(Self { root: root.to_path_buf(), identity, _lock: lock })
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Records the cluster id once learned. Refuses to change a known one.
    pub fn set_cluster_id(&mut self, cluster_id: u64) -> Result<(), DataDirError> {
        if self.identity.cluster_id == cluster_id {
            return Ok(());
        }
        if self.identity.cluster_id != 0 {
            return Err(DataDirError::WrongCluster { found: self.identity.cluster_id, wanted: cluster_id });
        }
        let id = Identity { cluster_id, ..self.identity };
        write_identity(&self.root, id)?;
        self.identity = id;
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    pub fn identity_path(&self) -> PathBuf {
        self.root.join(IDENTITY)
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn parse_identity(text: &str) -> Option<Identity> {
    let mut format = None;
    let mut node_id = None;
    let mut cluster_id = None;
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        match k.trim() {
            "format" => format = v.trim().parse::<u32>().ok(),
            "node_id" => node_id = v.trim().parse::<u64>().ok(),
            "cluster_id" => cluster_id = u64::from_str_radix(v.trim(), 16).ok(),
            _ => return None,
        }
    }
    (format? == FORMAT).then_some(())?;
    Some(Identity { node_id: node_id?, cluster_id: cluster_id? })
}

/// Writes the identity via a temp file + rename + directory fsync, so a crash
/// leaves either the old or the new file, never a torn one.
fn write_identity(root: &Path, id: Identity) -> Result<(), DataDirError> {
    let tmp = root.join("IDENTITY.tmp");
    let text = format!("format={FORMAT}\nnode_id={}\ncluster_id={:016x}\n", id.node_id, id.cluster_id);
    let mut f = File::create(&tmp).map_err(|e| DataDirError::io(&tmp, e))?;
    f.write_all(text.as_bytes()).map_err(|e| DataDirError::io(&tmp, e))?;
    f.sync_all().map_err(|e| DataDirError::io(&tmp, e))?;
    let dst = root.join(IDENTITY);
    fs::rename(&tmp, &dst).map_err(|e| DataDirError::io(&dst, e))?;
    File::open(root).and_then(|d| d.sync_all()).map_err(|e| DataDirError::io(root, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reopens_with_the_same_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = DataDir::open(tmp.path(), 7).unwrap();
        d.set_cluster_id(0xabc).unwrap();
        drop(d);
        let d = DataDir::open(tmp.path(), 7).unwrap();
        assert_eq!(d.identity(), Identity { node_id: 7, cluster_id: 0xabc });
    }

    #[test]
    fn refuses_a_second_opener() {
        let tmp = tempfile::tempdir().unwrap();
        let _d = DataDir::open(tmp.path(), 1).unwrap();
        assert!(matches!(DataDir::open(tmp.path(), 1), Err(DataDirError::Locked(_))));
    }

    #[test]
    fn refuses_another_node_id_and_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = DataDir::open(tmp.path(), 1).unwrap();
        d.set_cluster_id(5).unwrap();
        assert!(matches!(d.set_cluster_id(6), Err(DataDirError::WrongCluster { .. })));
        drop(d);
        assert!(matches!(DataDir::open(tmp.path(), 2), Err(DataDirError::WrongNode { .. })));
    }

    #[test]
    fn refuses_foreign_and_corrupt_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("something"), b"x").unwrap();
        assert!(matches!(DataDir::open(tmp.path(), 1), Err(DataDirError::Foreign(_))));
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(IDENTITY), b"garbage").unwrap();
        assert!(matches!(DataDir::open(tmp.path(), 1), Err(DataDirError::Corrupt(_))));
    }
}
