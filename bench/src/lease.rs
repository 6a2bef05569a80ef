//! Lease figures, for a 3-node FlareDB cluster it starts and, side by side,
//! a 3-member etcd cluster given by its endpoints; every call goes to the
//! leader:
//!
//! 1. Grant throughput: C concurrent granters (one connection) for a while,
//!    TTL 60 s; the leases are then revoked by as many revokers.
//! 2. Keep-alive scale: N leases granted by G concurrent granters, renewed
//!    every TTL/3 over S streams (one connection each, N/S leases per stream,
//!    renewals answered in order): keep-alives/s, latency, the leader's CPU
//!    and RSS, leases lost (a keep-alive answered TTL 0) over a window after
//!    a period of warm-up. Then a burst: every stream renews all its leases
//!    at once, for the highest keep-alive rate; then all are revoked.
//!
//! etcd-client keeps one lease per `LeaseKeeper` (one stream each); with its
//! `pub-response-field` feature the keeper's lease id is switched before
//! each request, so one etcd stream renews many leases as FlareDB's does
//! (etcd's server answers a stream's requests in order too).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
    path::PathBuf,
    sync::{
        atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, Context};
use flaredb_client::RdbClient;
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use hdrhistogram::Histogram;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tonic::transport::{Channel, Endpoint};

use crate::{
    cluster::LocalCluster,
    resources::{self, mb},
    watch::{etcd_roles, pid_of},
};

pub struct LeaseArgs {
    /// Concurrencies of the grant-throughput runs.
    pub grant_clients: Vec<usize>,
    /// Length of each grant-throughput run.
    pub grant_secs: Duration,
    /// Leases kept alive.
    pub leases: usize,
    /// Keep-alive streams (clients), one connection each.
    pub streams: usize,
    /// TTL of the kept leases, in seconds; each is renewed every third of it.
    pub ttl: i64,
    /// The measured keep-alive window.
    pub window: Duration,
    /// Concurrent granters (and revokers) of the kept leases.
    pub granters: usize,
    pub server_bin: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// etcd's members' client endpoints (empty: FlareDB only).
    pub etcd: Vec<String>,
}

/// TTL of the leases of the grant-throughput runs.
const GRANT_TTL: i64 = 60;
/// How long the keep-alive streams may take to drain or to answer the burst.
const WAIT: Duration = Duration::from_secs(120);
/// The leader's CPU is also measured this long with the streams' connections
/// open and no lease, for its baseline.
const IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flare,
    Etcd,
}

/// Where one system's leader serves.
#[derive(Clone)]
struct System {
    kind: Kind,
    name: &'static str,
    leader: String,
    leader_pid: u32,
}

pub async fn run(a: LeaseArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.ttl >= 3, "--lease-ttl must be at least 3 s (renewed every third of it)");
    anyhow::ensure!(a.streams > 0 && a.leases > 0 && a.granters > 0, "nothing to keep alive");
    let (mut grants, mut keeps) = (Vec::new(), Vec::new());
    let cluster = LocalCluster::start_with(3, a.server_bin.clone(), a.config.clone()).await?;
    let leader = cluster.wait_leader(WAIT).await?;
    let flare = System {
        kind: Kind::Flare,
        name: "flaredb",
        leader: cluster.addrs[&leader].clone(),
        leader_pid: cluster.pid(leader).context("leader not running")?,
    };
    measure(&flare, &a, &mut grants, &mut keeps).await?;
    drop(cluster);
    if !a.etcd.is_empty() {
        let (leader, _) = etcd_roles(&a.etcd).await?;
        let etcd = System { kind: Kind::Etcd, name: "etcd", leader_pid: pid_of(&leader)?, leader };
        measure(&etcd, &a, &mut grants, &mut keeps).await?;
    }
    print_tables(&a, &grants, &keeps);
    Ok(())
}

async fn measure(
    sys: &System,
    a: &LeaseArgs,
    grants: &mut Vec<GrantRow>,
    keeps: &mut Vec<KeepRow>,
) -> anyhow::Result<()> {
    for &c in &a.grant_clients {
        grants.push(grant_throughput(sys, c, a).await?);
    }
    keeps.push(keep_alive_scale(sys, a).await?);
    Ok(())
}

// ---- Unary calls: grant and revoke ----

#[derive(Clone)]
enum Granter {
    Flare(RdbClient),
    Etcd(Box<etcd_client::Client>),
}

impl Granter {
    /// A client of the leader alone (one HTTP/2 connection).
    async fn connect(sys: &System) -> anyhow::Result<Self> {
        Ok(match sys.kind {
            Kind::Flare => Granter::Flare(RdbClient::connect([sys.leader.clone()])?),
            Kind::Etcd => Granter::Etcd(Box::new(etcd_client::Client::connect([&sys.leader], None).await?)),
        })
    }

    async fn grant(&self, ttl: i64) -> anyhow::Result<u64> {
        Ok(match self {
            Granter::Flare(c) => c.lease_grant(ttl).await?.0,
            Granter::Etcd(c) => c.lease_client().grant(ttl, None).await?.id() as u64,
        })
    }

    async fn revoke(&self, id: u64) -> anyhow::Result<()> {
        match self {
            Granter::Flare(c) => {
                c.lease_revoke(id).await?.with_context(|| format!("lease {id} was gone before its revoke"))?;
            }
            Granter::Etcd(c) => {
                c.lease_client().revoke(id as i64).await?;
            }
        }
        Ok(())
    }
}

/// Runs `op(i)` for i in 0..n on `workers` concurrent tasks; each task's
/// latency histogram (µs) and outputs.
async fn spread<T, F, Fut>(n: usize, workers: usize, op: F) -> anyhow::Result<(Histogram<u64>, Vec<T>)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let (next, op) = (Arc::new(AtomicUsize::new(0)), Arc::new(op));
    let tasks: Vec<_> = (0..workers.min(n).max(1))
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                let (mut h, mut out) = (Histogram::<u64>::new(3)?, Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok((h, out));
                    }
                    let t = Instant::now();
                    out.push(op(i).await?);
                    h.record(t.elapsed().as_micros() as u64)?;
                }
            })
        })
        .collect();
    let (mut all, mut outs) = (Histogram::new(3)?, Vec::with_capacity(n));
    for t in tasks {
        let (h, out) = t.await??;
        all.add(h)?;
        outs.extend(out);
    }
    Ok((all, outs))
}

/// Revokes `ids` with `workers` concurrent revokers; how long it took.
async fn revoke_all(client: &Granter, ids: Vec<u64>, workers: usize) -> anyhow::Result<Duration> {
    let (start, ids, client) = (Instant::now(), Arc::new(ids), client.clone());
    let n = ids.len();
    spread(n, workers, move |i| {
        let (client, id) = (client.clone(), ids[i]);
        async move { client.revoke(id).await }
    })
    .await?;
    Ok(start.elapsed())
}

// ---- 1. Grant throughput ----

struct GrantRow {
    system: &'static str,
    clients: usize,
    grants: u64,
    secs: f64,
    latency: Histogram<u64>,
    revokes: usize,
    revoke_secs: f64,
}

async fn grant_throughput(sys: &System, clients: usize, a: &LeaseArgs) -> anyhow::Result<GrantRow> {
    let client = Granter::connect(sys).await?;
    // Opens the connection (and leaves a lease for the revokers).
    let warm = client.grant(GRANT_TTL).await?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, duration) = (client.clone(), a.grant_secs);
            tokio::spawn(async move {
                let (mut h, mut ids) = (Histogram::<u64>::new(3)?, Vec::new());
                while start.elapsed() < duration {
                    let t = Instant::now();
                    ids.push(client.grant(GRANT_TTL).await?);
                    h.record(t.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok((h, ids))
            })
        })
        .collect();
    let (mut latency, mut ids) = (Histogram::new(3)?, vec![warm]);
    for t in tasks {
        let (h, i) = t.await??;
        latency.add(h)?;
        ids.extend(i);
    }
    let secs = start.elapsed().as_secs_f64();
    // So that they neither count among nor expire next to the kept leases.
    let revokes = ids.len();
    let revoke_secs = revoke_all(&client, ids, a.granters).await?.as_secs_f64();
    Ok(GrantRow { system: sys.name, clients, grants: latency.len(), secs, latency, revokes, revoke_secs })
}

// ---- 2. Keep-alive scale ----

/// What the keep-alive streams do: renew on schedule (warm-up, then the
/// measured window), pause until every renewal is answered, renew
/// everything at once, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Window,
    Drain,
    Burst,
    Stop,
}

/// Which figure a renewal counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Other,
    Window,
    Burst,
}

#[derive(Default)]
struct Shared {
    /// Renewals sent and not answered (or given up on).
    in_flight: AtomicI64,
    window_answered: AtomicU64,
    burst_answered: AtomicU64,
    /// Streams done with the burst (or ended).
    settled: AtomicUsize,
}

/// One keep-alive stream's sending half.
enum Sender {
    Flare(mpsc::Sender<pb::LeaseKeepAliveRequest>),
    Etcd(etcd_client::LeaseKeeper),
}

/// One keep-alive stream's answers.
enum Answers {
    Flare(tonic::Streaming<pb::LeaseKeepAliveResponse>),
    Etcd(etcd_client::LeaseKeepAliveStream),
}

/// One client of the leader (one HTTP/2 connection).
enum Conn {
    Flare(KvCasClient<Channel>),
    Etcd(Box<etcd_client::Client>),
}

impl Conn {
    async fn connect(sys: &System) -> anyhow::Result<Self> {
        Ok(match sys.kind {
            Kind::Flare => {
                let channel = Endpoint::from_shared(format!("http://{}", sys.leader))?.connect().await?;
                Conn::Flare(KvCasClient::new(channel))
            }
            Kind::Etcd => Conn::Etcd(Box::new(etcd_client::Client::connect([&sys.leader], None).await?)),
        })
    }

    /// Opens a keep-alive stream by renewing lease `first` (its answer not counted).
    async fn open(&mut self, first: u64) -> anyhow::Result<(Sender, Answers)> {
        match self {
            Conn::Flare(c) => {
                let (tx, mut rx) = mpsc::channel(1024);
                tx.send(pb::LeaseKeepAliveRequest { lease_id: first }).await?;
                let requests = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
                let mut answers = c.lease_keep_alive(requests).await?.into_inner();
                let r = answers.message().await?.context("the keep-alive stream ended at once")?;
                anyhow::ensure!(r.ttl_seconds > 0, "lease {first} was gone at its first keep-alive");
                Ok((Sender::Flare(tx), Answers::Flare(answers)))
            }
            Conn::Etcd(c) => {
                let (keeper, answers) = c.lease_client().keep_alive(first as i64).await?;
                Ok((Sender::Etcd(keeper), Answers::Etcd(answers)))
            }
        }
    }
}

impl Sender {
    async fn renew(&mut self, id: u64) -> anyhow::Result<()> {
        match self {
            Sender::Flare(tx) => tx.send(pb::LeaseKeepAliveRequest { lease_id: id }).await?,
            Sender::Etcd(keeper) => {
                keeper.id = id as i64;
                keeper.keep_alive().await?;
            }
        }
        Ok(())
    }
}

impl Answers {
    /// The next answer: (lease id, TTL; 0 or less = the lease does not exist).
    async fn next(&mut self) -> anyhow::Result<Option<(u64, i64)>> {
        Ok(match self {
            Answers::Flare(s) => s.message().await?.map(|r| (r.lease_id, r.ttl_seconds)),
            Answers::Etcd(s) => s.message().await?.map(|r| (r.id() as u64, r.ttl())),
        })
    }
}

/// What one stream saw.
struct Seen {
    window: Histogram<u64>,
    burst: Histogram<u64>,
    /// Leases answered with TTL 0 (and in which phase first).
    lost: HashSet<u64>,
    lost_in_window: u64,
    last_burst_answer: Option<Instant>,
    /// Answers for another lease than the renewal they answer.
    mismatched: u64,
    error: Option<String>,
}

impl Seen {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            window: Histogram::new(3)?,
            burst: Histogram::new(3)?,
            lost: HashSet::new(),
            lost_in_window: 0,
            last_burst_answer: None,
            mismatched: 0,
            error: None,
        })
    }
}

/// Marks a stream settled when its sending half ends, whatever the reason.
struct Settle<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Settle<'_> {
    fn now(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.now();
    }
}

/// One keep-alive stream: opened at its first lease, renews each of its
/// leases every `period` from its grant, as `phase` says.
async fn keep_stream(
    mut conn: Conn,
    mut leases: mpsc::UnboundedReceiver<(u64, Instant)>,
    mut phase: watch::Receiver<Phase>,
    shared: Arc<Shared>,
    period: Duration,
) -> anyhow::Result<Seen> {
    let mut settle = Settle { shared: &shared, done: false };
    let Some((first, granted)) = leases.recv().await else { return Seen::new() };
    let (mut tx, answers) = conn.open(first).await?;
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let receiver = tokio::spawn(receive(answers, sent_rx, shared.clone()));
    let mut due = BinaryHeap::from([Reverse((granted + period, first))]);
    let mut all = vec![first];
    let (mut more, mut burst_sent) = (true, false);
    let result = async {
        loop {
            let now = *phase.borrow_and_update();
            let tag = match now {
                Phase::Stop => return anyhow::Ok(()),
                Phase::Burst if !burst_sent => {
                    for &id in &all {
                        shared.in_flight.fetch_add(1, Ordering::Relaxed);
                        let _ = sent_tx.send((Instant::now(), Tag::Burst, id));
                        tx.renew(id).await?;
                    }
                    burst_sent = true;
                    settle.now();
                    continue;
                }
                Phase::Window => Tag::Window,
                _ => Tag::Other,
            };
            let next = due.peek().map(|Reverse((at, _))| *at);
            let renewing = matches!(now, Phase::Warmup | Phase::Window) && next.is_some();
            tokio::select! {
                l = leases.recv(), if more => match l {
                    Some((id, granted)) => {
                        due.push(Reverse((granted + period, id)));
                        all.push(id);
                    }
                    None => more = false,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if renewing => {
                    let Some(Reverse((at, id))) = due.pop() else { continue };
                    shared.in_flight.fetch_add(1, Ordering::Relaxed);
                    let _ = sent_tx.send((Instant::now(), tag, id));
                    tx.renew(id).await?;
                    due.push(Reverse((at + period, id)));
                }
                changed = phase.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
    .await;
    settle.now();
    drop((tx, sent_tx));
    let seen = receiver.await?;
    result?;
    Ok(seen)
}

/// Times each answer from its renewal being sent (answers come in order).
async fn receive(
    mut answers: Answers,
    mut sent: mpsc::UnboundedReceiver<(Instant, Tag, u64)>,
    shared: Arc<Shared>,
) -> Seen {
    let mut seen = Seen::new().expect("histogram");
    loop {
        let answer = match answers.next().await {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => {
                seen.error = Some(format!("{e:#}"));
                break;
            }
        };
        let now = Instant::now();
        let Some((at, tag, id)) = sent.recv().await else {
            seen.error = Some("an answer to no renewal".into());
            break;
        };
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        let (answered, ttl) = answer;
        seen.mismatched += u64::from(answered != id);
        if ttl <= 0 && seen.lost.insert(id) && tag == Tag::Window {
            seen.lost_in_window += 1;
        }
        let micros = now.duration_since(at).as_micros() as u64;
        match tag {
            Tag::Window => {
                seen.window.record(micros).ok();
                shared.window_answered.fetch_add(1, Ordering::Relaxed);
            }
            Tag::Burst => {
                seen.burst.record(micros).ok();
                seen.last_burst_answer = Some(now);
                shared.burst_answered.fetch_add(1, Ordering::Relaxed);
            }
            Tag::Other => {}
        }
    }
    // Renewals that will not be answered any more.
    sent.close();
    while sent.recv().await.is_some() {
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    seen
}

/// CPU use of the leader and of this process over a stretch of time.
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

struct KeepRow {
    system: &'static str,
    leases: usize,
    granted: usize,
    grant_secs: f64,
    window_secs: f64,
    window_answered: u64,
    window: Histogram<u64>,
    window_cpu: (f64, f64),
    /// The leader's, with the connections open and no lease.
    idle_cpu: f64,
    rss_before: u64,
    rss_connected: u64,
    rss_granted: u64,
    rss_with: u64,
    lost: usize,
    lost_in_window: u64,
    mismatched: u64,
    failed_streams: usize,
    first_error: Option<String>,
    burst_answered: u64,
    burst_secs: f64,
    burst: Histogram<u64>,
    burst_cpu: (f64, f64),
    revoke_secs: f64,
}

/// Waits (up to [`WAIT`]) until `done`; whether it came true.
async fn wait(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > WAIT {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

async fn keep_alive_scale(sys: &System, a: &LeaseArgs) -> anyhow::Result<KeepRow> {
    let period = Duration::from_secs(a.ttl as u64) / 3;
    let rss_before = resources::rss_bytes(sys.leader_pid);
    let shared = Arc::new(Shared::default());
    let (phase_tx, phase) = watch::channel(Phase::Warmup);
    // The streams' connections, before any lease exists.
    let conns = spread(a.streams, 64, {
        let sys = Arc::new(sys.clone());
        move |_| {
            let sys = sys.clone();
            async move { Conn::connect(&sys).await }
        }
    })
    .await?
    .1;
    let (mut to_stream, mut streams) = (Vec::new(), Vec::new());
    for conn in conns {
        let (tx, rx) = mpsc::unbounded_channel();
        to_stream.push(tx);
        streams.push(tokio::spawn(keep_stream(conn, rx, phase.clone(), shared.clone(), period)));
    }
    let rss_connected = resources::rss_bytes(sys.leader_pid);
    let cpu = Cpu::start(sys.leader_pid);
    tokio::time::sleep(IDLE).await;
    let idle_cpu = cpu.percent().0;
    // Lease i is renewed by stream i mod S from its grant on.
    let granter = Granter::connect(sys).await?;
    let start = Instant::now();
    let (to_stream, ttl) = (Arc::new(to_stream), a.ttl);
    let (_, ids) = spread(a.leases, a.granters, move |i| {
        let (granter, to_stream) = (granter.clone(), to_stream.clone());
        async move {
            let id = granter.grant(ttl).await?;
            let _ = to_stream[i % to_stream.len()].send((id, Instant::now()));
            anyhow::Ok(id)
        }
    })
    .await?;
    let grant_secs = start.elapsed().as_secs_f64();
    let rss_granted = resources::rss_bytes(sys.leader_pid);
    // Every lease on its schedule before the window opens.
    tokio::time::sleep(period).await;
    let cpu = Cpu::start(sys.leader_pid);
    let window_start = Instant::now();
    phase_tx.send(Phase::Window)?;
    tokio::time::sleep(a.window).await;
    phase_tx.send(Phase::Drain)?;
    let window_secs = window_start.elapsed().as_secs_f64();
    let window_cpu = cpu.percent();
    let rss_with = resources::rss_bytes(sys.leader_pid);
    if !wait(|| shared.in_flight.load(Ordering::Relaxed) <= 0).await {
        bail!("{}: keep-alives still unanswered {WAIT:?} after the window", sys.name);
    }
    let cpu = Cpu::start(sys.leader_pid);
    let burst_start = Instant::now();
    phase_tx.send(Phase::Burst)?;
    let settled =
        wait(|| shared.settled.load(Ordering::Relaxed) >= a.streams && shared.in_flight.load(Ordering::Relaxed) <= 0)
            .await;
    let burst_cpu = cpu.percent();
    phase_tx.send(Phase::Stop)?;
    let mut row = KeepRow {
        system: sys.name,
        leases: a.leases,
        granted: ids.len(),
        grant_secs,
        window_secs,
        window_answered: shared.window_answered.load(Ordering::Relaxed),
        window: Histogram::new(3)?,
        window_cpu,
        idle_cpu,
        rss_before,
        rss_connected,
        rss_granted,
        rss_with,
        lost: 0,
        lost_in_window: 0,
        mismatched: 0,
        failed_streams: 0,
        first_error: (!settled).then(|| format!("the burst was not answered within {WAIT:?}")),
        burst_answered: shared.burst_answered.load(Ordering::Relaxed),
        burst_secs: 0.0,
        burst: Histogram::new(3)?,
        burst_cpu,
        revoke_secs: 0.0,
    };
    let mut last_burst = burst_start;
    for s in streams {
        let seen = match s.await? {
            Ok(seen) => seen,
            Err(e) => {
                row.failed_streams += 1;
                row.first_error.get_or_insert_with(|| format!("{e:#}"));
                continue;
            }
        };
        row.window.add(&seen.window)?;
        row.burst.add(&seen.burst)?;
        row.lost += seen.lost.len();
        row.lost_in_window += seen.lost_in_window;
        row.mismatched += seen.mismatched;
        last_burst = last_burst.max(seen.last_burst_answer.unwrap_or(burst_start));
        if let Some(e) = seen.error {
            row.failed_streams += 1;
            row.first_error.get_or_insert(e);
        }
    }
    row.burst_secs = last_burst.duration_since(burst_start).as_secs_f64();
    let revoker = Granter::connect(sys).await?;
    row.revoke_secs = revoke_all(&revoker, ids, a.granters).await?.as_secs_f64();
    Ok(row)
}

// ---- Output ----

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn print_tables(a: &LeaseArgs, grants: &[GrantRow], keeps: &[KeepRow]) {
    println!(
        "Lease grant (TTL {GRANT_TTL} s): C concurrent granters sharing one connection to the leader, {} s each; \
         then those leases revoked by {} concurrent revokers:",
        a.grant_secs.as_secs(),
        a.granters
    );
    println!();
    println!("| system | clients | grants | grants/s | p50 ms | p99 ms | revokes/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in grants {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
            r.system,
            r.clients,
            r.grants,
            r.grants as f64 / r.secs.max(1e-9),
            ms(&r.latency, 0.5),
            ms(&r.latency, 0.99),
            r.revokes as f64 / r.revoke_secs.max(1e-9)
        );
    }
    println!();
    let period = a.ttl as f64 / 3.0;
    println!(
        "Keep-alive: {} leases (TTL {} s) granted by {} concurrent granters, each renewed every {period:.0} s from \
         its grant over {} streams to the leader (one connection each, {} leases per stream); measured for {} s \
         after {period:.0} s of warm-up; CPU in % of one core (idle: the {} s before the grants, connections \
         open), RSS in MB:",
        a.leases,
        a.ttl,
        a.granters,
        a.streams,
        a.leases.div_ceil(a.streams),
        a.window.as_secs(),
        IDLE.as_secs()
    );
    println!();
    println!(
        "| system | leases | grant s (grants/s) | keep-alives/s (target) | p50 ms | p99 ms | leader CPU (idle) \
         | bench CPU | leader RSS: before / connected / granted / window end | leases lost |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in keeps {
        println!(
            "| {} | {} | {:.1} ({:.0}) | {:.0} ({:.0}) | {:.2} | {:.2} | {:.0} ({:.0}) | {:.0} | {} / {} / {} / {} | {}{} |",
            r.system,
            r.granted,
            r.grant_secs,
            r.granted as f64 / r.grant_secs.max(1e-9),
            r.window_answered as f64 / r.window_secs.max(1e-9),
            r.leases as f64 / period,
            ms(&r.window, 0.5),
            ms(&r.window, 0.99),
            r.window_cpu.0,
            r.idle_cpu,
            r.window_cpu.1,
            mb(r.rss_before),
            mb(r.rss_connected),
            mb(r.rss_granted),
            mb(r.rss_with),
            r.lost,
            if r.lost > 0 { format!(" ({} in the window)", r.lost_in_window) } else { String::new() },
        );
    }
    println!();
    println!(
        "Burst: then every stream renews all its leases back to back, once (latency from each renewal's send, \
         queueing included); then all revoked by {} concurrent revokers:",
        a.granters
    );
    println!();
    println!(
        "| system | keep-alives | s | keep-alives/s | p50 ms | p99 ms | leader CPU | bench CPU | revokes/s | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in keeps {
        let mut errors = Vec::new();
        if r.failed_streams > 0 {
            errors.push(format!("{} streams failed", r.failed_streams));
        }
        if r.mismatched > 0 {
            errors.push(format!("{} answers for another lease", r.mismatched));
        }
        if let Some(e) = &r.first_error {
            errors.push(e.clone());
        }
        println!(
            "| {} | {} / {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
            r.system,
            r.burst_answered,
            r.granted,
            r.burst_secs,
            r.burst_answered as f64 / r.burst_secs.max(1e-9),
            ms(&r.burst, 0.5),
            ms(&r.burst, 0.99),
            r.burst_cpu.0,
            r.burst_cpu.1,
            r.granted as f64 / r.revoke_secs.max(1e-9),
            if errors.is_empty() { "none".to_string() } else { errors.join("; ") }
        );
    }
}
