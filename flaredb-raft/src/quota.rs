//! Per-namespace usage (live keys, and bytes of user keys plus values) and
//! quotas on it. Usage is counted where writes are applied, so every replica
//! holds the same figures; a write that would take a namespace past its
//! quota is refused there, deterministically, and other namespaces go on
//! writing (unlike etcd's one cluster-wide NOSPACE alarm). Deletes are never
//! refused, and a quota set below the current usage stops only growth.

use crate::error::StoreError;

/// One namespace's usage and quota (0 = no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsUsage {
    pub keys: u64,
    pub bytes: u64,
    pub max_keys: u64,
    pub max_bytes: u64,
}

/// A write refused by a quota: which limit, and where it would have gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub namespace: String,
    /// "keys" or "bytes".
    pub what: &'static str,
    pub limit: u64,
    /// The usage the write would have left.
    pub would_be: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "namespace {:?} is at its quota of {} {} (max_{} = {}; this write would make {}): delete some, or \
             raise it with Admin/SetNamespaceQuota",
            self.namespace, self.limit, self.what, self.what, self.limit, self.would_be
        )
    }
}

impl NsUsage {
    /// Whether growing by `keys` and `bytes` (either may be negative) stays
    /// within the quota. A change that does not grow a figure is always allowed.
    pub fn admits(&self, namespace: &str, keys: i64, bytes: i64) -> Result<(), QuotaExceeded> {
        let check = |what, used: u64, delta: i64, limit: u64| {
            let would_be = used.saturating_add_signed(delta);
            if limit != 0 && delta > 0 && would_be > limit {
                return Err(QuotaExceeded { namespace: namespace.to_string(), what, limit, would_be });
            }
            Ok(())
        };
        check("keys", self.keys, keys, self.max_keys)?;
        check("bytes", self.bytes, bytes, self.max_bytes)
    }

    /// Counts a change (never below zero).
    pub fn add(&mut self, keys: i64, bytes: i64) {
        self.keys = self.keys.saturating_add_signed(keys);
        self.bytes = self.bytes.saturating_add_signed(bytes);
    }

    pub fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, v) in [self.keys, self.bytes, self.max_keys, self.max_bytes].into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        if raw.len() != 32 {
            return Err(StoreError::corrupt("namespace usage record", raw.len()));
        }
        let at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Self { keys: at(0), bytes: at(1), max_keys: at(2), max_bytes: at(3) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growth_past_a_set_limit_is_refused() {
        let u = NsUsage { keys: 10, bytes: 100, max_keys: 10, max_bytes: 0 };
        let e = u.admits("a", 1, 5).unwrap_err();
        assert_eq!((e.what, e.limit, e.would_be), ("keys", 10, 11));
        assert!(e.to_string().contains("namespace \"a\"") && e.to_string().contains("max_keys = 10"));
        assert!(u.admits("a", 0, 1_000_000).is_ok(), "no byte limit; an overwrite adds no key");
        assert!(u.admits("a", -1, -50).is_ok());
        let over = NsUsage { keys: 20, bytes: 100, max_keys: 10, max_bytes: 120 };
        assert!(over.admits("a", 0, -10).is_ok(), "shrinking is allowed above a lowered quota");
        assert_eq!(over.admits("a", 0, 21).unwrap_err().what, "bytes");
        assert!(NsUsage::default().admits("a", 1 << 40, 1 << 60).is_ok());
    }

    #[test]
    fn counts_never_go_below_zero_and_the_record_round_trips() {
        let mut u = NsUsage { keys: 1, bytes: 3, max_keys: 7, max_bytes: 9 };
        u.add(-5, -5);
        assert_eq!((u.keys, u.bytes), (0, 0));
        u.add(2, 40);
        assert_eq!(NsUsage::decode(&u.encode()).unwrap(), u);
        assert!(NsUsage::decode(&[0; 31]).is_err());
    }
}
