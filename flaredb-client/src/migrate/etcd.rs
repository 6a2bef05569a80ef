//! Reading an etcd v3 cluster (`etcd://HOST:PORT[,HOST:PORT]`): pages of
//! `KV/Range` under the prefix, all at the revision of the first page, so a
//! copy is one consistent snapshot of etcd.

use bytes::Bytes;
use flaredb_proto::{channel::ChannelCache, etcd::kv_client::KvClient, etcd::RangeRequest};
use futures::{stream, StreamExt};

use super::{endpoint::Entries, Entry, MigrateError};
use crate::prefix::prefix_end;

const PAGE: i64 = 1000;

/// etcd's "every key": key and range end both `\0`.
const ALL: &[u8] = b"\0";

struct Pager {
    kv: KvClient<tonic::transport::Channel>,
    next: Option<Bytes>,
    end: Bytes,
    revision: i64,
}

pub fn read(endpoints: &[String], prefix: &[u8]) -> Result<Entries, MigrateError> {
    let addr = endpoints.first().ok_or_else(|| MigrateError::Usage("etcd:// needs HOST:PORT".into()))?;
    let channel = ChannelCache::new(std::time::Duration::from_secs(2))
        .get(addr)
        .map_err(|e| MigrateError::Usage(format!("etcd endpoint {addr:?}: {}", e.0)))?;
    let (start, end) = match prefix.is_empty() {
        true => (Bytes::from_static(ALL), Bytes::from_static(ALL)),
        false => {
            let end = prefix_end(prefix);
            let end = if end.is_empty() { Bytes::from_static(ALL) } else { Bytes::from(end) };
            (Bytes::copy_from_slice(prefix), end)
        }
    };
    let pager = Pager { kv: KvClient::new(channel), next: Some(start), end, revision: 0 };
    let pages = stream::try_unfold(pager, |mut p| async move {
        let Some(key) = p.next.take() else { return Ok(None) };
        let req = RangeRequest { key, range_end: p.end.clone(), limit: PAGE, revision: p.revision };
        let resp = p.kv.range(req).await.map_err(|s| MigrateError::Io(format!("etcd Range: {}", s.message())))?;
        let resp = resp.into_inner();
        if p.revision == 0 {
            p.revision = resp.header.map_or(0, |h| h.revision);
        }
        if resp.more {
            // The next page starts just after this one's last key.
            p.next = resp.kvs.last().map(|kv| Bytes::from([&kv.key[..], b"\0"].concat()));
        }
        let entries: Vec<Result<Entry, MigrateError>> = resp
            .kvs
            .into_iter()
            .map(|kv| Ok(Entry { key: kv.key, value: kv.value, version: kv.mod_revision.max(0) as u64 }))
            .collect();
        Ok(Some((stream::iter(entries), p)))
    });
    Ok(Box::pin(pages.flat_map(|page: Result<_, MigrateError>| match page {
        Ok(s) => s.left_stream(),
        Err(e) => stream::iter(vec![Err(e)]).right_stream(),
    })))
}
