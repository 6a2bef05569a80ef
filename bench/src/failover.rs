//! Availability figures on three nodes: leader failover after kill -9 (to the
//! first acknowledged write), and the term under a steady write load (no
//! spurious election while every node is busy).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use flaredb_client::RdbClient;
use hdrhistogram::Histogram;

use crate::{cluster::LocalCluster, load};

const SETTLE: Duration = Duration::from_secs(30);

/// Writes until one is acknowledged; how long that took from `since`.
async fn first_ack(client: &RdbClient, key: String, since: Instant) -> Duration {
    while client.raw_put(key.clone(), "x").await.is_err() {}
    since.elapsed()
}

fn summary(h: &Histogram<u64>) -> String {
    format!("p50 {} ms, p99 {} ms, max {} ms", h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
}

/// Kills the leader `runs` times. Two writers time each failover: a fresh
/// client over the survivors only, and a client over all three nodes that
/// had the dead leader cached.
pub async fn failover(runs: u32, server_bin: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let mut c = LocalCluster::start_with(3, server_bin, config).await?;
    let warm = RdbClient::connect(c.endpoints())?.namespace("failover");
    let (mut fresh_h, mut warm_h) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let mut terms_per_run: BTreeMap<u64, u32> = BTreeMap::new();
    let first_term = c.terms().await?.into_values().max().unwrap_or(0);
    for run in 0..runs {
        let leader = c.wait_leader(SETTLE).await?;
        warm.raw_put("warm", "x").await?; // caches the leader
        let before = c.client_for(leader)?.status().await?.term;
        let survivors: Vec<String> = c.addrs.iter().filter(|(id, _)| **id != leader).map(|(_, a)| a.clone()).collect();
        let fresh = RdbClient::connect(survivors)?.namespace("failover");
        c.kill(leader);
        let t = Instant::now();
        let (f, w) =
            tokio::join!(first_ack(&fresh, format!("fresh/{run}"), t), first_ack(&warm, format!("warm/{run}"), t));
        fresh_h.record(f.as_millis() as u64)?;
        warm_h.record(w.as_millis() as u64)?;
        c.spawn(leader)?;
        let new_leader = c.wait_leader(SETTLE).await?;
        let after = c.client_for(new_leader)?.status().await?.term;
        *terms_per_run.entry(after - before).or_default() += 1;
        println!("run {run}: killed node {leader}, first ack {} ms (survivors) / {} ms (all endpoints), term {before} -> {after}", f.as_millis(), w.as_millis());
    }
    let last_term = c.terms().await?.into_values().max().unwrap_or(0);
    println!("leader failover (kill -9 -> first acknowledged write), {runs} runs:");
    println!("  client over the survivors:             {}", summary(&fresh_h));
    println!("  client over all nodes, leader cached:  {}", summary(&warm_h));
    println!(
        "  term {first_term} -> {last_term} ({} terms for {runs} failovers; runs by terms used: {terms_per_run:?})",
        last_term - first_term
    );
    Ok(())
}

/// Runs `clients` writers for `duration` and reports the term on every node
/// before and after, the leader, and each node's CPU use.
pub async fn steady(
    duration: Duration,
    clients: usize,
    value_size: usize,
    server_bin: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let c = LocalCluster::start_with(3, server_bin, config).await?;
    let leader = c.wait_leader(SETTLE).await?;
    let client = RdbClient::connect(c.endpoints())?;
    client.namespace("load").raw_put("warm", "x").await?;
    let terms_before = c.terms().await?;
    let cpu_before: BTreeMap<u64, u64> = (1..=3).filter_map(|id| Some((id, c.cpu_ticks(id)?))).collect();
    let report = load::run_for(&client, clients, value_size, duration).await?;
    let terms_after = c.terms().await?;
    let leader_after = c.wait_leader(SETTLE).await?;
    println!("steady write load, {clients} clients, {} s, 3 nodes: {report}", duration.as_secs());
    println!("  term before {terms_before:?}, after {terms_after:?}; leader {leader} -> {leader_after}");
    for (id, before) in cpu_before {
        let used = c.cpu_ticks(id).unwrap_or(before) - before;
        // Clock ticks are 1/100 s on Linux.
        println!("  node {id}: {:.0}% of one core", used as f64 / duration.as_secs_f64());
    }
    Ok(())
}
