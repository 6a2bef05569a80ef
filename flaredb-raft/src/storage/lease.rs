//! Leases in `sm_meta`: the lease table, and which keys each lease holds.
//!
//! Keys:
//! - `lease/{id}` → TTL in seconds (i64);
//! - `leasek/{id}{encoded cas key}` → empty: the keys attached to a lease;
//! - `keyl/{encoded cas key}` → the lease id a key is attached to.
//!
//! A put with a lease attaches the key (detaching it from any other); a put
//! without one, or a delete, detaches it. Revoking deletes every attached key
//! (each a watch DELETE event at the revoke's revision) and the lease.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
};

use rocksdb::{Direction, IteratorMode, DB};

use super::{
    apply::ApplyBatch,
    db::{be_u64, cf, CF_SM_META},
};
use crate::{error::StoreError, keys, lease::LeaseChange, types::FlareResponse};

const LEASE_PREFIX: &[u8] = b"lease/";
const LEASE_KEYS_PREFIX: &[u8] = b"leasek/";
const KEY_LEASE_PREFIX: &[u8] = b"keyl/";

fn lease_key(id: u64) -> Vec<u8> {
    [LEASE_PREFIX, &id.to_be_bytes()].concat()
}

fn attached_key(id: u64, key: &[u8]) -> Vec<u8> {
    [LEASE_KEYS_PREFIX, &id.to_be_bytes(), key].concat()
}

fn key_lease_key(key: &[u8]) -> Vec<u8> {
    [KEY_LEASE_PREFIX, key].concat()
}

/// What one apply batch has staged for leases, read before RocksDB.
#[derive(Debug)]
pub(super) struct LeaseOverlay {
    /// Lease id → its TTL (granted here) or `None` (revoked here).
    leases: HashMap<u64, Option<i64>>,
    /// Encoded cas key → its lease (0 = none).
    key_lease: HashMap<Vec<u8>, u64>,
    /// `attached_key(id, key)` → attached or not.
    attached: BTreeMap<Vec<u8>, bool>,
    /// For the in-memory table once the batch is written.
    pub changes: Vec<LeaseChange>,
    /// Whether any lease may exist: when none does, no key is attached and
    /// a write skips the lookup of its key's lease.
    live: bool,
}

impl Default for LeaseOverlay {
    fn default() -> Self {
        Self {
            leases: HashMap::new(),
            key_lease: HashMap::new(),
            attached: BTreeMap::new(),
            changes: Vec::new(),
            live: true,
        }
    }
}

impl ApplyBatch<'_> {
    /// Tells the batch that no lease exists as it starts (the node's table is empty).
    pub fn without_leases(mut self) -> Self {
        self.leases.live = false;
        self
    }

    /// Whether lease `id` exists as of this point of the batch.
    pub(super) fn lease_exists(&self, id: u64) -> Result<bool, StoreError> {
        if let Some(staged) = self.leases.leases.get(&id) {
            return Ok(staged.is_some());
        }
        if !self.leases.live {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf(self.db, CF_SM_META)?, lease_key(id))?.is_some())
    }

    /// The lease an encoded cas key is attached to (0 = none).
    fn lease_of(&self, key: &[u8]) -> Result<u64, StoreError> {
        if let Some(&id) = self.leases.key_lease.get(key) {
            return Ok(id);
        }
        if !self.leases.live {
            return Ok(0);
        }
        match self.db.get_pinned_cf(cf(self.db, CF_SM_META)?, key_lease_key(key))? {
            Some(raw) => be_u64("key lease", &raw),
            None => Ok(0),
        }
    }

    /// Attaches an encoded cas key being put to `lease` (0 = none),
    /// detaching it from the lease it had.
    pub(super) fn attach(&mut self, key: &[u8], lease: u64) -> Result<(), StoreError> {
        let old = self.lease_of(key)?;
        if old == lease {
            return Ok(());
        }
        let sm = cf(self.db, CF_SM_META)?;
        if old != 0 {
            let a = attached_key(old, key);
            self.batch.delete_cf(sm, &a);
            self.leases.attached.insert(a, false);
        }
        if lease == 0 {
            self.batch.delete_cf(sm, key_lease_key(key));
        } else {
            self.batch.put_cf(sm, key_lease_key(key), lease.to_be_bytes());
            let a = attached_key(lease, key);
            self.batch.put_cf(sm, &a, []);
            self.leases.attached.insert(a, true);
        }
        self.leases.key_lease.insert(key.to_vec(), lease);
        Ok(())
    }

    pub(super) fn grant_lease(&mut self, index: u64, ttl_secs: i64) -> Result<FlareResponse, StoreError> {
        self.batch.put_cf(cf(self.db, CF_SM_META)?, lease_key(index), ttl_secs.to_be_bytes());
        self.leases.leases.insert(index, Some(ttl_secs));
        self.leases.changes.push(LeaseChange::Granted { id: index, ttl_secs });
        self.leases.live = true;
        Ok(FlareResponse::LeaseGranted { id: index, ttl_secs })
    }

    /// Revokes the leases of `ids` that exist, at log `index`, deleting their keys.
    pub(super) fn revoke_leases(&mut self, index: u64, ids: &[u64]) -> Result<FlareResponse, StoreError> {
        let (mut revoked, mut deleted) = (0, 0);
        for &id in ids {
            if !self.lease_exists(id)? {
                continue;
            }
            for key in self.attached_keys(id)? {
                let prev = self.cas_version(&key)?;
                let ns = keys::decode(&key).and_then(|(ns, _)| self.registry.by_id(ns).cloned());
                match (ns, prev) {
                    (Some(ns), 1..) => {
                        self.stage_cas_delete(&ns, key, index, prev)?;
                        deleted += 1;
                    }
                    // Not there (cannot happen: a delete detaches): drop the index entry.
                    _ => self.attach(&key, 0)?,
                }
            }
            self.batch.delete_cf(cf(self.db, CF_SM_META)?, lease_key(id));
            self.leases.leases.insert(id, None);
            self.leases.changes.push(LeaseChange::Revoked { id });
            revoked += 1;
        }
        Ok(FlareResponse::LeaseRevoked { revoked, deleted })
    }

    /// The encoded cas keys attached to lease `id` as of this point of the batch.
    fn attached_keys(&self, id: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = attached_key(id, &[]);
        let mut found = BTreeMap::new();
        for (k, _) in scan_prefix(self.db, &prefix)? {
            found.insert(k, true);
        }
        let end = attached_key(id.saturating_add(1), &[]);
        for (k, &on) in self.leases.attached.range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Excluded(&end[..])))
        {
            found.insert(k.clone(), on);
        }
        Ok(found.into_iter().filter(|(_, on)| *on).map(|(k, _)| k[prefix.len()..].to_vec()).collect())
    }
}

/// A stored (key, value) pair.
type Pair = (Vec<u8>, Vec<u8>);

/// (key, value) of every `sm_meta` entry under `prefix`.
fn scan_prefix(db: &DB, prefix: &[u8]) -> Result<Vec<Pair>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, CF_SM_META)?, IteratorMode::From(prefix, Direction::Forward)) {
        let (k, v) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// Every lease (id, TTL in seconds), for the in-memory table.
pub fn load_leases(db: &DB) -> Result<Vec<(u64, i64)>, StoreError> {
    scan_prefix(db, LEASE_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            let id = be_u64("lease id", &k[LEASE_PREFIX.len()..])?;
            Ok((id, be_u64("lease ttl", &v)? as i64))
        })
        .collect()
}

/// The (namespace id, user key) pairs attached to lease `id`, in key order.
pub fn lease_keys(db: &DB, id: u64) -> Result<Vec<(keys::NamespaceId, Vec<u8>)>, StoreError> {
    let prefix = attached_key(id, &[]);
    scan_prefix(db, &prefix)?
        .into_iter()
        .map(|(k, _)| {
            let (ns, key) =
                keys::decode(&k[prefix.len()..]).ok_or_else(|| StoreError::corrupt("lease key", "too short"))?;
            Ok((ns, key.to_vec()))
        })
        .collect()
}
