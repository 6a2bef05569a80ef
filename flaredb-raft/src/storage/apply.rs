//! Applying committed commands: pure decisions over a read view of the state
//! machine, collected into one `WriteBatch` per batch of entries.
//!
//! Later entries of a batch must see earlier ones before the batch is written,
//! so strong-key writes are staged in an overlay consulted before RocksDB.
//! Transactions are applied in `apply_txn.rs` over the same overlay.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ops::Bound,
    sync::Arc,
};

use bytes::Bytes;
use flaredb_proto::raft as pb;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, DB};

use super::db::{cf, CF_CAS, CF_RAW};
use super::{
    history,
    lease::LeaseOverlay,
    session::{self, Sessions},
    sm_meta,
};
use crate::{
    auth::AuthState,
    error::StoreError,
    keys::{self, NamespaceId},
    namespace::{Mode, NamespaceInfo, NamespaceRejection, Registry},
    quota::NsUsage,
    types::FlareResponse,
    watch::{ChangeEvent, EventKind},
};

/// One batch being applied.
pub struct ApplyBatch<'a> {
    pub(super) db: &'a DB,
    pub batch: WriteBatch,
    pub registry: Registry,
    /// Encoded cas key → staged (version, value) (None = deleted in this
    /// batch). Ordered, so a delete-prefix finds the staged keys of its range;
    /// values are kept because a transaction's gets read them.
    cas_overlay: BTreeMap<Vec<u8>, Option<(u64, Bytes)>>,
    /// Encoded raw key → staged value length (None = deleted in this batch).
    raw_overlay: HashMap<Vec<u8>, Option<usize>>,
    /// Node ids retired by this batch.
    pub retired: Vec<u64>,
    /// Changes of strong keys, in order, for the watch hub once written.
    pub events: Vec<ChangeEvent>,
    pub(super) sessions: Sessions,
    pub(super) leases: LeaseOverlay,
    /// Users and roles as of this point of the batch; `auth_changed` when an
    /// auth command of the batch changed them (then written with the batch).
    pub auth: Arc<AuthState>,
    pub auth_changed: bool,
    /// Usage and quota per namespace as of this point of the batch; the
    /// namespaces in `usage_changed` are written with the batch.
    pub usage: Arc<BTreeMap<NamespaceId, NsUsage>>,
    pub usage_changed: BTreeSet<NamespaceId>,
    /// The user the command being applied came from (empty: auth was off).
    pub(super) user: String,
}

impl<'a> ApplyBatch<'a> {
    pub fn new(db: &'a DB, registry: Registry) -> Self {
        Self {
            db,
            batch: WriteBatch::default(),
            registry,
            cas_overlay: BTreeMap::new(),
            raw_overlay: HashMap::new(),
            retired: Vec::new(),
            events: Vec::new(),
            sessions: Sessions::default(),
            leases: LeaseOverlay::default(),
            auth: Arc::default(),
            auth_changed: false,
            usage: Arc::default(),
            usage_changed: BTreeSet::new(),
            user: String::new(),
        }
    }

    /// Starts from these usage figures and quotas.
    pub fn with_usage(mut self, usage: Arc<BTreeMap<NamespaceId, NsUsage>>) -> Self {
        self.usage = usage;
        self
    }

    /// Counts a change of `keys` live keys and `bytes` bytes in namespace `id`.
    fn account(&mut self, id: NamespaceId, keys: i64, bytes: i64) {
        Arc::make_mut(&mut self.usage).entry(id).or_default().add(keys, bytes);
        self.usage_changed.insert(id);
    }

    /// Whether namespace `id` has a quota: only then is a write's growth
    /// worked out before it is staged (a second read of the key otherwise).
    pub(super) fn has_quota(&self, id: NamespaceId) -> bool {
        self.usage.get(&id).is_some_and(|u| u.max_keys != 0 || u.max_bytes != 0)
    }

    /// Counts the removal of encoded `key` whose value had `old` bytes.
    fn account_removed(&mut self, id: NamespaceId, key: &[u8], old: usize) {
        self.account(id, -1, -((user_key_len(key) + old) as i64));
    }

    /// Refuses growth of `ns` past its quota (the answer to send back).
    pub(super) fn admits(&self, ns: &NamespaceInfo, keys: i64, bytes: i64) -> Result<(), FlareResponse> {
        match self.usage.get(&ns.id) {
            Some(u) => u.admits(&ns.name, keys, bytes).map_err(FlareResponse::QuotaExceeded),
            None => Ok(()),
        }
    }

    /// How a put of a `value_len`-byte value at encoded `key` (in the cas or
    /// raw family) changes its namespace's (keys, bytes).
    pub(super) fn put_growth(&self, key: &[u8], value_len: usize, cas: bool) -> Result<(i64, i64), StoreError> {
        let old = if cas { self.cas_head(key)?.value_len() } else { self.raw_value_len(key)? };
        Ok(growth(key, old, value_len))
    }

    /// The value length of an encoded raw key as of this point of the batch.
    fn raw_value_len(&self, key: &[u8]) -> Result<Option<usize>, StoreError> {
        if let Some(&staged) = self.raw_overlay.get(key) {
            return Ok(staged);
        }
        Ok(self.db.get_pinned_cf(cf(self.db, CF_RAW)?, key)?.map(|v| v.len()))
    }

    /// Starts from these users and roles.
    pub fn with_auth(mut self, auth: Arc<AuthState>) -> Self {
        self.auth = auth;
        self
    }

    /// The version of an encoded cas key as of this point of the batch (0 = absent).
    pub(super) fn cas_version(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self.cas_head(key)?.version)
    }

    /// The version and value length of an encoded cas key as of this point
    /// of the batch, from one read: what a write needs to stage it and count it.
    pub(super) fn cas_head(&self, key: &[u8]) -> Result<Head, StoreError> {
        if let Some(staged) = self.cas_overlay.get(key) {
            return Ok(staged.as_ref().map_or(Head::ABSENT, |(v, value)| Head { version: *v, len: value.len() }));
        }
        match self.db.get_pinned_cf(cf(self.db, CF_CAS)?, key)? {
            Some(raw) => {
                let (version, value) =
                    keys::decode_versioned(&raw).ok_or_else(|| StoreError::corrupt("cas record", "short"))?;
                Ok(Head { version, len: value.len() })
            }
            None => Ok(Head::ABSENT),
        }
    }

    /// The (version, value) of an encoded cas key as of this point of the batch.
    pub(super) fn cas_record(&self, key: &[u8]) -> Result<Option<(u64, Bytes)>, StoreError> {
        if let Some(staged) = self.cas_overlay.get(key) {
            return Ok(staged.clone());
        }
        let Some(raw) = self.db.get_pinned_cf(cf(self.db, CF_CAS)?, key)? else { return Ok(None) };
        let (version, value) =
            keys::decode_versioned(&raw).ok_or_else(|| StoreError::corrupt("cas record", "short"))?;
        Ok(Some((version, Bytes::copy_from_slice(value))))
    }

    /// The encoded cas keys present in `[start, end)` (`None` = unbounded) as
    /// of this point of the batch, in key order, with their heads.
    pub(super) fn cas_keys_in(&self, start: &[u8], end: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Head)>, StoreError> {
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let mut live = BTreeMap::new();
        for item in self.db.iterator_cf_opt(cf(self.db, CF_CAS)?, opts, IteratorMode::From(start, Direction::Forward)) {
            let (k, v) = item?;
            // A staged key is decided by the overlay below.
            if !self.cas_overlay.contains_key(k.as_ref()) {
                let (version, value) =
                    keys::decode_versioned(&v).ok_or_else(|| StoreError::corrupt("cas record", "short"))?;
                live.insert(k.to_vec(), Head { version, len: value.len() });
            }
        }
        let range = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
        let staged = self.cas_overlay.range::<[u8], _>(range);
        live.extend(
            staged
                .filter_map(|(k, s)| s.as_ref().map(|(v, value)| (k.clone(), Head { version: *v, len: value.len() }))),
        );
        Ok(live.into_iter().collect())
    }

    /// Stages a put of `key` (encoded, in `ns`) that held `prev`, attached to
    /// `lease` (0 = none, which detaches it); the new version is the log index.
    pub(super) fn stage_cas_put(
        &mut self,
        ns: &NamespaceInfo,
        key: Vec<u8>,
        index: u64,
        value: &Bytes,
        prev: Head,
        lease: u64,
    ) -> Result<(), StoreError> {
        self.attach(&key, lease)?;
        let (k, b) = growth(&key, prev.value_len(), value.len());
        self.account(ns.id, k, b);
        self.batch.put_cf(cf(self.db, CF_CAS)?, &key, keys::encode_versioned(index, value));
        self.record(EventKind::Put, ns, &key, value.clone(), index, prev.version)?;
        self.cas_overlay.insert(key, Some((index, value.clone())));
        Ok(())
    }

    /// Stages a delete, at log `index`, of `key` that holds `prev`.
    pub(super) fn stage_cas_delete(
        &mut self,
        ns: &NamespaceInfo,
        key: Vec<u8>,
        index: u64,
        prev: Head,
    ) -> Result<(), StoreError> {
        self.attach(&key, 0)?;
        if let Some(old) = prev.value_len() {
            self.account_removed(ns.id, &key, old);
        }
        self.batch.delete_cf(cf(self.db, CF_CAS)?, &key);
        self.record(EventKind::Delete, ns, &key, Bytes::new(), index, prev.version)?;
        self.cas_overlay.insert(key, None);
        Ok(())
    }

    /// Writes a change to the watch history, in this batch, and keeps it for the hub.
    fn record(
        &mut self,
        kind: EventKind,
        ns: &NamespaceInfo,
        key: &[u8],
        value: Bytes,
        index: u64,
        prev: u64,
    ) -> Result<(), StoreError> {
        let user_key = keys::decode(key).map_or(&[][..], |(_, k)| k);
        let e = ChangeEvent {
            kind,
            namespace: ns.name.as_str().into(),
            key: Bytes::copy_from_slice(user_key),
            value,
            revision: index,
            prev_version: prev,
        };
        // The number within the batch keeps the events of one entry apart and in order.
        let n = u32::try_from(self.events.len()).map_err(|_| StoreError::corrupt("apply batch", "too many events"))?;
        history::put_event(self.db, &mut self.batch, n, &e)?;
        self.events.push(e);
        Ok(())
    }

    /// The target namespace of a data command, without creating it.
    /// `Ok(None)`: it does not exist but the command may create it by writing.
    pub(super) fn lookup(
        &self,
        target: &Option<pb::Target>,
        mode: Mode,
    ) -> Result<Option<NamespaceInfo>, FlareResponse> {
        let (name, auto) = target_of(target);
        self.registry.lookup(name, mode, auto).map_err(FlareResponse::Rejected)
    }

    /// The namespace a write that will succeed goes to: `found`, or created
    /// now. Only a successful write creates a namespace; a failed compare or a
    /// delete of nothing leaves the registry as it was.
    pub(super) fn for_write(
        &mut self,
        found: Option<NamespaceInfo>,
        target: &Option<pb::Target>,
        mode: Mode,
    ) -> Result<NamespaceInfo, StoreError> {
        if let Some(ns) = found {
            return Ok(ns);
        }
        let info = self.registry.create(target_of(target).0, mode);
        sm_meta::put_namespace(self.db, &mut self.batch, &info)?;
        Ok(info)
    }

    /// Applies one command written at log `index`; a write already applied
    /// under the same write id answers as it did then (`session.rs`).
    pub fn command(&mut self, index: u64, cmd: &pb::Command) -> Result<FlareResponse, StoreError> {
        let now = self.advance_clock(cmd.proposed_at_ms)?;
        let Some(c) = &cmd.cmd else { return Ok(FlareResponse::None) };
        self.user.clone_from(&cmd.user);
        let id = cmd.write_id.as_ref().filter(|w| !w.client_id.is_empty() && session::deduplicates(c));
        if let Some(id) = id {
            if let Some(answered) = self.deduplicated(id)? {
                return Ok(answered);
            }
        }
        let resp = self.apply_cmd(index, c)?;
        if let Some(id) = id {
            self.remember(id, &resp, now)?;
        }
        Ok(resp)
    }

    fn apply_cmd(&mut self, index: u64, cmd: &pb::command::Cmd) -> Result<FlareResponse, StoreError> {
        use pb::command::Cmd;
        match cmd {
            Cmd::CasPut(c) => {
                let found = match self.lookup(&c.target, Mode::Strong) {
                    Ok(found) => found,
                    Err(resp) => return Ok(resp),
                };
                // An absent namespace holds no keys: every version there is 0.
                let head = match &found {
                    Some(ns) => self.cas_head(&keys::encode(ns.id, &c.key))?,
                    None => Head::ABSENT,
                };
                let current = head.version;
                if current != c.expected_version {
                    return Ok(FlareResponse::Cas { success: false, current_version: current, new_version: 0 });
                }
                if c.lease_id != 0 && !self.lease_exists(c.lease_id)? {
                    return Ok(FlareResponse::LeaseNotFound { id: c.lease_id });
                }
                if c.lease_id != 0 && !self.may_use_lease(c.lease_id)? {
                    return Ok(FlareResponse::LeaseNotOwned { id: c.lease_id });
                }
                if let Some(ns) = found.as_ref().filter(|ns| self.has_quota(ns.id)) {
                    let (k, b) = growth(&keys::encode(ns.id, &c.key), head.value_len(), c.value.len());
                    if let Err(refused) = self.admits(ns, k, b) {
                        return Ok(refused);
                    }
                }
                let ns = self.for_write(found, &c.target, Mode::Strong)?;
                // The version is the log index: unique and increasing, never reused.
                self.stage_cas_put(&ns, keys::encode(ns.id, &c.key), index, &c.value, head, c.lease_id)?;
                Ok(FlareResponse::Cas { success: true, current_version: current, new_version: index })
            }
            Cmd::CasDelete(c) => {
                let ns = match self.lookup(&c.target, Mode::Strong) {
                    Ok(Some(ns)) => ns,
                    // Nothing to delete in a namespace that does not exist.
                    Ok(None) => return Ok(FlareResponse::CasDelete { success: false, current_version: 0 }),
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                let head = self.cas_head(&key)?;
                let current = head.version;
                if current == 0 || current != c.expected_version {
                    return Ok(FlareResponse::CasDelete { success: false, current_version: current });
                }
                self.stage_cas_delete(&ns, key, index, head)?;
                Ok(FlareResponse::CasDelete { success: true, current_version: current })
            }
            Cmd::RawPut(c) => {
                let found = match self.lookup(&c.target, Mode::Eventual) {
                    Ok(found) => found,
                    Err(resp) => return Ok(resp),
                };
                let ns = self.for_write(found, &c.target, Mode::Eventual)?;
                let key = keys::encode(ns.id, &c.key);
                let (k, b) = self.put_growth(&key, c.value.len(), false)?;
                if let Err(refused) = self.admits(&ns, k, b) {
                    return Ok(refused);
                }
                self.account(ns.id, k, b);
                self.batch.put_cf(cf(self.db, CF_RAW)?, &key, &c.value);
                self.raw_overlay.insert(key, Some(c.value.len()));
                Ok(FlareResponse::RawPut)
            }
            Cmd::RawDelete(c) => {
                let ns = match self.lookup(&c.target, Mode::Eventual) {
                    Ok(Some(ns)) => ns,
                    Ok(None) => return Ok(FlareResponse::RawDelete { existed: false }),
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                let old = self.raw_value_len(&key)?;
                if let Some(old) = old {
                    self.account_removed(ns.id, &key, old);
                    self.batch.delete_cf(cf(self.db, CF_RAW)?, &key);
                    self.raw_overlay.insert(key, None);
                }
                Ok(FlareResponse::RawDelete { existed: old.is_some() })
            }
            Cmd::Txn(t) => self.txn(index, t),
            Cmd::LeaseGrant(g) => self.grant_lease(index, g.ttl_seconds),
            Cmd::LeaseRevoke(r) => self.revoke_leases(index, &r.ids, r.expired),
            Cmd::Auth(a) => {
                let mut next = (*self.auth).clone();
                let result = next.apply(a);
                if result.is_ok() {
                    self.auth = Arc::new(next);
                    self.auth_changed = true;
                }
                Ok(FlareResponse::Auth(result))
            }
            Cmd::SetQuota(q) => {
                let Some(ns) = self.registry.get(crate::namespace::canonical_name(&q.namespace)).cloned() else {
                    return Ok(FlareResponse::Rejected(NamespaceRejection::NotFound(q.namespace.clone())));
                };
                let u = Arc::make_mut(&mut self.usage).entry(ns.id).or_default();
                (u.max_keys, u.max_bytes) = (q.max_keys, q.max_bytes);
                self.usage_changed.insert(ns.id);
                Ok(FlareResponse::QuotaSet)
            }
            Cmd::RetireNode(r) => {
                sm_meta::put_retired(self.db, &mut self.batch, r.node_id)?;
                self.retired.push(r.node_id);
                Ok(FlareResponse::None)
            }
            Cmd::CreateNamespace(c) => {
                let mode = match pb::Mode::try_from(c.mode) {
                    Ok(pb::Mode::Eventual) => Mode::Eventual,
                    _ => Mode::Strong,
                };
                let target = Some(pb::Target { namespace: c.name.clone(), auto_create: true });
                Ok(match self.lookup(&target, mode) {
                    Ok(Some(info)) => FlareResponse::Namespace { info, created: false },
                    Ok(None) => FlareResponse::Namespace { info: self.for_write(None, &target, mode)?, created: true },
                    Err(resp) => resp,
                })
            }
        }
    }
}

/// (namespace name, whether the command may create it).
fn target_of(target: &Option<pb::Target>) -> (&str, bool) {
    target.as_ref().map_or(("", false), |t| (t.namespace.as_str(), t.auto_create))
}

/// The user key's length of an encoded key (what quotas count, with the value).
fn user_key_len(key: &[u8]) -> usize {
    key.len().saturating_sub(4)
}

/// How putting a `value_len`-byte value at encoded `key`, which held a value
/// of `old` bytes (`None`: absent), changes its namespace's (keys, bytes).
fn growth(key: &[u8], old: Option<usize>, value_len: usize) -> (i64, i64) {
    match old {
        Some(old) => (0, value_len as i64 - old as i64),
        None => (1, (user_key_len(key) + value_len) as i64),
    }
}

/// What a cas key holds: its version (0 = absent) and its value's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub version: u64,
    pub len: usize,
}

impl Head {
    pub const ABSENT: Head = Head { version: 0, len: 0 };

    /// The value's length, `None` when the key is absent.
    pub fn value_len(&self) -> Option<usize> {
        (self.version != 0).then_some(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db;

    fn target(name: &str) -> Option<pb::Target> {
        Some(pb::Target { namespace: name.into(), auto_create: true })
    }

    fn cmd(c: pb::command::Cmd) -> pb::Command {
        pb::Command { cmd: Some(c), ..Default::default() }
    }

    #[test]
    fn only_a_successful_write_creates_a_namespace() {
        use pb::command::Cmd;
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        let mut b = ApplyBatch::new(&db, Registry::new());
        let failed = [
            Cmd::CasPut(pb::CasPut {
                target: target("a"),
                key: "k".into(),
                value: "v".into(),
                expected_version: 9,
                lease_id: 0,
            }),
            Cmd::CasDelete(pb::CasDelete { target: target("b"), key: "k".into(), expected_version: 1 }),
            Cmd::RawDelete(pb::RawDelete { target: target("c"), key: "k".into() }),
        ];
        let answers: Vec<FlareResponse> = failed.into_iter().map(|c| b.command(5, &cmd(c)).unwrap()).collect();
        assert_eq!(
            answers,
            [
                FlareResponse::Cas { success: false, current_version: 0, new_version: 0 },
                FlareResponse::CasDelete { success: false, current_version: 0 },
                FlareResponse::RawDelete { existed: false },
            ]
        );
        assert_eq!(b.registry.list().count(), 1, "a failed write created a namespace");
        assert!(b.batch.is_empty(), "a failed write staged a change");

        let put = Cmd::CasPut(pb::CasPut {
            target: target("a"),
            key: "k".into(),
            value: "v".into(),
            expected_version: 0,
            lease_id: 0,
        });
        assert!(matches!(b.command(6, &cmd(put)).unwrap(), FlareResponse::Cas { success: true, new_version: 6, .. }));
        let raw = Cmd::RawPut(pb::RawPut { target: target("c"), key: "k".into(), value: "v".into() });
        assert_eq!(b.command(7, &cmd(raw)).unwrap(), FlareResponse::RawPut);
        let names: Vec<&str> = b.registry.list().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "default"]);
    }
}
