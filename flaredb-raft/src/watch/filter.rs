//! Which changes one watcher wants: one key, or every key under a prefix, of
//! one namespace.

use std::sync::Arc;

use bytes::Bytes;

use super::ChangeEvent;
use crate::namespace::canonical_name;

#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub namespace: Arc<str>,
    pub key: Bytes,
    pub prefix: bool,
}

impl WatchFilter {
    pub fn new(namespace: &str, key: impl Into<Bytes>, prefix: bool) -> Self {
        Self { namespace: canonical_name(namespace).into(), key: key.into(), prefix }
    }

    pub fn matches(&self, e: &ChangeEvent) -> bool {
        *e.namespace == *self.namespace && if self.prefix { e.key.starts_with(&self.key) } else { e.key == self.key }
    }

    /// The hub's index key: namespace, a 0 byte (never in a name), key.
    pub(super) fn index_key(&self) -> Vec<u8> {
        index_key(&self.namespace, &self.key)
    }
}

pub(super) fn index_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(namespace.len() + 1 + key.len());
    k.extend_from_slice(namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}
