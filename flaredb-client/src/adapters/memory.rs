//! [`MetadataStore`] in memory, for services' unit tests: the same
//! contract as FlareDB's (versions unique and growing across the store,
//! expected version 0 = absent), nothing persisted.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use bytes::Bytes;

use super::metadata_store::{MetadataError, MetadataStore, Record};

#[derive(Debug, Default)]
pub struct InMemoryMetadataStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: BTreeMap<String, Record>,
    /// The last version given out.
    revision: u64,
}

impl Inner {
    fn write(&mut self, key: &str, value: &[u8]) -> u64 {
        self.revision += 1;
        self.keys.insert(key.into(), Record { value: Bytes::copy_from_slice(value), version: self.revision });
        self.revision
    }

    fn version(&self, key: &str) -> u64 {
        self.keys.get(key).map_or(0, |r| r.version)
    }
}

impl InMemoryMetadataStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MetadataStore for InMemoryMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<Record>, MetadataError> {
        Ok(self.lock().keys.get(key).cloned())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64, MetadataError> {
        Ok(self.lock().write(key, value))
    }

    async fn delete(&self, key: &str) -> Result<bool, MetadataError> {
        Ok(self.lock().keys.remove(key).is_some())
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Record)>, MetadataError> {
        let inner = self.lock();
        let under = inner.keys.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix));
        Ok(under.map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    async fn cas(&self, key: &str, expected_version: u64, value: &[u8]) -> Result<u64, MetadataError> {
        let mut inner = self.lock();
        let current = inner.version(key);
        if current != expected_version {
            return Err(MetadataError::Conflict { key: key.into(), expected: expected_version, current });
        }
        Ok(inner.write(key, value))
    }

    async fn delete_if(&self, key: &str, expected_version: u64) -> Result<(), MetadataError> {
        let mut inner = self.lock();
        let current = inner.version(key);
        if current == 0 || current != expected_version {
            return Err(MetadataError::Conflict { key: key.into(), expected: expected_version, current });
        }
        inner.keys.remove(key);
        Ok(())
    }
}
