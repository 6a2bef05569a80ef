//! Disk and memory of the processes under test, sampled while a load runs:
//! bytes a data dir occupies (hard links counted once, as `du` does: RocksDB
//! checkpoints hard-link SSTs) and a process's resident set.

use std::{
    collections::HashSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

/// Bytes allocated on disk under `dir`, each inode once.
pub fn disk_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                walk(&e.path(), seen, total);
            } else if seen.insert((m.dev(), m.ino())) {
                *total += m.blocks() * 512;
            }
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    walk(dir, &mut seen, &mut total);
    total
}

/// Resident set of `pid` in bytes (0 if it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// CPU time (user + system, in clock ticks of 1/100 s) process `pid` has used so far.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the 1st, utime the 12th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The process whose command line names `dir` (how an etcd member started
/// elsewhere is found from its --data-dir).
pub fn pid_using(dir: &Path) -> Option<u32> {
    let want = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let names_dir = args.iter().any(|a| a == &want || a.strip_prefix("--data-dir=") == Some(want.as_str()));
        (names_dir && pid != std::process::id()).then_some(pid)
    })
}

/// One member to watch: its data dir and process.
#[derive(Debug, Clone)]
pub struct Member {
    pub dir: PathBuf,
    pub pid: u32,
}

/// Largest disk and RSS seen per member.
#[derive(Debug, Clone, Default)]
pub struct Peaks {
    pub disk: Vec<u64>,
    pub rss: Vec<u64>,
}

/// Samples every member once a second until dropped.
pub struct Sampler {
    peaks: Arc<Mutex<Peaks>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(members: Vec<Member>) -> Self {
        let n = members.len();
        let peaks = Arc::new(Mutex::new(Peaks { disk: vec![0; n], rss: vec![0; n] }));
        let p = peaks.clone();
        let task = tokio::spawn(async move {
            loop {
                let now: Vec<(u64, u64)> = members.iter().map(|m| (disk_bytes(&m.dir), rss_bytes(m.pid))).collect();
                if let Ok(mut p) = p.lock() {
                    for (i, (d, r)) in now.into_iter().enumerate() {
                        p.disk[i] = p.disk[i].max(d);
                        p.rss[i] = p.rss[i].max(r);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self { peaks, task }
    }

    pub fn stop(self) -> Peaks {
        self.task.abort();
        self.peaks.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1e6)
}

/// "a / b / c" for one figure per member.
pub fn per_member(values: &[u64]) -> String {
    values.iter().map(|v| mb(*v)).collect::<Vec<_>>().join(" / ")
}

/// The process listening on TCP `port` (how an etcd member started elsewhere
/// is found from its client URL): the socket's inode from /proc/net/tcp*,
/// then the process holding it.
pub fn pid_listening(port: u16) -> Option<u32> {
    const LISTEN: &str = "0A";
    let inodes: HashSet<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
                    (local_port == port && *f.get(3)? == LISTEN).then(|| f.get(9).map(|i| i.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let sockets: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let mut fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten();
        fds.any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| sockets.contains(l.to_string_lossy().as_ref())))
            .then_some(pid)
    })
}
