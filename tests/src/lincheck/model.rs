//! The versioned-register model: what each operation requires of the state
//! and what it leaves behind, and the preparation of a key's history.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{excerpt, Op, Outcome, Violation};

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

/// (version, value id); version 0 = absent. A version at or above `WILD`
/// belongs to an Unknown write nobody read: its real version is not known
/// (`WILD + op index` keeps different such writes apart).
pub type State = (u64, u32);
pub const ABSENT: State = (0, 0);
const WILD: u64 = 1 << 63;

fn is_wild(v: u64) -> bool {
    v >= WILD
}

/// One key's ops ready for the search.
pub struct Prepared {
    pub ops: Vec<Op>,
    /// Interned value id per op (0 when the op carries no value).
    pub value_ids: Vec<u32>,
    /// For Unknown CAS ops: the version a read showed their value at, or a
    /// wild version when no read did.
    pub assigned: Vec<u64>,
    /// Versions produced by known writes or read by Gets; any other version an
    /// op names can only come from an Unknown write.
    explained: HashSet<u64>,
    /// Failed CAS/Delete whose reported `current` no known write explains:
    /// only `version != expected` is checked for them.
    pub relaxed: Vec<bool>,
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
/// produced it: that is how an Unknown write's version is learnt. An Unknown
/// write nobody read gets a wild version, which matches any version no known
/// write explains (a later CAS may still name it as its expected version).
pub fn prepare(key: &[u8], ops: Vec<Op>) -> Result<Prepared, Violation> {
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
    let keep: Vec<bool> =
        ops.iter().map(|op| !matches!((&op.kind, &op.outcome), (OpKind::Get, Outcome::Unknown))).collect();
    let ops: Vec<Op> = ops.into_iter().zip(keep).filter(|(_, k)| *k).map(|(o, _)| o).collect();
    let mut explained: HashSet<u64> = HashSet::from([0]);
    let mut assigned = vec![0; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        match (&op.kind, &op.outcome) {
            (_, Outcome::Cas { success: true, new_version, .. }) => {
                explained.insert(*new_version);
            }
            (OpKind::Cas { value, .. }, Outcome::Unknown) => match observed.get(value.as_slice()) {
                Some(v) => {
                    assigned[i] = *v;
                    explained.insert(*v);
                }
                None => assigned[i] = WILD + i as u64,
            },
            _ => {}
        }
    }
    let relaxed = ops
        .iter()
        .map(|op| match op.outcome {
            Outcome::Cas { success: false, current, .. } | Outcome::Delete { success: false, current } => {
                !explained.contains(&current)
            }
            _ => false,
        })
        .collect();
    let mut values = Values::default();
    let value_ids = ops
        .iter()
        .map(|op| match (&op.kind, &op.outcome) {
            (OpKind::Cas { value, .. }, _) => values.id(value),
            (_, Outcome::Get { found: true, value, .. }) => values.id(value),
            _ => 0,
        })
        .collect();
    Ok(Prepared { ops, value_ids, assigned, explained, relaxed })
}

/// The state after op `i` is linearized at `s`, or None if it cannot be.
pub fn step(p: &Prepared, i: usize, s: State) -> Option<State> {
    if is_wild(s.0) {
        return step_wild(p, i, s);
    }
    let op = &p.ops[i];
    let (version, value) = s;
    let current_ok = |current: u64| p.relaxed[i] || current == version;
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: true, current, new_version }) => {
            (version == *expected && *current == *expected && *new_version > version)
                .then_some((*new_version, p.value_ids[i]))
        }
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: false, current, .. }) => {
            (version != *expected && current_ok(*current)).then_some(s)
        }
        (OpKind::Get, Outcome::Get { found, version: v, .. }) => {
            let matches = if *found { version != 0 && *v == version && p.value_ids[i] == value } else { version == 0 };
            matches.then_some(s)
        }
        (OpKind::Delete { expected }, Outcome::Delete { success: true, current }) => {
            (version != 0 && version == *expected && *current == *expected).then_some(ABSENT)
        }
        (OpKind::Delete { expected }, Outcome::Delete { success: false, current }) => {
            ((version == 0 || version != *expected) && current_ok(*current)).then_some(s)
        }
        (OpKind::Cas { expected, .. }, Outcome::Unknown) => (version == *expected
            && (is_wild(p.assigned[i]) || p.assigned[i] > version))
            .then_some((p.assigned[i], p.value_ids[i])),
        (OpKind::Delete { expected }, Outcome::Unknown) => (version != 0 && version == *expected).then_some(ABSENT),
        // A kind answered by another kind's outcome: never linearizable.
        _ => None,
    }
}

/// Steps from a state whose version is wild: it equals any version `x` no
/// known write explains, and naming it binds it (the state becomes `x`).
fn step_wild(p: &Prepared, i: usize, s: State) -> Option<State> {
    let op = &p.ops[i];
    let free = |x: u64| x != 0 && !p.explained.contains(&x);
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { expected, .. }, Outcome::Cas { success: true, current, new_version }) => {
            (free(*expected) && current == expected).then_some((*new_version, p.value_ids[i]))
        }
        (OpKind::Cas { expected, .. } | OpKind::Delete { expected }, Outcome::Cas { success: false, current, .. })
        | (OpKind::Cas { expected, .. } | OpKind::Delete { expected }, Outcome::Delete { success: false, current }) => {
            (free(*current) && current != expected).then_some((*current, s.1))
        }
        (OpKind::Delete { expected }, Outcome::Delete { success: true, current }) => {
            (free(*expected) && current == expected).then_some(ABSENT)
        }
        (OpKind::Cas { expected, .. }, Outcome::Unknown) => free(*expected).then_some((p.assigned[i], p.value_ids[i])),
        (OpKind::Delete { expected }, Outcome::Unknown) => free(*expected).then_some(ABSENT),
        // Nobody read a wild write's value, so no Get can match it.
        _ => None,
    }
}

/// Outside the search: every successful write's version is unique across all
/// keys, and a key's versions increase in real time.
pub fn check_versions(ops: &[Op]) -> Result<(), Violation> {
    let mut owner: HashMap<u64, &Op> = HashMap::new();
    let mut per_key: BTreeMap<&[u8], Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Outcome::Cas { success: true, new_version, .. } = op.outcome {
            if let Some(other) = owner.insert(new_version, op) {
                let both = [other.clone(), op.clone()];
                return Err(Violation {
                    key: op.key.clone(),
                    reason: format!("version {new_version} was returned by two writes"),
                    excerpt: excerpt(&both, None),
                });
            }
            per_key.entry(&op.key).or_default().push(op);
        }
    }
    for (key, mut writes) in per_key {
        writes.sort_by_key(|o| o.invoke);
        for (i, b) in writes.iter().enumerate() {
            for a in &writes[..i] {
                let (Outcome::Cas { new_version: va, .. }, Outcome::Cas { new_version: vb, .. }) =
                    (&a.outcome, &b.outcome)
                else {
                    continue;
                };
                if a.complete < b.invoke && va >= vb {
                    let pair = [(*a).clone(), (*b).clone()];
                    return Err(Violation {
                        key: key.to_vec(),
                        reason: format!("versions went backwards: {va} then {vb}"),
                        excerpt: excerpt(&pair, None),
                    });
                }
            }
        }
    }
    Ok(())
}
