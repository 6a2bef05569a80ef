//! A corrupted SST file under a stopped node: RocksDB's block checksums
//! catch it, and the node either refuses to start saying so (what happens
//! today: `cannot open node: rocksdb: corruption: block checksum mismatch
//! … in …/000013.sst`) or answers the damaged key with an error — never
//! with wrong bytes.

use std::time::Duration;

use flaredb_client::{ClientConfig, RdbClient};
use flaredb_tests::{free_port, spawn_server, test_client_config, wait_until, DEADLINE};

/// Bytes that do not compress, so they appear verbatim in the SST file.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_value_corrupt_in_the_log_and_the_state_machine_is_reported_never_served() {
    corrupt_and_restart(true).await;
}

#[tokio::test]
async fn a_value_corrupt_in_the_state_machine_only_is_reported_never_served() {
    corrupt_and_restart(false).await;
}

/// Corrupts the value of one key in the state machine's SST files (and, with
/// `in_log`, in the Raft log's too), restarts the node, and checks the outcome.
async fn corrupt_and_restart(in_log: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let args = ["--listen", &addr, "--data-dir", &data.display().to_string()].map(String::from);
    let mut node = spawn_server(&args, &dir.path().join("first.log"));
    let config = ClientConfig { retry_budget: Duration::from_millis(300), ..test_client_config() };
    let client = RdbClient::with_config([addr.as_str()], config).unwrap();
    wait_until("serving", DEADLINE, || async { client.status().await.ok() }).await;
    let kv = client.namespace("c");
    let value = noise(7, 8192);
    kv.cas_put("victim", value.clone(), 0).await.unwrap();
    for i in 0..50 {
        kv.cas_put(format!("other{i:02}"), noise(100 + i, 512), 0).await.unwrap();
    }
    client.snapshot().await.unwrap(); // a checkpoint: memtables flushed into SST files
    node.kill();

    // Flip a byte inside the value wherever an SST holds it (state machine and log alike).
    let needle = &value[4000..4032];
    let mut hit = 0;
    for entry in std::fs::read_dir(data.join("db")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            // The column family's name is in the file's properties block.
            let is_log = bytes.windows(8).any(|w| w == b"raft_log");
            if is_log && !in_log {
                continue;
            }
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[at + 7] ^= 0x55;
                std::fs::write(&path, bytes).unwrap();
                hit += 1;
            }
        }
    }
    assert!(hit >= 1, "the value is in no SST file: the test corrupts nothing");

    let mut node = spawn_server(&args, &dir.path().join("second.log"));
    let log_or_answer = wait_until("a refusal or an answer", DEADLINE, || {
        let exited = node.child.try_wait().ok().flatten().is_some();
        let kv = kv.clone();
        async move {
            if exited {
                return Some(Err(()));
            }
            match kv.cas_get("victim").await {
                Ok(got) => Some(Ok(Ok(got))),
                Err(e) if e.to_string().to_lowercase().contains("corrupt") => Some(Ok(Err(e))),
                Err(_) => None, // not up yet
            }
        }
    })
    .await;
    match log_or_answer {
        // Refused at start: the log says why.
        Err(()) => {
            let log = node.log_text().to_lowercase();
            assert!(log.contains("corrupt") || log.contains("checksum"), "{log}");
        }
        Ok(Ok(got)) => panic!("the damaged key was served: {:?}", got.map(|g| g.value.len())),
        Ok(Err(e)) => {
            let why = e.to_string().to_lowercase();
            assert!(why.contains("corrupt") && why.contains("checksum"), "{why}");
            // Undamaged keys in other blocks may still be served, but only with their own bytes.
            for i in 0..50 {
                if let Ok(Some(v)) = kv.cas_get(format!("other{i:02}")).await {
                    assert_eq!(v.value, noise(100 + i, 512), "other{i:02}");
                }
            }
        }
    }
    node.kill();
}

/// A replica that silently diverged (one key overwritten on it alone, outside
/// Raft, through the test-only Faults service) is found by the periodic hash
/// comparison: it raises the CORRUPT alarm and stops serving reads, while
/// the two replicas that agree go on serving the right value.
#[tokio::test]
async fn a_replica_that_diverged_raises_the_corrupt_alarm_and_stops_serving_reads() {
    use flaredb_proto::testing::{faults_client::FaultsClient, CorruptLocalKeyRequest};
    use flaredb_tests::{Cluster, ClusterOpts};
    let metrics: std::collections::BTreeMap<u64, String> =
        (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
    let node_args = metrics.iter().map(|(id, a)| (*id, vec!["--metrics-listen".to_string(), a.clone()])).collect();
    let opts = ClusterOpts {
        fault_injection: true,
        extra_toml: "corruption_check_ms = 300\n".into(),
        node_args,
        ..Default::default()
    };
    let c = Cluster::start_with(3, opts).await;
    let kv = c.client().namespace("c");
    for i in 0..10 {
        kv.cas_put(format!("k{i}"), format!("v{i}"), 0).await.unwrap();
    }
    c.client().namespace("r").raw_put("rk", "rv").await.unwrap();
    let leader = c.wait_leader().await;
    let bad = (1..=3).find(|i| *i != leader).unwrap();
    let applied = c.client_for(leader).status().await.unwrap().applied_index;
    c.wait_applied(bad, applied).await;
    let mut faults = FaultsClient::connect(format!("http://{}", c.addr(bad))).await.unwrap();
    let req = CorruptLocalKeyRequest { namespace: "c".into(), key: "k3".into(), value: "evil".into() };
    faults.corrupt_local_key(req).await.unwrap();

    let why = wait_until("the CORRUPT alarm on the diverged replica", DEADLINE, || async {
        let s = c.client_for(bad).status().await.ok()?;
        (!s.corrupt.is_empty()).then_some(s.corrupt)
    })
    .await;
    assert!(why.contains(&format!("at applied index {applied}")), "{why}");
    // Its local (eventual) reads are refused; a strong read sent to it is
    // served by the leader, never from its diverged state.
    let quick = ClientConfig { retry_budget: Duration::from_millis(300), ..test_client_config() };
    let only_bad = RdbClient::with_config([c.addr(bad)], quick).unwrap();
    let e = only_bad.namespace("r").raw_get("rk").await.unwrap_err();
    assert!(e.to_string().contains("CORRUPT"), "{e}");
    let v = c.client_for(bad).namespace("c").cas_get("k3").await.unwrap().unwrap();
    assert_eq!(&v.value[..], b"v3");
    let health = flaredb_tests::grpcurl_run(&c.addr(bad), None, &["grpc.health.v1.Health/Check"]);
    assert!(health.1.contains("NOT_SERVING") || health.2.contains("NOT_SERVING"), "{health:?}");
    assert_eq!(corrupt_gauge(&metrics[&bad]), "1", "the bad node's flaredb_corrupt");
    for good in (1..=3).filter(|i| *i != bad) {
        assert_eq!(corrupt_gauge(&metrics[&good]), "0", "node {good}'s flaredb_corrupt");
        let s = c.client_for(good).status().await.unwrap();
        assert!(s.corrupt.is_empty(), "node {good}: {}", s.corrupt);
        let v = c.client_for(good).namespace("c").cas_get("k3").await.unwrap().unwrap();
        assert_eq!(&v.value[..], b"v3", "node {good}");
    }
}

/// `flaredb_corrupt`'s value from `GET /metrics` at `addr`.
fn corrupt_gauge(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let line = body.lines().find(|l| l.starts_with("flaredb_corrupt")).unwrap_or_else(|| panic!("{body}"));
    line.rsplit(' ').next().unwrap().to_string()
}
