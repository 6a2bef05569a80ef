//! Receiving a snapshot from the leader into a temp file of the snapshot
//! directory: capped in size while it streams in, checked against its meta
//! before anyone installs it, and deleted on every path that does not hand
//! it over (an error, a refused file, a dropped stream).
//!
//! ```ignore
//! let mut rx = dir.receive().await?;
//! while let Some(chunk) = stream.next().await { rx.write(&chunk?.data).await?; }
//! let file = rx.finish(&meta).await?; // a SnapshotFile for `install_full_snapshot`
//! ```

use std::{io, path::PathBuf};

use tokio::io::AsyncWriteExt;

use super::{
    snapshot::{SnapshotDir, SnapshotFile},
    snapshot_check::{self, SnapshotCheckError},
};
use crate::types::SnapshotMeta;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("snapshot exceeds the {cap}-byte cap")]
    TooLarge { cap: u64 },
    #[error("writing snapshot {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("received snapshot is invalid: {0}")]
    Invalid(#[from] SnapshotCheckError),
    #[error("background task failed: {0}")]
    Join(String),
}

/// A snapshot being received; deleted when dropped before `finish` succeeds.
pub struct SnapshotReceiver {
    path: PathBuf,
    file: tokio::fs::File,
    written: u64,
    cap: u64,
    handed_over: bool,
}

impl SnapshotDir {
    /// Starts receiving a snapshot into a fresh temp file.
    pub async fn receive(&self) -> Result<SnapshotReceiver, ReceiveError> {
        let path = self.receive_path();
        let file =
            tokio::fs::File::create(&path).await.map_err(|source| ReceiveError::Io { path: path.clone(), source })?;
        Ok(SnapshotReceiver { path, file, written: 0, cap: self.max_snapshot_bytes(), handed_over: false })
    }
}

impl SnapshotReceiver {
    fn io(&self) -> impl FnOnce(io::Error) -> ReceiveError + '_ {
        move |source| ReceiveError::Io { path: self.path.clone(), source }
    }

    /// Appends a chunk; refuses one that would take the file past the cap.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ReceiveError> {
        let cap = self.cap;
        let written = u64::try_from(data.len())
            .ok()
            .and_then(|n| self.written.checked_add(n))
            .filter(|&w| w <= cap)
            .ok_or(ReceiveError::TooLarge { cap })?;
        let (file, path) = (&mut self.file, &self.path);
        file.write_all(data).await.map_err(|source| ReceiveError::Io { path: path.clone(), source })?;
        self.written = written;
        Ok(())
    }

    /// Makes the file durable, checks it against `meta`, and hands it over:
    /// the returned handle deletes it if it is never installed.
    pub async fn finish(mut self, meta: &SnapshotMeta) -> Result<SnapshotFile, ReceiveError> {
        let synced = self.file.sync_all().await;
        synced.map_err(self.io())?;
        let (path, meta, cap) = (self.path.clone(), meta.clone(), self.cap);
        tokio::task::spawn_blocking(move || snapshot_check::check(&path, &meta, cap))
            .await
            .map_err(|e| ReceiveError::Join(e.to_string()))??;
        let file = SnapshotFile::open(self.path.clone()).map_err(self.io())?;
        self.handed_over = true;
        Ok(file)
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        if !self.handed_over {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
