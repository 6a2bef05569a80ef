//! A distributed lock and leader election on leases.
//!
//! Acquiring is a create-only compare-and-swap (expected version 0) of the
//! lock's key, attached to a lease the holder keeps alive: when the holder
//! dies its lease expires and the key is deleted, so the lock frees itself.
//! The key's version when acquired is the holder's **fencing token**: it
//! only grows, so a resource that remembers the highest token it has seen
//! can refuse a write from a holder whose lock has since passed on.
//!
//! A waiter watches the key and tries again when it is deleted. Election is
//! the same lock, with the candidate's value as the key's value.

use bytes::Bytes;
use futures::StreamExt;

use crate::IntoBytes;
use crate::{lease::Lease, watch::WatchEventKind, ClientError, RdbClient, Versioned};

/// A held lock. Dropping it stops the keep-alive (the lock then frees itself
/// within the TTL); [`LockGuard::release`] frees it at once.
pub struct LockGuard {
    client: RdbClient,
    key: Bytes,
    token: u64,
    /// The key's version as this holder last wrote it.
    version: u64,
    lease: Lease,
}

impl LockGuard {
    /// The key's version when acquired: grows with every new holder.
    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Resolves when the lock's lease is lost (the holder must stop acting
    /// as holder), with why.
    pub async fn lost(&self) -> String {
        self.lease.lost().await
    }

    /// Changes the value stored under the lock's key (an elected leader
    /// proclaiming a new value), keeping the lease; the new version.
    /// A compare on the version this holder wrote: if the key was deleted
    /// and taken by another holder meanwhile, it is not overwritten.
    pub async fn proclaim(&mut self, value: impl IntoBytes) -> Result<u64, ClientError> {
        if !self.lease.is_alive() {
            return Err(ClientError::LockLost(format!("the lease of {:?} was lost", self.key)));
        }
        let r = self.client.cas_put_with_lease(self.key.clone(), value, self.version, self.lease.id()).await?;
        if !r.success {
            return Err(ClientError::LockLost(format!("{:?} changed hands", self.key)));
        }
        self.version = r.new_version;
        Ok(r.new_version)
    }

    /// Frees the lock now: revokes its lease, which deletes the key.
    pub async fn release(self) -> Result<(), ClientError> {
        self.lease.revoke().await.map(|_| ())
    }
}

impl RdbClient {
    /// Waits until it holds lock `name` (a key in this client's namespace),
    /// holding it with a lease of `ttl_secs`; `value` is stored under the key
    /// (e.g. the holder's name).
    pub async fn lock(
        &self,
        name: impl IntoBytes,
        value: impl IntoBytes,
        ttl_secs: i64,
    ) -> Result<LockGuard, ClientError> {
        let (key, value) = (name.into_bytes(), value.into_bytes());
        let lease = self.lease(ttl_secs).await?;
        loop {
            if let Some(guard) = self.try_with(&key, &value, &lease).await? {
                return Ok(guard);
            }
            // A watch on a node cut off from the cluster hears nothing; the
            // key is looked at again (linearizably) at least once per TTL.
            let recheck = std::time::Duration::from_secs(ttl_secs.max(1) as u64);
            if let Ok(waited) = tokio::time::timeout(recheck, self.wait_deleted(&key)).await {
                waited?;
            }
        }
    }

    /// Takes lock `name` if it is free; `None` if someone holds it.
    pub async fn try_lock(
        &self,
        name: impl IntoBytes,
        value: impl IntoBytes,
        ttl_secs: i64,
    ) -> Result<Option<LockGuard>, ClientError> {
        let (key, value) = (name.into_bytes(), value.into_bytes());
        let lease = self.lease(ttl_secs).await?;
        let got = self.try_with(&key, &value, &lease).await?;
        if got.is_none() {
            lease.revoke().await?;
        }
        Ok(got)
    }

    /// Campaigns in election `name` with `value`: resolves once elected.
    /// The elected leader is whoever holds the lock; observers read it with
    /// [`RdbClient::election_leader`] or watch the key.
    pub async fn campaign(
        &self,
        name: impl IntoBytes,
        value: impl IntoBytes,
        ttl_secs: i64,
    ) -> Result<LockGuard, ClientError> {
        self.lock(name, value, ttl_secs).await
    }

    /// The current leader of election `name`: its value and version (the
    /// version is its fencing token), or `None` when nobody leads.
    pub async fn election_leader(&self, name: impl IntoBytes) -> Result<Option<Versioned>, ClientError> {
        self.cas_get(name).await
    }

    async fn try_with(&self, key: &Bytes, value: &Bytes, lease: &Lease) -> Result<Option<LockGuard>, ClientError> {
        if !lease.is_alive() {
            return Err(ClientError::LockLost(format!("the lease for {key:?} was lost while waiting")));
        }
        let r = self.cas_put_with_lease(key.clone(), value.clone(), 0, lease.id()).await?;
        Ok(r.success.then(|| LockGuard {
            client: self.clone(),
            key: key.clone(),
            token: r.new_version,
            version: r.new_version,
            lease: lease.clone(),
        }))
    }

    /// Waits until `key` is absent (returns at once if it is).
    async fn wait_deleted(&self, key: &Bytes) -> Result<(), ClientError> {
        let Some(held) = self.cas_get(key.clone()).await? else { return Ok(()) };
        let mut events = Box::pin(self.watch(key.clone()).from_version(held.version + 1).start());
        while let Some(e) = events.next().await {
            match e {
                Ok(e) if e.kind == WatchEventKind::Delete => return Ok(()),
                Ok(_) => {}
                // Too far back to follow: try the key again instead.
                Err(ClientError::Compacted { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
