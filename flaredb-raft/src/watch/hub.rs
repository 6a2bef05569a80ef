//! The watch hub: hands each applied change to the watchers that want it.
//!
//! Apply calls [`WatchHub::publish`] after its batch is written. The hub finds
//! the interested watchers through two maps (exact keys; prefixes, probed at
//! each prefix length in use), so ten thousand idle watchers cost nothing
//! per write, and gives each one its events of the batch as one item of a
//! bounded channel. A watcher whose buffer is full is ended rather than
//! waited for: a slow reader never holds up apply.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
};

use tokio::sync::mpsc;

use super::{filter, ChangeEvent, WatchFilter};

/// How much one watcher may have queued before it is ended.
#[derive(Debug, Clone, Copy)]
pub struct WatchLimits {
    /// Apply batches with events for it.
    pub items: usize,
    /// Bytes of those events (one batch is always let through).
    pub bytes: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self { items: 1024, bytes: 8 << 20 }
    }
}

/// Why a watcher's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Its buffer was full; events from `resume_from` on were not queued.
    Lagged { resume_from: u64 },
    /// The node installed a snapshot covering up to `revision`: this node's
    /// history restarts after it.
    SnapshotInstalled { revision: u64 },
    /// The node is stopping.
    Stopped,
}

#[derive(Debug, Default)]
struct WatcherState {
    queued_bytes: AtomicUsize,
    ended: OnceLock<Ended>,
}

struct Sink {
    tx: mpsc::Sender<Vec<ChangeEvent>>,
    state: Arc<WatcherState>,
    index_key: Vec<u8>,
    prefix: bool,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    sinks: HashMap<u64, Sink>,
    exact: HashMap<Vec<u8>, Vec<u64>>,
    prefixes: HashMap<Vec<u8>, Vec<u64>>,
    /// Index-key length of the registered prefixes → how many.
    prefix_lens: BTreeMap<usize, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Sink> {
        let sink = self.sinks.remove(&id)?;
        let map = if sink.prefix { &mut self.prefixes } else { &mut self.exact };
        if let Some(ids) = map.get_mut(&sink.index_key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                map.remove(&sink.index_key);
            }
        }
        if sink.prefix {
            let len = sink.index_key.len();
            if let Some(n) = self.prefix_lens.get_mut(&len) {
                *n -= 1;
                if *n == 0 {
                    self.prefix_lens.remove(&len);
                }
            }
        }
        Some(sink)
    }

    fn end(&mut self, id: u64, why: Ended) {
        if let Some(sink) = self.remove(id) {
            // Set before the sender drops, so the reader finds it at the end.
            let _ = sink.state.ended.set(why);
        }
    }

    /// The watchers `e` goes to.
    fn interested(&self, e: &ChangeEvent, out: &mut Vec<u64>) {
        let key = filter::index_key(&e.namespace, &e.key);
        if let Some(ids) = self.exact.get(&key) {
            out.extend(ids);
        }
        for &len in self.prefix_lens.keys() {
            if len > key.len() {
                break;
            }
            if let Some(ids) = self.prefixes.get(&key[..len]) {
                out.extend(ids);
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// The last revision handed to watchers (= applied, once apply returns).
    published: AtomicU64,
    watchers: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct WatchHub {
    shared: Arc<Shared>,
    limits: WatchLimits,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub").field("watchers", &self.watchers()).field("published", &self.published()).finish()
    }
}

impl WatchHub {
    pub fn new(published: u64, limits: WatchLimits) -> Self {
        let hub = Self { shared: Arc::default(), limits };
        hub.shared.published.store(published, Ordering::Release);
        hub
    }

    pub fn published(&self) -> u64 {
        self.shared.published.load(Ordering::Acquire)
    }

    pub fn watchers(&self) -> usize {
        self.shared.watchers.load(Ordering::Relaxed)
    }

    /// A new watcher. It receives every matching change after
    /// `Watcher::live_from() - 1`; anything earlier comes from history.
    pub fn register(&self, filter: WatchFilter) -> Watcher {
        let (tx, rx) = mpsc::channel(self.limits.items.max(1));
        let state = Arc::new(WatcherState::default());
        let index_key = filter.index_key();
        let mut inner = self.shared.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let map = if filter.prefix { &mut inner.prefixes } else { &mut inner.exact };
        map.entry(index_key.clone()).or_default().push(id);
        if filter.prefix {
            *inner.prefix_lens.entry(index_key.len()).or_default() += 1;
        }
        inner.sinks.insert(id, Sink { tx, state: state.clone(), index_key, prefix: filter.prefix });
        // Read under the lock that publish holds while it sends: no change
        // falls between history and the live feed.
        let live_from = self.published() + 1;
        self.shared.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher { id, rx, state, hub: Arc::downgrade(&self.shared), live_from }
    }

    /// Hands the events of one applied batch, which ends at revision
    /// `applied`, to the watchers. Never waits for a watcher.
    pub fn publish(&self, events: &[ChangeEvent], applied: u64) {
        let mut inner = self.shared.lock();
        if !events.is_empty() && !inner.sinks.is_empty() {
            let mut per: BTreeMap<u64, Vec<ChangeEvent>> = BTreeMap::new();
            let mut ids = Vec::new();
            for e in events {
                ids.clear();
                inner.interested(e, &mut ids);
                for &id in &ids {
                    per.entry(id).or_default().push(e.clone());
                }
            }
            for (id, item) in per {
                let Some(sink) = inner.sinks.get(&id) else { continue };
                let cost: usize = item.iter().map(ChangeEvent::cost).sum();
                let queued = sink.state.queued_bytes.load(Ordering::Acquire);
                let first = item[0].revision;
                if queued > 0 && queued + cost > self.limits.bytes {
                    inner.end(id, Ended::Lagged { resume_from: first });
                    continue;
                }
                sink.state.queued_bytes.fetch_add(cost, Ordering::AcqRel);
                match sink.tx.try_send(item) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => inner.end(id, Ended::Lagged { resume_from: first }),
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        inner.remove(id);
                    }
                }
            }
        }
        self.shared.published.store(applied, Ordering::Release);
    }

    /// Ends every watcher (a snapshot install, a stop) and sets the revision
    /// new watchers start after.
    pub fn end_all(&self, why: Ended, published: u64) {
        let mut inner = self.shared.lock();
        let ids: Vec<u64> = inner.sinks.keys().copied().collect();
        for id in ids {
            inner.end(id, why.clone());
        }
        self.shared.published.store(published, Ordering::Release);
    }
}

/// One registered watcher: its live feed. Dropping it unregisters it.
pub struct Watcher {
    id: u64,
    rx: mpsc::Receiver<Vec<ChangeEvent>>,
    state: Arc<WatcherState>,
    hub: Weak<Shared>,
    live_from: u64,
}

impl Watcher {
    /// The first revision the live feed carries.
    pub fn live_from(&self) -> u64 {
        self.live_from
    }

    /// The hub's published revision: with an empty feed, every change up to
    /// it has been received (read it before `try_recv`).
    pub fn published(&self) -> u64 {
        self.hub.upgrade().map_or(0, |s| s.published.load(Ordering::Acquire))
    }

    /// The next batch of events, or why the feed ended.
    pub async fn recv(&mut self) -> Result<Vec<ChangeEvent>, Ended> {
        match self.rx.recv().await {
            Some(item) => Ok(self.took(item)),
            None => Err(self.ended()),
        }
    }

    /// Like `recv` without waiting: `Ok(None)` when nothing is queued.
    pub fn try_recv(&mut self) -> Result<Option<Vec<ChangeEvent>>, Ended> {
        match self.rx.try_recv() {
            Ok(item) => Ok(Some(self.took(item))),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(self.ended()),
        }
    }

    fn took(&self, item: Vec<ChangeEvent>) -> Vec<ChangeEvent> {
        let cost: usize = item.iter().map(ChangeEvent::cost).sum();
        self.state.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
        item
    }

    fn ended(&self) -> Ended {
        self.state.ended.get().cloned().unwrap_or(Ended::Stopped)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(shared) = self.hub.upgrade() {
            shared.lock().remove(self.id);
            shared.watchers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::watch::EventKind;

    fn ev(ns: &str, key: &str, rev: u64) -> ChangeEvent {
        ChangeEvent {
            kind: EventKind::Put,
            namespace: ns.into(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            revision: rev,
            prev_version: 0,
        }
    }

    fn keys(item: Vec<ChangeEvent>) -> Vec<String> {
        item.iter().map(|e| format!("{}@{}", String::from_utf8_lossy(&e.key), e.revision)).collect()
    }

    #[test]
    fn each_watcher_gets_what_its_key_or_prefix_matches() {
        let hub = WatchHub::new(10, WatchLimits::default());
        let mut exact = hub.register(WatchFilter::new("", "a/b", false));
        let mut pre = hub.register(WatchFilter::new("default", "a/", true));
        let mut all = hub.register(WatchFilter::new("default", "", true));
        let mut other = hub.register(WatchFilter::new("other", "a/", true));
        assert_eq!(exact.live_from(), 11);
        hub.publish(&[ev("default", "a/b", 11), ev("default", "a/c", 11), ev("default", "b", 12)], 12);
        assert_eq!(keys(exact.try_recv().unwrap().unwrap()), ["a/b@11"]);
        assert_eq!(keys(pre.try_recv().unwrap().unwrap()), ["a/b@11", "a/c@11"]);
        assert_eq!(keys(all.try_recv().unwrap().unwrap()), ["a/b@11", "a/c@11", "b@12"]);
        assert_eq!(other.try_recv().unwrap(), None);
        assert_eq!(hub.published(), 12);
        assert_eq!(hub.register(WatchFilter::new("", "x", false)).live_from(), 13);

        drop(pre);
        hub.publish(&[ev("default", "a/b", 13)], 13);
        assert_eq!(keys(exact.try_recv().unwrap().unwrap()), ["a/b@13"]);
        assert_eq!(hub.watchers(), 3);
        assert!(hub.shared.lock().prefix_lens.contains_key(&"default\0".len()));
        assert!(!hub.shared.lock().prefix_lens.contains_key(&"default\0a/".len()));
    }

    #[test]
    fn a_full_watcher_is_ended_with_where_to_resume_and_others_go_on() {
        let hub = WatchHub::new(0, WatchLimits { items: 2, bytes: 1 << 20 });
        let mut slow = hub.register(WatchFilter::new("", "k", false));
        let mut fast = hub.register(WatchFilter::new("", "k", false));
        for rev in 1..=3 {
            hub.publish(&[ev("default", "k", rev)], rev);
            assert_eq!(keys(fast.try_recv().unwrap().unwrap()), [format!("k@{rev}")]);
        }
        assert_eq!(keys(slow.try_recv().unwrap().unwrap()), ["k@1"]);
        assert_eq!(keys(slow.try_recv().unwrap().unwrap()), ["k@2"]);
        assert_eq!(slow.try_recv(), Err(Ended::Lagged { resume_from: 3 }));
        assert_eq!(hub.watchers(), 2, "the ended watcher is counted until dropped");
        hub.publish(&[ev("default", "k", 4)], 4);
        assert_eq!(keys(fast.try_recv().unwrap().unwrap()), ["k@4"]);
    }

    #[test]
    fn the_byte_budget_ends_a_watcher_but_one_large_batch_passes() {
        let hub = WatchHub::new(0, WatchLimits { items: 100, bytes: 100 });
        let mut w = hub.register(WatchFilter::new("", "k", false));
        let mut big = ev("default", "k", 1);
        big.value = Bytes::from(vec![0u8; 500]);
        hub.publish(&[big], 1);
        hub.publish(&[ev("default", "k", 2)], 2);
        assert_eq!(w.try_recv().unwrap().unwrap()[0].revision, 1);
        assert_eq!(w.try_recv(), Err(Ended::Lagged { resume_from: 2 }));
    }

    #[test]
    fn end_all_says_why() {
        let hub = WatchHub::new(0, WatchLimits::default());
        let mut w = hub.register(WatchFilter::new("", "k", true));
        hub.end_all(Ended::SnapshotInstalled { revision: 50 }, 50);
        assert_eq!(w.try_recv(), Err(Ended::SnapshotInstalled { revision: 50 }));
        assert_eq!(hub.register(WatchFilter::new("", "k", true)).live_from(), 51);
    }
}
