//! The lease table every node keeps in memory: each live lease's TTL and
//! deadline. Grants and revokes come from apply; deadlines matter only on the
//! leader, where keep-alives move them and expiry is decided
//! (`node/lease.rs`). A new leader restarts every deadline at now + TTL, so a
//! failover never expires a lease early.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// TTLs shorter than this are raised to it: a lease must outlive a leader
/// change's keep-alive gap.
pub const MIN_TTL_SECS: i64 = 2;
/// Ten years: a longer TTL is a mistake, not a lease.
pub const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 3600;

/// A change of the lease table made by an applied entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// `owner`: the user who granted it (empty when auth was off).
    Granted {
        id: u64,
        ttl_secs: i64,
        owner: Arc<str>,
    },
    Revoked {
        id: u64,
    },
}

#[derive(Debug, Clone)]
struct Lease {
    ttl: Duration,
    ttl_secs: i64,
    deadline: Instant,
    owner: Arc<str>,
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<u64, Lease>,
    by_deadline: BTreeSet<(Instant, u64)>,
    /// Proposed for expiry, not applied yet: not renewed, not proposed again.
    expiring: BTreeSet<u64>,
    /// The term this node leads in, once its deadlines were restarted for it.
    led_term: Option<u64>,
}

impl Inner {
    fn set_deadline(&mut self, id: u64, deadline: Instant) {
        if let Some(l) = self.leases.get_mut(&id) {
            self.by_deadline.remove(&(l.deadline, id));
            l.deadline = deadline;
            self.by_deadline.insert((deadline, id));
        }
    }

    fn insert(&mut self, id: u64, ttl_secs: i64, owner: Arc<str>, now: Instant) {
        let ttl = ttl_of(ttl_secs);
        if let Some(old) = self.leases.insert(id, Lease { ttl, ttl_secs, deadline: now + ttl, owner }) {
            self.by_deadline.remove(&(old.deadline, id));
        }
        self.by_deadline.insert((now + ttl, id));
    }

    fn remove(&mut self, id: u64) {
        if let Some(l) = self.leases.remove(&id) {
            self.by_deadline.remove(&(l.deadline, id));
        }
        self.expiring.remove(&id);
    }
}

fn ttl_of(secs: i64) -> Duration {
    Duration::from_secs(secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS) as u64)
}

#[derive(Debug, Default)]
pub struct LeaseTable {
    inner: Mutex<Inner>,
}

/// A keep-alive refused: the lease is another user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwned;

/// What the leader knows of one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub ttl_secs: i64,
    /// Time left before the leader expires it (zero once proposed for expiry).
    pub remaining: Duration,
    /// Who granted it (empty when auth was off).
    pub owner: Arc<str>,
}

impl LeaseTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the table with `leases` (id, TTL, owner), every deadline at
    /// now + TTL (at open and after a snapshot install).
    pub fn load(&self, leases: impl IntoIterator<Item = (u64, i64, String)>, now: Instant) {
        let mut inner = Inner { led_term: self.lock().led_term, ..Inner::default() };
        for (id, ttl_secs, owner) in leases {
            inner.insert(id, ttl_secs, owner.into(), now);
        }
        *self.lock() = inner;
    }

    pub fn apply(&self, changes: &[LeaseChange], now: Instant) {
        if changes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for c in changes {
            match c {
                LeaseChange::Granted { id, ttl_secs, owner } => inner.insert(*id, *ttl_secs, owner.clone(), now),
                LeaseChange::Revoked { id } => inner.remove(*id),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().leases.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().leases.len()
    }

    /// Renews `id` to its full TTL if `may` accepts its owner, in one step
    /// (no grant can slip in between a check and the renewal); its TTL in
    /// seconds, `Ok(None)` if it does not exist or is being expired,
    /// `Err(NotOwned)` if `may` refused.
    pub fn keep_alive(&self, id: u64, now: Instant, may: impl Fn(&str) -> bool) -> Result<Option<i64>, NotOwned> {
        let mut inner = self.lock();
        if inner.expiring.contains(&id) {
            return Ok(None);
        }
        let Some(l) = inner.leases.get(&id) else { return Ok(None) };
        if !may(&l.owner) {
            return Err(NotOwned);
        }
        let (ttl, ttl_secs) = (l.ttl, l.ttl_secs);
        inner.set_deadline(id, now + ttl);
        Ok(Some(ttl_secs))
    }

    /// Who granted lease `id`, if this node has it.
    pub fn owner(&self, id: u64) -> Option<Arc<str>> {
        self.lock().leases.get(&id).map(|l| l.owner.clone())
    }

    pub fn get(&self, id: u64, now: Instant) -> Option<LeaseInfo> {
        let inner = self.lock();
        let l = inner.leases.get(&id)?;
        let remaining =
            if inner.expiring.contains(&id) { Duration::ZERO } else { l.deadline.saturating_duration_since(now) };
        Some(LeaseInfo { ttl_secs: l.ttl_secs, remaining, owner: l.owner.clone() })
    }

    /// This node leads in `term`: the first call for a term restarts every
    /// deadline at now + TTL with nothing in expiry, before the leader
    /// expires or answers anything. Whoever notices the term first does it.
    pub fn lead(&self, term: u64, now: Instant) {
        let mut inner = self.lock();
        if inner.led_term == Some(term) {
            return;
        }
        inner.led_term = Some(term);
        let ids: Vec<u64> = inner.leases.keys().copied().collect();
        for id in ids {
            let ttl = inner.leases[&id].ttl;
            inner.set_deadline(id, now + ttl);
        }
        inner.expiring.clear();
    }

    /// This node does not lead (any more): a next term restarts deadlines again.
    pub fn follow(&self) {
        self.lock().led_term = None;
    }

    /// Up to `max` leases whose deadline passed, marked as being expired.
    pub fn take_expired(&self, now: Instant, max: usize) -> Vec<u64> {
        let mut inner = self.lock();
        let due: Vec<(Instant, u64)> = inner
            .by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now)
            .filter(|(_, id)| !inner.expiring.contains(id))
            .take(max)
            .copied()
            .collect();
        due.into_iter()
            .map(|(_, id)| {
                inner.expiring.insert(id);
                id
            })
            .collect()
    }

    /// Leases whose expiry could not be proposed: they are renewed once more
    /// (the next leader, or this one next time, decides again).
    pub fn release(&self, ids: &[u64], now: Instant) {
        let mut inner = self.lock();
        for id in ids {
            if inner.expiring.remove(id) {
                if let Some(ttl) = inner.leases.get(id).map(|l| l.ttl) {
                    inner.set_deadline(*id, now + ttl);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    fn granted(id: u64, ttl_secs: i64) -> LeaseChange {
        LeaseChange::Granted { id, ttl_secs, owner: "".into() }
    }

    #[test]
    fn expires_only_past_the_deadline_and_keep_alive_renews() {
        let (t, base) = (LeaseTable::default(), Instant::now());
        t.apply(&[granted(5, 10), granted(6, 3)], base);
        assert!(t.take_expired(at(base, 2), 10).is_empty());
        assert_eq!(t.take_expired(at(base, 3), 10), [6]);
        // Proposed for expiry: neither renewed nor proposed again.
        assert_eq!(t.keep_alive(6, at(base, 3), |_| true), Ok(None));
        assert!(t.take_expired(at(base, 4), 10).is_empty());
        assert_eq!(t.keep_alive(5, at(base, 9), |_| false), Err(NotOwned));
        assert_eq!(t.keep_alive(5, at(base, 9), |_| true), Ok(Some(10)));
        assert!(t.take_expired(at(base, 18), 10).is_empty());
        assert_eq!(t.take_expired(at(base, 19), 10), [5]);
        t.apply(&[LeaseChange::Revoked { id: 5 }, LeaseChange::Revoked { id: 6 }], at(base, 19));
        assert!(t.is_empty());
    }

    #[test]
    fn a_new_leader_restarts_every_deadline() {
        let (t, base) = (LeaseTable::default(), Instant::now());
        t.load([(1, 5, String::new()), (2, 60, "alice".into())], base);
        assert_eq!(t.owner(2).as_deref(), Some("alice"));
        assert_eq!(t.owner(3), None);
        assert_eq!(t.take_expired(at(base, 5), 10), [1]);
        t.lead(7, at(base, 5));
        assert_eq!(t.get(1, at(base, 5)).map(|l| l.remaining), Some(Duration::from_secs(5)));
        assert!(t.take_expired(at(base, 9), 10).is_empty());
        // The same term again changes nothing; a later term restarts again.
        t.lead(7, at(base, 9));
        assert_eq!(t.take_expired(at(base, 10), 10), [1]);
        t.follow();
        t.lead(9, at(base, 10));
        assert_eq!(t.get(1, at(base, 10)).map(|l| l.remaining), Some(Duration::from_secs(5)));
    }

    #[test]
    fn ttls_are_clamped_and_a_failed_expiry_is_released() {
        let (t, base) = (LeaseTable::default(), Instant::now());
        t.apply(&[granted(1, 0)], base);
        assert_eq!(t.take_expired(at(base, MIN_TTL_SECS as u64), 10), [1]);
        t.release(&[1], at(base, 2));
        assert_eq!(t.get(1, at(base, 2)).map(|l| l.remaining), Some(Duration::from_secs(2)));
        assert_eq!(t.take_expired(at(base, 3), 1).len(), 0);
        assert_eq!(t.len(), 1);
    }
}
