//! The `history` column family: every applied change of a strong key, by
//! revision, for watchers that start in the past.
//!
//! Keys: `0x01 ++ revision (BE u64) ++ n (BE u32)`, n numbering the events of
//! one apply batch. `FLOOR_KEY` holds the floor: every event at or above it
//! is present. History is local to a node and outside the state hash: each
//! node prunes its own (`prune`), and a snapshot install clears it and
//! raises the floor past the snapshot (`clear_for_install`).

use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, DB};

use super::db::{be_u64, cf, CF_HISTORY};
use crate::{
    error::StoreError,
    watch::{ChangeEvent, EventKind, WatchFilter},
};

const FLOOR_KEY: &[u8] = b"\x00floor";
const EVENT_TAG: u8 = 1;
const KEY_LEN: usize = 13;

/// Where a replay is: the next event key to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub revision: u64,
    n: u32,
}

impl Cursor {
    pub fn at(revision: u64) -> Self {
        Self { revision, n: 0 }
    }

    fn key(self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[0] = EVENT_TAG;
        k[1..9].copy_from_slice(&self.revision.to_be_bytes());
        k[9..].copy_from_slice(&self.n.to_be_bytes());
        k
    }

    fn parse(key: &[u8]) -> Option<Self> {
        if key.len() != KEY_LEN || key[0] != EVENT_TAG {
            return None;
        }
        let revision = u64::from_be_bytes(key[1..9].try_into().ok()?);
        Some(Self { revision, n: u32::from_be_bytes(key[9..].try_into().ok()?) })
    }
}

/// Stages event `n` of an apply batch.
pub fn put_event(db: &DB, batch: &mut WriteBatch, n: u32, e: &ChangeEvent) -> Result<(), StoreError> {
    let key = Cursor { revision: e.revision, n }.key();
    batch.put_cf(cf(db, CF_HISTORY)?, key, encode(e));
    Ok(())
}

/// kind (1) | prev_version (8) | namespace length (1) | namespace | key length (4) | key | value
fn encode(e: &ChangeEvent) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + e.namespace.len() + e.key.len() + e.value.len());
    v.push(match e.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    v.extend_from_slice(&e.prev_version.to_be_bytes());
    // Namespace names are at most 64 bytes.
    v.push(e.namespace.len() as u8);
    v.extend_from_slice(e.namespace.as_bytes());
    v.extend_from_slice(&(e.key.len() as u32).to_be_bytes());
    v.extend_from_slice(&e.key);
    v.extend_from_slice(&e.value);
    v
}

fn decode(revision: u64, v: &[u8]) -> Option<ChangeEvent> {
    let (&kind, rest) = v.split_first()?;
    let kind = match kind {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        _ => return None,
    };
    let (prev, rest) = rest.split_at_checked(8)?;
    let (&ns_len, rest) = rest.split_first()?;
    let (ns, rest) = rest.split_at_checked(ns_len as usize)?;
    let (key_len, rest) = rest.split_at_checked(4)?;
    let key_len = u32::from_be_bytes(key_len.try_into().ok()?) as usize;
    let (key, value) = rest.split_at_checked(key_len)?;
    Some(ChangeEvent {
        kind,
        namespace: Arc::from(std::str::from_utf8(ns).ok()?),
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
        revision,
        prev_version: u64::from_be_bytes(prev.try_into().ok()?),
    })
}

fn read_floor(get: Option<impl AsRef<[u8]>>) -> Result<Option<u64>, StoreError> {
    get.map(|raw| be_u64("history floor", raw.as_ref())).transpose()
}

/// The oldest revision this node's history can replay from.
pub fn floor(db: &DB) -> Result<u64, StoreError> {
    Ok(read_floor(db.get_pinned_cf(cf(db, CF_HISTORY)?, FLOOR_KEY)?)?.unwrap_or(1))
}

/// At open: a database without a floor (new, or written by a build without
/// history) has every event from the next applied entry on.
pub fn init_floor(db: &DB, last_applied: u64) -> Result<(), StoreError> {
    let h = cf(db, CF_HISTORY)?;
    if db.get_pinned_cf(h, FLOOR_KEY)?.is_none() {
        db.put_cf(h, FLOOR_KEY, (last_applied + 1).to_be_bytes())?;
    }
    Ok(())
}

/// In the install's clearing batch: history before the snapshot is gone.
pub fn clear_for_install(db: &DB, batch: &mut WriteBatch, snapshot_index: u64) -> Result<(), StoreError> {
    let h = cf(db, CF_HISTORY)?;
    batch.delete_range_cf(h, Cursor::at(0).key(), Cursor::at(u64::MAX).key());
    batch.put_cf(h, FLOOR_KEY, snapshot_index.saturating_add(1).to_be_bytes());
    Ok(())
}

/// Drops events below `new_floor` (a floor never goes down). Unsynced: a
/// crash may bring pruned events back, which is harmless. The caller keeps
/// snapshot installs out (they move the floor too).
pub fn prune(db: &DB, new_floor: u64) -> Result<u64, StoreError> {
    let old = floor(db)?;
    if new_floor <= old {
        return Ok(old);
    }
    let mut b = WriteBatch::default();
    let h = cf(db, CF_HISTORY)?;
    b.delete_range_cf(h, Cursor::at(0).key(), Cursor::at(new_floor).key());
    b.put_cf(h, FLOOR_KEY, new_floor.to_be_bytes());
    db.write(b)?;
    Ok(new_floor)
}

/// One step of a replay.
#[derive(Debug)]
pub enum Replay {
    /// Matching events from the cursor on, and where to go on (`None`: the
    /// end of the range was reached).
    Page { events: Vec<ChangeEvent>, next: Option<Cursor> },
    /// The cursor is below the floor: those events are gone here.
    Compacted { oldest: u64 },
}

/// A replay step ends once the events it kept hold this many bytes of keys
/// and values (after at least one), so watches replaying large values from
/// far back hold a bounded amount each.
pub const REPLAY_PAGE_BYTES: usize = 1 << 20;

/// Reads at most `budget` events (and about `REPLAY_PAGE_BYTES` of kept
/// ones) from `from` up to revision `until` (exclusive) from one view,
/// keeping those `filter` matches.
pub fn replay(db: &DB, filter: &WatchFilter, from: Cursor, until: u64, budget: usize) -> Result<Replay, StoreError> {
    let view = db.snapshot();
    let h = cf(db, CF_HISTORY)?;
    let floor = read_floor(view.get_cf(h, FLOOR_KEY)?)?.unwrap_or(1);
    if from.revision < floor {
        return Ok(Replay::Compacted { oldest: floor });
    }
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(Cursor::at(until).key().to_vec());
    let (mut events, mut bytes) = (Vec::new(), 0usize);
    let items = view.iterator_cf_opt(h, opts, IteratorMode::From(&from.key(), Direction::Forward));
    for (seen, item) in items.enumerate() {
        let (k, v) = item?;
        if seen == budget || bytes >= REPLAY_PAGE_BYTES {
            return Ok(Replay::Page { events, next: Cursor::parse(&k) });
        }
        let c = Cursor::parse(&k).ok_or_else(|| StoreError::corrupt("history key", "malformed"))?;
        let e = decode(c.revision, &v).ok_or_else(|| StoreError::corrupt("history event", "malformed"))?;
        if filter.matches(&e) {
            bytes += e.key.len() + e.value.len();
            events.push(e);
        }
    }
    Ok(Replay::Page { events, next: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db;

    fn ev(rev: u64, key: &str) -> ChangeEvent {
        ChangeEvent {
            kind: EventKind::Put,
            namespace: "default".into(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            revision: rev,
            prev_version: rev - 1,
        }
    }

    fn write(db: &DB, events: &[ChangeEvent]) {
        let mut b = WriteBatch::default();
        for (n, e) in events.iter().enumerate() {
            put_event(db, &mut b, n as u32, e).unwrap();
        }
        db.write(b).unwrap();
    }

    fn all(db: &DB, f: &WatchFilter, from: u64, until: u64, budget: usize) -> Result<Vec<u64>, u64> {
        let (mut out, mut at) = (Vec::new(), Cursor::at(from));
        loop {
            match replay(db, f, at, until, budget).unwrap() {
                Replay::Compacted { oldest } => return Err(oldest),
                Replay::Page { events, next } => {
                    out.extend(events.iter().map(|e| e.revision));
                    match next {
                        Some(n) => at = n,
                        None => return Ok(out),
                    }
                }
            }
        }
    }

    #[test]
    fn replays_in_pages_without_gap_or_duplicate_and_refuses_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        init_floor(&db, 0).unwrap();
        // Revision 3 holds two events of one transaction.
        write(&db, &[ev(2, "a"), ev(3, "a/x"), ev(3, "b"), ev(3, "a/y")]);
        write(&db, &[ev(5, "a/x"), ev(9, "c")]);
        let pre = WatchFilter::new("", "a", true);
        for budget in 1..6 {
            assert_eq!(all(&db, &pre, 1, 100, budget), Ok(vec![2, 3, 3, 5]), "budget {budget}");
        }
        assert_eq!(all(&db, &pre, 3, 5, 1), Ok(vec![3, 3]));
        assert_eq!(all(&db, &WatchFilter::new("other", "a", true), 1, 100, 2), Ok(vec![]));
        assert_eq!(all(&db, &WatchFilter::new("default", "a", false), 1, 100, 2), Ok(vec![2]));

        assert_eq!(prune(&db, 4).unwrap(), 4);
        assert_eq!(prune(&db, 2).unwrap(), 4, "the floor went down");
        assert_eq!(all(&db, &pre, 3, 100, 2), Err(4));
        assert_eq!(all(&db, &pre, 4, 100, 2), Ok(vec![5]));

        let mut b = WriteBatch::default();
        clear_for_install(&db, &mut b, 20).unwrap();
        db.write(b).unwrap();
        assert_eq!(floor(&db).unwrap(), 21);
        assert_eq!(all(&db, &pre, 20, 100, 2), Err(21));
        assert_eq!(all(&db, &pre, 21, 100, 2), Ok(vec![]));
    }

    #[test]
    fn a_page_of_large_values_stops_at_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        init_floor(&db, 0).unwrap();
        let big = |rev| ChangeEvent { value: Bytes::from(vec![b'v'; REPLAY_PAGE_BYTES / 2]), ..ev(rev, "k") };
        write(&db, &[big(2), big(3), big(4), big(5), big(6)]);
        let all_keys = WatchFilter::new("", "", true);
        let Replay::Page { events, next } = replay(&db, &all_keys, Cursor::at(1), 100, 1024).unwrap() else {
            panic!("compacted")
        };
        assert_eq!(events.len(), 2, "the page went past its byte budget");
        assert_eq!(next.map(|c| c.revision), Some(4));
        assert_eq!(all(&db, &all_keys, 1, 100, 1024), Ok(vec![2, 3, 4, 5, 6]));
    }

    #[test]
    fn an_event_survives_encoding() {
        let mut e = ev(7, "k\0\u{ff}");
        e.kind = EventKind::Delete;
        e.value = Bytes::new();
        e.namespace = "ns-1".into();
        assert_eq!(decode(7, &encode(&e)), Some(e));
        assert_eq!(decode(7, &[9]), None);
    }
}
