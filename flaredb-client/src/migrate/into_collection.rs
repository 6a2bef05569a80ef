//! `--into-collection PREFIX`: each source entry is a JSON record (a row of
//! a PostgreSQL table, a JSON file) whose id is its key without `--prefix`;
//! it is written as a [`Collection`] record, with the declared indexes
//! rebuilt from its fields, in exactly the layout the adapter reads.

use bytes::Bytes;
use serde_json::Value;

use super::{Entry, MigrateError};
use crate::{
    adapters::{Collection, Index},
    RdbClient,
};

#[derive(Clone)]
pub struct IntoCollection {
    collection: Collection<Value>,
    indexes: Vec<(String, bool)>,
}

impl std::fmt::Debug for IntoCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoCollection").field("indexes", &self.indexes).finish_non_exhaustive()
    }
}

/// A field's value as an index value: strings as they are, numbers and
/// booleans as their JSON text; absent, null, arrays and objects are not indexed.
fn field_text(record: &Value, field: &str) -> Option<String> {
    match record.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl IntoCollection {
    /// Records under `prefix` in `target`'s namespace.
    pub fn new(target: RdbClient, prefix: &str) -> Self {
        Self { collection: Collection::new(target, prefix), indexes: Vec::new() }
    }

    /// A unique index named after `field` (two records with one value: a conflict in the target).
    pub fn unique(self, field: &str) -> Self {
        self.declare(field, true)
    }

    /// A non-unique index named after `field`.
    pub fn index(self, field: &str) -> Self {
        self.declare(field, false)
    }

    fn declare(mut self, field: &str, unique: bool) -> Self {
        let f = field.to_string();
        let key_of = move |r: &Value| field_text(r, &f);
        let index = match unique {
            true => Index::unique(field, key_of),
            false => Index::non_unique(field, key_of),
        };
        self.collection = self.collection.index(index);
        self.indexes.push((field.into(), unique));
        self
    }

    /// Entries written per record at most (the record and one per index).
    pub fn keys_per_record(&self) -> u64 {
        1 + self.indexes.len() as u64
    }

    /// The entries that hold source entry `e` as a record (its key, then its index entries).
    pub(super) fn expand(&self, source_prefix: &[u8], e: Entry) -> Vec<Result<Entry, MigrateError>> {
        let key = String::from_utf8_lossy(&e.key).into_owned();
        let id = match e.key.strip_prefix(source_prefix).map(std::str::from_utf8) {
            Some(Ok(id)) if !id.is_empty() => id,
            _ => return vec![Err(MigrateError::Parse(format!("{key:?}: not a UTF-8 id after the prefix")))],
        };
        let record: Value = match serde_json::from_slice(&e.value) {
            Ok(r @ Value::Object(_)) => r,
            Ok(_) => return vec![Err(MigrateError::Parse(format!("{key:?}: a record must be a JSON object")))],
            Err(why) => return vec![Err(MigrateError::Parse(format!("{key:?}: {why}")))],
        };
        match self.collection.keys_for(id, &record) {
            Ok(keys) => keys
                .into_iter()
                .map(|(k, v)| Ok(Entry { key: Bytes::from(k), value: Bytes::from(v), version: e.version }))
                .collect(),
            Err(why) => vec![Err(MigrateError::Parse(why.to_string()))],
        }
    }
}
