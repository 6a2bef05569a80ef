//! The versioned-register model: what each operation requires of the state
//! and what it leaves behind, and the preparation of a key's history.
//!
//! What the real service guarantees, and the model therefore assumes: a
//! write's version is the index of its Raft log entry, so versions are unique
//! across all keys, every write on a key gets a larger version than every
//! earlier write on it (even across delete and re-create), and a write invoked
//! after some op completed gets a larger version than any version that op saw.

use std::collections::{HashMap, HashSet};

use super::{
    excerpt,
    versions::{Bounds, Mentions},
    Op, Outcome, Violation,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Write `value` if the version is `expected` (0 = absent).
    Cas {
        expected: u64,
        value: Vec<u8>,
    },
    Get,
    /// Delete if the version is `expected`.
    Delete {
        expected: u64,
    },
}

/// A key's state during the search.
///
/// `ver` is the current version (0 = absent) and `val` the interned value.
/// `floor` is the largest version written on the key so far: the next write's
/// version must exceed it. A `ver` at or above `WILD` belongs to an Unknown
/// write nobody read (`WILD + op index`): its real version is some `x >
/// floor` that no other write owns, fixed ("bound") by the first op that
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub ver: u64,
    pub val: u32,
    pub floor: u64,
}

pub const ABSENT: State = State { ver: 0, val: 0, floor: 0 };
const WILD: u64 = 1 << 63;

fn is_wild(v: u64) -> bool {
    v >= WILD
}

/// One key's ops ready for the search.
pub struct Prepared {
    pub ops: Vec<Op>,
    /// Interned value id per op (0 when the op carries no value).
    value_ids: Vec<u32>,
    /// For Unknown CAS ops: the version a read showed their value at, if any.
    assigned: Vec<Option<u64>>,
    /// Per op: a version it may produce must exceed this (see `Bounds`).
    lower: Vec<u64>,
    /// Versions an unread Unknown write of this key cannot have: those of
    /// known writes, those reads saw, and every version seen on another key.
    taken: HashSet<u64>,
}

/// Interns values; `Get` outcomes and CAS values share ids.
#[derive(Default)]
struct Values(HashMap<Vec<u8>, u32>);

impl Values {
    fn id(&mut self, v: &[u8]) -> u32 {
        let next = self.0.len() as u32 + 1;
        *self.0.entry(v.to_vec()).or_insert(next)
    }
}

/// Values are unique per write, so a read of a value names the write that
/// produced it: that is how an Unknown write's version is learnt.
pub fn prepare(key: &[u8], ops: Vec<Op>, bounds: &Bounds, mentions: &Mentions) -> Result<Prepared, Violation> {
    let mut observed: HashMap<Vec<u8>, u64> = HashMap::new();
    for op in &ops {
        if let Outcome::Get { found: true, value, version } = &op.outcome {
            if let Some(prev) = observed.insert(value.clone(), *version) {
                if prev != *version {
                    return Err(Violation {
                        key: key.to_vec(),
                        reason: format!(
                            "value {:?} read at versions {prev} and {version}",
                            String::from_utf8_lossy(value)
                        ),
                        excerpt: excerpt(&ops, None),
                    });
                }
            }
        }
    }
    // A read that timed out constrains nothing.
    let ops: Vec<Op> = ops.into_iter().filter(|op| !(op.kind == OpKind::Get && op.outcome.is_unknown())).collect();
    let mut taken = mentions.on_other_keys(key);
    taken.insert(0);
    let mut assigned = vec![None; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        match (&op.kind, &op.outcome) {
            (_, Outcome::Cas { success: true, new_version, .. }) => {
                taken.insert(*new_version);
            }
            (_, Outcome::Get { found: true, version, .. }) => {
                taken.insert(*version);
            }
            (OpKind::Cas { value, .. }, Outcome::Unknown(_)) => assigned[i] = observed.get(value.as_slice()).copied(),
            _ => {}
        }
    }
    let lower = ops.iter().map(|op| bounds.before(op.invoke)).collect();
    let mut values = Values::default();
    let value_ids = ops
        .iter()
        .map(|op| match (&op.kind, &op.outcome) {
            (OpKind::Cas { value, .. }, _) => values.id(value),
            (_, Outcome::Get { found: true, value, .. }) => values.id(value),
            _ => 0,
        })
        .collect();
    Ok(Prepared { ops, value_ids, assigned, lower, taken })
}

/// The state after op `i` is linearized at `s`, or None if it cannot be.
pub fn step(p: &Prepared, i: usize, s: State) -> Option<State> {
    if is_wild(s.ver) {
        // The op requires one version of the state; bind the wild write to it
        // if that version could be the wild write's, then step from there.
        let x = named_version(&p.ops[i])?;
        let free = x != 0 && !is_wild(x) && x > s.floor && !p.taken.contains(&x);
        return if free { step(p, i, State { ver: x, val: s.val, floor: x }) } else { None };
    }
    let op = &p.ops[i];
    let State { ver, val, floor } = s;
    let written = |v: u64| State { ver: v, val: p.value_ids[i], floor: v };
    let deleted = State { ver: 0, val: 0, floor };
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: true, current, new_version }) => {
            (ver == *expected && *current == ver && *new_version > floor).then(|| written(*new_version))
        }
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: false, current, .. }) => {
            (ver != *expected && *current == ver).then_some(s)
        }
        (OpKind::Get, Outcome::Get { found: true, version, .. }) => {
            (ver != 0 && *version == ver && p.value_ids[i] == val).then_some(s)
        }
        (OpKind::Get, Outcome::Get { found: false, .. }) => (ver == 0).then_some(s),
        (OpKind::Delete { expected }, Outcome::Delete { success: true, current }) => {
            (ver != 0 && ver == *expected && *current == ver).then_some(deleted)
        }
        (OpKind::Delete { expected }, Outcome::Delete { success: false, current }) => {
            ((ver == 0 || ver != *expected) && *current == ver).then_some(s)
        }
        (OpKind::Cas { expected, .. }, Outcome::Unknown(_)) if ver == *expected => match p.assigned[i] {
            Some(v) => (v > floor && v > p.lower[i]).then(|| written(v)),
            None => Some(State { ver: WILD + i as u64, val: p.value_ids[i], floor: floor.max(p.lower[i]) }),
        },
        (OpKind::Delete { expected }, Outcome::Unknown(_)) => (ver != 0 && ver == *expected).then_some(deleted),
        // A precondition that does not hold, or a kind answered by another
        // kind's outcome: never linearizable.
        _ => None,
    }
}

/// The version the state must have for `op` to take effect as recorded.
fn named_version(op: &Op) -> Option<u64> {
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: true, .. } | Outcome::Unknown(_))
        | (OpKind::Delete { expected }, Outcome::Unknown(_)) => Some(*expected),
        (_, Outcome::Cas { current, .. } | Outcome::Delete { current, .. }) => Some(*current),
        (_, Outcome::Get { found: true, version, .. }) => Some(*version),
        _ => None,
    }
}
