//! Prometheus metrics and JSON logs, scraped from real server processes:
//! every request counted by method and status code, Raft state, replication
//! lag per follower on the leader, RocksDB sizes, watchers and leases.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
};

use flaredb_tests::{free_port, wait_until, Cluster, ClusterOpts, DEADLINE};

/// `GET /metrics` over plain HTTP/1.0; the body.
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}

/// The value of the sample whose name and labels contain every part of `parts`.
fn sample(body: &str, name: &str, parts: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_code_and_show_raft_storage_and_replication() {
    let metrics: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
    let node_args = metrics.iter().map(|(id, a)| (*id, vec!["--metrics-listen".into(), a.clone()])).collect();
    let c = Cluster::start_with(3, ClusterOpts { node_args, ..Default::default() }).await;
    let leader = c.wait_leader().await;
    let kv = c.client().namespace("m");
    for i in 0..20 {
        kv.cas_put(format!("k{i}"), "v", 0).await.unwrap();
    }
    assert!(kv.cas_put("", "v", 0).await.is_err(), "an empty key is INVALID_ARGUMENT");
    let _lease = c.client().lease_grant(30).await.unwrap();
    c.client_for(leader).snapshot().await.unwrap();
    let watch = c.client().namespace("m").watch("k").prefix().start();
    let watching = tokio::spawn(async move {
        let mut watch = Box::pin(watch);
        while futures::StreamExt::next(&mut watch).await.is_some() {}
    });

    let at = |id: u64| metrics[&id].clone();
    let body = wait_until("the leader's metrics", DEADLINE, || async {
        let b = scrape(&at(leader))?;
        (sample(&b, "flaredb_leases", &[])? >= 1.0 && sample(&b, "flaredb_raft_snapshots_total", &[])? >= 1.0)
            .then_some(b)
    })
    .await;
    let node = format!("node=\"{leader}\"");
    let cas = r#"method="/flaredb.v1.KvCas/CompareAndSwap""#;
    let ok = sample(&body, "flaredb_grpc_requests_total", &[cas, r#"code="Ok""#]).unwrap_or(0.0);
    let bad = sample(&body, "flaredb_grpc_requests_total", &[cas, r#"code="InvalidArgument""#]);
    assert!(ok >= 1.0 && bad == Some(1.0), "{body}");
    assert!(sample(&body, "flaredb_grpc_request_duration_seconds_count", &[cas]).is_some(), "{body}");
    assert_eq!(sample(&body, "flaredb_raft_is_leader", &[&node]), Some(1.0), "{body}");
    assert!(sample(&body, "flaredb_raft_term", &[]).unwrap() >= 1.0);
    assert!(sample(&body, "flaredb_raft_applied_index", &[]).unwrap() >= 20.0);
    assert!(sample(&body, "flaredb_raft_leader_changes_total", &[]).unwrap() >= 1.0);
    assert_eq!(sample(&body, "flaredb_raft_members", &[]), Some(3.0));
    assert!(sample(&body, "flaredb_raft_snapshots_total", &[]).unwrap() >= 1.0, "{body}");
    assert!(sample(&body, "flaredb_snapshot_last_build_seconds", &[]).is_some(), "{body}");
    assert_eq!(sample(&body, "flaredb_raft_proposals_pending", &[]), Some(0.0), "{body}");
    for kind in ["sst", "memtable", "block_cache", "pending_compaction"] {
        assert!(sample(&body, "flaredb_rocksdb_bytes", &[&format!("kind=\"{kind}\"")]).is_some(), "{kind}: {body}");
    }
    assert!(sample(&body, "flaredb_rocksdb_bytes", &[r#"kind="memtable""#]).unwrap() > 0.0);
    // The leader reports each follower's lag; followers report none.
    let followers: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    for f in &followers {
        assert!(
            sample(&body, "flaredb_raft_replication_lag_entries", &[&format!("follower=\"{f}\"")]).is_some(),
            "{body}"
        );
    }
    let fb = scrape(&at(followers[0])).unwrap();
    assert!(sample(&fb, "flaredb_raft_replication_lag_entries", &[]).is_none(), "{fb}");
    assert_eq!(sample(&fb, "flaredb_raft_is_leader", &[]), Some(0.0));
    // The watch is open on whichever node the client picked: one of them counts it.
    wait_until("one watcher counted", DEADLINE, || async {
        let n: f64 = (1..=3).filter_map(|i| sample(&scrape(&at(i))?, "flaredb_watchers", &[])).sum();
        (n == 1.0).then_some(())
    })
    .await;
    watching.abort();

    // Every metric the Grafana dashboard queries is one the node exports.
    let dashboard = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dashboard).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    let body = scrape(&at(leader)).unwrap();
    for e in &exprs {
        for name in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("flaredb_")) {
            assert!(body.lines().any(|l| l.starts_with(name)), "the dashboard queries {name}, not exported: {e}");
        }
    }
}

#[tokio::test]
async fn json_logs_carry_the_node_id_and_an_exposed_raft_port_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("0.0.0.0:{}", free_port());
    // Auth on an exposed Raft port is refused unless the operator accepts the risk.
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "allow_auth_without_peer_tls = true\n").unwrap();
    let (data, config) = (dir.path().join("d").display().to_string(), config.display().to_string());
    let args = ["--id", "4", "--listen", &listen, "--data-dir", &data, "--config", &config];
    let node = flaredb_tests::spawn_server(
        &[&args[..], &["--log-format", "json"]].concat().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &dir.path().join("log"),
    );
    let line = wait_until("the start-up warning", DEADLINE, || async {
        node.log_text().lines().find(|l| l.contains("INSECURE")).map(str::to_owned)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!((&v["level"], &v["span"]["id"]), (&serde_json::json!("WARN"), &serde_json::json!(4)), "{line}");
    assert!(v["fields"]["message"].as_str().unwrap().contains("without peer TLS"), "{line}");
    // Lines outside requests name the current term too.
    assert!(v["span"]["term"].as_u64().is_some(), "{line}");
    // A line logged inside a request names the node, the term and the RPC.
    let port = listen.rsplit(':').next().unwrap();
    let client =
        flaredb_client::RdbClient::with_config([format!("127.0.0.1:{port}")], flaredb_tests::test_client_config())
            .unwrap();
    client.user_add("root", "pw").await.unwrap();
    client.auth_enable().await.unwrap();
    let line = wait_until("the auth warning", DEADLINE, || async {
        node.log_text().lines().find(|l| l.contains("auth enabled")).map(str::to_owned)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let span = &v["span"];
    assert_eq!(
        (&span["node"], &span["path"]),
        (&serde_json::json!(4), &serde_json::json!("/flaredb.v1.Auth/AuthEnable")),
        "{line}"
    );
    assert!(span["term"].as_u64().is_some_and(|t| t >= 1), "{line}");
}
