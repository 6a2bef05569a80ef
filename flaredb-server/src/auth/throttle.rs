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

    /// RESOURCE_EXHAUSTED if `user` from `ip` must still wait.
    pub fn admit(&self, ip: Option<IpAddr>, user: &str, now: Instant) -> Result<(), Status> {
        let Some(f) = self.lock().get(&(ip, user.to_string())).copied() else { return Ok(()) };
        let wait = f.next_allowed().saturating_duration_since(now);
        if wait.is_zero() {
            return Ok(());
        }
        Err(Status::resource_exhausted(format!(
            "too many wrong passwords for user {user:?} from this address: retry in {} s",
            wait.as_secs() + 1
        )))
    }

    pub fn failed(&self, ip: Option<IpAddr>, user: &str, now: Instant) {
        let mut pairs = self.lock();
        if pairs.len() >= MAX_TRACKED {
            pairs.retain(|_, f| now.saturating_duration_since(f.last) < MAX_WAIT);
        }
        let f = pairs.entry((ip, user.to_string())).or_insert(Failures { count: 0, last: now });
        f.count = f.count.saturating_add(1);
        f.last = now;
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
        for _ in 0..5 {
            t.admit(here, "root", t0).unwrap();
            t.failed(here, "root", t0);
        }
        // The sixth failure makes the next attempt wait 2 s (1 s after the fifth).
        t.admit(here, "root", t0 + Duration::from_secs(1)).unwrap();
        t.failed(here, "root", t0 + Duration::from_secs(1));
        let refused = t.admit(here, "root", t0 + Duration::from_millis(2_500)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry in 1 s"), "{}", refused.message());
        t.admit(here, "root", t0 + Duration::from_secs(3)).unwrap();
        // Another address, or another user, is not held up.
        t.admit(there, "root", t0).unwrap();
        t.admit(here, "alice", t0).unwrap();
        // Many failures wait at most a minute.
        for _ in 0..50 {
            t.failed(here, "root", t0);
        }
        assert!(t.admit(here, "root", t0 + MAX_WAIT - Duration::from_secs(1)).is_err());
        t.admit(here, "root", t0 + MAX_WAIT).unwrap();
        t.succeeded(here, "root");
        t.admit(here, "root", t0).unwrap();
    }
}
