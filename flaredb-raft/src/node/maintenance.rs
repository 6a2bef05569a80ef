//! Snapshots on demand, state hashes and backups.

use std::{path::PathBuf, time::Duration};

use super::FlareNode;
use crate::{error::NodeError, types::SnapshotMeta};

impl FlareNode {
    /// Builds a snapshot now (the log behind it is then purged per policy)
    /// and returns the index it covers.
    pub async fn snapshot_now(&self, timeout: Duration) -> Result<u64, NodeError> {
        let applied = self.status().applied_index;
        self.shared.force_snapshot.store(true, std::sync::atomic::Ordering::Release);
        self.raft.trigger().snapshot().await.map_err(|e| NodeError::Fatal(e.to_string()))?;
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied), "snapshot built")
            .await
            .map_err(|e| NodeError::Unavailable(format!("snapshot not built in time: {e}")))?;
        Ok(m.snapshot.map_or(0, |s| s.index))
    }

    /// (applied index, hash of the state machine) from one consistent view:
    /// taken before or after a snapshot install, never during one.
    pub async fn state_hash(&self) -> Result<(u64, u64), NodeError> {
        self.store.state_hash(&self.snapshots).await.map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// Writes a consistent, checksummed backup of the state machine (never a
    /// view in the middle of an install) to a temp file and returns it; the
    /// caller streams and then deletes it. A failed export leaves no file, and
    /// one the caller never deletes is removed at the next open.
    pub async fn backup_file(&self) -> Result<(PathBuf, SnapshotMeta), NodeError> {
        let path = self.snapshots.temp_path("backup");
        let meta =
            self.store.export(&self.snapshots, path.clone()).await.map_err(|e| NodeError::Fatal(e.to_string()))?;
        Ok((path, meta))
    }

    /// What each member has replicated, as the leader sees it (empty elsewhere).
    pub fn matched_indexes(&self) -> std::collections::BTreeMap<u64, u64> {
        let m = self.metrics();
        m.replication.map(|r| r.into_iter().map(|(id, l)| (id, l.map_or(0, |l| l.index))).collect()).unwrap_or_default()
    }
}
