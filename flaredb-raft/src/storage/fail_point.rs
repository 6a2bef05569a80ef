//! Failure points inside snapshot build, export and install, armed only by tests.
//!
//! A test arms one step of one `SnapshotDir`; when the code reaches it, `hit`
//! returns an error as if the disk had failed there (`Mode::Error`: the
//! failure paths then clean up), or as if the process had been killed there
//! (`Mode::Crash`: clean-up guards then leave their files, as kill -9 would,
//! and the test reopens the store from disk). Outside `cfg(test)` nothing can
//! arm a step and `hit` is always `Ok`.

#[cfg(test)]
use std::sync::{Arc, Mutex};

use crate::error::StoreError;

/// A point between two durable steps of a build or an install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Export (a backup, or a checkpoint for a follower): part of the records
    /// written to the output file.
    ExportWriting,
    /// Checkpoint export: the file is complete and synced under its temp name.
    ExportWritten,
    /// Build: the checkpoint is complete under its temp name.
    BuildCheckpointed,
    /// Build: the checkpoint has its final name; CURRENT still names the old snapshot.
    BuildRenamed,
    /// Build: CURRENT names the new checkpoint; the old snapshot is not deleted yet.
    BuildCurrent,
    /// Install: the file is checked and still a temp file.
    InstallChecked,
    /// Install: the file has its final name; no marker yet.
    InstallRenamed,
    /// Install: the marker is durable; the old state is untouched.
    InstallMarked,
    /// Install: the column families are emptied (not synced).
    InstallCleared,
    /// Install: some of the records are loaded (not synced).
    InstallBatch,
    /// Install: every record is loaded and synced; CURRENT is the old one.
    InstallLoaded,
    /// Install: CURRENT names the new file; the marker is still there.
    InstallCurrent,
    /// Install: the marker is cleared; older files are not deleted yet.
    InstallDone,
}

impl Step {
    pub const BUILD: [Step; 3] = [Step::BuildCheckpointed, Step::BuildRenamed, Step::BuildCurrent];
    /// Exporting a checkpoint for a follower.
    pub const EXPORT: [Step; 2] = [Step::ExportWriting, Step::ExportWritten];
    pub const INSTALL: [Step; 8] = [
        Step::InstallChecked,
        Step::InstallRenamed,
        Step::InstallMarked,
        Step::InstallCleared,
        Step::InstallBatch,
        Step::InstallLoaded,
        Step::InstallCurrent,
        Step::InstallDone,
    ];
}

/// How an armed step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An I/O error: the process goes on, failure paths clean up.
    Error,
    /// A kill: nothing is cleaned up; the test reopens from disk.
    Crash,
}

#[cfg(test)]
#[derive(Debug, Default)]
struct Armed {
    at: Option<(Step, Mode)>,
    crashed: bool,
}

/// The failure points of one snapshot directory (shared by its clones).
#[derive(Debug, Clone, Default)]
pub struct FailPoints {
    #[cfg(test)]
    armed: Arc<Mutex<Armed>>,
}

impl FailPoints {
    /// Fails the next time `step` is reached (once).
    #[cfg(test)]
    pub fn arm(&self, step: Step, mode: Mode) {
        let mut a = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        *a = Armed { at: Some((step, mode)), crashed: false };
    }

    /// Whether the armed step is still waiting to be reached.
    #[cfg(test)]
    pub fn pending(&self) -> bool {
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).at.is_some()
    }

    /// `Err` when a test armed `step`.
    pub fn hit(&self, step: Step) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            let mut a = self.armed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, mode)) = a.at {
                if at == step {
                    *a = Armed { at: None, crashed: mode == Mode::Crash };
                    return Err(StoreError::SnapshotIo {
                        path: format!("<failure point {step:?}>").into(),
                        source: std::io::Error::other(format!("injected {mode:?} at {step:?}")),
                    });
                }
            }
        }
        let _ = step;
        Ok(())
    }

    /// A simulated kill happened: clean-up must leave files as they are.
    pub fn crashed(&self) -> bool {
        #[cfg(test)]
        {
            self.armed.lock().unwrap_or_else(|p| p.into_inner()).crashed
        }
        #[cfg(not(test))]
        {
            false
        }
    }
}
