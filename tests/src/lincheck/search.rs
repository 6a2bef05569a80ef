//! The Wing–Gong search with Lowe's memoisation over one key's events.
//!
//! Events (calls and returns) sit in a doubly linked list ordered by time.
//! Walking it, a call whose op can be applied to the current state is
//! "lifted" (its call and return leave the list) unless that (set of
//! linearized ops, state) was already explored; reaching a return means that
//! op could not be placed before it, so the last choice is undone.

use std::collections::HashSet;

use super::model::{step, Prepared, State, ABSENT};

/// Explored states before giving up; callers keep histories small.
const STATE_LIMIT: usize = 3_000_000;
const NIL: usize = usize::MAX;

pub struct Failure {
    pub reason: String,
    /// The op that could not be linearized at the deepest point reached.
    pub culprit: Option<usize>,
}

struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    fn remove(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != NIL {
            self.prev[x] = p;
        }
    }

    fn restore(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != NIL {
            self.prev[x] = n;
        }
    }
}

/// Returns the number of states explored, or why no linearization exists.
pub fn linearize(p: &Prepared) -> Result<usize, Failure> {
    let n = p.ops.len();
    // (time, is_return, op); calls sort before returns at the same instant.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in p.ops.iter().enumerate() {
        let ret = if op.outcome.is_unknown() { u64::MAX } else { op.complete };
        events.push((op.invoke, false, i));
        events.push((ret, true, i));
    }
    events.sort();
    // Node 0 is the head; node k + 1 holds events[k].
    let m = events.len() + 1;
    let mut list = List {
        next: (1..=m).map(|k| if k == m { NIL } else { k }).collect(),
        prev: (0..m).map(|k| k.saturating_sub(1)).collect(),
    };
    let mut return_node = vec![0; n];
    for (k, e) in events.iter().enumerate() {
        if e.1 {
            return_node[e.2] = k + 1;
        }
    }
    let known = p.ops.iter().filter(|o| !o.outcome.is_unknown()).count();
    let words = n.div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut done_known = 0;
    let mut state: State = ABSENT;
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let (mut deepest, mut culprit) = (0usize, None);
    let mut cur = list.next[0];
    loop {
        if done_known == known {
            return Ok(cache.len());
        }
        if cache.len() > STATE_LIMIT {
            return Err(Failure { reason: format!("search limit exceeded ({STATE_LIMIT} states)"), culprit });
        }
        let at_return = cur == NIL || events[cur - 1].1;
        if !at_return {
            let op = events[cur - 1].2;
            if let Some(next_state) = step(p, op, state) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((cur, state));
                    state = next_state;
                    if !p.ops[op].outcome.is_unknown() {
                        done_known += 1;
                    }
                    list.remove(cur);
                    list.remove(return_node[op]);
                    cur = list.next[0];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            cur = list.next[cur];
            continue;
        }
        if cur != NIL && stack.len() >= deepest {
            deepest = stack.len();
            culprit = Some(events[cur - 1].2);
        }
        let Some((call, prev_state)) = stack.pop() else {
            return Err(Failure { reason: "no linearization exists".into(), culprit });
        };
        let op = events[call - 1].2;
        linearized[op / 64] &= !(1 << (op % 64));
        if !p.ops[op].outcome.is_unknown() {
            done_known -= 1;
        }
        state = prev_state;
        list.restore(return_node[op]);
        list.restore(call);
        cur = list.next[call];
    }
}
