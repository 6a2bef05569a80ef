//! Watches on this node: registering, replaying history, and pruning it.

use std::{
    collections::VecDeque,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use super::FlareNode;
use crate::{
    error::NodeError,
    storage::history::{Cursor, Replay},
    watch::{Ended, WatchFilter, WatchHub, Watcher},
};

/// How long each node keeps its change history: the larger of the two.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRetention {
    pub revisions: u64,
    pub secs: u64,
    /// How often the pruner looks (and samples applied revisions over time).
    pub check_every: Duration,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self { revisions: 100_000, secs: 3_600, check_every: Duration::from_secs(5) }
    }
}

impl FlareNode {
    pub fn watch_hub(&self) -> &WatchHub {
        &self.shared.watch
    }

    pub fn watch(&self, filter: WatchFilter) -> Watcher {
        self.shared.watch.register(filter)
    }

    /// Up to `budget` history events from `from` until revision `until`
    /// (exclusive) matching `filter`.
    pub async fn watch_replay(
        &self,
        filter: WatchFilter,
        from: Cursor,
        until: u64,
        budget: usize,
    ) -> Result<Replay, NodeError> {
        self.store
            .history_replay(&self.snapshots, filter, from, until, budget)
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// The oldest revision a watch on this node can start from.
    pub fn watch_floor(&self) -> Result<u64, NodeError> {
        self.store.history_floor().map_err(|e| NodeError::Fatal(e.to_string()))
    }

    /// Ends every watcher: the node is stopping.
    pub fn end_watches(&self) {
        let hub = &self.shared.watch;
        hub.end_all(Ended::Stopped, hub.published());
    }

    /// Prunes the history by `retention` until the node is dropped.
    pub(super) fn spawn_history_pruner(node: &Arc<Self>, retention: HistoryRetention) {
        let weak: Weak<Self> = Arc::downgrade(node);
        tokio::spawn(async move {
            let mut samples = RevisionClock::default();
            let mut tick = tokio::time::interval(retention.check_every.max(Duration::from_millis(10)));
            loop {
                tick.tick().await;
                let Some(node) = weak.upgrade() else { return };
                let applied = node.shared.watch.published();
                samples.record(Instant::now(), applied);
                let floor = retention_floor(applied, retention, &mut samples);
                if let Err(e) = node.store.prune_history(&node.snapshots, floor).await {
                    tracing::warn!(error = %e, "pruning the watch history");
                }
            }
        });
    }
}

/// Applied revision over time, sampled by the pruner: enough to tell which
/// revisions are older than the retention's time. Starts empty at each start,
/// so time retention counts from the start at the earliest (keeping more).
#[derive(Debug, Default)]
struct RevisionClock {
    samples: VecDeque<(Instant, u64)>,
}

impl RevisionClock {
    fn record(&mut self, at: Instant, applied: u64) {
        self.samples.push_back((at, applied));
    }

    /// The highest revision applied by `at`, if known; forgets what is older
    /// than the newest sample at or before `at`.
    fn applied_by(&mut self, at: Instant) -> Option<u64> {
        while self.samples.len() > 1 && self.samples[1].0 <= at {
            self.samples.pop_front();
        }
        self.samples.front().filter(|(t, _)| *t <= at).map(|(_, r)| *r)
    }
}

/// The floor keeping both the last `revisions` revisions and every revision
/// newer than `secs` (each revision applied at or before an old sample is old).
fn retention_floor(applied: u64, retention: HistoryRetention, clock: &mut RevisionClock) -> u64 {
    let by_count = applied.saturating_sub(retention.revisions) + 1;
    let Some(cutoff) = Instant::now().checked_sub(Duration::from_secs(retention.secs)) else { return 0 };
    let by_time = clock.applied_by(cutoff).map_or(0, |r| r + 1);
    by_count.min(by_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_keeps_whichever_rule_keeps_more() {
        let now = Instant::now();
        let hour = Duration::from_secs(3_600);
        let Some(two_hours_ago) = now.checked_sub(2 * hour) else { return };
        let keep = HistoryRetention { revisions: 100, secs: 3_600, ..Default::default() };

        // Nothing known to be an hour old: nothing goes.
        let mut clock = RevisionClock::default();
        clock.record(now, 10_000);
        assert_eq!(retention_floor(10_000, keep, &mut clock), 0);

        // 5,000 was applied two hours ago: the count rule keeps less, time wins.
        let mut clock = RevisionClock::default();
        clock.record(two_hours_ago, 5_000);
        clock.record(now, 10_000);
        assert_eq!(retention_floor(10_000, keep, &mut clock), 5_001);
        // A slow hour: the count keeps more.
        assert_eq!(retention_floor(5_050, keep, &mut clock), 4_951);
        assert_eq!(retention_floor(50, keep, &mut clock), 1);
    }
}
