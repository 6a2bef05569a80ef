//! Recovery figures: restart of a node holding N keys, catch-up of a new
//! learner by snapshot, and leader failover (kill -9 → first acknowledged write).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{bulk, cluster::LocalCluster, target::Target};

/// Kills -9 a follower and starts it again; how long until it serves a local
/// read of `last` in namespace `ns` and has applied everything the leader had.
pub async fn restart_follower(c: &mut LocalCluster, ns: &str, last: &str) -> anyhow::Result<Duration> {
    let leader = c.wait_leader(Duration::from_secs(30)).await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let target_index = c.client_for(leader)?.status().await?.applied_index;
    c.kill(follower);
    let t = Instant::now();
    c.spawn(follower)?;
    let local = c.client_for(follower)?.namespace(ns);
    loop {
        let served = matches!(local.raw_get(last.to_string()).await, Ok(Some(_)));
        let applied = c.client_for(follower)?.status().await.map(|s| s.applied_index).unwrap_or(0);
        if served && applied >= target_index {
            return Ok(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn run(
    keys: u64,
    value_size: usize,
    failovers: u32,
    server_bin: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut c = LocalCluster::start(3, server_bin).await?;

    // Load N keys with 64 concurrent writers (raw puts into bench-raw).
    let t = Instant::now();
    let target = Arc::new(Target::flaredb(&c.endpoints(), "flaredb")?);
    bulk::load(target, keys, 64, value_size).await?;
    println!("loaded {keys} keys of {value_size} B in {:.1} s", t.elapsed().as_secs_f64());
    let leader = c.wait_leader(Duration::from_secs(30)).await?;
    for id in 1..=3 {
        c.client_for(id)?.snapshot().await?;
    }

    // 1. Restart a follower holding every key.
    let last = format!("key/{:08}", keys - 1);
    let restart = restart_follower(&mut c, "bench-raw", &last).await?;
    println!("restart of a node with {keys} keys until it serves: {:.2} s", restart.as_secs_f64());

    // 2. A new learner catches up by snapshot (the log behind the snapshots is purged).
    let addr = c.spawn_joining(4)?;
    let t = Instant::now();
    c.client_for(leader)?.add_learner(4, &addr, true).await?;
    let learner = c.client_for(4)?.namespace("bench-raw");
    loop {
        if matches!(learner.raw_get(last.clone()).await, Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("new learner caught up {keys} keys: {:.2} s", t.elapsed().as_secs_f64());
    c.client_for(leader)?.remove_node(4).await?;
    c.kill(4);
    c.addrs.remove(&4);

    // 3. Failover: kill -9 the leader, time until a write through the survivors is acknowledged.
    let mut h = Histogram::<u64>::new(3)?;
    for run in 0..failovers {
        let leader = c.wait_leader(Duration::from_secs(30)).await?;
        let survivors: Vec<String> = c.addrs.iter().filter(|(id, _)| **id != leader).map(|(_, a)| a.clone()).collect();
        let writer = flaredb_client::RdbClient::connect(survivors)?.namespace("failover");
        c.kill(leader);
        let t = Instant::now();
        loop {
            if writer.raw_put(format!("run/{run}"), "x").await.is_ok() {
                break;
            }
        }
        h.record(t.elapsed().as_millis() as u64)?;
        c.spawn(leader)?;
        c.wait_leader(Duration::from_secs(30)).await?;
    }
    println!(
        "leader failover (kill -9 -> first acknowledged write), {failovers} runs: p50 {} ms, p99 {} ms, max {} ms",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
    Ok(())
}
