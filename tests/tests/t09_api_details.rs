//! API details found in review (issue 9 §5): only a successful write creates
//! a namespace; an oversized request is RESOURCE_EXHAUSTED naming the limit;
//! scans page by bytes as well as entries; reflection shows clients only the
//! public API, with the raw write contract in its comments.

use flaredb_client::ClientError;
use flaredb_tests::{grpcurl_run, Cluster, ClusterOpts};

#[tokio::test]
async fn failed_writes_never_create_a_namespace() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let names = || async { client.list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect::<Vec<_>>() };

    let cas = client.namespace("ghost-cas").cas_put("k", "v", 5).await.unwrap();
    assert!(!cas.success && cas.current_version == 0, "{cas:?}");
    let del = client.namespace("ghost-del").cas_delete("k", 1).await.unwrap();
    assert!(!del.success && del.current_version == 0, "{del:?}");
    assert!(!client.namespace("ghost-raw").raw_delete("k").await.unwrap());
    assert_eq!(names().await, ["default"], "a failed write created a namespace");

    // The first successful write creates it.
    assert!(client.namespace("ghost-cas").cas_put("k", "v", 0).await.unwrap().success);
    client.namespace("ghost-raw").raw_put("k", "v").await.unwrap();
    assert_eq!(names().await, ["default", "ghost-cas", "ghost-raw"]);
}

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_and_names_the_limit() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let big = vec![0u8; 5 << 20];
    for e in [
        client.namespace("big").raw_put("k", big.clone()).await.unwrap_err(),
        client.namespace("big").cas_put("k", big, 0).await.unwrap_err(),
    ] {
        assert!(matches!(&e, ClientError::ResourceExhausted(m) if m.contains("4194304")), "{e}");
    }
    // Nothing was written, and the node still serves.
    assert!(client.namespace("big").cas_get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn large_values_are_scanned_page_by_page() {
    // Six 900 KiB values are 5.4 MB: more than one response may carry.
    let c = Cluster::start(1).await;
    let strong = c.client().namespace("big-strong");
    let raw = c.client().namespace("big-raw");
    let value = |i: u8| vec![i; 900 << 10];
    for i in 0..6u8 {
        assert!(strong.cas_put(format!("k{i}"), value(i), 0).await.unwrap().success);
        raw.raw_put(format!("k{i}"), value(i)).await.unwrap();
    }

    let first = strong.cas_scan("k", "l", 0).await.unwrap();
    assert_eq!(first.entries.len(), 1, "a page holds about 1 MiB");
    assert_eq!(first.next_key.as_deref(), Some(&b"k1"[..]));
    let first = raw.raw_scan("k", "l", 0).await.unwrap();
    assert_eq!((first.entries.len(), first.next_key.as_deref()), (1, Some(&b"k1"[..])));

    let all = strong.scan_prefix("k").await.unwrap();
    assert_eq!(all.len(), 6);
    for (i, e) in all.iter().enumerate() {
        assert_eq!((e.key.as_ref(), e.value.as_ref()), (format!("k{i}").as_bytes(), &value(i as u8)[..]));
    }
    let all = raw.raw_scan_prefix("k").await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().enumerate().all(|(i, (_, v))| v.as_ref() == &value(i as u8)[..]));
}

fn listed_services(addr: &str) -> Vec<String> {
    let (ok, out, err) = grpcurl_run(addr, None, &["list"]);
    assert!(ok, "grpcurl list: {err}");
    let mut names: Vec<String> = out.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn reflection_lists_only_the_public_api() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    assert_eq!(
        listed_services(&addr),
        [
            "flaredb.v1.Admin",
            "flaredb.v1.Auth",
            "flaredb.v1.KvCas",
            "flaredb.v1.KvRaw",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );
    let (ok, _, err) = grpcurl_run(&addr, None, &["describe", "flaredb.raft.v1.Raft"]);
    assert!(!ok, "the Raft transport is described to clients");
    assert!(err.contains("not found") || err.contains("Symbol"), "{err}");

    // The raw write contract is part of what clients see.
    let (ok, desc, err) = grpcurl_run(&addr, None, &["describe", "flaredb.v1.KvRaw"]);
    assert!(ok, "{err}");
    assert!(desc.contains("last writer wins") && desc.contains("a retry may reorder"), "{desc}");
}

#[tokio::test]
async fn reflection_shows_the_fault_hook_only_when_it_is_on() {
    let c = Cluster::start_with(1, ClusterOpts { fault_injection: true, ..Default::default() }).await;
    let names = listed_services(&c.addr(1));
    assert!(names.iter().any(|n| n == "flaredb.testing.v1.Faults"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("flaredb.raft")), "{names:?}");
}
