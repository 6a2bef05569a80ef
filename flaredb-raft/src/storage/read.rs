//! Reads of the local state machine. Callers decide consistency: a strong
//! read linearizes first (`FlareNode::linearize`), a raw read does not.

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

use crate::{
    error::StoreError,
    keys::{self, NamespaceId},
    namespace::Mode,
    storage::db::{cf, CF_CAS, CF_RAW},
};

/// One entry of a scan: key, version (0 for raw keys), value.
pub type ScanEntry = (Vec<u8>, u64, Vec<u8>);

/// Where a scan page ends: at `entries` entries or once it holds about
/// `bytes` bytes, whichever comes first. The byte budget keeps a page of
/// large values under the gRPC message limit; a page still holds at least
/// one entry, so a scan always makes progress.
#[derive(Debug, Clone, Copy)]
pub struct PageLimit {
    pub entries: usize,
    pub bytes: usize,
}

/// What one entry adds to a response besides its key and value: the
/// version and protobuf framing (tags, lengths), rounded up.
pub const ENTRY_OVERHEAD_BYTES: usize = 32;

#[derive(Debug, Default)]
pub struct ScanPage {
    pub entries: Vec<ScanEntry>,
    /// Where the next page starts, when there is more.
    pub next_key: Option<Vec<u8>>,
}

pub fn cas_get(db: &DB, ns: NamespaceId, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let Some(raw) = db.get_pinned_cf(cf(db, CF_CAS)?, keys::encode(ns, key))? else { return Ok(None) };
    let (version, value) = keys::decode_versioned(&raw).ok_or_else(|| StoreError::corrupt("cas record", "short"))?;
    Ok(Some((version, value.to_vec())))
}

pub fn raw_get(db: &DB, ns: NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(db.get_cf(cf(db, CF_RAW)?, keys::encode(ns, key))?)
}

/// One page of `[start, end)` in namespace `ns` (empty `end` = to its end).
pub fn scan(
    db: &DB,
    mode: Mode,
    ns: NamespaceId,
    start: &[u8],
    end: &[u8],
    limit: PageLimit,
) -> Result<ScanPage, StoreError> {
    let name = match mode {
        Mode::Strong => CF_CAS,
        Mode::Eventual => CF_RAW,
    };
    let mut opts = ReadOptions::default();
    if let Some(upper) = keys::range_end(ns, end) {
        opts.set_iterate_upper_bound(upper);
    }
    let from = keys::encode(ns, start);
    let mut page = ScanPage::default();
    let mut bytes = 0;
    for item in db.iterator_cf_opt(cf(db, name)?, opts, IteratorMode::From(&from, Direction::Forward)) {
        let (k, v) = item?;
        let (_, user_key) = keys::decode(&k).ok_or_else(|| StoreError::corrupt("key", "short"))?;
        bytes += user_key.len() + v.len() + ENTRY_OVERHEAD_BYTES;
        let full = page.entries.len() == limit.entries || (bytes > limit.bytes && !page.entries.is_empty());
        if full {
            page.next_key = Some(user_key.to_vec());
            break;
        }
        let (version, value) = match mode {
            Mode::Strong => {
                let (ver, val) =
                    keys::decode_versioned(&v).ok_or_else(|| StoreError::corrupt("cas record", "short"))?;
                (ver, val.to_vec())
            }
            Mode::Eventual => (0, v.to_vec()),
        };
        page.entries.push((user_key.to_vec(), version, value));
    }
    Ok(page)
}

/// A hash of the whole state machine (strong and raw keys, namespace registry,
/// membership) and the applied index it was taken at, from one point-in-time
/// view: equal on replicas that applied the same log.
pub fn state_hash(db: &DB) -> Result<(u64, u64), StoreError> {
    use crate::storage::{
        db::CF_SM_META,
        sm_meta::{INSTALLING_KEY, LAST_APPLIED_KEY},
    };
    let view = db.snapshot();
    let applied = match view.get_cf(cf(db, CF_SM_META)?, LAST_APPLIED_KEY)? {
        Some(raw) => crate::codec::decode_pb::<flaredb_proto::raft::LogId>("last applied", &raw)?.index,
        None => 0,
    };
    let mut h = crate::fnv::Fnv1a::default();
    for (tag, name) in [(&b"c"[..], CF_CAS), (b"r", CF_RAW), (b"m", CF_SM_META)] {
        for item in view.iterator_cf(cf(db, name)?, IteratorMode::Start) {
            let (k, v) = item?;
            if name == CF_SM_META && k.as_ref() == INSTALLING_KEY {
                continue;
            }
            h.write_field(tag);
            h.write_field(&k);
            h.write_field(&v);
        }
    }
    Ok((applied, h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db;

    fn with_raw_values(sizes: &[usize]) -> (tempfile::TempDir, std::sync::Arc<DB>) {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        for (i, n) in sizes.iter().enumerate() {
            db.put_cf(cf(&db, CF_RAW).unwrap(), keys::encode(7, &[b'a' + i as u8]), vec![0u8; *n]).unwrap();
        }
        (dir, db)
    }

    fn page(db: &DB, start: &[u8], entries: usize, bytes: usize) -> (usize, Option<Vec<u8>>) {
        let p = scan(db, Mode::Eventual, 7, start, b"", PageLimit { entries, bytes }).unwrap();
        (p.entries.len(), p.next_key)
    }

    #[test]
    fn a_page_stops_at_the_byte_budget_but_holds_at_least_one_entry() {
        let (_dir, db) = with_raw_values(&[600, 600, 600]);
        assert_eq!(page(&db, b"a", 100, 1000), (1, Some(b"b".to_vec())));
        assert_eq!(page(&db, b"a", 100, 1300), (2, Some(b"c".to_vec())));
        // An entry larger than the whole budget still comes back, alone.
        assert_eq!(page(&db, b"b", 100, 10), (1, Some(b"c".to_vec())));
        assert_eq!(page(&db, b"c", 100, 10), (1, None));
        assert_eq!(page(&db, b"a", 100, 1 << 20), (3, None));
    }

    #[test]
    fn a_page_stops_at_the_entry_limit() {
        let (_dir, db) = with_raw_values(&[1, 1, 1]);
        assert_eq!(page(&db, b"a", 2, 1 << 20), (2, Some(b"c".to_vec())));
    }
}
