//! Prometheus metrics, served on `--metrics-listen` (off by default):
//! request counts and latencies per RPC and status code (a tower layer on
//! every listener), Raft state, leader changes and snapshots (a task
//! following openraft's metrics), and on each scrape the node's gauges
//! (log, replication lag, RocksDB sizes, watchers, leases, namespaces).

mod gauges;
mod http;
mod rpc_layer;

use std::{sync::Arc, time::Duration};

use openraft::async_runtime::WatchReceiver;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

pub use gauges::Gauges;
pub use http::serve;
pub use rpc_layer::RpcMetricsLayer;

/// Every metric of a node, in one registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    leader_changes: IntCounter,
    snapshots: IntCounter,
    gauges: Gauges,
    corrupt: prometheus::IntGauge,
    alarm: std::sync::OnceLock<Arc<crate::corruption::CorruptionAlarm>>,
}

/// A metric definition that does not register is a bug in this file, found by its unit test.
fn must<T>(r: prometheus::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new(node_id: u64) -> Arc<Self> {
        let registry = must(Registry::new_custom(
            Some("flaredb".into()),
            Some([("node".to_string(), node_id.to_string())].into()),
        ));
        let requests = must(IntCounterVec::new(
            Opts::new("grpc_requests_total", "gRPC requests answered, by method and status code"),
            &["method", "code"],
        ));
        let buckets = vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let latency = must(HistogramVec::new(
            HistogramOpts::new(
                "grpc_request_duration_seconds",
                "Time to answer a gRPC request (to the response headers for streams), by method and status code",
            )
            .buckets(buckets),
            &["method", "code"],
        ));
        let leader_changes = must(IntCounter::new("raft_leader_changes_total", "Times this node saw a new leader"));
        let snapshots = must(IntCounter::new("raft_snapshots_total", "Snapshots this node built or installed"));
        let gauges = Gauges::new(&registry);
        for c in [Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>, Box::new(latency.clone())] {
            must(registry.register(c));
        }
        must(registry.register(Box::new(leader_changes.clone())));
        must(registry.register(Box::new(snapshots.clone())));
        let corrupt = must(prometheus::IntGauge::new("corrupt", "1 while this replica's CORRUPT alarm is raised"));
        must(registry.register(Box::new(corrupt.clone())));
        let alarm = std::sync::OnceLock::new();
        Arc::new(Self { registry, requests, latency, leader_changes, snapshots, gauges, corrupt, alarm })
    }

    /// One answered request.
    pub fn observe(&self, method: &str, code: &str, elapsed: Duration) {
        self.requests.with_label_values(&[method, code]).inc();
        self.latency.with_label_values(&[method, code]).observe(elapsed.as_secs_f64());
    }

    /// Follows openraft's metrics: counts leader changes and new snapshots.
    pub fn follow_raft(self: &Arc<Self>, node: Arc<flaredb_raft::node::FlareNode>) {
        let me = self.clone();
        let mut rx = node.raft().metrics();
        tokio::spawn(async move {
            let (mut leader, mut snapshot) = {
                let m = rx.borrow_watched();
                (m.current_leader, m.snapshot)
            };
            while rx.changed().await.is_ok() {
                let (now_leader, now_snapshot) = {
                    let m = rx.borrow_watched();
                    (m.current_leader, m.snapshot)
                };
                if now_leader.is_some() && now_leader != leader {
                    me.leader_changes.inc();
                }
                if now_snapshot.is_some() && now_snapshot != snapshot {
                    me.snapshots.inc();
                }
                (leader, snapshot) = (now_leader.or(leader), now_snapshot);
            }
        });
    }

    /// Reports `alarm` as `flaredb_corrupt`.
    pub fn watch_alarm(&self, alarm: Arc<crate::corruption::CorruptionAlarm>) {
        let _ = self.alarm.set(alarm);
    }

    /// The text exposition of every metric, gauges read from `node` now.
    pub fn render(&self, node: &flaredb_raft::node::FlareNode) -> String {
        self.gauges.refresh(node);
        self.corrupt.set(i64::from(self.alarm.get().is_some_and(|a| a.why().is_some())));
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders_with_the_node_label() {
        let m = Metrics::new(7);
        m.observe("/flaredb.v1.KvCas/Get", "Ok", Duration::from_millis(3));
        let mut out = String::new();
        prometheus::TextEncoder::new().encode_utf8(&m.registry.gather(), &mut out).unwrap();
        assert!(
            out.contains(r#"flaredb_grpc_requests_total{code="Ok",method="/flaredb.v1.KvCas/Get",node="7"} 1"#),
            "{out}"
        );
        assert!(out.contains("flaredb_grpc_request_duration_seconds_bucket"), "{out}");
    }
}
