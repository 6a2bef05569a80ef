//! Leases in `sm_meta`: the lease table, and which keys each lease holds.
//!
//! Keys:
//! - `lease/{id}` → TTL in seconds (i64), then the granting user's name
//!   (none when auth was off);
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
    /// Lease id → its owner (granted here) or `None` (revoked here).
    leases: HashMap<u64, Option<String>>,
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
        Ok(self.lease_owner(id)?.is_some())
    }

    /// Who granted lease `id` (`Some("")` when auth was off), or `None` if
    /// it does not exist as of this point of the batch.
    fn lease_owner(&self, id: u64) -> Result<Option<String>, StoreError> {
        if let Some(staged) = self.leases.leases.get(&id) {
            return Ok(staged.clone());
        }
        if !self.leases.live {
            return Ok(None);
        }
        match self.db.get_pinned_cf(cf(self.db, CF_SM_META)?, lease_key(id))? {
            Some(raw) => Ok(Some(decode_lease(&raw)?.1)),
            None => Ok(None),
        }
    }

    /// Whether the command's user may use lease `id` (attach keys to it or
    /// revoke it): its owner or a cluster admin, or anyone when auth was
    /// off for either. A lease that does not exist passes (the caller
    /// answers "not found").
    pub(super) fn may_use_lease(&self, id: u64) -> Result<bool, StoreError> {
        Ok(match self.lease_owner(id)? {
            Some(owner) => self.auth.may_act_for(&owner, &self.user),
            None => true,
        })
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
        let owner = self.auth.identity(&self.user);
        let value = [&ttl_secs.to_be_bytes()[..], owner.as_bytes()].concat();
        self.batch.put_cf(cf(self.db, CF_SM_META)?, lease_key(index), value);
        self.leases.changes.push(LeaseChange::Granted { id: index, ttl_secs, owner: owner.as_str().into() });
        self.leases.leases.insert(index, Some(owner));
        self.leases.live = true;
        Ok(FlareResponse::LeaseGranted { id: index, ttl_secs })
    }

    /// Revokes the leases of `ids` that exist, at log `index`, deleting their
    /// keys. A client's revoke (not `expired`) must come from the owner.
    pub(super) fn revoke_leases(
        &mut self,
        index: u64,
        ids: &[u64],
        expired: bool,
    ) -> Result<FlareResponse, StoreError> {
        for &id in ids.iter().filter(|_| !expired) {
            if !self.may_use_lease(id)? {
                return Ok(FlareResponse::LeaseNotOwned { id });
            }
        }
        let (mut revoked, mut deleted) = (0, 0);
        for &id in ids {
            if !self.lease_exists(id)? {
                continue;
            }
            for key in self.attached_keys(id)? {
                let prev = self.cas_head(&key)?;
                let ns = keys::decode(&key).and_then(|(ns, _)| self.registry.by_id(ns).cloned());
                match (ns, prev.version) {
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

/// (TTL in seconds, owner) of a stored lease.
fn decode_lease(raw: &[u8]) -> Result<(i64, String), StoreError> {
    let ttl = be_u64("lease ttl", raw.get(..8).unwrap_or(raw))? as i64;
    let owner = std::str::from_utf8(&raw[8..]).map_err(|e| StoreError::corrupt("lease owner", e))?;
    Ok((ttl, owner.to_owned()))
}

/// Every lease (id, TTL in seconds, owner), for the in-memory table.
pub fn load_leases(db: &DB) -> Result<Vec<(u64, i64, String)>, StoreError> {
    scan_prefix(db, LEASE_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            let id = be_u64("lease id", &k[LEASE_PREFIX.len()..])?;
            let (ttl, owner) = decode_lease(&v)?;
            Ok((id, ttl, owner))
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
