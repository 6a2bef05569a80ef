//! A steady write load for the availability figures: `clients` writers doing
//! raw puts through one client until stopped, each acknowledgement timed.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use flaredb_client::RdbClient;
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

pub struct Load {
    start: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Writer>>,
}

/// What one writer saw.
#[derive(Default)]
struct Writer {
    /// When each write was acknowledged, in µs since the load started.
    acks: Vec<u64>,
    failed: u64,
}

pub struct LoadReport {
    pub secs: f64,
    pub writes: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The longest time no writer got an acknowledgement (the stall).
    pub max_gap_ms: f64,
    /// When that gap began, in seconds since the load started.
    pub max_gap_at_s: f64,
}

impl Load {
    /// Seconds since the load started (to place events next to the gap).
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn start(client: &RdbClient, clients: usize, value_size: usize) -> Self {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let value = Bytes::from(vec![b'v'; value_size]);
        let tasks = (0..clients)
            .map(|w| {
                let (client, stop, value) = (client.namespace("load"), stop.clone(), value.clone());
                tokio::spawn(async move {
                    let mut me = Writer::default();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // 1000 keys per writer, overwritten in turn.
                        match client.raw_put(format!("w{w:03}/{:04}", n % 1000), value.clone()).await {
                            Ok(()) => me.acks.push(start.elapsed().as_micros() as u64),
                            Err(_) => me.failed += 1,
                        }
                        n += 1;
                    }
                    me
                })
            })
            .collect();
        Self { start, stop, tasks }
    }

    /// Stops the writers and sums up what they saw.
    pub async fn finish(self) -> anyhow::Result<LoadReport> {
        self.stop.store(true, Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let mut latency = Histogram::<u64>::new(3)?;
        let (mut all, mut failed) = (Vec::new(), 0);
        for t in self.tasks {
            let w = t.await?;
            failed += w.failed;
            // A writer's latencies are the gaps between its acks (one request in flight).
            let mut prev = 0;
            for &a in &w.acks {
                latency.record(a.saturating_sub(prev).max(1))?;
                prev = a;
            }
            all.extend(w.acks);
        }
        all.sort_unstable();
        let (max_gap, max_gap_at) = all.windows(2).map(|p| (p[1] - p[0], p[0])).max().unwrap_or((0, 0));
        let ms = |us: u64| us as f64 / 1000.0;
        Ok(LoadReport {
            secs,
            writes: all.len() as u64,
            failed,
            p50_ms: ms(latency.value_at_quantile(0.5)),
            p99_ms: ms(latency.value_at_quantile(0.99)),
            max_ms: ms(latency.max()),
            max_gap_ms: ms(max_gap),
            max_gap_at_s: max_gap_at as f64 / 1e6,
        })
    }
}

/// Runs the load for `duration` and reports it.
pub async fn run_for(
    client: &RdbClient,
    clients: usize,
    value_size: usize,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let load = Load::start(client, clients, value_size);
    tokio::time::sleep(duration).await;
    load.finish().await
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes in {:.1} s ({:.0}/s, {} failed), latency p50 {:.2} ms p99 {:.2} ms max {:.1} ms, \
             longest gap between acknowledged writes {:.1} ms (from {:.2} s)",
            self.writes,
            self.secs,
            self.writes as f64 / self.secs,
            self.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.max_gap_ms,
            self.max_gap_at_s
        )
    }
}
