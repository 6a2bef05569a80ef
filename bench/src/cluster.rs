//! Starts local flaredb-server processes for the benchmark, and can kill,
//! restart and add them (for the recovery figures).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use flaredb_client::RdbClient;

pub struct LocalCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    spec: String,
    pub addrs: BTreeMap<u64, String>,
    children: BTreeMap<u64, Child>,
    joined: BTreeMap<u64, String>,
    /// A TOML file every node reads (`--config`), e.g. other Raft timeouts.
    config: Option<PathBuf>,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn find_server(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("flaredb-server");
    let candidates =
        [beside, PathBuf::from("../target/release/flaredb-server"), PathBuf::from("target/release/flaredb-server")];
    candidates.into_iter().find(|p| p.exists()).context("flaredb-server not found; pass --server-bin")
}

impl LocalCluster {
    pub async fn start(n: u64, server_bin: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with(n, server_bin, None).await
    }

    pub async fn start_with(n: u64, server_bin: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<Self> {
        let bin = find_server(server_bin)?;
        let dir = tempfile::tempdir()?;
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            addrs.insert(id, format!("127.0.0.1:{}", free_port()?));
        }
        let spec = addrs.iter().map(|(id, a)| format!("{id}={a}")).collect::<Vec<_>>().join(",");
        let mut c = Self { bin, dir, spec, addrs, children: BTreeMap::new(), joined: BTreeMap::new(), config };
        for id in 1..=n {
            c.spawn(id)?;
        }
        c.wait_leader(Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Starts node `id` on its data dir (new or existing).
    pub fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let addr = self.addrs[&id].clone();
        let data = self.data_dir(id);
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--id", &id.to_string(), "--listen", &addr]).arg("--data-dir").arg(&data);
        match self.joined.get(&id) {
            Some(seed) => cmd.args(["--join", seed, "--initial-cluster", &format!("{id}={addr}")]),
            None => cmd.args(["--initial-cluster", &self.spec]),
        };
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Node `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("n{id}"))
    }

    /// Node `id`'s process id, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(|c| c.id())
    }

    /// Starts a new empty node that waits to be added.
    pub fn spawn_joining(&mut self, id: u64) -> anyhow::Result<String> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let seed = self.addrs.values().next().cloned().unwrap_or_default();
        self.addrs.insert(id, addr.clone());
        self.joined.insert(id, seed);
        self.spawn(id)?;
        Ok(addr)
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a planned stop: a leader hands over first), then waits for
    /// the process to exit; kill -9 after `timeout`. Returns how long it took.
    pub async fn sigterm(&mut self, id: u64, timeout: Duration) -> anyhow::Result<Duration> {
        let Some(mut child) = self.children.remove(&id) else { bail!("node {id} is not running") };
        let start = Instant::now();
        let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        if !ok.success() {
            bail!("kill -TERM node {id} failed");
        }
        while child.try_wait()?.is_none() {
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(start.elapsed())
    }

    /// CPU time (user + system, in clock ticks) node `id` has used so far.
    pub fn cpu_ticks(&self, id: u64) -> Option<u64> {
        crate::resources::cpu_ticks(self.children.get(&id)?.id())
    }

    /// Each running node's current term.
    pub async fn terms(&self) -> anyhow::Result<BTreeMap<u64, u64>> {
        let mut terms = BTreeMap::new();
        for id in self.children.keys() {
            terms.insert(*id, self.client_for(*id)?.status().await?.term);
        }
        Ok(terms)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.addrs.values().cloned().collect()
    }

    pub fn client_for(&self, id: u64) -> anyhow::Result<RdbClient> {
        Ok(RdbClient::connect([self.addrs[&id].clone()])?)
    }

    /// The leader every running node agrees on.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let start = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for id in self.children.keys() {
                if let Ok(s) = self.client_for(*id)?.status().await {
                    leaders.push(s.leader_id);
                }
            }
            if leaders.len() == self.children.len()
                && leaders.iter().all(|l| *l == leaders[0] && self.children.contains_key(l))
            {
                return Ok(leaders[0]);
            }
            if start.elapsed() > timeout {
                bail!("no agreed leader after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
