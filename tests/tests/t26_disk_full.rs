//! A node on a nearly full disk, on a small tmpfs (needs root to mount; the
//! test says so and skips without it): below the free-space floor writes
//! that add data are refused with RESOURCE_EXHAUSTED while reads and deletes
//! go on, and writes resume by themselves when space returns. With the floor
//! off, RocksDB hits ENOSPC and Raft stops: health turns NOT_SERVING, reads
//! answer UNAVAILABLE naming the cause, SIGTERM still ends the process, and
//! after a restart with more room every acknowledged write is there.

use std::{path::PathBuf, process::Command, time::Duration};

use flaredb_client::{ClientConfig, ClientError, RdbClient};
use flaredb_tests::{free_port, spawn_server, test_client_config, wait_until, ServerProc, DEADLINE};

/// A tmpfs mounted for one test, unmounted (after its server is gone) on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
    server: Option<ServerProc>,
}

impl SmallDisk {
    fn mount(mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(SmallDisk { dir, server: None })
    }

    fn resize(&self, mib: u64) {
        let out =
            Command::new("mount").args(["-o", &format!("remount,size={mib}m")]).arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self, addr: &str, floor: u64) {
        let config = self.path("node.toml");
        std::fs::write(&config, format!("min_free_disk_bytes = {floor}\n")).unwrap();
        let data = self.path("data").display().to_string();
        let args = ["--listen", addr, "--data-dir", &data, "--config", &config.display().to_string()];
        let log = std::env::temp_dir().join(format!("flaredb-disk-full-{}.log", free_port()));
        self.server = Some(spawn_server(&args.map(String::from), &log));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn client(addr: &str) -> RdbClient {
    let config = ClientConfig { retry_budget: Duration::from_millis(500), ..test_client_config() };
    RdbClient::with_config([addr], config).unwrap().namespace("big")
}

const VALUE: usize = 64 << 10;

/// Bytes that do not compress (RocksDB's LZ4 would shrink a constant value to nothing).
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..VALUE / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// Puts distinct keys until one is refused; the acknowledged ones and the refusal.
async fn fill(kv: &RdbClient, from: usize) -> (Vec<String>, ClientError) {
    let mut acked = Vec::new();
    for i in from.. {
        let key = format!("k{i:05}");
        match kv.cas_put(key.as_str(), noise(i as u64), 0).await {
            Ok(r) if r.success => acked.push(key),
            Ok(r) => panic!("{key}: {r:?}"),
            Err(e) => return (acked, e),
        }
    }
    unreachable!()
}

#[tokio::test]
async fn below_the_free_space_floor_writes_are_refused_reads_go_on_and_writes_resume() {
    let Some(mut disk) = SmallDisk::mount(640) else {
        eprintln!("cannot mount a tmpfs (not root?): skipping the disk-full test");
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    // The default floor (256 MiB): room for RocksDB to flush its memtables (128 MiB at most) and compact.
    disk.start(&addr, 256 << 20);
    let kv = client(&addr);
    wait_until("serving", DEADLINE, || async { kv.status().await.ok() }).await;
    // Ballast: leave ~32 MiB above the floor for the writes.
    let free = fs_free(&disk.path("data"));
    let ballast = disk.path("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    for _ in 0..(free - (288 << 20)) >> 20 {
        std::io::Write::write_all(&mut f, &[1u8; 1 << 20]).unwrap();
    }
    drop(f);

    let (acked, refusal) = fill(&kv, 0).await;
    assert!(acked.len() > 10, "only {} writes before the floor", acked.len());
    let ClientError::ResourceExhausted(why) = &refusal else { panic!("{refusal:?}") };
    assert!(why.contains("min_free_disk_bytes"), "{why}");
    // Reads and deletes go on; the node is healthy.
    assert_eq!(kv.cas_get(acked[0].as_str()).await.unwrap().unwrap().value.len(), VALUE);
    let last = kv.cas_get(acked[acked.len() - 1].as_str()).await.unwrap().unwrap();
    assert!(kv.cas_delete(acked[acked.len() - 1].as_str(), last.version).await.unwrap().success);
    let health = flaredb_tests::grpcurl_run(&addr, None, &["grpc.health.v1.Health/Check"]);
    assert!(health.0 && health.1.contains("SERVING") && !health.1.contains("NOT_SERVING"), "{health:?}");

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&ballast).unwrap();
    wait_until("writes accepted again", DEADLINE, || async {
        kv.cas_put("after", "ok", 0).await.ok().filter(|r| r.success)
    })
    .await;
    for k in &acked[..acked.len() - 1] {
        assert!(kv.cas_get(k.as_str()).await.unwrap().is_some(), "{k} lost");
    }
}

fn fs_free(path: &std::path::Path) -> u64 {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_full_disk_stops_the_node_cleanly_and_a_restart_with_room_keeps_every_acknowledged_write() {
    let Some(mut disk) = SmallDisk::mount(160) else {
        eprintln!("cannot mount a tmpfs (not root?): skipping the disk-full test");
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    disk.start(&addr, 0); // no floor: let RocksDB hit ENOSPC
    let kv = client(&addr);
    wait_until("serving", DEADLINE, || async { kv.status().await.ok() }).await;
    let (acked, _) = fill(&kv, 0).await;
    assert!(!acked.is_empty());

    wait_until("health NOT_SERVING", DEADLINE, || async {
        let h = flaredb_tests::grpcurl_run(&addr, None, &["grpc.health.v1.Health/Check"]);
        (h.0 && h.1.contains("NOT_SERVING")).then_some(())
    })
    .await;
    let e = kv.cas_get(acked[0].as_str()).await.unwrap_err();
    let ClientError::Unavailable(why) = &e else { panic!("{e:?}") };
    assert!(why.contains("storage failed") && why.contains("No space left"), "{why}");

    // SIGTERM still ends it.
    let mut server = disk.server.take().unwrap();
    Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    wait_until("exit after SIGTERM", DEADLINE, || {
        let exited = server.child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;

    // More room, restart: every acknowledged write is there.
    disk.resize(400);
    disk.start(&addr, 0);
    wait_until("serving again", DEADLINE, || async { kv.status().await.ok() }).await;
    let kv = client(&addr);
    for k in &acked {
        let got = wait_until("read after restart", DEADLINE, || async { kv.cas_get(k.as_str()).await.ok() }).await;
        assert_eq!(got.map(|v| v.value.len()), Some(VALUE), "{k}");
    }
}
