//! `RdbClient`: the typed API over KvCas, KvRaw and Admin.

use std::sync::Arc;

use bytes::Bytes;
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient, kv_raw_client::KvRawClient};
use futures::{stream, Stream, TryStreamExt};

use crate::IntoBytes;
use crate::{
    conn::{ClientConfig, Conn, Retry},
    prefix::prefix_end,
    ClientError,
};

/// A value with the version (log index) that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Bytes,
    pub version: u64,
}

/// A key in a strong scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedKv {
    pub key: Bytes,
    pub value: Bytes,
    pub version: u64,
}

impl From<pb::VersionedKv> for VersionedKv {
    fn from(e: pb::VersionedKv) -> Self {
        VersionedKv { key: e.key, value: e.value, version: e.version }
    }
}

/// The answer of a compare-and-swap. A version mismatch is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasOutcome {
    pub success: bool,
    /// The version before the request (0 = absent).
    pub current_version: u64,
    /// The new version when `success`.
    pub new_version: u64,
}

/// The answer of a compare-and-delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub success: bool,
    pub current_version: u64,
}

/// One page of a scan; `next_key` resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub entries: Vec<T>,
    pub next_key: Option<Bytes>,
}

pub use pb::NamespaceMode;

/// A FlareDB client bound to one namespace (`""` = default). Cheap to clone;
/// clones share connections and the leader cache.
#[derive(Clone)]
pub struct RdbClient {
    pub(crate) conn: Arc<Conn>,
    pub(crate) namespace: String,
}

impl RdbClient {
    /// A client for `endpoints` ("host:port"), with default timeouts and retries.
    /// Connections are made on first use.
    pub fn connect<I, S>(endpoints: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_config(endpoints, ClientConfig::default())
    }

    pub fn with_config<I, S>(endpoints: I, config: ClientConfig) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let conn = Conn::new(endpoints.into_iter().map(Into::into).collect(), config)?;
        Ok(Self { conn, namespace: String::new() })
    }

    /// The same client, operating on `namespace`.
    pub fn namespace(&self, namespace: impl Into<String>) -> Self {
        Self { conn: self.conn.clone(), namespace: namespace.into() }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.conn.config
    }

    /// The leader address this client last learned, if any.
    pub fn cached_leader(&self) -> Option<String> {
        self.conn.leader()
    }

    // ---- KvCas ----

    /// Writes `value` if the key's version is `expected_version` (0 = absent).
    /// Applied at most once however often it is retried (see the crate docs).
    pub async fn cas_put(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        expected_version: u64,
    ) -> Result<CasOutcome, ClientError> {
        self.cas_put_with_lease(key, value, expected_version, 0).await
    }

    /// [`cas_put`](Self::cas_put) attaching the key to lease `lease_id`
    /// (0 = none): the key is deleted when the lease ends. An unknown lease
    /// is [`ClientError::Server`] with `NotFound`, and nothing is written.
    pub async fn cas_put_with_lease(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        expected_version: u64,
        lease_id: u64,
    ) -> Result<CasOutcome, ClientError> {
        let (write_id, retry) = self.conn.write_id();
        let msg = pb::CasRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            expected_version,
            namespace: self.namespace.clone(),
            write_id,
            lease_id,
        };
        let r =
            self.conn.call(retry, msg, |ch, q| async move { KvCasClient::new(ch).compare_and_swap(q).await }).await?;
        Ok(CasOutcome { success: r.success, current_version: r.current_version, new_version: r.new_version })
    }

    /// Linearizable read of one key.
    pub async fn cas_get(&self, key: impl IntoBytes) -> Result<Option<Versioned>, ClientError> {
        let msg = pb::GetRequest { key: key.into_bytes(), namespace: self.namespace.clone() };
        let r = self.conn.call(Retry::Always, msg, |ch, q| async move { KvCasClient::new(ch).get(q).await }).await?;
        Ok(r.found.then_some(Versioned { value: r.value, version: r.version }))
    }

    /// One page of `[start, end)` (empty `end` = to the end); `limit` 0 = server default.
    pub async fn cas_scan(
        &self,
        start: impl IntoBytes,
        end: impl IntoBytes,
        limit: u32,
    ) -> Result<Page<VersionedKv>, ClientError> {
        let msg = pb::ScanRequest {
            start_key: start.into_bytes(),
            end_key: end.into_bytes(),
            limit,
            namespace: self.namespace.clone(),
        };
        let r = self.conn.call(Retry::Always, msg, |ch, q| async move { KvCasClient::new(ch).scan(q).await }).await?;
        Ok(Page {
            entries: r.entries.into_iter().map(VersionedKv::from).collect(),
            next_key: r.has_more.then_some(r.next_key),
        })
    }

    /// Deletes the key if its version is `expected_version`.
    pub async fn cas_delete(&self, key: impl IntoBytes, expected_version: u64) -> Result<DeleteOutcome, ClientError> {
        let (write_id, retry) = self.conn.write_id();
        let msg = pb::CasDeleteRequest {
            key: key.into_bytes(),
            expected_version,
            namespace: self.namespace.clone(),
            write_id,
        };
        let r =
            self.conn.call(retry, msg, |ch, q| async move { KvCasClient::new(ch).compare_and_delete(q).await }).await?;
        Ok(DeleteOutcome { success: r.success, current_version: r.current_version })
    }

    /// Every strong key starting with `prefix`, paging transparently.
    pub async fn scan_prefix(&self, prefix: impl IntoBytes) -> Result<Vec<VersionedKv>, ClientError> {
        self.scan_prefix_stream(prefix).try_collect().await
    }

    /// Like [`scan_prefix`](Self::scan_prefix), as a stream of entries fetched page by page.
    /// Each page is linearizable on its own; the whole is not one snapshot.
    pub fn scan_prefix_stream(
        &self,
        prefix: impl IntoBytes,
    ) -> impl Stream<Item = Result<VersionedKv, ClientError>> + Send + 'static {
        prefix_pages(self.clone(), prefix.into_bytes(), |c, start, end| async move { c.cas_scan(start, end, 0).await })
    }

    // ---- KvRaw ----

    pub async fn raw_put(&self, key: impl IntoBytes, value: impl IntoBytes) -> Result<(), ClientError> {
        let msg =
            pb::RawPutRequest { key: key.into_bytes(), value: value.into_bytes(), namespace: self.namespace.clone() };
        self.conn.call(Retry::Always, msg, |ch, q| async move { KvRawClient::new(ch).raw_put(q).await }).await?;
        Ok(())
    }

    /// Reads the value held by the node asked; may be stale.
    pub async fn raw_get(&self, key: impl IntoBytes) -> Result<Option<Bytes>, ClientError> {
        let msg = pb::RawGetRequest { key: key.into_bytes(), namespace: self.namespace.clone() };
        let r =
            self.conn.call(Retry::Always, msg, |ch, q| async move { KvRawClient::new(ch).raw_get(q).await }).await?;
        Ok(r.found.then_some(r.value))
    }

    pub async fn raw_scan(
        &self,
        start: impl IntoBytes,
        end: impl IntoBytes,
        limit: u32,
    ) -> Result<Page<(Bytes, Bytes)>, ClientError> {
        let msg = pb::RawScanRequest {
            start_key: start.into_bytes(),
            end_key: end.into_bytes(),
            limit,
            namespace: self.namespace.clone(),
        };
        let r =
            self.conn.call(Retry::Always, msg, |ch, q| async move { KvRawClient::new(ch).raw_scan(q).await }).await?;
        Ok(Page {
            entries: r.entries.into_iter().map(|e| (e.key, e.value)).collect(),
            next_key: r.has_more.then_some(r.next_key),
        })
    }

    /// Every raw key starting with `prefix`, paging transparently.
    pub async fn raw_scan_prefix(&self, prefix: impl IntoBytes) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        prefix_pages(self.clone(), prefix.into_bytes(), |c, start, end| async move { c.raw_scan(start, end, 0).await })
            .try_collect()
            .await
    }

    /// Deletes a raw key; true if it existed.
    pub async fn raw_delete(&self, key: impl IntoBytes) -> Result<bool, ClientError> {
        let msg = pb::RawDeleteRequest { key: key.into_bytes(), namespace: self.namespace.clone() };
        let r =
            self.conn.call(Retry::Always, msg, |ch, q| async move { KvRawClient::new(ch).raw_delete(q).await }).await?;
        Ok(r.success)
    }
}

/// Streams every entry under `prefix`, fetching page after page with `fetch`
/// (client, start, exclusive end) until a page has no `next_key`.
fn prefix_pages<T, F, Fut>(
    client: RdbClient,
    prefix: Bytes,
    fetch: F,
) -> impl Stream<Item = Result<T, ClientError>> + Send + 'static
where
    T: Send + 'static,
    F: Fn(RdbClient, Bytes, Bytes) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Page<T>, ClientError>> + Send,
{
    let end = Bytes::from(prefix_end(&prefix));
    stream::try_unfold((Some(prefix), client, end, fetch), |(next, client, end, fetch)| async move {
        let Some(start) = next else { return Ok(None) };
        let page = fetch(client.clone(), start, end.clone()).await?;
        Ok(Some((stream::iter(page.entries.into_iter().map(Ok)), (page.next_key, client, end, fetch))))
    })
    .try_flatten()
}
