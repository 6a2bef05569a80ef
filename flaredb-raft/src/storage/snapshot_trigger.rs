//! When to build a snapshot: after `logs_since_last` entries, as before, or
//! as soon as the entries applied since the last snapshot hold
//! `log_bytes_since_last` bytes of commands, whichever comes first.
//!
//! openraft's policy counts entries only. With a byte limit, openraft is told
//! to ask every `CHECK_EVERY` entries (`raft_policy`), and the state machine
//! answers `try_create_snapshot_builder(false)` with `should_build`; a refusal
//! makes openraft ask again `CHECK_EVERY` entries later. The byte count lives
//! in memory: after a restart it starts from zero (the entry count does not:
//! it is read from the applied index and CURRENT's).

use std::sync::atomic::{AtomicU64, Ordering};

use openraft::SnapshotPolicy;

/// How often openraft asks when a byte limit is set.
pub const CHECK_EVERY: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTrigger {
    pub logs_since_last: u64,
    /// `None`: entries only (openraft asks every `logs_since_last` entries).
    pub log_bytes_since_last: Option<u64>,
}

impl SnapshotTrigger {
    /// Entries only: exactly openraft's `LogsSinceLast`.
    pub fn logs(logs_since_last: u64) -> Self {
        Self { logs_since_last, log_bytes_since_last: None }
    }

    /// The policy to give openraft with this trigger.
    pub fn raft_policy(&self) -> SnapshotPolicy {
        match self.log_bytes_since_last {
            None => SnapshotPolicy::LogsSinceLast(self.logs_since_last),
            Some(_) => SnapshotPolicy::LogsSinceLast(self.logs_since_last.clamp(1, CHECK_EVERY)),
        }
    }

    /// Whether to build now, given the entries and command bytes applied
    /// since the last snapshot.
    pub fn should_build(&self, entries: u64, bytes: u64) -> bool {
        entries >= self.logs_since_last || self.log_bytes_since_last.is_some_and(|limit| bytes >= limit)
    }
}

/// Command bytes applied since the last snapshot build or install.
#[derive(Debug, Default)]
pub struct BytesSinceSnapshot(AtomicU64);

impl BytesSinceSnapshot {
    pub fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_on_entries_or_on_bytes_whichever_comes_first() {
        let t = SnapshotTrigger { logs_since_last: 10_000, log_bytes_since_last: Some(64 << 20) };
        assert_eq!(t.raft_policy(), SnapshotPolicy::LogsSinceLast(CHECK_EVERY));
        assert!(!t.should_build(9_999, (64 << 20) - 1));
        assert!(t.should_build(10_000, 0));
        assert!(t.should_build(600, 64 << 20));

        let entries_only = SnapshotTrigger::logs(10_000);
        assert_eq!(entries_only.raft_policy(), SnapshotPolicy::LogsSinceLast(10_000));
        assert!(!entries_only.should_build(9_999, u64::MAX));
    }
}
