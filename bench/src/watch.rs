//! Watch figures, for a 3-node FlareDB cluster it starts and, side by side,
//! a 3-member etcd cluster given by its endpoints:
//!
//! 1. Fan-out latency: one writer puts keys under a prefix on the leader,
//!    paced (or back to back), while W watchers of that prefix, connected to
//!    a follower, time each event from the put being sent and from it being
//!    acknowledged.
//! 2. Idle watchers: N watches (mostly single keys, a tenth prefixes) on the
//!    leader; its RSS before and with them, how fast a write to one watched
//!    key reaches its watcher, and a many-client CAS load without, with and after
//!    the watchers (unrelated writers must not slow down).

use std::{
    path::PathBuf,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use etcd_client::{EventType, WatchOptions};
use flaredb_client::{RdbClient, WatchEventKind};
use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use tokio::{sync::watch, task::JoinHandle, time::MissedTickBehavior};

use crate::{
    cluster::LocalCluster,
    resources::{self, mb},
    target::Target,
    workload::{self, Workload},
};

pub struct WatchArgs {
    /// Watcher counts of the fan-out runs.
    pub watchers: Vec<usize>,
    /// Idle watchers opened on one node.
    pub idle: usize,
    /// Puts per second of the fan-out writer; 0 = back to back.
    pub rate: u32,
    pub duration: Duration,
    /// Concurrent CAS writers next to the idle watchers.
    pub clients: usize,
    pub value_size: usize,
    pub server_bin: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// etcd's members' client endpoints (empty: FlareDB only).
    pub etcd: Vec<String>,
}

/// Connections per watcher group: watches spread over this many HTTP/2 connections.
const CONNECTIONS: usize = 10;
/// Keys the fan-out writer cycles through (each put overwrites one).
const KEYS: usize = 16;
/// Writes to single watched keys timed next to the idle watchers.
const PROBES: u32 = 20;
/// Longer than the server's progress interval (watch_progress_ms, 10 s by default).
const CLOSE_SETTLE: Duration = Duration::from_secs(12);
/// How long watchers may take to register, or to receive what was written.
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flare,
    Etcd,
}

/// Where one system's writer and watchers connect.
struct System {
    kind: Kind,
    name: &'static str,
    leader: String,
    follower: String,
    /// The leader's process (for its RSS).
    leader_pid: u32,
    /// The follower's process (for its CPU use).
    follower_pid: u32,
    /// The CAS load's client: FlareDB over every node, etcd on its leader.
    load: Arc<Target>,
}

pub async fn run(a: WatchArgs) -> anyhow::Result<()> {
    let mut fanout = Vec::new();
    let mut idle = Vec::new();
    let cluster = LocalCluster::start_with(3, a.server_bin.clone(), a.config.clone()).await?;
    let flare = flaredb_system(&cluster).await?;
    measure(&flare, &a, &mut fanout, &mut idle).await?;
    drop(cluster);
    if !a.etcd.is_empty() {
        let etcd = etcd_system(&a.etcd).await?;
        measure(&etcd, &a, &mut fanout, &mut idle).await?;
    }
    print_tables(&a, &fanout, &idle);
    Ok(())
}

async fn measure(
    sys: &System,
    a: &WatchArgs,
    fanout: &mut Vec<FanoutRow>,
    idle: &mut Vec<IdleRow>,
) -> anyhow::Result<()> {
    for &w in &a.watchers {
        fanout.push(fan_out(sys, w, a).await?);
    }
    idle.push(idle_watchers(sys, a).await?);
    Ok(())
}

async fn flaredb_system(c: &LocalCluster) -> anyhow::Result<System> {
    let leader_id = c.wait_leader(WAIT).await?;
    let follower_id = *c.addrs.keys().find(|id| **id != leader_id).context("no follower")?;
    Ok(System {
        kind: Kind::Flare,
        name: "flaredb",
        leader: c.addrs[&leader_id].clone(),
        follower: c.addrs[&follower_id].clone(),
        leader_pid: c.pid(leader_id).context("leader not running")?,
        follower_pid: c.pid(follower_id).context("follower not running")?,
        load: Arc::new(Target::flaredb(&c.endpoints(), "flaredb")?),
    })
}

/// etcd's leader (by its members' status) and another member.
async fn etcd_system(endpoints: &[String]) -> anyhow::Result<System> {
    let (leader, follower) = etcd_roles(endpoints).await?;
    let load = Arc::new(Target::etcd(&leader).await?);
    let (leader_pid, follower_pid) = (pid_of(&leader)?, pid_of(&follower)?);
    Ok(System { kind: Kind::Etcd, name: "etcd", leader, follower, leader_pid, follower_pid, load })
}

/// The endpoints of etcd's leader (by its members' status) and of another member.
pub(crate) async fn etcd_roles(endpoints: &[String]) -> anyhow::Result<(String, String)> {
    let (mut leader, mut follower) = (None, None);
    for e in endpoints {
        let mut client = etcd_client::Client::connect([e], None).await?;
        let status = client.status().await?;
        let me = status.header().context("status without header")?.member_id();
        if me == status.leader() {
            leader = Some(e.clone());
        } else {
            follower.get_or_insert_with(|| e.clone());
        }
    }
    Ok((leader.context("no etcd leader")?, follower.context("no etcd follower")?))
}

/// The process serving endpoint `host:port` on this machine.
pub(crate) fn pid_of(endpoint: &str) -> anyhow::Result<u32> {
    let port = endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).context("endpoint without port")?;
    resources::pid_listening(port).with_context(|| format!("no process listens on {endpoint}"))
}

// ---- Clients: one write and one watch, whatever the system. ----

#[derive(Clone)]
enum Client {
    Flare(RdbClient),
    Etcd(Box<etcd_client::Client>),
}

/// What a watch yields: it is registered (FlareDB: a progress event; etcd:
/// the created response), or the values of puts.
enum Msg {
    Registered,
    Puts(Vec<Bytes>),
}

type MsgStream = Pin<Box<dyn Stream<Item = anyhow::Result<Msg>> + Send>>;

impl Client {
    /// A client of node `addr` alone (one HTTP/2 connection), in FlareDB namespace `ns`.
    async fn connect(sys: &System, addr: &str, ns: &str) -> anyhow::Result<Self> {
        Ok(match sys.kind {
            Kind::Flare => Client::Flare(RdbClient::connect([addr])?.namespace(ns)),
            Kind::Etcd => Client::Etcd(Box::new(etcd_client::Client::connect([addr], None).await?)),
        })
    }

    async fn connect_many(sys: &System, addr: &str, ns: &str, n: usize) -> anyhow::Result<Vec<Self>> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(Self::connect(sys, addr, ns).await?);
        }
        Ok(clients)
    }

    /// Writes `key`. FlareDB: a CAS put expecting `version`, which becomes
    /// the new version; etcd: a plain put.
    async fn put(&self, key: String, value: Bytes, version: &mut u64) -> anyhow::Result<()> {
        match self {
            Client::Flare(c) => {
                let r = c.cas_put(key, value, *version).await?;
                anyhow::ensure!(r.success, "CAS put expecting version {version} found {}", r.current_version);
                *version = r.new_version;
            }
            Client::Etcd(c) => {
                c.kv_client().put(key, value.to_vec(), None).await?;
            }
        }
        Ok(())
    }

    async fn watch(&self, key: String, prefix: bool) -> anyhow::Result<MsgStream> {
        Ok(match self {
            Client::Flare(c) => {
                let b = c.watch(key);
                let b = if prefix { b.prefix() } else { b };
                b.start()
                    .map(|e| {
                        let e = e?;
                        Ok(match e.kind {
                            WatchEventKind::Progress => Msg::Registered,
                            WatchEventKind::Put => Msg::Puts(vec![e.value]),
                            WatchEventKind::Delete => Msg::Puts(vec![]),
                        })
                    })
                    .boxed()
            }
            Client::Etcd(c) => {
                let opts = if prefix { WatchOptions::new().with_prefix() } else { WatchOptions::new() };
                let stream = c.watch_client().watch(key, Some(opts)).await?;
                stream.map(|r| etcd_msg(r?)).boxed()
            }
        })
    }
}

fn etcd_msg(r: etcd_client::WatchResponse) -> anyhow::Result<Msg> {
    if r.canceled() {
        bail!("etcd canceled the watch: {}", r.cancel_reason());
    }
    if r.created() {
        return Ok(Msg::Registered);
    }
    let puts = r.events().iter().filter(|e| e.event_type() == EventType::Put);
    Ok(Msg::Puts(puts.filter_map(|e| Some(Bytes::copy_from_slice(e.kv()?.value()))).collect()))
}

/// A value carrying the writer's put index `i` (then padding).
fn stamped(i: u32, size: usize) -> Bytes {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(size.max(4), b'v');
    Bytes::from(v)
}

fn index_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(value.get(..4)?.try_into().ok()?))
}

// ---- Watchers ----

/// What one watcher saw: each put (by index) and when it arrived.
#[derive(Default)]
struct Seen {
    at: Vec<(u32, Instant)>,
    error: Option<String>,
}

#[derive(Default)]
struct Counters {
    registered: AtomicU64,
    events: AtomicU64,
    failed: AtomicU64,
}

/// Watchers running as tasks until closed.
struct Group {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Seen>>,
}

impl Group {
    /// Opens one watch per (key, prefix), spread over `clients`, and waits
    /// until all are registered; also returns how long that took.
    async fn open(clients: &[Client], specs: Vec<(String, bool)>) -> anyhow::Result<(Self, Duration)> {
        let start = Instant::now();
        let counters = Arc::new(Counters::default());
        let (stop, _) = watch::channel(false);
        let n = specs.len() as u64;
        let tasks = specs
            .into_iter()
            .enumerate()
            .map(|(i, (key, prefix))| {
                let (client, counters, stop) = (clients[i % clients.len()].clone(), counters.clone(), stop.subscribe());
                tokio::spawn(async move {
                    match client.watch(key, prefix).await {
                        Ok(s) => follow(s, &counters, stop).await,
                        Err(e) => failed(&counters, e),
                    }
                })
            })
            .collect();
        let g = Self { counters, stop, tasks };
        let c = &g.counters;
        g.wait(|| c.registered.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed) >= n).await;
        let failures = c.failed.load(Ordering::Relaxed);
        anyhow::ensure!(c.registered.load(Ordering::Relaxed) == n, "{failures} of {n} watches failed to register");
        Ok((g, start.elapsed()))
    }

    /// Waits (up to [`WAIT`]) until `done`; whether it came true.
    async fn wait(&self, done: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > WAIT {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    fn events(&self) -> u64 {
        self.counters.events.load(Ordering::Relaxed)
    }

    async fn close(self) -> anyhow::Result<Vec<Seen>> {
        let _ = self.stop.send(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            all.push(t.await?);
        }
        Ok(all)
    }
}

fn failed(counters: &Counters, e: anyhow::Error) -> Seen {
    ended(counters, Seen::default(), e)
}

/// A watch that ended with `e`, having seen `seen`.
fn ended(counters: &Counters, seen: Seen, e: anyhow::Error) -> Seen {
    counters.failed.fetch_add(1, Ordering::Relaxed);
    Seen { error: Some(format!("{e:#}")), ..seen }
}

/// Follows one watch until `stop`, noting when each put arrived.
async fn follow(mut s: MsgStream, counters: &Counters, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    let mut registered = false;
    loop {
        let msg = tokio::select! {
            m = s.next() => m,
            _ = stop.wait_for(|stop| *stop) => return seen,
        };
        match msg {
            Some(Ok(Msg::Registered)) if !registered => {
                registered = true;
                counters.registered.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(Msg::Registered)) => {}
            Some(Ok(Msg::Puts(values))) => {
                let now = Instant::now();
                seen.at.extend(values.iter().filter_map(|v| index_of(v)).map(|i| (i, now)));
                counters.events.fetch_add(values.len() as u64, Ordering::Relaxed);
            }
            Some(Err(e)) => return ended(counters, seen, e),
            None => return ended(counters, seen, anyhow::anyhow!("the watch stream ended")),
        }
    }
}

// ---- 1. Fan-out latency ----

/// When each put was sent and acknowledged, by index.
#[derive(Default)]
struct Sent {
    send: Vec<Instant>,
    ack: Vec<Instant>,
}

/// Puts stamped values under `prefix` for `duration`, one at a time.
async fn write(client: &Client, prefix: &str, rate: u32, duration: Duration, size: usize) -> anyhow::Result<Sent> {
    let mut versions = [0u64; KEYS];
    let mut tick = (rate > 0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64)));
    if let Some(t) = tick.as_mut() {
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    let mut sent = Sent::default();
    let start = Instant::now();
    while start.elapsed() < duration {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let i = sent.send.len();
        sent.send.push(Instant::now());
        client.put(format!("{prefix}{:02}", i % KEYS), stamped(i as u32, size), &mut versions[i % KEYS]).await?;
        sent.ack.push(Instant::now());
    }
    Ok(sent)
}

struct FanoutRow {
    system: &'static str,
    watchers: usize,
    puts: usize,
    puts_per_s: f64,
    delivered: u64,
    events_per_s: f64,
    send_to_event: Histogram<u64>,
    ack_to_event: Histogram<u64>,
    /// Events that arrived before their put's acknowledgement.
    before_ack: u64,
    /// Events a watcher received after a later (or the same) put's event.
    out_of_order: u64,
    failed_watchers: usize,
    /// Percent of one core, from the first put to the last event: (the
    /// watchers' node, the bench process with writer and watchers).
    cpu: (f64, f64),
}

/// Makes each fan-out run's keys new (so its CAS puts can expect version 0).
static RUN: AtomicU64 = AtomicU64::new(0);

async fn fan_out(sys: &System, watchers: usize, a: &WatchArgs) -> anyhow::Result<FanoutRow> {
    let prefix = format!("fanout/{}/", RUN.fetch_add(1, Ordering::Relaxed));
    let writer = Client::connect(sys, &sys.leader, "watch").await?;
    // Creates the namespace and the connection before the watchers open
    // (outside the prefix: a follower may apply it after they registered).
    writer.put(format!("fanout/{}-warm", prefix.trim_matches('/')), stamped(0, a.value_size), &mut 0).await?;
    let clients = Client::connect_many(sys, &sys.follower, "watch", CONNECTIONS.min(watchers)).await?;
    let (group, _) = Group::open(&clients, vec![(prefix.clone(), true); watchers]).await?;
    let cpu = Cpu::start(sys.follower_pid);
    let sent = write(&writer, &prefix, a.rate, a.duration, a.value_size).await?;
    let expected = (sent.send.len() * watchers) as u64;
    group.wait(|| group.events() >= expected).await;
    let cpu = cpu.percent();
    let seen = group.close().await?;
    Ok(FanoutRow { cpu, ..fanout_row(sys.name, watchers, &sent, &seen)? })
}

/// CPU use of a server and of this process over a stretch of time.
struct Cpu {
    pid: u32,
    start: Instant,
    server: u64,
    me: u64,
}

impl Cpu {
    fn start(pid: u32) -> Self {
        let ticks = |pid| resources::cpu_ticks(pid).unwrap_or(0);
        Self { pid, start: Instant::now(), server: ticks(pid), me: ticks(std::process::id()) }
    }

    /// Percent of one core used since `start`: (the server, this process).
    fn percent(&self) -> (f64, f64) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        // Clock ticks are 1/100 s on Linux.
        let used = |pid, before| resources::cpu_ticks(pid).unwrap_or(before).saturating_sub(before) as f64 / secs;
        (used(self.pid, self.server), used(std::process::id(), self.me))
    }
}

fn fanout_row(system: &'static str, watchers: usize, sent: &Sent, seen: &[Seen]) -> anyhow::Result<FanoutRow> {
    let (mut send_to_event, mut ack_to_event) = (Histogram::new(3)?, Histogram::new(3)?);
    let (mut before_ack, mut delivered) = (0, 0);
    let first = *sent.send.first().context("nothing written")?;
    let mut last = first;
    for (i, at) in seen.iter().flat_map(|s| &s.at) {
        let Some((send, ack)) = sent.send.get(*i as usize).zip(sent.ack.get(*i as usize)) else { continue };
        delivered += 1;
        last = last.max(*at);
        send_to_event.record(at.saturating_duration_since(*send).as_micros() as u64)?;
        before_ack += u64::from(at < ack);
        ack_to_event.record(at.saturating_duration_since(*ack).as_micros() as u64)?;
    }
    let write_secs = sent.ack.last().unwrap_or(&first).duration_since(first).as_secs_f64();
    Ok(FanoutRow {
        system,
        watchers,
        puts: sent.send.len(),
        puts_per_s: sent.send.len() as f64 / write_secs.max(1e-9),
        delivered,
        events_per_s: delivered as f64 / last.duration_since(first).as_secs_f64().max(1e-9),
        send_to_event,
        ack_to_event,
        before_ack,
        out_of_order: seen.iter().map(|s| out_of_order(&s.at)).sum(),
        failed_watchers: seen.iter().filter(|s| s.error.is_some()).count(),
        cpu: (0.0, 0.0),
    })
}

/// Events not after the previous one in put order (repeated or reordered).
fn out_of_order(at: &[(u32, Instant)]) -> u64 {
    at.windows(2).filter(|w| w[1].0 <= w[0].0).count() as u64
}

// ---- 2. Idle watchers ----

struct IdleRow {
    system: &'static str,
    watchers: usize,
    attach: Duration,
    rss_before: u64,
    rss_with: u64,
    rss_after_load: u64,
    rss_closed: u64,
    /// Send → event of writes to single watched keys.
    probe: Histogram<u64>,
    probes_delivered: usize,
    without: workload::Report,
    with: workload::Report,
    after: workload::Report,
    failed_watchers: usize,
}

/// The idle watches: a tenth on prefixes, the rest on single keys; all in
/// the namespace the CAS load writes (its keys match none of them).
fn idle_specs(n: usize) -> Vec<(String, bool)> {
    (0..n).map(|i| if i % 10 == 9 { (format!("iw/p{i}/"), true) } else { (format!("iw/k{i}"), false) }).collect()
}

async fn cas_load(sys: &System, a: &WatchArgs) -> anyhow::Result<workload::Report> {
    workload::run(&sys.load, Workload::CasPut, a.clients, a.duration, a.value_size).await
}

async fn idle_watchers(sys: &System, a: &WatchArgs) -> anyhow::Result<IdleRow> {
    let without = cas_load(sys, a).await?;
    let rss_before = resources::rss_bytes(sys.leader_pid);
    let clients = Client::connect_many(sys, &sys.leader, "bench", CONNECTIONS).await?;
    let (group, attach) = Group::open(&clients, idle_specs(a.idle)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_with = resources::rss_bytes(sys.leader_pid);
    let sent = probe(sys, &group, a).await?;
    let with = cas_load(sys, a).await?;
    let rss_after_load = resources::rss_bytes(sys.leader_pid);
    let seen = group.close().await?;
    drop(clients);
    // A dropped FlareDB watch is cancelled when its next message (at the
    // latest, a progress event) finds no reader: wait that out.
    tokio::time::sleep(CLOSE_SETTLE).await;
    let rss_closed = resources::rss_bytes(sys.leader_pid);
    let after = cas_load(sys, a).await?;
    let mut probe = Histogram::new(3)?;
    let mut probes_delivered = 0;
    for (i, at) in seen.iter().flat_map(|s| &s.at) {
        if let Some(send) = sent.get(*i as usize) {
            probe.record(at.saturating_duration_since(*send).as_micros() as u64)?;
            probes_delivered += 1;
        }
    }
    let failed_watchers = seen.iter().filter(|s| s.error.is_some()).count();
    Ok(IdleRow {
        system: sys.name,
        watchers: a.idle,
        attach,
        rss_before,
        rss_with,
        rss_after_load,
        rss_closed,
        probe,
        probes_delivered,
        without,
        with,
        after,
        failed_watchers,
    })
}

/// Writes single watched keys one at a time, each once its watcher saw the
/// previous one; when each was sent.
async fn probe(sys: &System, group: &Group, a: &WatchArgs) -> anyhow::Result<Vec<Instant>> {
    let writer = Client::connect(sys, &sys.leader, "bench").await?;
    let exact: Vec<String> = idle_specs(a.idle).into_iter().filter(|(_, p)| !p).map(|(k, _)| k).collect();
    let mut sent = Vec::new();
    for i in 0..PROBES.min(exact.len() as u32) {
        let before = group.events();
        sent.push(Instant::now());
        writer.put(exact[i as usize * exact.len() / PROBES as usize].clone(), stamped(i, a.value_size), &mut 0).await?;
        if !group.wait(|| group.events() > before).await {
            bail!("probe {i} did not reach its watcher within {WAIT:?}");
        }
    }
    Ok(sent)
}

// ---- Output ----

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn print_tables(a: &WatchArgs, fanout: &[FanoutRow], idle: &[IdleRow]) {
    print_fanout(a, fanout);
    println!();
    print_idle(idle);
    println!();
    print_load(a, idle);
}

fn print_fanout(a: &WatchArgs, rows: &[FanoutRow]) {
    let pace = if a.rate > 0 { format!("paced at {} puts/s", a.rate) } else { "back to back".into() };
    println!(
        "Fan-out: one writer on the leader ({pace}, {} s, {} B values; FlareDB CAS put / etcd put), \
         W watchers of the prefix on a follower over up to {CONNECTIONS} connections; CPU in % of one core \
         from the first put to the last event:",
        a.duration.as_secs(),
        a.value_size
    );
    println!();
    println!(
        "| system | watchers | puts | puts/s | events delivered | events/s | send→event p50 ms | p99 ms \
         | ack→event p50 ms | p99 ms | events before ack | follower CPU | bench CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let expected = r.puts * r.watchers;
        let mut notes = String::new();
        if r.out_of_order > 0 {
            notes += &format!(" ({} out of order or repeated)", r.out_of_order);
        }
        if r.failed_watchers > 0 {
            notes += &format!(" ({} watchers failed)", r.failed_watchers);
        }
        println!(
            "| {} | {} | {} | {:.0} | {} / {expected}{notes} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.0} |",
            r.system,
            r.watchers,
            r.puts,
            r.puts_per_s,
            r.delivered,
            r.events_per_s,
            ms(&r.send_to_event, 0.5),
            ms(&r.send_to_event, 0.99),
            ms(&r.ack_to_event, 0.5),
            ms(&r.ack_to_event, 0.99),
            r.before_ack,
            r.cpu.0,
            r.cpu.1
        );
    }
}

fn print_idle(rows: &[IdleRow]) {
    println!(
        "Idle watchers on the leader over {CONNECTIONS} connections (a tenth prefix, the rest single keys); RSS in MB:"
    );
    println!();
    println!(
        "| system | watchers | attach s | RSS before | with watchers | after load | watchers closed \
         | write → its watcher p50 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let failed = if r.failed_watchers > 0 { format!(" ({} failed)", r.failed_watchers) } else { String::new() };
        println!(
            "| {} | {}{failed} | {:.2} | {} | {} | {} | {} | {:.2} | {:.2} ({} of {PROBES} probes) |",
            r.system,
            r.watchers,
            r.attach.as_secs_f64(),
            mb(r.rss_before),
            mb(r.rss_with),
            mb(r.rss_after_load),
            mb(r.rss_closed),
            ms(&r.probe, 0.5),
            r.probe.max() as f64 / 1000.0,
            r.probes_delivered
        );
    }
}

fn print_load(a: &WatchArgs, rows: &[IdleRow]) {
    println!("{}-client CAS put (create if absent) next to them, {} s each:", a.clients, a.duration.as_secs());
    println!();
    println!("| system | watchers attached | ops/s | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        let runs = [
            ("none (before)".to_string(), &r.without),
            (r.watchers.to_string(), &r.with),
            ("none (closed)".to_string(), &r.after),
        ];
        for (when, rep) in runs {
            println!("| {} | {when} | {:.0} | {:.2} | {:.2} |", r.system, rep.ops_per_sec, rep.p50_ms, rep.p99_ms);
        }
    }
}
