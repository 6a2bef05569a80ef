//! `MetadataStore`: the key-value shape services already code against
//! (get / put / delete / get_prefix / cas / delete_if on hierarchical keys),
//! and its FlareDB implementation on a STRONG namespace.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use flaredb_client::{adapters::{FlareDbMetadataStore, MetadataStore, MetadataStoreExt}, RdbClient};
//!
//! let client = RdbClient::connect(["127.0.0.1:2479"])?;
//! let store = FlareDbMetadataStore::for_service(client, "fiberlb")?; // namespace fiberlb, keys under /fiberlb/
//! store.put("/fiberlb/pools/web", br#"{"port":80}"#).await?;
//! let pools = store.get_prefix("/fiberlb/pools/").await?;
//! let (pool, version): (serde_json::Value, u64) = store.get_json("/fiberlb/pools/web").await?.unwrap();
//! store.cas_json("/fiberlb/pools/web", version, &pool).await?; // a conflict is MetadataError::Conflict
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use super::services;
use crate::{ClientError, RdbClient, TxnOp, TxnOpResult};

/// A value with the version that last wrote it (versions only grow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Bytes,
    pub version: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    /// A conditional write found another version (0 = absent): re-read and retry.
    #[error("version conflict on {key:?}: expected version {expected}, found {current}")]
    Conflict { key: String, expected: u64, current: u64 },
    /// A key or prefix outside the store's root (another service's keys).
    #[error("key {key:?} is outside this store's root {root:?}")]
    OutsideRoot { key: String, root: String },
    #[error("no service named {0:?} in the registry (adapters::services::SERVICES)")]
    UnknownService(String),
    /// A value that is not the JSON the caller asked for.
    #[error("value of {key:?} is not the JSON expected: {why}")]
    Json { key: String, why: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The store a service codes against. Versions are per-write and only grow;
/// `expected_version` 0 means "absent".
#[async_trait]
pub trait MetadataStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Record>, MetadataError>;
    /// Sets the key whatever its version; the new version.
    async fn put(&self, key: &str, value: &[u8]) -> Result<u64, MetadataError>;
    /// Deletes the key whatever its version; whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, MetadataError>;
    /// Every key starting with `prefix`, in key order.
    async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Record)>, MetadataError>;
    /// Writes only if the key's version is `expected_version`: the new version, or `Conflict`.
    async fn cas(&self, key: &str, expected_version: u64, value: &[u8]) -> Result<u64, MetadataError>;
    /// Deletes only if the key's version is `expected_version`, else `Conflict`.
    async fn delete_if(&self, key: &str, expected_version: u64) -> Result<(), MetadataError>;
}

/// JSON on any [`MetadataStore`]: values stay JSON, as services keep them.
#[async_trait]
pub trait MetadataStoreExt: MetadataStore {
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>, MetadataError> {
        let Some(r) = self.get(key).await? else { return Ok(None) };
        let v = serde_json::from_slice(&r.value)
            .map_err(|e| MetadataError::Json { key: key.into(), why: e.to_string() })?;
        Ok(Some((v, r.version)))
    }

    async fn put_json<T: Serialize + Sync>(&self, key: &str, value: &T) -> Result<u64, MetadataError> {
        self.put(key, &to_json(key, value)?).await
    }

    async fn cas_json<T: Serialize + Sync>(
        &self,
        key: &str,
        expected_version: u64,
        value: &T,
    ) -> Result<u64, MetadataError> {
        self.cas(key, expected_version, &to_json(key, value)?).await
    }
}

impl<S: MetadataStore + ?Sized> MetadataStoreExt for S {}

fn to_json<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, MetadataError> {
    serde_json::to_vec(value).map_err(|e| MetadataError::Json { key: key.into(), why: e.to_string() })
}

/// [`MetadataStore`] on a FlareDB STRONG namespace; keys keep their paths
/// and must start with the store's root.
#[derive(Clone)]
pub struct FlareDbMetadataStore {
    client: RdbClient,
    root: String,
}

impl FlareDbMetadataStore {
    /// Keys under `root` in `namespace`.
    pub fn new(client: RdbClient, namespace: &str, root: &str) -> Self {
        Self { client: client.namespace(namespace), root: root.to_string() }
    }

    /// The store of a service named in [`services::SERVICES`].
    pub fn for_service(client: RdbClient, service: &str) -> Result<Self, MetadataError> {
        let p = services::profile(service).ok_or_else(|| MetadataError::UnknownService(service.into()))?;
        Ok(Self::new(client, p.namespace, p.root))
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn inside(&self, key: &str) -> Result<(), MetadataError> {
        match key.starts_with(&self.root) {
            true => Ok(()),
            false => Err(MetadataError::OutsideRoot { key: key.into(), root: self.root.clone() }),
        }
    }
}

#[async_trait]
impl MetadataStore for FlareDbMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, MetadataError> {
        self.inside(key)?;
        Ok(self.client.cas_get(key).await?.map(|v| Record { value: v.value, version: v.version }))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64, MetadataError> {
        self.inside(key)?;
        // One transaction without compares: an unconditional put in one round trip.
        let r = self.client.txn().and_then([TxnOp::put(key, value)]).commit().await?;
        Ok(r.revision)
    }

    async fn delete(&self, key: &str) -> Result<bool, MetadataError> {
        self.inside(key)?;
        let r = self.client.txn().and_then([TxnOp::delete(key)]).commit().await?;
        Ok(matches!(r.results.first(), Some(TxnOpResult::Delete { deleted: 1.. })))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Record)>, MetadataError> {
        // A prefix above the root (e.g. "/") lists the whole service.
        if !self.root.starts_with(prefix) {
            self.inside(prefix)?;
        }
        let found = self.client.scan_prefix(prefix).await?;
        Ok(found
            .into_iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), Record { value: kv.value, version: kv.version }))
            .collect())
    }

    async fn cas(&self, key: &str, expected_version: u64, value: &[u8]) -> Result<u64, MetadataError> {
        self.inside(key)?;
        let r = self.client.cas_put(key, value, expected_version).await?;
        match r.success {
            true => Ok(r.new_version),
            false => {
                Err(MetadataError::Conflict { key: key.into(), expected: expected_version, current: r.current_version })
            }
        }
    }

    async fn delete_if(&self, key: &str, expected_version: u64) -> Result<(), MetadataError> {
        self.inside(key)?;
        let r = self.client.cas_delete(key, expected_version).await?;
        match r.success {
            true => Ok(()),
            false => {
                Err(MetadataError::Conflict { key: key.into(), expected: expected_version, current: r.current_version })
            }
        }
    }
}
