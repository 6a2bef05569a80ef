//! Starts local flaredb-server processes for the benchmark.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use flaredb_client::RdbClient;

pub struct LocalCluster {
    children: Vec<Child>,
    addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
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
        let bin = find_server(server_bin)?;
        let dir = tempfile::tempdir()?;
        let addrs: Vec<String> =
            (1..=n).map(|_| free_port().map(|p| format!("127.0.0.1:{p}"))).collect::<Result<_, _>>()?;
        let spec = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
        let mut children = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let id = (i + 1).to_string();
            let data = dir.path().join(format!("n{id}"));
            let child = Command::new(&bin)
                .args(["--id", &id, "--listen", addr, "--initial-cluster", &spec])
                .arg("--data-dir")
                .arg(&data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("spawn {}", bin.display()))?;
            children.push(child);
        }
        let c = Self { children, addrs, _dir: dir };
        let client = RdbClient::connect(c.addrs.clone())?;
        let start = Instant::now();
        loop {
            if let Ok(s) = client.status().await {
                if s.leader_id != 0 {
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("no leader after 30s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(c)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.addrs.clone()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
