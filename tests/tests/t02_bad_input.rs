//! Every bad input gets its status code, and nothing is written.

use flaredb_client::ClientError;
use flaredb_proto::raft::{raft_client::RaftClient, AppendEntriesRequest};
use flaredb_tests::{
    raft_peer::{cluster_id, from_cluster},
    wait_until, Cluster, DEADLINE,
};
use tonic::Code;

fn invalid(e: ClientError, needle: &str) {
    assert!(
        matches!(&e, ClientError::InvalidArgument(m) if m.contains(needle)),
        "expected INVALID_ARGUMENT naming {needle:?}, got {e}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let kv = client.namespace("limits");
    let raw = client.namespace("limits-raw");

    invalid(kv.cas_put("", "v", 0).await.unwrap_err(), "empty");
    invalid(kv.cas_put(vec![b'k'; 4097], "v", 0).await.unwrap_err(), "4096");
    invalid(kv.cas_put("k", vec![0u8; (1 << 20) + 1], 0).await.unwrap_err(), "1048576");
    invalid(kv.cas_get("").await.unwrap_err(), "empty");
    invalid(kv.cas_delete(vec![b'k'; 5000], 1).await.unwrap_err(), "4096");
    invalid(kv.cas_scan("b", "a", 0).await.unwrap_err(), "end_key");
    invalid(raw.raw_put("", "v").await.unwrap_err(), "empty");
    invalid(raw.raw_put("k", vec![0u8; (1 << 20) + 1]).await.unwrap_err(), "1048576");
    invalid(raw.raw_delete(vec![b'k'; 4097]).await.unwrap_err(), "4096");
    invalid(client.namespace("Bad Name").cas_put("k", "v", 0).await.unwrap_err(), "namespace");
    invalid(client.namespace("x".repeat(65)).raw_put("k", "v").await.unwrap_err(), "namespace");

    // A message over the 4 MiB gRPC limit: RESOURCE_EXHAUSTED naming the limit.
    let e = raw.raw_put("k", vec![0u8; 5 << 20]).await.unwrap_err();
    assert!(matches!(&e, ClientError::ResourceExhausted(m) if m.contains("4194304")), "{e}");

    // Nothing was written: no keys, and the refused namespaces were not created.
    assert!(kv.scan_prefix("").await.unwrap().is_empty());
    assert!(raw.raw_scan_prefix("").await.unwrap().is_empty());
    let names: Vec<String> = client.list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, vec!["default".to_string()], "refused requests created namespaces");
}

#[tokio::test]
async fn auto_creation_off_means_not_found() {
    let c = flaredb_tests::Cluster::start_with(
        1,
        flaredb_tests::ClusterOpts { extra_toml: "auto_create_namespaces = false\n".into(), ..Default::default() },
    )
    .await;
    let e = c.client().namespace("nope").cas_put("k", "v", 0).await.unwrap_err();
    assert!(matches!(&e, ClientError::NotFound(m) if m.contains("nope")), "{e}");
    let e = c.client().namespace("nope").raw_get("k").await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound(_)), "{e}");
    c.client().create_namespace("nope", flaredb_client::NamespaceMode::Strong).await.unwrap();
    assert!(c.client().namespace("nope").cas_put("k", "v", 0).await.unwrap().success);
    // The default namespace needs no creation.
    assert!(c.client().cas_put("k", "v", 0).await.unwrap().success);
}

#[tokio::test]
async fn data_dir_is_locked_and_bound_to_its_node_id() {
    let mut c = Cluster::start(1).await;
    let data_dir = c.nodes[&1].data_dir.display().to_string();
    let run = |args: &[&str]| {
        std::process::Command::new(flaredb_tests::server_bin()).args(args).output().expect("run server")
    };
    let port = format!("127.0.0.1:{}", flaredb_tests::free_port());
    let out = run(&["--id", "1", "--listen", &port, "--data-dir", &data_dir]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"), "{}", String::from_utf8_lossy(&out.stderr));

    c.kill(1);
    let out = run(&["--id", "2", "--listen", &port, "--data-dir", &data_dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("belongs to node 1"), "{err}");

    let foreign = c.dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "not ours").unwrap();
    let out = run(&["--listen", &port, "--data-dir", &foreign.display().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("foreign"));
    assert_eq!(std::fs::read_to_string(foreign.join("precious.txt")).unwrap(), "not ours");

    // The node still starts on its own dir afterwards.
    c.start_node(1);
    wait_until("node 1 back", DEADLINE, || async { c.client().status().await.ok() }).await;
}

/// The replication stream (`Raft/StreamAppend`) opened by a stranger, or
/// carrying a malformed message: refused with the code that says which, and
/// the node serves on with nothing changed.
#[tokio::test]
async fn a_bad_replication_stream_is_refused_and_changes_nothing() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let kv = client.namespace("stream");
    assert!(kv.cas_put("k", "v", 0).await.unwrap().success);
    let before = client.status().await.unwrap();
    let id = cluster_id([(1, c.addr(1).as_str())]);
    let mut raft = RaftClient::connect(format!("http://{}", c.addr(1))).await.unwrap();
    let one = || futures::stream::iter(vec![AppendEntriesRequest::default()]);

    let foreign = raft.stream_append(from_cluster(one(), id ^ 1)).await.unwrap_err();
    assert_eq!(foreign.code(), Code::FailedPrecondition, "{foreign}");

    // A request without a vote: the stream ends with INVALID_ARGUMENT naming what is missing.
    let mut answers = raft.stream_append(from_cluster(one(), id)).await.unwrap().into_inner();
    let bad = answers.message().await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad}");
    assert!(bad.message().contains("vote"), "{bad}");

    let after = client.status().await.unwrap();
    assert_eq!((after.term, after.leader_id), (before.term, before.leader_id));
    assert_eq!(&kv.cas_get("k").await.unwrap().unwrap().value[..], b"v");
    assert!(kv.cas_put("k2", "v", 0).await.unwrap().success);
}
