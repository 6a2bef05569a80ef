//! openraft log storage on the `raft_log` and `raft_meta` column families.
//!
//! Durability rules, each enforced at the line that writes:
//! - `save_vote` fsyncs the WAL before returning; `append` returns once its
//!   entries are written (readable) and reports them flushed to openraft only
//!   after an fsync of the WAL that holds them (`wal_flusher`);
//! - `purge` records last-purged (fsynced) before deleting entries, so a
//!   restart never sees a hole at the start of the log.

use std::{fmt::Debug, io, ops::RangeBounds, sync::Arc};

use flaredb_proto::raft as pb;
use openraft::{
    storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage},
    OptionalSend,
};
use prost::Message;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use super::{
    db::{blocking, cf, sync_opts, write_quick, CF_LOG, CF_RAFT_META},
    wal_flusher::WalFlusher,
};
use crate::{
    codec,
    error::StoreError,
    types::{Entry, LogId, TypeConfig, Vote},
};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"last_purged";

/// Log reads of at most this many entries run inline (see `try_get_log_entries`).
const INLINE_READ_ENTRIES: u64 = 64;

/// Appends below this size are written on the Raft task itself: a small
/// unsynced RocksDB write costs less than a hop to the blocking pool. It is
/// tried with `no_slowdown`, so a write RocksDB would stall (too many L0
/// files, full memtables) moves to the blocking pool instead of freezing the
/// Raft task and its heartbeats.
const INLINE_APPEND_BYTES: usize = 256 << 10;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: Arc<WalFlusher>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_log_id(db: &DB, key: &[u8]) -> Result<Option<LogId>, StoreError> {
    let Some(raw) = db.get_cf(cf(db, CF_RAFT_META)?, key)? else { return Ok(None) };
    let p: pb::LogId = codec::decode_pb("log id", &raw)?;
    Ok(Some(codec::log_id_from_pb(&p)))
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Result<Self, StoreError> {
        let flusher = WalFlusher::start(db.clone())
            .map_err(|e| StoreError::Join(format!("starting the WAL flusher thread: {e}")))?;
        Ok(Self { db, flusher: Arc::new(flusher) })
    }

    /// Writes the entries, not synced: durability is reported by the flusher.
    fn write_entries(db: &DB, encoded: &[(u64, Vec<u8>)], opts: &WriteOptions) -> Result<(), StoreError> {
        let log = cf(db, CF_LOG)?;
        let mut b = WriteBatch::default();
        for (index, raw) in encoded {
            b.put_cf(log, index_key(*index), raw);
        }
        db.write_opt(b, opts)?;
        Ok(())
    }

    /// Inline unless large or RocksDB would stall it (then on the blocking pool).
    async fn write_entries_off_task(&self, encoded: Vec<(u64, Vec<u8>)>) -> Result<(), StoreError> {
        let bytes: usize = encoded.iter().map(|(_, raw)| raw.len()).sum();
        if bytes < INLINE_APPEND_BYTES {
            return write_quick(&self.db, move |db, opts| Self::write_entries(db, &encoded, opts)).await;
        }
        let db = self.db.clone();
        blocking(move || Self::write_entries(&db, &encoded, &WriteOptions::default())).await
    }

    /// Makes an empty log look purged up to `last` with `vote` saved: the
    /// state a node has after installing a snapshot at `last`. Used by restore.
    pub(crate) fn seed(db: &DB, last: &LogId, vote: &Vote) -> Result<(), StoreError> {
        let meta = cf(db, CF_RAFT_META)?;
        let mut b = WriteBatch::default();
        b.put_cf(meta, PURGED_KEY, codec::log_id_to_pb(last).encode_to_vec());
        b.put_cf(meta, COMMITTED_KEY, codec::log_id_to_pb(last).encode_to_vec());
        b.put_cf(meta, VOTE_KEY, codec::vote_to_pb(vote).encode_to_vec());
        db.write_opt(b, &sync_opts())?;
        Ok(())
    }

    fn last_entry(db: &DB) -> Result<Option<LogId>, StoreError> {
        let mut it = db.iterator_cf(cf(db, CF_LOG)?, IteratorMode::End);
        match it.next() {
            Some(item) => {
                let (_, v) = item?;
                Ok(Some(codec::decode_entry(&v)?.log_id))
            }
            None => Ok(None),
        }
    }

    fn read_range(db: &DB, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let log = cf(db, CF_LOG)?;
        let mut out = Vec::new();
        // Entries before the first present one may have been purged; a gap after it is corruption.
        let mut expect = None;
        for item in db.iterator_cf(log, IteratorMode::From(&index_key(start), Direction::Forward)) {
            let (k, v) = item?;
            let index = super::db::be_u64("log key", &k)?;
            if end.is_some_and(|end| index >= end) {
                break;
            }
            if let Some(expect) = expect.filter(|&e| e != index) {
                return Err(StoreError::corrupt("raft log", format!("hole: expected index {expect}, found {index}")));
            }
            out.push(codec::decode_entry(&v)?);
            expect = Some(index.saturating_add(1));
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        // Replication reads at most `max_payload_entries` just-appended
        // entries (memtable hits) per request: read those on this task, as a
        // hop to the blocking pool would be most of the cost.
        if end.is_some_and(|e| e.saturating_sub(start) <= INLINE_READ_ENTRIES) {
            return Ok(Self::read_range(&self.db, start, end)?);
        }
        let db = self.db.clone();
        Ok(blocking(move || Self::read_range(&db, start, end)).await?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let db = self.db.clone();
        let vote = blocking(move || {
            let Some(raw) = db.get_cf(cf(&db, CF_RAFT_META)?, VOTE_KEY)? else { return Ok(None) };
            let p: pb::Vote = codec::decode_pb("vote", &raw)?;
            Ok(Some(codec::vote_from_pb(&p)))
        })
        .await?;
        Ok(vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let db = self.db.clone();
        let state = blocking(move || {
            let last_purged_log_id = read_log_id(&db, PURGED_KEY)?;
            // Entries at or below last-purged may survive a crash mid-purge; they do not count.
            let last_log_id = match (Self::last_entry(&db)?, last_purged_log_id) {
                (Some(e), Some(p)) if e.index <= p.index => Some(p),
                (e, p) => e.or(p),
            };
            Ok(LogState { last_purged_log_id, last_log_id })
        })
        .await?;
        Ok(state)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let db = self.db.clone();
        let raw = codec::vote_to_pb(vote).encode_to_vec();
        blocking(move || {
            let mut b = WriteBatch::default();
            b.put_cf(cf(&db, CF_RAFT_META)?, VOTE_KEY, raw);
            // Durable before returning: a vote granted twice in a term breaks Raft.
            db.write_opt(b, &sync_opts())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Between commit and apply on every write: written inline, and not
        // synced (a lost committed index is only re-learned from the leader).
        let value = committed.map(|id| codec::log_id_to_pb(&id).encode_to_vec());
        write_quick(&self.db, move |db, opts| {
            let mut b = WriteBatch::default();
            match &value {
                Some(v) => b.put_cf(cf(db, CF_RAFT_META)?, COMMITTED_KEY, v),
                None => b.delete_cf(cf(db, CF_RAFT_META)?, COMMITTED_KEY),
            }
            db.write_opt(b, opts)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let db = self.db.clone();
        Ok(blocking(move || read_log_id(&db, COMMITTED_KEY)).await?)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> =
            entries.into_iter().map(|e| (e.log_id.index, codec::encode_entry(&e))).collect();
        if let Err(e) = self.write_entries_off_task(encoded).await {
            callback.io_completed(Err(io::Error::other(e.to_string())));
            return Err(e.into());
        }
        if let Err(cb) = self.flusher.after_next_flush(callback) {
            // Only if the flusher thread died: never report an unsynced append as durable.
            let e = io::Error::other("the WAL flusher thread has stopped");
            cb.io_completed(Err(io::Error::other(e.to_string())));
            return Err(e);
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let db = self.db.clone();
        blocking(move || {
            let mut b = WriteBatch::default();
            b.delete_range_cf(cf(&db, CF_LOG)?, index_key(from), index_key(u64::MAX));
            // Synced so a restart never resurrects entries of a deposed leader.
            db.write_opt(b, &sync_opts())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let db = self.db.clone();
        blocking(move || {
            // One batch: the last-purged mark and the deletion land together.
            // Not synced: the WAL is replayed in order, so a crash loses a
            // purge only with everything after it, leaving entries the
            // snapshot already covers (harmless). A sync here made the Raft
            // task wait on an fsync queued behind the snapshot's memtable
            // flushes: a 0.5–1 s write stall at every snapshot under load.
            let mut b = WriteBatch::default();
            b.put_cf(cf(&db, CF_RAFT_META)?, PURGED_KEY, codec::log_id_to_pb(&log_id).encode_to_vec());
            b.delete_range_cf(cf(&db, CF_LOG)?, index_key(0), index_key(log_id.index.saturating_add(1)));
            db.write(b)?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}
