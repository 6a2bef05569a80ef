//! `Ledger`: the object-storage control-plane contract that a ledger on
//! conditional puts relies on: create-only and version-conditional puts (the
//! version plays the etag's part), reads with versions, listing and
//! delete-by-prefix, content-addressed immutable puts that are idempotent,
//! and an exclusive lock with a holder id, a TTL that breaks it when the
//! holder dies, and `force_unlock`.
//!
//! Keys are used as given, in the client's namespace; locks live under
//! `{lock_prefix}` (`/locks/` by default) as `{"holder","lease"}` records
//! attached to the holder's lease.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ClientError, Lease, RdbClient, TxnOp, TxnOpResult, Versioned, VersionedKv};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// A conditional put lost: the key is at `current` (0 = absent). Re-read and decide.
    #[error("{key:?} is at version {current}, not {expected}")]
    Conflict { key: String, expected: u64, current: u64 },
    /// The lock is held by someone else.
    #[error("lock {name:?} is held by {holder:?}")]
    Locked { name: String, holder: String },
    #[error("lock {name:?} is not held by {holder:?}")]
    NotHolder { name: String, holder: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

#[derive(Clone)]
pub struct Ledger {
    client: RdbClient,
    lock_prefix: String,
}

/// A held ledger lock; [`LedgerLock::unlock`] frees it, dropping it lets it
/// break after its TTL.
pub struct LedgerLock {
    name: String,
    holder: String,
    lease: Lease,
}

#[derive(Serialize, Deserialize)]
struct LockRecord {
    holder: String,
    lease: u64,
}

impl Ledger {
    pub fn new(client: RdbClient) -> Self {
        Self { client, lock_prefix: "/locks/".into() }
    }

    /// Keeps locks under `prefix` instead of `/locks/`.
    pub fn with_lock_prefix(mut self, prefix: &str) -> Self {
        self.lock_prefix = prefix.into();
        self
    }

    fn conflict(key: &str, expected: u64, current: u64) -> LedgerError {
        LedgerError::Conflict { key: key.into(), expected, current }
    }

    /// Writes `key` only if absent; its version.
    pub async fn put_if_absent(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64, LedgerError> {
        self.put_if_version(key, value, 0).await
    }

    /// Writes `key` only if it is at `version` (0 = absent); the new version.
    pub async fn put_if_version(&self, key: &str, value: impl AsRef<[u8]>, version: u64) -> Result<u64, LedgerError> {
        let r = self.client.cas_put(key, value.as_ref(), version).await?;
        match r.success {
            true => Ok(r.new_version),
            false => Err(Self::conflict(key, version, r.current_version)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, LedgerError> {
        Ok(self.client.cas_get(key).await?)
    }

    /// Every key under `prefix`, in key order, with values and versions.
    pub async fn list(&self, prefix: &str) -> Result<Vec<VersionedKv>, LedgerError> {
        Ok(self.client.scan_prefix(prefix).await?)
    }

    /// Deletes every key under `prefix` atomically; how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, LedgerError> {
        let r = self.client.txn().and_then([TxnOp::delete_prefix(prefix)]).commit().await?;
        Ok(match r.results.first() {
            Some(TxnOpResult::Delete { deleted }) => *deleted,
            _ => 0,
        })
    }

    /// Stores `content` immutably under `{prefix}{sha256 hex}`; the key and
    /// its version. Putting the same content again is a no-op that answers
    /// the same key and version.
    pub async fn put_content(&self, prefix: &str, content: impl AsRef<[u8]>) -> Result<(String, u64), LedgerError> {
        let content = content.as_ref();
        let key = format!("{prefix}{:x}", Sha256::digest(content));
        match self.put_if_absent(&key, content).await {
            Ok(v) => Ok((key, v)),
            Err(LedgerError::Conflict { current, .. }) => match self.get(&key).await? {
                // The same content (the hash says so; the bytes confirm it).
                Some(v) if v.value == content => Ok((key, v.version)),
                Some(_) => Err(Self::conflict(&key, 0, current)),
                // Deleted in between: try again.
                None => Box::pin(self.put_content(prefix, content)).await,
            },
            Err(e) => Err(e),
        }
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}{name}", self.lock_prefix)
    }

    /// Takes lock `name` for `holder` if free, for `ttl_secs` kept alive
    /// while the returned guard lives; `Locked` names who holds it.
    pub async fn try_lock(&self, name: &str, holder: &str, ttl_secs: i64) -> Result<LedgerLock, LedgerError> {
        let lease = self.client.lease(ttl_secs).await?;
        let record = serde_json::to_vec(&LockRecord { holder: holder.into(), lease: lease.id() })
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let key = self.lock_key(name);
        let r = self.client.cas_put_with_lease(key.as_str(), record, 0, lease.id()).await?;
        if r.success {
            return Ok(LedgerLock { name: name.into(), holder: holder.into(), lease });
        }
        lease.revoke().await?;
        let holder = self.holder(name).await?.map_or_else(|| "(just released)".into(), |(h, _)| h.holder);
        Err(LedgerError::Locked { name: name.into(), holder })
    }

    async fn holder(&self, name: &str) -> Result<Option<(LockRecord, u64)>, LedgerError> {
        let Some(v) = self.client.cas_get(self.lock_key(name)).await? else { return Ok(None) };
        let rec = serde_json::from_slice(&v.value)
            .map_err(|e| ClientError::InvalidArgument(format!("lock {name:?} holds no lock record: {e}")))?;
        Ok(Some((rec, v.version)))
    }

    /// Who holds lock `name`, if anyone.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>, LedgerError> {
        Ok(self.holder(name).await?.map(|(r, _)| r.holder))
    }

    /// Breaks lock `name` if `holder` holds it (an operator's escape hatch
    /// for a holder that is stuck but alive); `NotHolder` otherwise.
    pub async fn force_unlock(&self, name: &str, holder: &str) -> Result<(), LedgerError> {
        let not_holder = || LedgerError::NotHolder { name: name.into(), holder: holder.into() };
        let Some((rec, version)) = self.holder(name).await? else { return Err(not_holder()) };
        if rec.holder != holder {
            return Err(not_holder());
        }
        // Revoking the holder's lease deletes the lock key with it; the
        // version check first makes sure it is still that holder's.
        let r = self.client.cas_delete(self.lock_key(name), version).await?;
        if !r.success {
            return Err(not_holder());
        }
        self.client.lease_revoke(rec.lease).await?;
        Ok(())
    }
}

impl LedgerLock {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Resolves if the lock breaks under its holder (lease lost), with why.
    pub async fn lost(&self) -> String {
        self.lease.lost().await
    }

    /// Frees the lock now.
    pub async fn unlock(self) -> Result<(), LedgerError> {
        self.lease.revoke().await?;
        Ok(())
    }
}
