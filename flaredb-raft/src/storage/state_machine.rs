//! openraft state machine on the `cas`, `raw` and `sm_meta` column families.
//!
//! Apply writes one `WriteBatch` per batch of entries holding the data
//! changes, `last_applied` and membership, so a batch is applied entirely or
//! not at all and never twice. The batch is not fsynced: the log it came from
//! is, and both share one WAL, so the next WAL fsync (of a log append, a vote, a
//! purge) makes it durable; a crash before that replays it from the log.

use std::{
    collections::BTreeSet,
    io,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
};

use futures::{Stream, TryStreamExt};
use openraft::{
    entry::EntryPayload,
    storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot},
    OptionalSend,
};
use rocksdb::DB;

use super::{
    apply::ApplyBatch,
    db::blocking,
    history, lease, session, sm_meta,
    snapshot::{SnapshotDir, SnapshotFile},
    snapshot_trigger::{BytesSinceSnapshot, SnapshotTrigger},
};
/// Usage and quota by namespace id.
type UsageMap = std::collections::BTreeMap<crate::keys::NamespaceId, crate::quota::NsUsage>;

use crate::{
    auth::AuthState,
    error::StoreError,
    lease::{LeaseChange, LeaseTable},
    namespace::Registry,
    types::{FlareResponse, LogId, SnapshotMeta, StoredMembership, TypeConfig},
    watch::{ChangeEvent, Ended, WatchHub, WatchLimits},
};

/// Batches up to this size are applied on the state-machine task itself: a
/// few point reads and one unsynced write cost less than a hop to the
/// blocking pool, which one client's latency would pay on every write.
const INLINE_APPLY_ENTRIES: usize = 16;
const INLINE_APPLY_BYTES: usize = 64 << 10;

struct Applied {
    registry: Registry,
    /// Set when the batch changed users or roles.
    auth: Option<Arc<AuthState>>,
    /// Set when the batch changed a namespace's usage or quota.
    usage: Option<Arc<UsageMap>>,
    retired: Vec<u64>,
    answers: Vec<(FlareResponse, Option<Responder>)>,
    events: Vec<ChangeEvent>,
    leases: Vec<LeaseChange>,
    last: u64,
}

/// Applies `batch` in one `WriteBatch` (see the module comment).
fn apply_batch(
    db: &DB,
    (registry, auth, usage): (Registry, Arc<AuthState>, Arc<UsageMap>),
    leases_live: bool,
    batch: Vec<EntryResponder<TypeConfig>>,
) -> Result<Applied, StoreError> {
    let mut ab = ApplyBatch::new(db, registry).with_auth(auth).with_usage(usage);
    if !leases_live {
        ab = ab.without_leases();
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut last = None;
    for (entry, responder) in batch {
        // At the same entry on every replica, against the replicated clock.
        if entry.log_id.index.is_multiple_of(session::EXPIRE_EVERY) {
            ab.expire_sessions()?;
        }
        let resp = match &entry.payload {
            EntryPayload::Blank => FlareResponse::None,
            EntryPayload::Normal(req) => ab.command(entry.log_id.index, &req.0)?,
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                sm_meta::put_membership(db, &mut ab.batch, &stored)?;
                FlareResponse::None
            }
        };
        last = Some(entry.log_id);
        answers.push((resp, responder));
    }
    if let Some(last) = last {
        sm_meta::put_last_applied(db, &mut ab.batch, &last)?;
    }
    ab.finish_sessions()?;
    let auth = ab.auth_changed.then(|| ab.auth.clone());
    if let Some(auth) = &auth {
        sm_meta::put_auth(db, &mut ab.batch, auth)?;
    }
    for id in &ab.usage_changed {
        if let Some(u) = ab.usage.get(id) {
            sm_meta::put_usage(db, &mut ab.batch, *id, u)?;
        }
    }
    let usage = (!ab.usage_changed.is_empty()).then(|| ab.usage.clone());
    db.write(ab.batch)?;
    let last = last.map_or(0, |l| l.index);
    let leases = std::mem::take(&mut ab.leases.changes);
    Ok(Applied { registry: ab.registry, auth, usage, retired: ab.retired, answers, events: ab.events, leases, last })
}

/// Whether applying the entry iterates a key range (a transaction's
/// delete-prefix, a lease revoke, the session expiry that runs at every
/// EXPIRE_EVERY-th index), whose cost its size does not tell: never inline.
fn scans((entry, _): &EntryResponder<TypeConfig>) -> bool {
    use flaredb_proto::raft::{command::Cmd, txn_op::Op};
    if entry.log_id.index.is_multiple_of(session::EXPIRE_EVERY) {
        return true;
    }
    let EntryPayload::Normal(req) = &entry.payload else { return false };
    match &req.0.cmd {
        Some(Cmd::Txn(t)) => t.success.iter().chain(&t.failure).any(|op| matches!(op.op, Some(Op::DeletePrefix(_)))),
        Some(Cmd::LeaseRevoke(_)) => true,
        _ => false,
    }
}

/// State the services read without going through Raft.
#[derive(Debug)]
pub struct SmShared {
    pub registry: RwLock<Registry>,
    /// Users, roles and the auth switch; replaced whole on each change.
    pub auth: RwLock<Arc<AuthState>>,
    /// Usage and quota per namespace id, as applied.
    pub usage: RwLock<Arc<UsageMap>>,
    /// Node ids removed from the cluster (never reused).
    pub retired: RwLock<BTreeSet<u64>>,
    /// Set by a manual snapshot request (Admin/Snapshot): openraft asks the
    /// state machine with `force = false` even then (its sm worker), so the
    /// trigger must be told that this build is not to be refused.
    pub force_snapshot: AtomicBool,
    /// Watchers of this node; fed after each applied batch is written.
    pub watch: WatchHub,
    /// The live leases, with the leader's deadlines (`lease.rs`).
    pub leases: LeaseTable,
    /// How long the last snapshot build and the last install took (ms), for metrics.
    pub last_build_ms: std::sync::atomic::AtomicU64,
    pub last_install_ms: std::sync::atomic::AtomicU64,
}

impl SmShared {
    pub fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn set_registry(&self, r: Registry) {
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = r;
    }

    pub fn auth(&self) -> Arc<AuthState> {
        self.auth.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_auth(&self, a: Arc<AuthState>) {
        *self.auth.write().unwrap_or_else(|p| p.into_inner()) = a;
    }

    pub fn usage(&self) -> Arc<UsageMap> {
        self.usage.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_usage(&self, u: Arc<UsageMap>) {
        *self.usage.write().unwrap_or_else(|p| p.into_inner()) = u;
    }

    pub fn is_retired(&self, id: u64) -> bool {
        self.retired.read().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    fn set_retired(&self, ids: BTreeSet<u64>) {
        *self.retired.write().unwrap_or_else(|p| p.into_inner()) = ids;
    }
}

pub struct StateMachine {
    db: Arc<DB>,
    snapshots: SnapshotDir,
    shared: Arc<SmShared>,
    /// `None`: build whenever openraft's policy asks.
    trigger: Option<SnapshotTrigger>,
    applied_bytes: BytesSinceSnapshot,
}

impl StateMachine {
    /// Opens the state machine, finishing an install a crash interrupted and
    /// deleting snapshot files CURRENT does not name.
    pub async fn open(db: Arc<DB>, snapshots: SnapshotDir) -> Result<Self, StoreError> {
        let (d, s) = (db.clone(), snapshots.clone());
        let (registry, retired, applied, leases, (auth, usage)) = blocking(move || {
            s.recover(&d)?;
            let applied = sm_meta::read_last_applied(&d)?.map_or(0, |l| l.index);
            history::init_floor(&d, applied)?;
            let (registry, retired) = (sm_meta::load_registry(&d)?, sm_meta::load_retired(&d)?);
            let meta = (sm_meta::load_auth(&d)?, sm_meta::load_usage(&d)?);
            Ok((registry, retired, applied, lease::load_leases(&d)?, meta))
        })
        .await?;
        let table = LeaseTable::default();
        table.load(leases, std::time::Instant::now());
        let shared = SmShared {
            registry: RwLock::new(registry),
            auth: RwLock::new(Arc::new(auth)),
            usage: RwLock::new(Arc::new(usage)),
            retired: RwLock::new(retired),
            force_snapshot: AtomicBool::new(false),
            watch: WatchHub::new(applied, WatchLimits::default()),
            leases: table,
            last_build_ms: Default::default(),
            last_install_ms: Default::default(),
        };
        Ok(Self { db, snapshots, shared: Arc::new(shared), trigger: None, applied_bytes: Default::default() })
    }

    /// Builds snapshots by this trigger; openraft's policy must then be
    /// `trigger.raft_policy()` (see `snapshot_trigger.rs`).
    pub fn with_snapshot_trigger(mut self, trigger: SnapshotTrigger) -> Self {
        self.trigger = Some(trigger);
        self
    }

    /// Bounds each watcher's buffer by `limits` (before `shared` is handed out).
    pub fn with_watch_limits(mut self, limits: WatchLimits) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.watch = WatchHub::new(s.watch.published(), limits);
        }
        self
    }

    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }
}

type Responder = openraft::storage::ApplyResponder<TypeConfig>;

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let db = self.db.clone();
        Ok(blocking(move || Ok((sm_meta::read_last_applied(&db)?, sm_meta::read_membership(&db)?))).await?)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let registry = (self.shared.registry().clone(), self.shared.auth(), self.shared.usage());
        let leases_live = !self.shared.leases.is_empty();
        let payload: usize = batch
            .iter()
            .map(|(e, _)| match &e.payload {
                EntryPayload::Normal(req) => prost::Message::encoded_len(&req.0),
                _ => 0,
            })
            .sum();
        self.applied_bytes.add(payload);
        let inline = batch.len() <= INLINE_APPLY_ENTRIES && payload <= INLINE_APPLY_BYTES && !batch.iter().any(scans);
        let applied = if inline {
            apply_batch(&self.db, registry, leases_live, batch)?
        } else {
            let db = self.db.clone();
            blocking(move || apply_batch(&db, registry, leases_live, batch)).await?
        };
        self.shared.leases.apply(&applied.leases, std::time::Instant::now());
        self.shared.set_registry(applied.registry);
        if let Some(auth) = applied.auth {
            self.shared.set_auth(auth);
        }
        if let Some(usage) = applied.usage {
            self.shared.set_usage(usage);
        }
        if !applied.retired.is_empty() {
            self.shared.retired.write().unwrap_or_else(|p| p.into_inner()).extend(applied.retired);
        }
        // Written, so a watcher never sees a change that is not applied.
        self.shared.watch.publish(&applied.events, applied.last);
        for (resp, responder) in applied.answers {
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone(), snapshots: self.snapshots.clone(), shared: self.shared.clone() }
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        let forced = force || self.shared.force_snapshot.swap(false, Ordering::AcqRel);
        if let (false, Some(trigger)) = (forced, self.trigger) {
            let (db, dir) = (self.db.clone(), self.snapshots.clone());
            let since = blocking(move || {
                let applied = sm_meta::read_last_applied(&db)?.map_or(0, |l| l.index);
                let snapshot = dir.current()?.and_then(|(m, _)| m.last_log_id).map_or(0, |l| l.index);
                Ok(applied.saturating_sub(snapshot))
            })
            .await;
            match since {
                Ok(entries) if !trigger.should_build(entries, self.applied_bytes.get()) => return None,
                Ok(_) => {}
                // Building is the safe side: the build reports the error if it persists.
                Err(e) => tracing::warn!(error = %e, "reading what the last snapshot covers"),
            }
        }
        self.applied_bytes.reset();
        Some(self.get_snapshot_builder().await)
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        let (db, dir, meta_c) = (self.db.clone(), self.snapshots.clone(), meta.clone());
        let (registry, retired, leases, (auth, usage)) = blocking(move || {
            let meta = meta_c;
            // A received file; our own checkpoint only if openraft restores from it.
            let path = snapshot.file_path()?;
            dir.install(&db, &meta, &path)?;
            // A received temp file was moved by install; dropping the handle
            // deletes one that was not (see `SnapshotFile`).
            drop(snapshot);
            let (registry, retired) = (sm_meta::load_registry(&db)?, sm_meta::load_retired(&db)?);
            let meta = (sm_meta::load_auth(&db)?, sm_meta::load_usage(&db)?);
            Ok((registry, retired, lease::load_leases(&db)?, meta))
        })
        .await?;
        self.shared.set_registry(registry);
        self.shared.set_auth(Arc::new(auth));
        self.shared.set_usage(Arc::new(usage));
        self.shared.set_retired(retired);
        self.shared.leases.load(leases, std::time::Instant::now());
        self.applied_bytes.reset();
        // Their next events may be older than anything this node now has.
        let revision = meta.last_log_id.map_or(0, |l| l.index);
        self.shared.watch.end_all(Ended::SnapshotInstalled { revision }, revision);
        self.shared.last_install_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let dir = self.snapshots.clone();
        // Opened (a checkpoint: held) under the directory lock, so a concurrent
        // build cannot delete it first. Cheap: a checkpoint is exported only
        // when a follower reads it (`SnapshotFile::reader`), off this task.
        let found = blocking(move || dir.current_file()).await?;
        Ok(found.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

pub struct SnapshotBuilder {
    db: Arc<DB>,
    snapshots: SnapshotDir,
    shared: Arc<SmShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let (db, dir) = (self.db.clone(), self.snapshots.clone());
        let started = std::time::Instant::now();
        let (meta, snapshot) = blocking(move || dir.build(&db)).await?;
        self.shared.last_build_ms.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(Snapshot { meta, snapshot })
    }
}
