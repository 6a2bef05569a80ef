//! `FlareNode`: one Raft member with its storage, and the operations the
//! services need: propose (`leadership.rs`), linearizable and local reads, status.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use openraft::{async_runtime::WatchReceiver, errors::RaftError, BasicNode, ReadPolicy, ServerState};

use self::addr::MemberAddr;
use crate::{
    data_dir::DataDir,
    error::{NodeError, OpenError},
    namespace::{Mode, NamespaceInfo, NamespaceRejection},
    network::{ClusterId, Faults, Network},
    read::{PageLimit, ScanPage},
    storage::{snapshot_trigger::SnapshotTrigger, SmShared, SnapshotDir, Store},
    types::{NodeId, Raft},
    watch::WatchLimits,
};

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// The address clients reach this node at.
    pub addr: String,
    pub data_dir: PathBuf,
    /// Members to bootstrap with when the data dir is new, each as
    /// `PUBLIC` or `PUBLIC@PEER` (see [`addr::MemberAddr`]).
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// The operator gave `initial_cluster` explicitly: a node with data then
    /// says in its log that it ignores it.
    pub initial_cluster_explicit: bool,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs_since_last: u64,
    /// Also snapshot after this many bytes of applied commands (0 = entries only).
    pub snapshot_log_bytes_since_last: u64,
    pub max_logs_to_keep: u64,
    /// Wait to be added by an existing cluster instead of bootstrapping.
    pub join: bool,
    /// Test-only: allow cutting Raft links (see `network::Faults`).
    pub fault_injection: bool,
    pub history: HistoryRetention,
    pub watch_limits: WatchLimits,
    /// Dial peers over TLS with this (the peer CA and this node's peer certificate).
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
}

/// A node's view of the cluster, for `Admin/Status`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: NodeId,
    pub addr: String,
    pub state: ServerState,
    pub leader: Option<(NodeId, String)>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub purged_index: u64,
    pub members: Vec<MemberStatus>,
}

/// A read this node's storage could not serve (e.g. a block failing its
/// checksum): this read fails, the node goes on; another replica may serve it.
fn read_failed(e: crate::StoreError) -> NodeError {
    NodeError::Unavailable(format!("this node could not read its storage: {e}; ask another node"))
}

/// One member as membership records it.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    pub id: NodeId,
    pub addr: MemberAddr,
    pub voter: bool,
}

pub struct FlareNode {
    id: NodeId,
    addr: String,
    raft: Raft,
    store: Store,
    shared: Arc<SmShared>,
    snapshots: SnapshotDir,
    cluster: ClusterId,
    data_dir: Mutex<DataDir>,
    faults: Option<Arc<Faults>>,
    /// The channels Raft dials peers on (their TLS settings are renewable).
    peer_channels: flaredb_proto::channel::ChannelCache,
    /// Proposals handed to Raft and not yet answered (for metrics).
    pending: std::sync::atomic::AtomicU64,
    /// openraft's leader lease (= election_timeout_max).
    lease: Duration,
    /// Set when the node starts to stop: ends the replication streams it
    /// serves, which would otherwise hold a graceful shutdown open forever.
    closing: tokio::sync::watch::Sender<bool>,
}

impl FlareNode {
    /// Opens the data dir and storage, starts Raft, and bootstraps the
    /// initial cluster when the data dir is new and this node is its lowest id.
    pub async fn open(cfg: NodeConfig) -> Result<Arc<Self>, OpenError> {
        let mut data_dir = DataDir::open(&cfg.data_dir, cfg.id)?;
        let store = Store::open(&data_dir.db_path())?;
        let snapshots = SnapshotDir::new(data_dir.snapshot_dir())?;
        let trigger = SnapshotTrigger {
            logs_since_last: cfg.snapshot_logs_since_last,
            log_bytes_since_last: (cfg.snapshot_log_bytes_since_last > 0).then_some(cfg.snapshot_log_bytes_since_last),
        };
        let sm = store
            .state_machine(snapshots.clone())
            .await?
            .with_snapshot_trigger(trigger)
            .with_watch_limits(cfg.watch_limits);
        let shared = sm.shared();
        let raft_config = openraft::Config {
            cluster_name: "flaredb".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_ms,
            // openraft's leader lease equals election_timeout_max, and a follower
            // campaigns only after last heartbeat + lease + random[min, max): a
            // narrow window keeps the lease short and so the failover fast
            // (about 2.25 x min after the leader's last heartbeat).
            election_timeout_max: cfg.election_timeout_ms + cfg.election_timeout_ms / 4,
            snapshot_policy: trigger.raft_policy(),
            max_in_snapshot_log_to_keep: cfg.max_logs_to_keep,
            max_payload_entries: 64,
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| OpenError::Raft(e.to_string()))?;
        let lease = Duration::from_millis(raft_config.election_timeout_max);
        let cluster = ClusterId::default();
        cluster.store(data_dir.identity().cluster_id, Ordering::Relaxed);
        let faults = cfg.fault_injection.then(|| Arc::new(Faults::default()));
        let network = Network::new(cluster.clone(), faults.clone(), cfg.peer_tls.clone());
        let peer_channels = network.channels();
        let raft = Raft::new(cfg.id, Arc::new(raft_config), network, store.log_store()?, sm)
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;
        let initialized = raft.is_initialized().await.map_err(|e| OpenError::Raft(e.to_string()))?;
        let stored = data_dir.identity().cluster_id;
        if stored != 0 && cfg.initial_cluster_explicit && !cfg.join {
            cluster::note_flag_ignored(stored, &cfg.initial_cluster);
        }
        if !initialized && cfg.join {
            tracing::info!("waiting to be added to a cluster (AddLearner on its leader)");
        } else if !initialized {
            if stored == 0 {
                data_dir.set_cluster_id(cluster::cluster_id(&cfg.initial_cluster))?;
                cluster.store(data_dir.identity().cluster_id, Ordering::Relaxed);
            }
            if cfg.initial_cluster.keys().next() == Some(&cfg.id) {
                let members: BTreeMap<NodeId, BasicNode> =
                    cfg.initial_cluster.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
                tracing::info!(members = ?cfg.initial_cluster, "initializing a new cluster");
                if let Err(e) = raft.initialize(members).await {
                    // Another node may have initialized first; anything else is fatal.
                    if matches!(e, RaftError::Fatal(_)) {
                        return Err(OpenError::Raft(e.to_string()));
                    }
                    tracing::info!(error = %e, "cluster already initialized");
                }
            }
        }
        let data_dir = Mutex::new(data_dir);
        let node = Arc::new(Self {
            id: cfg.id,
            addr: cfg.addr,
            raft,
            store,
            shared,
            snapshots,
            cluster,
            data_dir,
            faults,
            peer_channels,
            pending: Default::default(),
            lease,
            closing: tokio::sync::watch::Sender::new(false),
        });
        Self::spawn_history_pruner(&node, cfg.history);
        Self::spawn_lease_expiry(&node);
        Ok(node)
    }

    /// The fault-injection hook, on nodes started for fault tests only.
    /// New TLS settings for dialing peers (a renewed peer certificate).
    pub fn set_peer_tls(&self, tls: tonic::transport::ClientTlsConfig) {
        self.peer_channels.set_tls(Some(tls));
    }

    pub fn faults(&self) -> Option<&Arc<Faults>> {
        self.faults.as_ref()
    }

    /// A copy of openraft's current metrics.
    /// The current term, without copying the rest of the metrics.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<crate::TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn snapshots(&self) -> &SnapshotDir {
        &self.snapshots
    }

    /// The leader this node knows of, with its public address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.metrics();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some((id, MemberAddr::from_membership(&node.addr).public))
    }

    fn not_leader(&self, leader_id: Option<NodeId>, node: Option<BasicNode>) -> NodeError {
        let leader = match (leader_id, node) {
            (Some(id), Some(n)) => Some((id, MemberAddr::from_membership(&n.addr).public)),
            _ => self.leader(),
        };
        NodeError::NotLeader { leader }
    }

    /// Waits until a read of the local state machine is linearizable
    /// (ReadIndex: leadership confirmed by a quorum, then applied up to it).
    pub async fn linearize(&self) -> Result<(), NodeError> {
        use openraft::errors::LinearizableReadError as E;
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(E::ForwardToLeader(f))) => Err(self.not_leader(f.leader_id, f.leader_node)),
            Err(RaftError::APIError(E::QuorumNotEnough(e))) => Err(NodeError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(NodeError::Fatal(e.to_string())),
        }
    }

    /// The namespace a read of `mode` targets, as registered locally.
    pub fn namespace_for_read(&self, name: &str, mode: Mode) -> Result<NamespaceInfo, NamespaceRejection> {
        self.shared.registry().check(name, mode).cloned()
    }

    /// Usage and quota of namespace `id` as applied on this node.
    pub fn namespace_usage(&self, id: crate::keys::NamespaceId) -> crate::quota::NsUsage {
        self.shared.usage().get(&id).copied().unwrap_or_default()
    }

    /// Users, roles and the auth switch as applied on this node.
    pub fn auth(&self) -> Arc<crate::auth::AuthState> {
        self.shared.auth()
    }

    pub fn namespaces(&self) -> Vec<NamespaceInfo> {
        self.shared.registry().list().cloned().collect()
    }

    /// A strong key's (version, value), from the local state machine.
    pub fn cas_get(&self, ns: &NamespaceInfo, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, NodeError> {
        self.store.cas_get(ns.id, key).map_err(read_failed)
    }

    /// Test-only (fault injection): makes this replica diverge on one key.
    pub fn corrupt_local_key(&self, ns: &NamespaceInfo, key: &[u8], value: &[u8]) -> Result<(), NodeError> {
        if self.faults.is_none() {
            return Err(NodeError::Precondition("fault injection is not enabled on this node".into()));
        }
        self.store.corrupt_local_key(ns.id, key, value).map_err(|e| NodeError::Fatal(e.to_string()))
    }

    pub fn raw_get(&self, ns: &NamespaceInfo, key: &[u8]) -> Result<Option<Vec<u8>>, NodeError> {
        self.store.raw_get(ns.id, key).map_err(read_failed)
    }

    /// One page of `[start, end)` in `ns` from the local state machine.
    pub async fn scan(
        &self,
        ns: &NamespaceInfo,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: PageLimit,
    ) -> Result<ScanPage, NodeError> {
        self.store.scan(ns.mode, ns.id, start, end, limit).await.map_err(read_failed)
    }

    /// Proposals in flight on this node, and the last snapshot build and install times (ms).
    pub fn proposal_and_snapshot_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.pending.load(Relaxed), self.shared.last_build_ms.load(Relaxed), self.shared.last_install_ms.load(Relaxed))
    }

    /// Why Raft stopped, when storage failed (then this node serves nothing).
    /// A shutdown is not a failure (it used to be logged as one on SIGTERM).
    pub fn storage_failure(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.running_state.as_ref().err().filter(|e| !matches!(e, openraft::error::Fatal::Stopped)).map(|e| e.to_string())
    }

    pub fn disk_stats(&self) -> crate::storage::DiskStats {
        self.store.disk_stats()
    }

    pub fn status(&self) -> NodeStatus {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| MemberStatus {
                id: *id,
                addr: MemberAddr::from_membership(&n.addr),
                voter: voters.contains(id),
            })
            .collect();
        let leader = m
            .current_leader
            .and_then(|id| membership.get_node(&id).map(|n| (id, MemberAddr::from_membership(&n.addr).public)));
        NodeStatus {
            id: self.id,
            addr: self.addr.clone(),
            state: m.state,
            leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |id| id.index),
            purged_index: m.purged.map_or(0, |id| id.index),
            members,
        }
    }

    /// Ends the streams this node serves (watches, replication from the
    /// leader) so the server's graceful shutdown can finish; a stream opened
    /// after this ends at once.
    pub fn end_streams(&self) {
        self.end_watches();
        self.closing.send_replace(true);
    }

    /// Resolves once `end_streams` was called (at once if it already was).
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub async fn shutdown(&self) {
        self.end_streams();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

pub mod addr;
mod cluster;
mod leadership;
mod lease;
mod maintenance;
mod membership;
mod watch;

pub use watch::HistoryRetention;
