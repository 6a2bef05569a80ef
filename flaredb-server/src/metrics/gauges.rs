//! The gauges, read from the node when scraped (cheap: in-memory Raft
//! metrics, RocksDB's own counters, the watch hub and lease table).

use flaredb_raft::node::FlareNode;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use super::must;

pub struct Gauges {
    term: IntGauge,
    is_leader: IntGauge,
    leader_id: IntGauge,
    last_log_index: IntGauge,
    commit_index: IntGauge,
    applied_index: IntGauge,
    log_entries: IntGauge,
    snapshot_index: IntGauge,
    proposals_pending: IntGauge,
    snapshot_build_seconds: prometheus::Gauge,
    snapshot_install_seconds: prometheus::Gauge,
    replication_lag: IntGaugeVec,
    members: IntGauge,
    rocksdb: IntGaugeVec,
    watchers: IntGauge,
    leases: IntGauge,
    namespaces: IntGauge,
    namespace_keys: IntGaugeVec,
    namespace_bytes: IntGaugeVec,
    namespace_max_keys: IntGaugeVec,
    namespace_max_bytes: IntGaugeVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = must(IntGauge::new(name, help));
    must(registry.register(Box::new(g.clone())));
    g
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Gauge {
    let g = must(prometheus::Gauge::new(name, help));
    must(registry.register(Box::new(g.clone())));
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = must(IntGaugeVec::new(Opts::new(name, help), &[label]));
    must(registry.register(Box::new(g.clone())));
    g
}

impl Gauges {
    pub fn new(r: &Registry) -> Self {
        Self {
            term: gauge(r, "raft_term", "Current Raft term"),
            is_leader: gauge(r, "raft_is_leader", "1 when this node leads"),
            leader_id: gauge(r, "raft_leader_id", "The leader this node knows (0: none)"),
            last_log_index: gauge(r, "raft_last_log_index", "Index of the last entry in this node's log"),
            commit_index: gauge(r, "raft_commit_index", "Index of the last entry known committed"),
            applied_index: gauge(r, "raft_applied_index", "Index of the last entry applied to the state machine"),
            log_entries: gauge(r, "raft_log_entries", "Entries kept in the log (not yet purged)"),
            snapshot_index: gauge(r, "raft_snapshot_index", "Last index covered by the current snapshot"),
            proposals_pending: gauge(r, "raft_proposals_pending", "Proposals handed to Raft and not yet answered"),
            snapshot_build_seconds: float_gauge(
                r,
                "snapshot_last_build_seconds",
                "How long the last snapshot build took",
            ),
            snapshot_install_seconds: float_gauge(
                r,
                "snapshot_last_install_seconds",
                "How long the last install of a leader's snapshot took",
            ),
            replication_lag: gauge_vec(
                r,
                "raft_replication_lag_entries",
                "On the leader: entries each follower has not yet acknowledged",
                "follower",
            ),
            members: gauge(r, "raft_members", "Members in the configuration (voters and learners)"),
            rocksdb: gauge_vec(
                r,
                "rocksdb_bytes",
                "RocksDB: sst files, memtables, block cache use, estimated pending compaction",
                "kind",
            ),
            watchers: gauge(r, "watchers", "Watch streams open on this node"),
            leases: gauge(r, "leases", "Leases that exist (as applied here)"),
            namespaces: gauge(r, "namespaces", "Namespaces that exist"),
            namespace_keys: gauge_vec(r, "namespace_keys", "Live keys per namespace", "namespace"),
            namespace_bytes: gauge_vec(r, "namespace_bytes", "Bytes of keys plus values per namespace", "namespace"),
            namespace_max_keys: gauge_vec(r, "namespace_max_keys", "Key quota per namespace (0: none)", "namespace"),
            namespace_max_bytes: gauge_vec(r, "namespace_max_bytes", "Byte quota per namespace (0: none)", "namespace"),
        }
    }

    pub fn refresh(&self, node: &FlareNode) {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let m = node.metrics();
        let last = m.last_log_index.unwrap_or(0);
        self.term.set(i(m.current_term));
        self.is_leader.set(i64::from(m.current_leader == Some(node.id())));
        self.leader_id.set(i(m.current_leader.unwrap_or(0)));
        self.last_log_index.set(i(last));
        self.commit_index.set(i(m.cluster_committed.or(m.local_committed).map_or(0, |l| l.index)));
        self.applied_index.set(i(m.last_applied.map_or(0, |l| l.index)));
        self.log_entries.set(i(last.saturating_sub(m.purged.map_or(0, |l| l.index))));
        self.snapshot_index.set(i(m.snapshot.map_or(0, |l| l.index)));
        let (pending, build_ms, install_ms) = node.proposal_and_snapshot_stats();
        self.proposals_pending.set(i(pending));
        self.snapshot_build_seconds.set(build_ms as f64 / 1000.0);
        self.snapshot_install_seconds.set(install_ms as f64 / 1000.0);
        self.members.set(i(m.membership_config.membership().nodes().count() as u64));
        // Followers that left (or a lost leadership) must not keep a stale lag.
        self.replication_lag.reset();
        for (follower, matched) in m.replication.iter().flatten() {
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            self.replication_lag.with_label_values(&[&follower.to_string()]).set(i(lag));
        }
        let d = node.disk_stats();
        for (kind, v) in [
            ("sst", d.sst_bytes),
            ("memtable", d.memtable_bytes),
            ("block_cache", d.block_cache_bytes),
            ("pending_compaction", d.pending_compaction_bytes),
        ] {
            self.rocksdb.with_label_values(&[kind]).set(i(v));
        }
        self.watchers.set(i(node.watch_hub().watchers() as u64));
        self.leases.set(i(node.lease_count() as u64));
        let namespaces = node.namespaces();
        self.namespaces.set(i(namespaces.len() as u64));
        for ns in &namespaces {
            let u = node.namespace_usage(ns.id);
            let l = [ns.name.as_str()];
            self.namespace_keys.with_label_values(&l).set(i(u.keys));
            self.namespace_bytes.with_label_values(&l).set(i(u.bytes));
            self.namespace_max_keys.with_label_values(&l).set(i(u.max_keys));
            self.namespace_max_bytes.with_label_values(&l).set(i(u.max_bytes));
        }
    }
}
