//! The cluster harness: real `flaredb-server` processes on loopback ports,
//! each with its own temp data dir, that tests can kill, restart and query.
//! Everything started here is killed and removed on drop.

pub mod auth_setup;
pub mod bank;
pub mod fault_suite;
mod grpcurl;
pub mod kv_suite;
pub mod lincheck;
pub mod lockers;
pub mod metadata_contract;
mod postgres;
mod process;
pub mod raft_peer;
mod wait;
pub mod watchers;
pub mod workload;

pub use grpcurl::{b64, grpcurl, grpcurl_run, grpcurl_run_with};
pub use postgres::{start_postgres, Postgres};
pub use process::{cli_bin, server_bin, spawn_server, ServerProc};
pub use wait::{wait_until, DEADLINE};

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use flaredb_client::{ClientConfig, RdbClient};
use tempfile::TempDir;

/// Tuning written to every node's config file.
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub snapshot_logs_since_last: u64,
    pub max_logs_to_keep: u64,
    pub extra_toml: String,
    /// Start nodes with --enable-fault-injection (needed by `cut`/`partition`).
    pub fault_injection: bool,
    /// More flags for one node (by id), e.g. its own `--metrics-listen`.
    pub node_args: BTreeMap<u64, Vec<String>>,
    /// Nodes that listen on every interface (0.0.0.0), as a real deployment
    /// would, instead of loopback; peers still reach them on 127.0.0.1.
    pub listen_on_all: BTreeSet<u64>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            snapshot_logs_since_last: 10_000,
            max_logs_to_keep: 1_000,
            extra_toml: String::new(),
            fault_injection: false,
            node_args: BTreeMap::new(),
            listen_on_all: BTreeSet::new(),
        }
    }
}

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    pub proc: Option<ServerProc>,
}

pub struct Cluster {
    pub dir: TempDir,
    pub nodes: BTreeMap<u64, Node>,
    spec: String,
    config: PathBuf,
    fault_injection: bool,
    node_args: BTreeMap<u64, Vec<String>>,
    listen_on_all: BTreeSet<u64>,
    /// Nodes each node cannot send Raft messages to.
    blocked: BTreeMap<u64, BTreeSet<u64>>,
    /// Nodes started with --join (not in the initial cluster).
    joined: BTreeSet<u64>,
}

impl Drop for Cluster {
    /// Kill every server before the temp dir goes: a live server would keep
    /// writing into it and the removal would leave files behind.
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut p) = node.proc.take() {
                p.kill();
            }
        }
    }
}

/// A free loopback port (bound then released; the server binds it next).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Cluster {
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, ClusterOpts::default()).await
    }

    /// Starts `n` nodes forming one cluster and waits until it has a leader.
    pub async fn start_with(n: u64, opts: ClusterOpts) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "snapshot_logs_since_last = {}\nmax_logs_to_keep = {}\n{}",
                opts.snapshot_logs_since_last, opts.max_logs_to_keep, opts.extra_toml
            ),
        )
        .expect("write config");
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let addr = format!("127.0.0.1:{}", free_port());
            nodes.insert(id, Node { id, data_dir: dir.path().join(format!("n{id}")), addr, proc: None });
        }
        let spec = nodes.values().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",");
        let mut c = Cluster {
            dir,
            nodes,
            spec,
            config,
            fault_injection: opts.fault_injection,
            node_args: opts.node_args,
            listen_on_all: opts.listen_on_all,
            blocked: BTreeMap::new(),
            joined: BTreeSet::new(),
        };
        for id in 1..=n {
            c.start_node(id);
        }
        c.wait_leader().await;
        c
    }

    pub fn start_node(&mut self, id: u64) {
        let seed_addr = self.nodes.values().next().map(|n| n.addr.clone()).unwrap_or_default();
        let node = self.nodes.get_mut(&id).expect("node id");
        let listen = match self.listen_on_all.contains(&id) {
            true => node.addr.replace("127.0.0.1", "0.0.0.0"),
            false => node.addr.clone(),
        };
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--listen".into(),
            listen,
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--initial-cluster".into(),
            self.spec.clone(),
            "--config".into(),
            self.config.display().to_string(),
        ];
        if self.joined.contains(&id) {
            // Joined nodes wait to be added; --initial-cluster is then only a formality.
            args.extend(["--join".into(), seed_addr]);
            args[7] = format!("{id}={}", node.addr);
        }
        if self.fault_injection {
            args.push("--enable-fault-injection".into());
        }
        args.extend(self.node_args.get(&id).cloned().unwrap_or_default());
        let log = self.dir.path().join(format!("n{id}.log"));
        node.proc = Some(spawn_server(&args, &log));
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut p) = self.nodes.get_mut(&id).and_then(|n| n.proc.take()) {
            p.kill();
        }
    }

    /// Starts a new node `id` with --join and an empty data dir; add it with
    /// `client().add_learner`.
    pub fn start_joining(&mut self, id: u64) -> String {
        let addr = format!("127.0.0.1:{}", free_port());
        let data_dir = self.dir.path().join(format!("n{id}"));
        self.nodes.insert(id, Node { id, addr: addr.clone(), data_dir, proc: None });
        self.joined.insert(id);
        self.start_node(id);
        addr
    }

    /// SIGTERM, a planned stop (a leader hands over first); waits for the exit.
    pub async fn sigterm(&mut self, id: u64) -> std::process::ExitStatus {
        self.signal(id, "-TERM");
        let mut proc = self.nodes.get_mut(&id).and_then(|n| n.proc.take()).expect("node is running");
        let what = format!("node {id} to exit after SIGTERM");
        wait_until(&what, DEADLINE, || std::future::ready(proc.child.try_wait().expect("wait for the server"))).await
    }

    /// SIGSTOP: the process stays, frozen.
    pub fn pause(&self, id: u64) {
        self.signal(id, "-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self, id: u64) {
        self.signal(id, "-CONT");
    }

    fn signal(&self, id: u64, sig: &str) {
        if let Some(p) = self.nodes[&id].proc.as_ref() {
            let ok = std::process::Command::new("kill").args([sig, &p.pid().to_string()]).status();
            assert!(ok.is_ok_and(|s| s.success()), "kill {sig} node {id}");
        }
    }

    /// Cuts Raft messages from `from` to `to` (one way).
    pub async fn cut(&mut self, from: u64, to: u64) {
        self.blocked.entry(from).or_default().insert(to);
        self.push_faults(from).await;
    }

    /// Cuts every link between the groups (both ways); links within a group stay.
    pub async fn partition(&mut self, groups: &[&[u64]]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for from in a.iter() {
                        self.blocked.entry(*from).or_default().extend(b.iter().copied());
                    }
                }
            }
        }
        let ids: Vec<u64> = self.blocked.keys().copied().collect();
        for id in ids {
            self.push_faults(id).await;
        }
    }

    /// Restores every link.
    pub async fn heal(&mut self) {
        let ids: Vec<u64> = self.blocked.keys().copied().collect();
        self.blocked.clear();
        for id in ids {
            self.push_faults(id).await;
        }
    }

    /// Node `id` answers its next `writes` writes `delay` after they applied.
    pub async fn delay_replies(&self, id: u64, delay: Duration, writes: u32) {
        use flaredb_proto::testing::{faults_client::FaultsClient, SetReplyDelayRequest};
        let mut c = FaultsClient::connect(format!("http://{}", self.addr(id))).await.expect("faults service");
        let req = SetReplyDelayRequest { delay_ms: delay.as_millis() as u64, writes };
        c.set_reply_delay(req).await.expect("set the reply delay");
    }

    async fn push_faults(&self, id: u64) {
        use flaredb_proto::testing::{faults_client::FaultsClient, SetBlockedPeersRequest};
        if self.nodes[&id].proc.is_none() {
            return;
        }
        let ids: Vec<u64> = self.blocked.get(&id).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let addr = format!("http://{}", self.addr(id));
        wait_until(&format!("fault injection on node {id}"), DEADLINE, || {
            let (addr, ids) = (addr.clone(), ids.clone());
            async move {
                let mut c = FaultsClient::connect(addr).await.ok()?;
                c.set_blocked_peers(SetBlockedPeersRequest { node_ids: ids }).await.ok().map(|_| ())
            }
        })
        .await
    }

    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start_node(id);
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.clone()
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.clone()).collect()
    }

    /// A client over every node.
    pub fn client(&self) -> RdbClient {
        RdbClient::with_config(self.endpoints(), test_client_config()).expect("client")
    }

    /// A client that talks to node `id` only (for per-node reads). It still
    /// follows leader hints for forwarded calls.
    pub fn client_for(&self, id: u64) -> RdbClient {
        RdbClient::with_config([self.addr(id)], test_client_config()).expect("client")
    }

    /// The id every running node agrees is leader (itself a running node).
    pub async fn wait_leader(&self) -> u64 {
        let running: Vec<u64> = self.nodes.values().filter(|n| n.proc.is_some()).map(|n| n.id).collect();
        wait_until("a leader all running nodes agree on", DEADLINE, || async {
            let mut leader = None;
            for id in &running {
                let s = self.client_for(*id).status().await.ok()?;
                let alive = running.contains(&s.leader_id);
                if !alive || leader.is_some_and(|l| l != s.leader_id) {
                    return None;
                }
                leader = Some(s.leader_id);
            }
            leader
        })
        .await
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let client = self.client_for(id);
        wait_until(&format!("node {id} applied {index}"), DEADLINE, || async {
            let s = client.status().await.ok()?;
            (s.applied_index >= index).then_some(())
        })
        .await
    }
}

/// Short attempts so a test notices a dead node quickly.
pub fn test_client_config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(3),
        retry_budget: Duration::from_secs(20),
        ..ClientConfig::default()
    }
}
