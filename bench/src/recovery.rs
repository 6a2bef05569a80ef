//! Recovery figures: restart of a node holding N keys, catch-up of a new
//! learner by snapshot, and leader failover (kill -9 → first acknowledged write).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::cluster::LocalCluster;

pub async fn run(
    keys: u64,
    value_size: usize,
    failovers: u32,
    server_bin: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut c = LocalCluster::start(3, server_bin).await?;
    let client = flaredb_client::RdbClient::connect(c.endpoints())?.namespace("recovery");

    // Load N keys with 64 concurrent writers.
    let t = Instant::now();
    let value = Bytes::from(vec![b'v'; value_size]);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, value, next) = (client.clone(), value.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= keys {
                    return anyhow::Ok(());
                }
                client.raw_put(format!("key/{i:08}"), value.clone()).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!("loaded {keys} keys of {value_size} B in {:.1} s", t.elapsed().as_secs_f64());
    let leader = c.wait_leader(Duration::from_secs(30)).await?;
    for id in 1..=3 {
        c.client_for(id)?.snapshot().await?;
    }

    // 1. Restart a follower holding every key: kill -9, start, time until it serves a local read
    //    of the last key and has applied everything the leader had.
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let target_index = c.client_for(leader)?.status().await?.applied_index;
    c.kill(follower);
    let t = Instant::now();
    c.spawn(follower)?;
    let local = c.client_for(follower)?.namespace("recovery");
    let last = format!("key/{:08}", keys - 1);
    loop {
        let served = matches!(local.raw_get(last.clone()).await, Ok(Some(_)));
        let applied = c.client_for(follower)?.status().await.map(|s| s.applied_index).unwrap_or(0);
        if served && applied >= target_index {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("restart of a node with {keys} keys until it serves: {:.2} s", t.elapsed().as_secs_f64());

    // 2. A new learner catches up by snapshot (the log behind the snapshots is purged).
    let addr = c.spawn_joining(4)?;
    let t = Instant::now();
    c.client_for(leader)?.add_learner(4, &addr, true).await?;
    let learner = c.client_for(4)?.namespace("recovery");
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
