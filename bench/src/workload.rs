//! Running one workload at one concurrency for a fixed time.

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    CasPut,
    StrongGet,
    RawPut,
    RawGet,
    PrefixScan,
    Txn,
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "cas-put" => Workload::CasPut,
            "strong-get" => Workload::StrongGet,
            "raw-put" => Workload::RawPut,
            "raw-get" => Workload::RawGet,
            "prefix-scan" => Workload::PrefixScan,
            "txn" => Workload::Txn,
            other => return Err(format!("unknown workload {other:?}")),
        })
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::CasPut => "cas-put",
            Workload::StrongGet => "strong-get",
            Workload::RawPut => "raw-put",
            Workload::RawGet => "raw-get",
            Workload::PrefixScan => "prefix-scan (100 keys)",
            Workload::Txn => "txn (2 compares + 2 puts)",
        })
    }
}

pub struct Report {
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub async fn run(
    target: &Arc<Target>,
    w: Workload,
    clients: usize,
    duration: Duration,
    value_size: usize,
) -> anyhow::Result<Report> {
    let value = Bytes::from(vec![b'v'; value_size]);
    // Distinct key space per run so CAS creates never collide, also with an
    // earlier bench process's keys on the same cluster (`--endpoints`).
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = *PROCESS.get_or_init(|| fastrand::u64(1..1_000_000));
    let run = process * 1_000 + RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (value, target) = (value.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while start.elapsed() < duration {
                let t = Instant::now();
                target.op(w, (run as usize) * 10_000 + worker, n, &value).await?;
                h.record(t.elapsed().as_micros() as u64).ok();
                n += 1;
            }
            anyhow::Ok(h)
        }));
    }
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        all.add(t.await??).ok();
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Report {
        ops_per_sec: all.len() as f64 / secs,
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
    })
}
