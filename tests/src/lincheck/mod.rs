//! Linearizability checking of recorded histories, per key (P-compositionality),
//! with the Wing–Gong search and Lowe's memoisation (as Porcupine and Knossos
//! do), modelling each key as a versioned register.
//!
//! Operations whose outcome is not known (`Outcome::Unknown`) return at
//! +infinity and may or may not have taken effect; what they may have done is
//! bounded by what the service guarantees of versions (`model`, `versions`).

mod model;
mod search;
#[cfg(test)]
mod tests;
mod versions;

use std::{collections::BTreeMap, fmt};

pub use model::OpKind;

/// What an operation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Cas {
        success: bool,
        current: u64,
        new_version: u64,
    },
    Get {
        found: bool,
        value: Vec<u8>,
        version: u64,
    },
    Delete {
        success: bool,
        current: u64,
    },
    /// May or may not have taken effect; the text says why it is not known.
    Unknown(String),
    /// Certainly had no effect (the server said it was not applied, or a failed read).
    Failed,
}

impl Outcome {
    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown(_))
    }
}

/// One recorded operation; times are nanoseconds since the run's epoch.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: usize,
    pub key: Vec<u8>,
    pub kind: OpKind,
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    pub keys: usize,
    pub ops: usize,
    /// Search states visited by the largest per-key search.
    pub max_states: usize,
}

/// Why a history is not linearizable, with the ops to look at.
#[derive(Debug, Clone)]
pub struct Violation {
    pub key: Vec<u8>,
    pub reason: String,
    pub excerpt: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?}: {}", String::from_utf8_lossy(&self.key), self.reason)?;
        write!(f, "{}", self.excerpt)
    }
}

pub fn format_op(op: &Op) -> String {
    let done =
        if op.complete == u64::MAX { "   +inf".to_string() } else { format!("{:>7.1}", op.complete as f64 / 1e6) };
    let kind = match &op.kind {
        OpKind::Cas { expected, value } => format!("cas(expect={expected}, value={})", String::from_utf8_lossy(value)),
        OpKind::Get => "get".to_string(),
        OpKind::Delete { expected } => format!("delete(expect={expected})"),
    };
    let client = if op.client == usize::MAX { "final".to_string() } else { format!("c{}", op.client) };
    format!("  [{:>7.1} ms .. {done} ms] {client:>5} {kind} -> {:?}", op.invoke as f64 / 1e6, op.outcome)
}

/// Ops of `key` overlapping or just before the one that could not be placed.
fn excerpt(ops: &[Op], culprit: Option<usize>) -> String {
    let mut sorted: Vec<&Op> = ops.iter().collect();
    sorted.sort_by_key(|o| o.invoke);
    let (lo, hi) = match culprit.map(|i| &ops[i]) {
        Some(c) => (c.invoke.saturating_sub(500_000_000), c.complete),
        None => (0, u64::MAX),
    };
    let mut lines: Vec<String> =
        sorted.iter().filter(|o| o.complete >= lo && o.invoke <= hi).map(|o| format_op(o)).take(60).collect();
    if let Some(c) = culprit {
        lines.push(format!("could not be linearized:\n{}", format_op(&ops[c])));
    }
    lines.join("\n")
}

/// Checks the whole history; the first violation found is returned.
pub fn check(history: &[Op]) -> Result<CheckStats, Violation> {
    let ops: Vec<Op> = history.iter().filter(|o| o.outcome != Outcome::Failed).cloned().collect();
    let bounds = versions::Bounds::new(&ops);
    let mentions = versions::Mentions::new(&ops);
    versions::check_versions(&ops, &bounds)?;
    let mut by_key: BTreeMap<Vec<u8>, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.clone()).or_default().push(op);
    }
    let mut stats = CheckStats { keys: by_key.len(), ..CheckStats::default() };
    for (key, ops) in by_key {
        let prepared = model::prepare(&key, ops, &bounds, &mentions)?;
        stats.ops += prepared.ops.len();
        match search::linearize(&prepared) {
            Ok(states) => stats.max_states = stats.max_states.max(states),
            Err(failure) => {
                return Err(Violation { key, reason: failure.reason, excerpt: excerpt(&prepared.ops, failure.culprit) })
            }
        }
    }
    Ok(stats)
}
