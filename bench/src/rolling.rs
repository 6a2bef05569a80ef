//! A rolling restart under load: SIGTERM, restart and catch-up of each node
//! in turn (the leader hands over before it exits), while writers run; the
//! figure is the longest time no write was acknowledged.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use flaredb_client::RdbClient;

use crate::{cluster::LocalCluster, load::Load};

const SETTLE: Duration = Duration::from_secs(30);

pub async fn run(
    clients: usize,
    value_size: usize,
    server_bin: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut c = LocalCluster::start_with(3, server_bin, config).await?;
    c.wait_leader(SETTLE).await?;
    let client = RdbClient::connect(c.endpoints())?;
    client.namespace("load").raw_put("warm", "x").await?;
    let load = Load::start(&client, clients, value_size);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first_term = c.terms().await?.into_values().max().unwrap_or(0);
    let mut hand_overs = 0;
    for id in 1..=3 {
        let leader = c.wait_leader(SETTLE).await?;
        let at = load.elapsed_s();
        let exit = c.sigterm(id, Duration::from_secs(10)).await?;
        let t = Instant::now();
        c.spawn(id)?;
        // Caught up: the cluster agrees on a leader and the node has applied what it had.
        let leader_now = c.wait_leader(SETTLE).await?;
        let target = c.client_for(leader_now)?.status().await?.applied_index;
        while c.client_for(id)?.status().await.map(|s| s.applied_index).unwrap_or(0) < target {
            if t.elapsed() > SETTLE {
                anyhow::bail!("node {id} did not catch up");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hand_overs += u64::from(leader == id);
        println!(
            "node {id}{}: SIGTERM at {at:.2} s -> exit {} ms, restart -> caught up {} ms, leader now {leader_now}",
            if leader == id { " (leader)" } else { "" },
            exit.as_millis(),
            t.elapsed().as_millis()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let report = load.finish().await?;
    let last_term = c.terms().await?.into_values().max().unwrap_or(0);
    println!("rolling restart of 3 nodes under {clients} writers: {report}");
    println!("  term {first_term} -> {last_term} with {hand_overs} leader hand-over(s)");
    Ok(())
}
