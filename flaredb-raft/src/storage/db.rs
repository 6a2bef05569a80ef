//! The one RocksDB instance a node owns: Raft log, Raft metadata and state
//! machine in column families, sharing one WAL so a synced write also makes
//! every earlier write durable (vote and log are never reordered).

use std::{path::Path, sync::Arc};

use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

use super::db_options;

use crate::error::StoreError;

/// Log entries: index (big-endian u64) → encoded `raft.v1.Entry`.
pub const CF_LOG: &str = "raft_log";
/// Raft metadata: vote, committed, last purged, format version.
pub const CF_RAFT_META: &str = "raft_meta";
/// Strong keys: namespace id ++ key → version ++ value.
pub const CF_CAS: &str = "cas";
/// Eventual keys: namespace id ++ key → value.
pub const CF_RAW: &str = "raw";
/// State-machine metadata: last applied, membership, namespace registry.
pub const CF_SM_META: &str = "sm_meta";
/// Changes of strong keys by revision, for watches (`history.rs`); local to
/// the node, outside snapshots and the state hash.
pub const CF_HISTORY: &str = "history";

/// Every column family (`db_options::cf_descriptors` gives each its options).
pub const ALL_CFS: [&str; 6] = [CF_LOG, CF_RAFT_META, CF_CAS, CF_RAW, CF_SM_META, CF_HISTORY];

/// On-disk format of this build; stored at creation, checked at every open.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format_version";

/// Opens or creates the DB, refusing one written in another format.
pub fn open(path: &Path) -> Result<Arc<DB>, StoreError> {
    let db = DB::open_cf_descriptors(&db_options::db_options(), path, db_options::cf_descriptors())?;
    let meta = cf(&db, CF_RAFT_META)?;
    match db.get_cf(meta, FORMAT_KEY)? {
        Some(raw) => {
            let found = u32::from_be_bytes(
                raw.as_slice().try_into().map_err(|_| StoreError::corrupt("format version", "wrong length"))?,
            );
            if found != FORMAT_VERSION {
                return Err(StoreError::Format { found, supported: FORMAT_VERSION });
            }
        }
        None => {
            let mut b = WriteBatch::default();
            b.put_cf(meta, FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
            db.write_opt(b, &sync_opts())?;
        }
    }
    Ok(Arc::new(db))
}

/// A column family that `open` guarantees to exist.
pub fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name).ok_or_else(|| StoreError::corrupt("column family", format!("{name} is missing")))
}

/// A stored big-endian u64 (a floor, a clock, a log index), refused as
/// corrupt when it is not 8 bytes.
pub fn be_u64(what: &'static str, raw: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = raw.try_into().map_err(|_| StoreError::corrupt(what, "not 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

/// Write options that fsync the WAL before returning.
pub fn sync_opts() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

/// A RocksDB failure; wrapped so that RocksDB's error type stays in `storage`.
#[derive(Debug, thiserror::Error)]
#[error("rocksdb: {0}")]
pub struct DbError(#[source] rocksdb::Error);

impl DbError {
    pub(super) fn kind(&self) -> rocksdb::ErrorKind {
        self.0.kind()
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Rocks(DbError(e))
    }
}

/// Runs blocking RocksDB work off the async runtime's worker threads.
pub async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Join(e.to_string()))?
}

/// Writes a small batch from the async task that asks (a hop to the blocking
/// pool costs more than the write), unless RocksDB would stall it: `write` is
/// tried with `no_slowdown`, and a refused try (which wrote nothing) runs again
/// on the blocking pool where it may wait.
pub async fn write_quick<F>(db: &Arc<DB>, write: F) -> Result<(), StoreError>
where
    F: Fn(&DB, &WriteOptions) -> Result<(), StoreError> + Send + 'static,
{
    let mut quick = WriteOptions::default();
    quick.set_no_slowdown(true);
    match write(db, &quick) {
        Err(StoreError::Rocks(e)) if e.kind() == rocksdb::ErrorKind::Incomplete => {}
        done => return done,
    }
    let db = db.clone();
    blocking(move || write(&db, &WriteOptions::default())).await
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> Self {
        std::io::Error::other(e)
    }
}

impl From<crate::codec::CodecError> for StoreError {
    fn from(e: crate::codec::CodecError) -> Self {
        StoreError::Corrupt { what: e.what, detail: e.detail }
    }
}
