//! flaredb-bench: ops/s and p50/p99 latency of CAS put, strong get, raw put,
//! raw get and prefix scan at several client concurrencies, against FlareDB
//! (a cluster it starts, or given endpoints) and optionally etcd.

mod bulk;
mod cluster;
mod failover;
mod lease;
mod load;
mod recovery;
mod resources;
mod rolling;
mod target;
mod watch;
mod workload;

use std::{sync::Arc, time::Duration};

use clap::Parser;

use crate::{target::Target, workload::Workload};

#[derive(Parser, Debug)]
#[command(about = "Benchmark FlareDB (and etcd) on loopback")]
struct Args {
    /// Start this many local flaredb-server nodes (temp data dirs).
    #[arg(long, default_value_t = 1)]
    nodes: u64,
    /// Use a running FlareDB cluster at these endpoints instead of starting one.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// flaredb-server binary for --nodes (default: next to this binary, then ../target/release).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Also run every workload against etcd at this endpoint (e.g. 127.0.0.1:2379);
    /// for `--scenario watch` and `lease`, every member's, comma-separated.
    #[arg(long)]
    etcd: Option<String>,
    /// Client concurrencies to run each workload at.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Seconds per (workload, concurrency) cell.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', default_value = "cas-put,strong-get,raw-put,raw-get,prefix-scan")]
    workloads: Vec<Workload>,
    /// Instead of the workloads: measure recovery (restart, learner catch-up,
    /// failover) on a 3-node cluster holding this many keys.
    #[arg(long)]
    recovery_keys: Option<u64>,
    /// Leader failovers to time in recovery and failover mode.
    #[arg(long, default_value_t = 20)]
    failovers: u32,
    /// Instead of the workloads, on 3 nodes: `failover` (kill -9 the leader
    /// --failovers times), `steady` (--seconds of write load from the first
    /// --clients writers; terms before and after) or `rolling-restart`
    /// (SIGTERM and restart each node under that load; longest write stall)
    /// or `bulk-load` (--keys distinct keys by the first --clients writers into
    /// 3 nodes, then into --etcd: rate, disk, RSS, restart) or `watch` (event
    /// latency to --watchers watchers on a follower; --idle-watchers on the
    /// leader next to a CAS load from the largest --clients; then on --etcd)
    /// or `lease` (grants/s at each --clients for --seconds; --leases leases
    /// granted by the largest --clients, kept alive by --lease-clients
    /// streams for --lease-secs, then renewed in one burst; then on --etcd).
    #[arg(long)]
    scenario: Option<Scenario>,
    /// Watchers of the written prefix in `--scenario watch`, one run per count.
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    watchers: Vec<usize>,
    /// Idle watchers opened on the leader in `--scenario watch`.
    #[arg(long, default_value_t = 10_000)]
    idle_watchers: usize,
    /// Puts per second of the watched writer in `--scenario watch` (0: back to back).
    #[arg(long, default_value_t = 200)]
    watch_rate: u32,
    /// Leases kept alive in `--scenario lease`.
    #[arg(long, default_value_t = 100_000)]
    leases: usize,
    /// Keep-alive clients in `--scenario lease`: one connection and one
    /// stream each, renewing --leases / --lease-clients leases.
    #[arg(long, default_value_t = 1_000)]
    lease_clients: usize,
    /// TTL in seconds of the kept leases in `--scenario lease` (renewed every third of it).
    #[arg(long, default_value_t = 30)]
    lease_ttl: i64,
    /// Seconds the keep-alive load of `--scenario lease` is measured.
    #[arg(long, default_value_t = 30)]
    lease_secs: u64,
    /// Keys for `--scenario bulk-load`.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// etcd members' data dirs, for their disk and RSS in `bulk-load` (with --etcd).
    #[arg(long, value_delimiter = ',')]
    etcd_data_dirs: Vec<std::path::PathBuf>,
    /// A TOML file every started node reads (--config), e.g. Raft timeouts.
    #[arg(long)]
    server_config: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Scenario {
    Failover,
    Steady,
    RollingRestart,
    BulkLoad,
    Watch,
    Lease,
}

fn watch_args(args: &Args) -> watch::WatchArgs {
    let etcd = args.etcd.iter().flat_map(|e| e.split(',')).map(str::to_string).collect();
    watch::WatchArgs {
        watchers: args.watchers.clone(),
        idle: args.idle_watchers,
        rate: args.watch_rate,
        duration: Duration::from_secs(args.seconds),
        clients: args.clients.iter().copied().max().unwrap_or(64),
        value_size: args.value_size,
        server_bin: args.server_bin.clone(),
        config: args.server_config.clone(),
        etcd,
    }
}

fn lease_args(args: &Args) -> lease::LeaseArgs {
    lease::LeaseArgs {
        grant_clients: args.clients.clone(),
        grant_secs: Duration::from_secs(args.seconds),
        leases: args.leases,
        streams: args.lease_clients,
        ttl: args.lease_ttl,
        window: Duration::from_secs(args.lease_secs),
        granters: args.clients.iter().copied().max().unwrap_or(64),
        server_bin: args.server_bin.clone(),
        config: args.server_config.clone(),
        etcd: args.etcd.iter().flat_map(|e| e.split(',')).map(str::to_string).collect(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (bin, config, clients) = (args.server_bin.clone(), args.server_config.clone(), args.clients[0]);
    match args.scenario {
        Some(Scenario::Failover) => return failover::failover(args.failovers, bin, config).await,
        Some(Scenario::Steady) => {
            let secs = Duration::from_secs(args.seconds);
            return failover::steady(secs, clients, args.value_size, bin, config).await;
        }
        Some(Scenario::RollingRestart) => return rolling::run(clients, args.value_size, bin, config).await,
        Some(Scenario::BulkLoad) => {
            let etcd = args.etcd.clone().map(|e| (e, args.etcd_data_dirs.clone()));
            let (keys, value_size) = (args.keys, args.value_size);
            let a = bulk::BulkArgs { keys, writers: clients, value_size, server_bin: bin, config, etcd };
            return bulk::run(a).await;
        }
        Some(Scenario::Watch) => return watch::run(watch_args(&args)).await,
        Some(Scenario::Lease) => return lease::run(lease_args(&args)).await,
        None => {}
    }
    if let Some(keys) = args.recovery_keys {
        return recovery::run(keys, args.value_size, args.failovers, args.server_bin.clone()).await;
    }
    let mut targets = Vec::new();
    let _cluster = if args.endpoints.is_empty() {
        let c =
            cluster::LocalCluster::start_with(args.nodes, args.server_bin.clone(), args.server_config.clone()).await?;
        targets.push(Arc::new(Target::flaredb(&c.endpoints(), &format!("flaredb {}-node", args.nodes))?));
        Some(c)
    } else {
        targets.push(Arc::new(Target::flaredb(&args.endpoints, "flaredb")?));
        None
    };
    if let Some(e) = &args.etcd {
        targets.push(Arc::new(Target::etcd(e).await?));
    }
    println!("| system | workload | clients | ops/s | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for target in &targets {
        for w in &args.workloads {
            target.prepare(*w, args.value_size).await?;
            for &clients in &args.clients {
                let r = workload::run(target, *w, clients, Duration::from_secs(args.seconds), args.value_size).await?;
                println!(
                    "| {} | {} | {} | {:.0} | {:.2} | {:.2} |",
                    target.name(),
                    w,
                    clients,
                    r.ops_per_sec,
                    r.p50_ms,
                    r.p99_ms
                );
            }
        }
    }
    Ok(())
}
