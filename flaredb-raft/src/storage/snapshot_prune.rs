//! Deleting old snapshots without pulling one from under a reader (rule 1
//! of `snapshot.rs`): everything here runs under the directory lock.

use std::{fs, io, path::Path};

use super::snapshot::{Entries, SnapshotDir, CKPT_SUFFIX, EXPORT_SUFFIX, SNAP_SUFFIX};

impl SnapshotDir {
    /// Deletes every snapshot but `keep`, and every export but `keep`'s.
    /// Caller holds the lock, so no reader is between reading CURRENT and
    /// opening or holding its snapshot (rule 1); a held checkpoint is retired
    /// instead, for its last handle to delete. A snapshot that cannot be
    /// deleted is only wasted space (the next prune or open retries): the
    /// build or install that called this has succeeded.
    pub(crate) fn prune(&self, entries: &mut Entries, keep: Option<&Path>) {
        let keep = keep.and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let mut names = Vec::new();
        for suffix in [SNAP_SUFFIX, CKPT_SUFFIX, EXPORT_SUFFIX] {
            match self.files(suffix) {
                Ok(paths) => names.extend(paths.iter().filter_map(|p| p.file_name()?.to_str().map(String::from))),
                Err(e) => return tracing::warn!(error = %e, "listing old snapshots"),
            }
        }
        for name in names {
            // An export goes with its checkpoint.
            let owner = match name.strip_suffix(EXPORT_SUFFIX) {
                Some(stem) => format!("{stem}{CKPT_SUFFIX}"),
                None => name.clone(),
            };
            if owner == keep {
                continue;
            }
            if entries.held.contains_key(&owner) {
                entries.retired.insert(owner);
                continue;
            }
            let path = self.path().join(&name);
            if let Err(e) = remove_any(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing an old snapshot");
            }
        }
    }

    /// Deletes a retired checkpoint and its export. Caller holds the lock.
    pub(crate) fn remove_entry(&self, name: &str) {
        let ckpt = self.path().join(name);
        for path in [Self::export_path(&ckpt), ckpt] {
            if let Err(e) = remove_any(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "removing an old snapshot");
                }
            }
        }
    }
}

/// Removes a file or a whole directory.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}
