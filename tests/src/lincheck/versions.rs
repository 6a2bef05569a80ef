//! What versions tell across keys. A version is a Raft log index: one entry,
//! one key, and an entry proposed after another was applied gets a larger
//! index. So a version seen on one key belongs to no write of another, and a
//! write invoked after an op completed has a version above every version that
//! op saw.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{excerpt, Op, Outcome, Violation};

/// The versions an outcome shows as applied.
fn seen(o: &Outcome) -> impl Iterator<Item = u64> {
    let (a, b) = match *o {
        Outcome::Cas { success: true, current, new_version } => (current, new_version),
        Outcome::Cas { success: false, current, .. } | Outcome::Delete { current, .. } => (current, 0),
        Outcome::Get { found: true, version, .. } => (version, 0),
        _ => (0, 0),
    };
    [a, b].into_iter().filter(|v| *v != 0)
}

/// The largest version seen by any op completed before a given instant.
pub struct Bounds {
    /// (completion time, largest version seen by ops completed so far), by time.
    steps: Vec<(u64, u64)>,
}

impl Bounds {
    pub fn new(ops: &[Op]) -> Self {
        let mut done: Vec<(u64, u64)> = ops
            .iter()
            .filter(|o| !o.outcome.is_unknown())
            .filter_map(|o| seen(&o.outcome).max().map(|v| (o.complete, v)))
            .collect();
        done.sort_unstable();
        let mut max = 0;
        let steps = done
            .into_iter()
            .map(|(t, v)| {
                max = max.max(v);
                (t, max)
            })
            .collect();
        Self { steps }
    }

    /// Largest version seen by ops that completed strictly before `t` (0 if none).
    pub fn before(&self, t: u64) -> u64 {
        let n = self.steps.partition_point(|(c, _)| *c < t);
        if n == 0 {
            0
        } else {
            self.steps[n - 1].1
        }
    }
}

/// Which versions each key's outcomes show.
pub struct Mentions(BTreeMap<Vec<u8>, HashSet<u64>>);

impl Mentions {
    pub fn new(ops: &[Op]) -> Self {
        let mut by_key: BTreeMap<Vec<u8>, HashSet<u64>> = BTreeMap::new();
        for op in ops {
            by_key.entry(op.key.clone()).or_default().extend(seen(&op.outcome));
        }
        Self(by_key)
    }

    /// Every version shown on a key other than `key`.
    pub fn on_other_keys(&self, key: &[u8]) -> HashSet<u64> {
        self.0.iter().filter(|(k, _)| k.as_slice() != key).flat_map(|(_, vs)| vs.iter().copied()).collect()
    }
}

/// Outside the search: every successful write's version is unique across all
/// keys and exceeds every version seen before the write was invoked.
pub fn check_versions(ops: &[Op], bounds: &Bounds) -> Result<(), Violation> {
    let mut owner: HashMap<u64, &Op> = HashMap::new();
    for op in ops {
        let Outcome::Cas { success: true, new_version, .. } = op.outcome else { continue };
        if let Some(other) = owner.insert(new_version, op) {
            return Err(Violation {
                key: op.key.clone(),
                reason: format!("version {new_version} was returned by two writes"),
                excerpt: excerpt(&[other.clone(), op.clone()], None),
            });
        }
        let floor = bounds.before(op.invoke);
        if new_version <= floor {
            let earlier: Vec<Op> = ops
                .iter()
                .filter(|o| o.complete < op.invoke && seen(&o.outcome).any(|v| v == floor))
                .take(1)
                .chain([op])
                .cloned()
                .collect();
            return Err(Violation {
                key: op.key.clone(),
                reason: format!("versions went backwards: {floor} was seen before a write that got {new_version}"),
                excerpt: excerpt(&earlier, None),
            });
        }
    }
    Ok(())
}
