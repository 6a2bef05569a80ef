//! A file (or directory) that is deleted when the operation that made it fails.
//!
//! Build, install, export and restore each create a file or a checkpoint that must not
//! outlive a failure: the guard removes it on every early return, and `keep`
//! hands it over once something durable (CURRENT, the install marker, the
//! caller) owns it. A crash leaves it behind; `SnapshotDir::new` removes
//! temp files and `SnapshotDir::recover` unreferenced snapshots at open.

use std::path::{Path, PathBuf};

use super::fail_point::FailPoints;

pub(crate) struct TempFile {
    path: PathBuf,
    fail: FailPoints,
    keep: bool,
}

impl TempFile {
    pub(crate) fn new(path: PathBuf, fail: &FailPoints) -> Self {
        Self { path, fail: fail.clone(), keep: false }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file is owned elsewhere now: leave it.
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // A simulated kill (tests) leaves files exactly as a killed process would.
        if !self.keep && !self.fail.crashed() {
            if let Err(e) = super::snapshot_prune::remove_any(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "removing a temp snapshot file");
                }
            }
        }
    }
}
