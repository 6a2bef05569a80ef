//! Password guessing: after `FREE_FAILURES` wrong passwords in a row for one
//! user from one address, that pair must wait before its next attempt
//! (1 s, doubling per further failure, at most `MAX_WAIT`); a right
//! password clears it. Keyed by address too, so an attacker elsewhere cannot
//! lock the user out. Kept per node, in memory.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use tonic::Status;

const FREE_FAILURES: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Pairs tracked at most; past it, those not failing for `MAX_WAIT` go.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct SignInThrottle {
    pairs: Mutex<HashMap<(Option<IpAddr>, String), Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next attempt may come.
    fn next_allowed(&self) -> Instant {
        match self.count.checked_sub(FREE_FAILURES) {
            None => self.last,
            Some(over) => self.last + Duration::from_secs(1u64 << over.min(6)).min(MAX_WAIT),
        }
    }
}

impl SignInThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Option<IpAddr>, String), Failures>> {
        self.pairs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt of `user` from `ip` as a failure until `succeeded`
    /// clears it (so parallel attempts cannot all slip through before the
    /// first fails); RESOURCE_EXHAUSTED if the pair must still wait.
    pub fn attempt(&self, ip: Option<IpAddr>, user: &str, now: Instant) -> Result<(), Status> {
        let mut pairs = self.lock();
        let key = (ip, user.to_string());
        if let Some(f) = pairs.get(&key) {
            let wait = f.next_allowed().saturating_duration_since(now);
            if !wait.is_zero() {
                return Err(Status::resource_exhausted(format!(
                    "too many wrong passwords for user {user:?} from this address: retry in {} s",
                    wait.as_secs() + 1
                )));
            }
        } else if pairs.len() >= MAX_TRACKED {
            // Those no longer waiting, then those not yet held up, make room.
            pairs.retain(|_, f| now.saturating_duration_since(f.last) < MAX_WAIT);
            if pairs.len() >= MAX_TRACKED {
                pairs.retain(|_, f| f.count >= FREE_FAILURES);
            }
            if pairs.len() >= MAX_TRACKED {
                return Err(Status::resource_exhausted("too many failing sign-ins at once; retry shortly"));
            }
        }
        let f = pairs.entry(key).or_insert(Failures { count: 0, last: now });
        f.count = f.count.saturating_add(1);
        f.last = now;
        Ok(())
    }

    pub fn succeeded(&self, ip: Option<IpAddr>, user: &str) {
        self.lock().remove(&(ip, user.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_the_wait_doubles_and_success_clears_it() {
        let (t, t0) = (SignInThrottle::default(), Instant::now());
        let (here, there) = (Some(IpAddr::from([10, 0, 0, 1])), Some(IpAddr::from([10, 0, 0, 2])));
        // Five attempts at once (none answered yet) all count.
        for _ in 0..5 {
            t.attempt(here, "root", t0).unwrap();
        }
        assert!(t.attempt(here, "root", t0).is_err(), "a sixth parallel attempt slipped through");
        // One second after the fifth, one more; then 2 s.
        t.attempt(here, "root", t0 + Duration::from_secs(1)).unwrap();
        let refused = t.attempt(here, "root", t0 + Duration::from_millis(2_500)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry in 1 s"), "{}", refused.message());
        t.attempt(here, "root", t0 + Duration::from_secs(3)).unwrap();
        // Another address, or another user, is not held up.
        t.attempt(there, "root", t0).unwrap();
        t.attempt(here, "alice", t0).unwrap();
        // A right password clears the pair.
        t.succeeded(here, "root");
        t.attempt(here, "root", t0 + Duration::from_secs(3)).unwrap();
    }

    #[test]
    fn the_wait_is_at_most_a_minute_and_the_table_is_bounded() {
        let (t, t0) = (SignInThrottle::default(), Instant::now());
        let here = Some(IpAddr::from([10, 0, 0, 1]));
        let mut at = t0;
        for _ in 0..60 {
            while t.attempt(here, "root", at).is_err() {
                at += Duration::from_secs(1);
            }
        }
        assert!(t.attempt(here, "root", at + MAX_WAIT - Duration::from_secs(1)).is_err());
        t.attempt(here, "root", at + MAX_WAIT).unwrap();
        // Fresh names from one address fill the table only up to its bound.
        for i in 0..MAX_TRACKED + 10 {
            let _ = t.attempt(here, &format!("u{i}"), t0);
        }
        assert!(t.lock().len() <= MAX_TRACKED);
    }
}
