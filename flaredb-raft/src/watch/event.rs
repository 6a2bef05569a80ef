//! One change of one strong key, as a watcher sees it.

use std::sync::Arc;

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub kind: EventKind,
    /// The namespace's name: a watch may start before its namespace exists.
    pub namespace: Arc<str>,
    pub key: Bytes,
    /// Empty for a delete.
    pub value: Bytes,
    /// The log index of the change (the key's new version for a put).
    pub revision: u64,
    /// The key's version before the change (0 = absent).
    pub prev_version: u64,
}

/// What an event adds to a watcher's buffer besides its key and value.
const EVENT_OVERHEAD_BYTES: usize = 48;

impl ChangeEvent {
    /// Its share of a watcher's byte budget.
    pub fn cost(&self) -> usize {
        self.key.len() + self.value.len() + EVENT_OVERHEAD_BYTES
    }
}
