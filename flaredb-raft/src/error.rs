//! Error types of the replicated store, one enum per domain.
//!
//! ```text
//! DataDirError ─┐
//! StoreError  ──┼─> OpenError      (startup: refused, never overwrites)
//! NodeError       (a request: NotLeader / Unavailable / Rejected / Fatal)
//! ```

use std::path::{Path, PathBuf};

use crate::namespace::NamespaceRejection;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {0} is in use by another flaredb-server process (LOCK is held)")]
    Locked(PathBuf),
    #[error("data dir {0} holds files but no FlareDB IDENTITY; refusing to use a foreign directory")]
    Foreign(PathBuf),
    #[error("identity file {0} is corrupt; refusing to start")]
    Corrupt(PathBuf),
    #[error(
        "data dir {dir} belongs to node {found}, not node {wanted}; a node id is never reused by another data dir"
    )]
    WrongNode { dir: PathBuf, found: u64, wanted: u64 },
    #[error("this node belongs to cluster {found:016x}, refusing cluster {wanted:016x}")]
    WrongCluster { found: u64, wanted: u64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl DataDirError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// RocksDB and on-disk format errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rocks(#[from] crate::storage::DbError),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("on-disk format version {found} is not supported (this build reads {supported})")]
    Format { found: u32, supported: u32 },
    #[error("snapshot {path}: {source}")]
    SnapshotIo { path: PathBuf, source: std::io::Error },
    #[error("background task failed: {0}")]
    Join(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt { what, detail: detail.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("raft: {0}")]
    Raft(String),
}

/// The outcome of a request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// This node is not the leader; `leader` is the one it knows, if any.
    #[error("not the leader")]
    NotLeader { leader: Option<(u64, String)> },
    /// No leader or no quorum right now; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The state machine refused the command (same answer on every replica).
    #[error("{0:?}")]
    Rejected(NamespaceRejection),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request does not fit the cluster's current state.
    #[error("failed precondition: {0}")]
    Precondition(String),
    /// The caller may not do this (another user's lease).
    #[error("permission denied: {0}")]
    Denied(String),
    /// Storage failed or Raft stopped; the node cannot serve.
    #[error("fatal: {0}")]
    Fatal(String),
}
