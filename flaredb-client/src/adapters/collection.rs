//! `Collection<T>`: typed records (JSON) under a prefix, with declared
//! secondary indexes kept consistent with each record in the same `Txn`.
//! This is what an embedded bucket-per-entity store, listing everything and
//! filtering in memory, moves to.
//!
//! Keys, in the client's namespace:
//! - `{prefix}r/{id}` → the record's JSON (its version is the record's);
//! - `{prefix}u/{index}/{value}` → the id holding `value` (unique indexes);
//! - `{prefix}i/{index}/{value}/{id}` → empty (non-unique indexes).
//!
//! Index values have `%` and `/` escaped, so one value's keys never fall
//! under another's prefix.
//!
//! ```no_run
//! # async fn demo(client: flaredb_client::RdbClient) -> Result<(), flaredb_client::adapters::CollectionError> {
//! use flaredb_client::adapters::{Collection, Index};
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Container { name: String, service: String, node: String }
//!
//! let containers = Collection::<Container>::new(client.namespace("scheduler"), "/containers/")
//!     .index(Index::unique("name", |c: &Container| Some(c.name.clone())))
//!     .index(Index::non_unique("service", |c: &Container| Some(c.service.clone())));
//! let c = Container { name: "web-1".into(), service: "web".into(), node: "n1".into() };
//! let version = containers.create("c-123", &c).await?; // a second "web-1" is Duplicate
//! let web = containers.list_by("service", "web").await?;
//! # Ok(()) }
//! ```

use std::{marker::PhantomData, sync::Arc};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::{ClientError, Compare, CompareOp, RdbClient, TxnOp, TxnOpResult, WatchEventKind};

type KeyFn<T> = Arc<dyn Fn(&T) -> Option<String> + Send + Sync>;

/// A secondary index: the value a record is found by (`None`: not indexed).
pub struct Index<T> {
    name: String,
    unique: bool,
    key_of: KeyFn<T>,
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), unique: self.unique, key_of: self.key_of.clone() }
    }
}

impl<T> Index<T> {
    /// At most one record per value: a second is [`CollectionError::Duplicate`].
    pub fn unique(name: &str, key_of: impl Fn(&T) -> Option<String> + Send + Sync + 'static) -> Self {
        Self { name: name.into(), unique: true, key_of: Arc::new(key_of) }
    }

    pub fn non_unique(name: &str, key_of: impl Fn(&T) -> Option<String> + Send + Sync + 'static) -> Self {
        Self { name: name.into(), unique: false, key_of: Arc::new(key_of) }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CollectionError {
    #[error("record {0:?} already exists")]
    AlreadyExists(String),
    #[error("record {0:?} not found")]
    NotFound(String),
    /// The record changed since it was read (or is gone: current 0): re-read and retry.
    #[error("record {id:?} is at version {current}, not {expected}")]
    Conflict { id: String, expected: u64, current: u64 },
    /// A unique index already maps `value` to another record.
    #[error("{index} {value:?} is taken by record {holder:?}")]
    Duplicate { index: String, value: String, holder: String },
    #[error("no index named {0:?}")]
    UnknownIndex(String),
    #[error("record {id:?} is not valid JSON for this collection: {why}")]
    Json { id: String, why: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A change of a record, from [`Collection::watch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Put { id: String, record: T, version: u64 },
    Delete { id: String, version: u64 },
}

pub struct Collection<T> {
    client: RdbClient,
    prefix: String,
    indexes: Vec<Index<T>>,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            indexes: self.indexes.clone(),
            _records: PhantomData,
        }
    }
}

/// `%` and `/` escaped, so that an index value is one path segment.
fn escape(v: &str) -> String {
    v.replace('%', "%25").replace('/', "%2F")
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Collection<T> {
    /// Records under `prefix` in `client`'s namespace.
    pub fn new(client: RdbClient, prefix: &str) -> Self {
        Self { client, prefix: prefix.into(), indexes: Vec::new(), _records: PhantomData }
    }

    /// Declares an index (before any record is written with this collection).
    pub fn index(mut self, index: Index<T>) -> Self {
        self.indexes.push(index);
        self
    }

    fn record_key(&self, id: &str) -> String {
        format!("{}r/{id}", self.prefix)
    }

    fn unique_key(&self, index: &str, value: &str) -> String {
        format!("{}u/{index}/{}", self.prefix, escape(value))
    }

    fn entry_prefix(&self, index: &str, value: &str) -> String {
        format!("{}i/{index}/{}/", self.prefix, escape(value))
    }

    /// Every index key of `record` with `id`: (unique?, key, index name, value).
    fn index_keys(&self, id: &str, record: &T) -> Vec<(bool, String, String, String)> {
        self.indexes
            .iter()
            .filter_map(|ix| {
                let v = (ix.key_of)(record)?;
                let key = match ix.unique {
                    true => self.unique_key(&ix.name, &v),
                    false => format!("{}{id}", self.entry_prefix(&ix.name, &v)),
                };
                Some((ix.unique, key, ix.name.clone(), v))
            })
            .collect()
    }

    /// What [`create`](Self::create) writes for a new record: its key and
    /// JSON, then each index entry's key and value. For bulk loads
    /// (`flaredb migrate --into-collection`) that write many records at once.
    pub fn keys_for(&self, id: &str, record: &T) -> Result<Vec<(String, Vec<u8>)>, CollectionError> {
        let mut out = vec![(self.record_key(id), Self::to_json(id, record)?)];
        for (unique, key, _, _) in self.index_keys(id, record) {
            out.push((key, if unique { id.as_bytes().to_vec() } else { Vec::new() }));
        }
        Ok(out)
    }

    fn to_json(id: &str, record: &T) -> Result<Vec<u8>, CollectionError> {
        serde_json::to_vec(record).map_err(|e| CollectionError::Json { id: id.into(), why: e.to_string() })
    }

    fn from_json(id: &str, raw: &[u8]) -> Result<T, CollectionError> {
        serde_json::from_slice(raw).map_err(|e| CollectionError::Json { id: id.into(), why: e.to_string() })
    }

    /// Creates record `id` only if absent, with its index entries; its version.
    pub async fn create(&self, id: &str, record: &T) -> Result<u64, CollectionError> {
        self.write(id, record, None).await
    }

    /// Replaces record `id` if it is at `version`; the new version.
    pub async fn update(&self, id: &str, record: &T, version: u64) -> Result<u64, CollectionError> {
        let old = self.get(id).await?;
        match old {
            Some((old, current)) if current == version => self.write(id, record, Some((old, version))).await,
            other => Err(CollectionError::Conflict {
                id: id.into(),
                expected: version,
                current: other.map_or(0, |(_, v)| v),
            }),
        }
    }

    /// Creates or replaces record `id` whatever its version; the new version.
    pub async fn upsert(&self, id: &str, record: &T) -> Result<u64, CollectionError> {
        loop {
            let r = match self.get(id).await? {
                None => self.write(id, record, None).await,
                Some((old, v)) => self.write(id, record, Some((old, v))).await,
            };
            match r {
                Err(CollectionError::Conflict { .. } | CollectionError::AlreadyExists(_)) => continue,
                other => return other,
            }
        }
    }

    /// One transaction: the record and its index entries, checked against
    /// `old` (None: must be absent) and the unique values it takes.
    async fn write(&self, id: &str, record: &T, old: Option<(T, u64)>) -> Result<u64, CollectionError> {
        let rkey = self.record_key(id);
        let new_keys = self.index_keys(id, record);
        let old_keys = old.as_ref().map(|(o, _)| self.index_keys(id, o)).unwrap_or_default();
        let expected = old.as_ref().map_or(0, |(_, v)| *v);
        let mut compares = vec![Compare::version(rkey.as_str(), CompareOp::Equal, expected)];
        let mut ops = vec![TxnOp::put(rkey.as_str(), Self::to_json(id, record)?)];
        // Unique values newly taken must be free.
        let taken: Vec<&(bool, String, String, String)> =
            new_keys.iter().filter(|k| k.0 && !old_keys.iter().any(|o| o.1 == k.1)).collect();
        for (_, key, _, _) in &taken {
            compares.push(Compare::version(key.as_str(), CompareOp::Equal, 0));
        }
        for (_, key, _, _) in old_keys.iter().filter(|o| !new_keys.iter().any(|n| n.1 == o.1)) {
            ops.push(TxnOp::delete(key.as_str()));
        }
        for (unique, key, _, _) in new_keys.iter().filter(|n| !old_keys.iter().any(|o| o.1 == n.1)) {
            ops.push(TxnOp::put(key.as_str(), if *unique { id.as_bytes() } else { &[][..] }));
        }
        // On failure, read what was compared to say why.
        let mut reads = vec![TxnOp::get(rkey.as_str())];
        reads.extend(taken.iter().map(|(_, key, _, _)| TxnOp::get(key.as_str())));
        let r = self.client.txn().when(compares).and_then(ops).or_else(reads).commit().await?;
        if r.succeeded {
            return Ok(r.revision);
        }
        let mut got = r.results.into_iter().map(|res| match res {
            TxnOpResult::Get(kv) => kv,
            _ => None,
        });
        let current = got.next().flatten().map_or(0, |kv| kv.version);
        if current != expected {
            return Err(match old {
                None => CollectionError::AlreadyExists(id.into()),
                Some(_) => CollectionError::Conflict { id: id.into(), expected, current },
            });
        }
        for ((_, _, index, value), holder) in taken.iter().zip(got) {
            if let Some(h) = holder {
                let holder = String::from_utf8_lossy(&h.value).into_owned();
                return Err(CollectionError::Duplicate { index: index.clone(), value: value.clone(), holder });
            }
        }
        // Every compare read back as holding: it changed in between. Let the caller retry.
        Err(CollectionError::Conflict { id: id.into(), expected, current })
    }

    /// Record `id` and its version.
    pub async fn get(&self, id: &str) -> Result<Option<(T, u64)>, CollectionError> {
        let Some(v) = self.client.cas_get(self.record_key(id)).await? else { return Ok(None) };
        Ok(Some((Self::from_json(id, &v.value)?, v.version)))
    }

    /// Deletes record `id` at `version` with its index entries.
    pub async fn delete(&self, id: &str, version: u64) -> Result<(), CollectionError> {
        let Some((old, current)) = self.get(id).await? else { return Err(CollectionError::NotFound(id.into())) };
        if current != version {
            return Err(CollectionError::Conflict { id: id.into(), expected: version, current });
        }
        let rkey = self.record_key(id);
        let mut ops = vec![TxnOp::delete(rkey.as_str())];
        ops.extend(self.index_keys(id, &old).into_iter().map(|(_, key, _, _)| TxnOp::delete(key)));
        let r = self
            .client
            .txn()
            .when([Compare::version(rkey.as_str(), CompareOp::Equal, version)])
            .and_then(ops)
            .or_else([TxnOp::get(rkey.as_str())])
            .commit()
            .await?;
        if r.succeeded {
            return Ok(());
        }
        let current = match r.results.first() {
            Some(TxnOpResult::Get(Some(kv))) => kv.version,
            _ => 0,
        };
        Err(CollectionError::Conflict { id: id.into(), expected: version, current })
    }

    fn find(&self, index: &str) -> Result<&Index<T>, CollectionError> {
        self.indexes.iter().find(|ix| ix.name == index).ok_or_else(|| CollectionError::UnknownIndex(index.into()))
    }

    /// The record whose unique `index` is `value`: (id, record, version).
    pub async fn get_by(&self, index: &str, value: &str) -> Result<Option<(String, T, u64)>, CollectionError> {
        let ix = self.find(index)?.clone();
        if !ix.unique {
            return Err(CollectionError::UnknownIndex(format!("{index} (not unique: use list_by)")));
        }
        let Some(holder) = self.client.cas_get(self.unique_key(index, value)).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&holder.value).into_owned();
        // The record is read after the index entry: check it still holds the value.
        Ok(self.get(&id).await?.filter(|(r, _)| (ix.key_of)(r).as_deref() == Some(value)).map(|(r, v)| (id, r, v)))
    }

    /// Every record whose `index` is `value`, in id order: (id, record, version).
    pub async fn list_by(&self, index: &str, value: &str) -> Result<Vec<(String, T, u64)>, CollectionError> {
        let ix = self.find(index)?.clone();
        if ix.unique {
            return Ok(self.get_by(index, value).await?.into_iter().collect());
        }
        let prefix = self.entry_prefix(index, value);
        let mut out = Vec::new();
        for e in self.client.scan_prefix(prefix.as_str()).await? {
            let id = String::from_utf8_lossy(&e.key[prefix.len()..]).into_owned();
            if let Some((r, v)) = self.get(&id).await? {
                if (ix.key_of)(&r).as_deref() == Some(value) {
                    out.push((id, r, v));
                }
            }
        }
        Ok(out)
    }

    /// Every record, in id order, fetched page by page: (id, record, version).
    pub fn list(&self) -> impl Stream<Item = Result<(String, T, u64), CollectionError>> + Send + 'static {
        let prefix = self.record_key("");
        self.client.scan_prefix_stream(prefix.clone()).map_err(CollectionError::from).and_then(move |kv| {
            let id = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            let r = Self::from_json(&id, &kv.value).map(|r| (id, r, kv.version));
            async move { r }
        })
    }

    /// Changes of records from `from_version` (0 = now), in version order.
    pub fn watch(&self, from_version: u64) -> impl Stream<Item = Result<Change<T>, CollectionError>> + Send + 'static {
        let prefix = self.record_key("");
        let events = self.client.watch(Bytes::from(prefix.clone())).prefix().from_version(from_version).start();
        events.filter_map(move |e| {
            let out = match e {
                Err(e) => Some(Err(e.into())),
                Ok(e) => {
                    let id = String::from_utf8_lossy(e.key.get(prefix.len()..).unwrap_or_default()).into_owned();
                    match e.kind {
                        WatchEventKind::Put => Some(Self::from_json(&id, &e.value).map(|record| Change::Put {
                            id,
                            record,
                            version: e.version,
                        })),
                        WatchEventKind::Delete => Some(Ok(Change::Delete { id, version: e.version })),
                        WatchEventKind::Progress => None,
                    }
                }
            };
            async move { out }
        })
    }
}
