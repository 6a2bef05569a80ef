//! Bulk load: N distinct keys written by many writers into a 3-node FlareDB
//! cluster, then into etcd, with the write rate, each member's disk and RSS
//! (peak while loading and at the end), and FlareDB's restart time holding them.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use anyhow::Context;
use bytes::Bytes;

use crate::{
    cluster::LocalCluster,
    recovery,
    resources::{self, Member, Sampler},
    target::Target,
};

pub struct BulkArgs {
    pub keys: u64,
    pub writers: usize,
    pub value_size: usize,
    pub server_bin: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// etcd's client endpoint and its members' data dirs (their processes are
    /// found by the dir on their command line).
    pub etcd: Option<(String, Vec<PathBuf>)>,
}

pub fn key(i: u64) -> String {
    format!("key/{i:08}")
}

/// Key i's value: random bytes, so that no store gains by compressing them
/// (RocksDB compresses SSTs; etcd does not).
fn value(i: u64, size: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(i);
    Bytes::from((0..size).map(|_| rng.u8(..)).collect::<Vec<u8>>())
}

/// Writes keys 0..n with `writers` concurrent writers; the rate in writes/s.
pub async fn load(target: Arc<Target>, n: u64, writers: usize, value_size: usize) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (target, next) = (target.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(());
                    }
                    target.put(key(i), value(i, value_size)).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Loads `target` while sampling `members`, and prints the figures.
async fn measure(target: Target, members: Vec<Member>, args: &BulkArgs) -> anyhow::Result<()> {
    let name = target.name().to_string();
    let sampler = Sampler::start(members.clone());
    let rate = load(Arc::new(target), args.keys, args.writers, args.value_size).await?;
    let peaks = sampler.stop();
    let end_disk: Vec<u64> = members.iter().map(|m| resources::disk_bytes(&m.dir)).collect();
    let end_rss: Vec<u64> = members.iter().map(|m| resources::rss_bytes(m.pid)).collect();
    let peak = |p: &[u64], end: &[u64]| p.iter().zip(end).map(|(a, b)| *a.max(b)).collect::<Vec<u64>>();
    let (peak_disk, peak_rss) = (peak(&peaks.disk, &end_disk), peak(&peaks.rss, &end_rss));
    println!(
        "| {name} | {:.0} | {} | {} | {} | {} |",
        rate,
        resources::per_member(&end_disk),
        resources::per_member(&peak_disk),
        resources::per_member(&end_rss),
        resources::per_member(&peak_rss)
    );
    Ok(())
}

pub async fn run(args: BulkArgs) -> anyhow::Result<()> {
    println!(
        "{} keys of {} B, {} writers (FlareDB raw put / etcd put), sizes in MB per member:",
        args.keys, args.value_size, args.writers
    );
    println!("| system | writes/s | disk at end | peak disk | RSS at end | peak RSS |");
    println!("|---|---:|---|---|---|---|");
    let mut c = LocalCluster::start_with(3, args.server_bin.clone(), args.config.clone()).await?;
    let members = (1..=3)
        .map(|id| Ok(Member { dir: c.data_dir(id), pid: c.pid(id).context("node not running")? }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    measure(Target::flaredb(&c.endpoints(), "flaredb 3-node")?, members, &args).await?;
    let restart = recovery::restart_follower(&mut c, "bench-raw", &key(args.keys - 1)).await?;
    drop(c);

    if let Some((endpoint, dirs)) = &args.etcd {
        let members = dirs
            .iter()
            .map(|d| {
                let pid = resources::pid_using(d).with_context(|| format!("no process runs with {}", d.display()))?;
                Ok(Member { dir: d.clone(), pid })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        measure(Target::etcd(endpoint).await?, members, &args).await?;
    }
    println!(
        "FlareDB follower restart holding {} keys (kill -9 -> serves the last key, applied >= leader's): {:.2} s",
        args.keys,
        restart.as_secs_f64()
    );
    Ok(())
}
