//! Exactly-once writes: per-client sessions in `sm_meta`.
//!
//! A write carrying a `WriteId` is looked up first: if its sequence was
//! applied, the stored answer is returned and nothing applies again. Each
//! client keeps the answers of its last `WINDOW` sequences; below the
//! window the outcome is no longer known and the write is refused
//! (`FlareResponse::StaleWrite`), never applied twice.
//!
//! Keys:
//! - `sess/{len}{client}{seq}` → the encoded `SessionReply`;
//! - `sessm/{client}` → last seen (ms), highest sequence, window floor, then
//!   the user the session belongs to (none when auth was off);
//! - `clock` → the apply clock: the largest `proposed_at_ms` applied, so
//!   time never goes back and every replica expires the same sessions at
//!   the same entry.

use std::collections::HashMap;

use flaredb_proto::raft as pb;
use prost::Message;
use rocksdb::IteratorMode;

use super::{
    apply::ApplyBatch,
    db::{be_u64, cf, CF_SM_META},
};
use crate::{
    codec,
    error::StoreError,
    types::{FlareResponse, TxnOpResult},
};

/// Answers kept per client (by sequence number).
pub const WINDOW: u64 = 1024;
/// A client that wrote nothing for this long loses its session.
pub const SESSION_TTL_MS: u64 = 10 * 60 * 1000;
/// Sessions are expired at every entry whose index is a multiple of this.
pub const EXPIRE_EVERY: u64 = 1024;
/// The window floor moves in steps of this, so its range delete is rare.
const FLOOR_STEP: u64 = 256;

const REPLY_PREFIX: &[u8] = b"sess/";
const META_PREFIX: &[u8] = b"sessm/";
const CLOCK_KEY: &[u8] = b"clock";

fn client_prefix(client: &str) -> Vec<u8> {
    let mut k = REPLY_PREFIX.to_vec();
    k.push(client.len().min(255) as u8);
    k.extend_from_slice(client.as_bytes());
    k
}

fn reply_key(client: &str, seq: u64) -> Vec<u8> {
    let mut k = client_prefix(client);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn meta_key(client: &str) -> Vec<u8> {
    [META_PREFIX, client.as_bytes()].concat()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SessionMeta {
    last_seen_ms: u64,
    max_seq: u64,
    /// Sequences below this have no stored answer.
    floor: u64,
    /// The user whose writes made it (empty: auth was off); only they may
    /// use its client id, so nobody replays another's stored answers.
    owner: String,
}

impl SessionMeta {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24 + self.owner.len());
        b.extend_from_slice(&self.last_seen_ms.to_be_bytes());
        b.extend_from_slice(&self.max_seq.to_be_bytes());
        b.extend_from_slice(&self.floor.to_be_bytes());
        b.extend_from_slice(self.owner.as_bytes());
        b
    }

    fn decode(raw: &[u8]) -> Result<Self, StoreError> {
        let field = |i: usize| be_u64("session", raw.get(i * 8..i * 8 + 8).unwrap_or_default());
        let owner = std::str::from_utf8(raw.get(24..).unwrap_or_default())
            .map_err(|e| StoreError::corrupt("session owner", e))?
            .to_owned();
        Ok(Self { last_seen_ms: field(0)?, max_seq: field(1)?, floor: field(2)?, owner })
    }
}

/// What one apply batch has staged for sessions, read before RocksDB.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    clock: Option<u64>,
    clock_dirty: bool,
    metas: HashMap<String, SessionMeta>,
    replies: HashMap<Vec<u8>, Vec<u8>>,
    /// Clients expired in this batch: their stored answers, deleted by the
    /// batch, must not be read back from RocksDB before it is written (a
    /// replica that applied the expiry in an earlier batch would not).
    expired: std::collections::HashSet<String>,
}

impl ApplyBatch<'_> {
    /// The apply clock, moved forward to `proposed_at_ms` (never back).
    pub(super) fn advance_clock(&mut self, proposed_at_ms: u64) -> Result<u64, StoreError> {
        let now = self.clock()?;
        if proposed_at_ms > now {
            self.sessions.clock = Some(proposed_at_ms);
            self.sessions.clock_dirty = true;
            return Ok(proposed_at_ms);
        }
        Ok(now)
    }

    fn clock(&mut self) -> Result<u64, StoreError> {
        if let Some(c) = self.sessions.clock {
            return Ok(c);
        }
        let c = match self.db.get_pinned_cf(cf(self.db, CF_SM_META)?, CLOCK_KEY)? {
            Some(raw) => be_u64("apply clock", &raw)?,
            None => 0,
        };
        self.sessions.clock = Some(c);
        Ok(c)
    }

    fn session(&mut self, client: &str) -> Result<SessionMeta, StoreError> {
        if let Some(m) = self.sessions.metas.get(client) {
            return Ok(m.clone());
        }
        let m = match self.db.get_pinned_cf(cf(self.db, CF_SM_META)?, meta_key(client))? {
            Some(raw) => SessionMeta::decode(&raw)?,
            None => SessionMeta::default(),
        };
        self.sessions.metas.insert(client.to_owned(), m.clone());
        Ok(m)
    }

    /// The answer a write with `id` already got, if it was applied; a
    /// refusal if its sequence is below the window or the session is
    /// another user's.
    pub(super) fn deduplicated(&mut self, id: &pb::WriteId) -> Result<Option<FlareResponse>, StoreError> {
        let meta = self.session(&id.client_id)?;
        // An unowned session (made with auth off) is adopted by its next
        // writer (`remember`); an owned one stays its owner's.
        if !meta.owner.is_empty() && !self.user.is_empty() && meta.owner != self.auth.identity(&self.user) {
            return Ok(Some(FlareResponse::SessionNotOwned { client_id: id.client_id.clone() }));
        }
        if id.sequence < meta.floor {
            return Ok(Some(FlareResponse::StaleWrite { sequence: id.sequence, oldest: meta.floor }));
        }
        // Every stored answer is at or below the highest sequence stored: a
        // new write (the usual case) needs no read.
        if id.sequence > meta.max_seq {
            return Ok(None);
        }
        let key = reply_key(&id.client_id, id.sequence);
        let raw = match self.sessions.replies.get(&key) {
            Some(raw) => Some(raw.clone()),
            None if self.sessions.expired.contains(&id.client_id) => None,
            None => self.db.get_cf(cf(self.db, CF_SM_META)?, &key)?,
        };
        let Some(raw) = raw else { return Ok(None) };
        let reply: pb::SessionReply = codec::decode_pb("session reply", &raw)?;
        Ok(Some(decode_reply(reply)))
    }

    /// Keeps the answer `resp` for `id`, at apply clock `now`.
    pub(super) fn remember(&mut self, id: &pb::WriteId, resp: &FlareResponse, now: u64) -> Result<(), StoreError> {
        let Some(reply) = encode_reply(resp) else { return Ok(()) };
        let mut meta = self.session(&id.client_id)?;
        let key = reply_key(&id.client_id, id.sequence);
        let raw = reply.encode_to_vec();
        let sm = cf(self.db, CF_SM_META)?;
        self.batch.put_cf(sm, &key, &raw);
        self.sessions.replies.insert(key, raw);
        meta.last_seen_ms = now;
        meta.max_seq = meta.max_seq.max(id.sequence);
        if meta.owner.is_empty() {
            meta.owner = self.auth.identity(&self.user);
        }
        let floor = meta.max_seq.saturating_sub(WINDOW);
        if floor >= meta.floor + FLOOR_STEP {
            self.batch.delete_range_cf(sm, reply_key(&id.client_id, meta.floor), reply_key(&id.client_id, floor));
            let (prefix, lowest) = (client_prefix(&id.client_id), reply_key(&id.client_id, floor));
            self.sessions.replies.retain(|k, _| !(k.starts_with(&prefix) && *k < lowest));
            meta.floor = floor;
        }
        self.batch.put_cf(sm, meta_key(&id.client_id), meta.encode());
        self.sessions.metas.insert(id.client_id.clone(), meta);
        Ok(())
    }

    /// Drops the sessions idle for longer than the TTL as of the apply clock.
    pub(super) fn expire_sessions(&mut self) -> Result<(), StoreError> {
        let now = self.clock()?;
        let sm = cf(self.db, CF_SM_META)?;
        let mut expired = Vec::new();
        for item in self.db.iterator_cf(sm, IteratorMode::From(META_PREFIX, rocksdb::Direction::Forward)) {
            let (k, v) = item?;
            let Some(client) = k.strip_prefix(META_PREFIX) else { break };
            let client = String::from_utf8_lossy(client).into_owned();
            // One staged in this batch is in use now.
            let last_seen_ms = match self.sessions.metas.get(&client) {
                Some(m) => m.last_seen_ms,
                None => SessionMeta::decode(&v)?.last_seen_ms,
            };
            if last_seen_ms.saturating_add(SESSION_TTL_MS) < now {
                expired.push(client);
            }
        }
        for client in expired {
            let prefix = client_prefix(&client);
            let mut end = prefix.clone();
            end.extend_from_slice(&[0xFF; 9]);
            self.batch.delete_range_cf(sm, &prefix, &end);
            self.batch.delete_cf(sm, meta_key(&client));
            self.sessions.metas.insert(client.clone(), SessionMeta::default());
            self.sessions.replies.retain(|k, _| !k.starts_with(&prefix));
            self.sessions.expired.insert(client);
        }
        Ok(())
    }

    /// Stages the clock, once per batch.
    pub(super) fn finish_sessions(&mut self) -> Result<(), StoreError> {
        if let (true, Some(c)) = (self.sessions.clock_dirty, self.sessions.clock) {
            self.batch.put_cf(cf(self.db, CF_SM_META)?, CLOCK_KEY, c.to_be_bytes());
        }
        Ok(())
    }
}

/// Whether a command's answer is kept for its write id.
pub(super) fn deduplicates(cmd: &pb::command::Cmd) -> bool {
    use pb::command::Cmd;
    matches!(cmd, Cmd::CasPut(_) | Cmd::CasDelete(_) | Cmd::Txn(_))
}

fn encode_reply(resp: &FlareResponse) -> Option<pb::SessionReply> {
    use pb::{session_reply::Reply, txn_op_reply::Result as R};
    let reply = match resp {
        FlareResponse::Cas { success, current_version, new_version } => {
            Reply::Cas(pb::CasReply { success: *success, current_version: *current_version, new_version: *new_version })
        }
        FlareResponse::CasDelete { success, current_version } => {
            Reply::CasDelete(pb::CasDeleteReply { success: *success, current_version: *current_version })
        }
        // A branch that wrote nothing need not be answered the same again:
        // a retry reads afresh, and no read values are kept.
        FlareResponse::Txn { results, .. }
            if !results.iter().any(|r| matches!(r, TxnOpResult::Put { .. } | TxnOpResult::Delete { .. })) =>
        {
            return None
        }
        FlareResponse::Txn { succeeded, revision, results } => Reply::Txn(pb::TxnReply {
            succeeded: *succeeded,
            revision: *revision,
            results: results
                .iter()
                .map(|r| pb::TxnOpReply {
                    result: Some(match r {
                        TxnOpResult::Put { version } => R::PutVersion(*version),
                        TxnOpResult::Delete { deleted } => R::Deleted(*deleted),
                        TxnOpResult::Get { key, found } => R::Get(pb::TxnGetReply {
                            key: key.clone(),
                            found: found.is_some(),
                            version: found.as_ref().map_or(0, |(v, _)| *v),
                            value: found.as_ref().map(|(_, v)| v.clone()).unwrap_or_default(),
                        }),
                        TxnOpResult::Empty => R::Empty(pb::Blank {}),
                    }),
                })
                .collect(),
        }),
        // Refusals and other answers change nothing: a retry gets the same.
        _ => return None,
    };
    Some(pb::SessionReply { reply: Some(reply) })
}

fn decode_reply(r: pb::SessionReply) -> FlareResponse {
    use pb::{session_reply::Reply, txn_op_reply::Result as R};
    match r.reply {
        Some(Reply::Cas(c)) => {
            FlareResponse::Cas { success: c.success, current_version: c.current_version, new_version: c.new_version }
        }
        Some(Reply::CasDelete(c)) => {
            FlareResponse::CasDelete { success: c.success, current_version: c.current_version }
        }
        Some(Reply::Txn(t)) => FlareResponse::Txn {
            succeeded: t.succeeded,
            revision: t.revision,
            results: t
                .results
                .into_iter()
                .map(|r| match r.result {
                    Some(R::PutVersion(version)) => TxnOpResult::Put { version },
                    Some(R::Deleted(deleted)) => TxnOpResult::Delete { deleted },
                    Some(R::Get(g)) => TxnOpResult::Get { key: g.key, found: g.found.then_some((g.version, g.value)) },
                    Some(R::Empty(_)) | None => TxnOpResult::Empty,
                })
                .collect(),
        },
        None => FlareResponse::None,
    }
}
