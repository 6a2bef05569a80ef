//! Watchers for the fault suite: each follows every change of the
//! workload's namespace through the client helper (which re-attaches to
//! another node when its node fails) and, after the faults, must hold every
//! acknowledged write exactly once, in version order, and nothing that
//! certainly did not apply.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use flaredb_client::{WatchEvent, WatchEventKind};
use futures::StreamExt;

use crate::{
    lincheck::{Op, OpKind, Outcome},
    wait_until,
    workload::fault_client,
    DEADLINE,
};

#[derive(Default)]
struct Seen {
    events: Vec<WatchEvent>,
    /// Every change up to here has been delivered (events and progress).
    high: u64,
    error: Option<String>,
}

pub struct Watchers {
    seen: Vec<Arc<Mutex<Seen>>>,
}

/// What a change looked like to the watchers: (key, PUT at version) or
/// (key, DELETE of version).
type Change = (Vec<u8>, bool, u64);
/// A put's (key, value).
type Put = (Vec<u8>, Vec<u8>);

impl Watchers {
    /// `n` watchers on `namespace`, each starting at a different endpoint.
    pub fn spawn(endpoints: &[String], namespace: &str, n: usize) -> Self {
        let seen = (0..n)
            .map(|i| {
                let mut eps = endpoints.to_vec();
                eps.rotate_left(i % endpoints.len().max(1));
                let client = fault_client(eps).namespace(namespace);
                let seen = Arc::new(Mutex::new(Seen::default()));
                let sink = seen.clone();
                tokio::spawn(async move {
                    let mut events = Box::pin(client.watch("").prefix().from_version(1).start());
                    while let Some(e) = events.next().await {
                        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                        match e {
                            Ok(e) => {
                                s.high = s.high.max(e.version);
                                if e.kind != WatchEventKind::Progress {
                                    s.events.push(e);
                                }
                            }
                            Err(e) => s.error = Some(e.to_string()),
                        }
                    }
                });
                seen
            })
            .collect();
        Self { seen }
    }

    /// Waits until every watcher has seen up to `revision`, then checks each
    /// against the history; returns the events each one saw.
    pub async fn verify(&self, history: &[Op], revision: u64, seed: u64) -> usize {
        let (acked, not_applied) = changes(history);
        for (i, seen) in self.seen.iter().enumerate() {
            wait_until(&format!("watcher {i} reaches revision {revision} (seed={seed})"), DEADLINE, || async {
                let s = seen.lock().unwrap_or_else(|p| p.into_inner());
                assert!(s.error.is_none(), "seed={seed}: watcher {i} failed: {:?}", s.error);
                (s.high >= revision).then_some(())
            })
            .await;
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            let versions: Vec<u64> = s.events.iter().map(|e| e.version).collect();
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "seed={seed}: watcher {i}: versions not strictly increasing (a gap or a duplicate): {versions:?}"
            );
            let got: BTreeSet<Change> = s.events.iter().map(change_of).collect();
            let missing: Vec<_> = acked.difference(&got).collect();
            assert!(missing.is_empty(), "seed={seed}: watcher {i} missed acknowledged writes: {missing:?}");
            let phantom: Vec<_> = s
                .events
                .iter()
                .filter(|e| e.kind == WatchEventKind::Put && not_applied.contains(&(e.key.to_vec(), e.value.to_vec())))
                .map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.version))
                .collect();
            assert!(phantom.is_empty(), "seed={seed}: watcher {i} saw writes that did not apply: {phantom:?}");
        }
        self.seen.first().map_or(0, |s| s.lock().unwrap_or_else(|p| p.into_inner()).events.len())
    }
}

fn change_of(e: &WatchEvent) -> Change {
    match e.kind {
        WatchEventKind::Delete => (e.key.to_vec(), false, e.prev_version),
        _ => (e.key.to_vec(), true, e.version),
    }
}

/// The acknowledged changes, and the (key, value) of puts that certainly
/// did not apply (refused, or their compare failed): workload values are
/// unique, so such a value must never reach a watcher.
fn changes(history: &[Op]) -> (BTreeSet<Change>, BTreeSet<Put>) {
    let (mut acked, mut not_applied) = (BTreeSet::new(), BTreeSet::new());
    for op in history {
        match (&op.kind, &op.outcome) {
            (OpKind::Cas { .. }, Outcome::Cas { success: true, new_version, .. }) => {
                acked.insert((op.key.clone(), true, *new_version));
            }
            (OpKind::Cas { value, .. }, Outcome::Cas { success: false, .. } | Outcome::Failed) => {
                not_applied.insert((op.key.clone(), value.clone()));
            }
            (OpKind::Delete { .. }, Outcome::Delete { success: true, current }) => {
                acked.insert((op.key.clone(), false, *current));
            }
            _ => {}
        }
    }
    (acked, not_applied)
}
