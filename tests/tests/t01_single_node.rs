//! One real server process: CAS semantics, scans, raw keys, namespaces,
//! restart after kill -9.

use flaredb_client::{ClientError, NamespaceMode};
use flaredb_tests::Cluster;

#[tokio::test]
async fn cas_versions_follow_the_log_and_never_repeat() {
    let c = Cluster::start(1).await;
    let kv = c.client().namespace("cas-rules");

    let first = kv.cas_put("k", "v1", 0).await.unwrap();
    assert!(first.success && first.new_version > 0, "{first:?}");
    let again = kv.cas_put("k", "v1", 0).await.unwrap();
    assert_eq!((again.success, again.current_version), (false, first.new_version), "absent-only put must fail");
    let stale = kv.cas_put("k", "v2", first.new_version + 100).await.unwrap();
    assert!(!stale.success);
    let second = kv.cas_put("k", "v2", first.new_version).await.unwrap();
    assert!(second.success && second.new_version > first.new_version);

    let got = kv.cas_get("k").await.unwrap().unwrap();
    assert_eq!((&got.value[..], got.version), (&b"v2"[..], second.new_version));

    let wrong = kv.cas_delete("k", first.new_version).await.unwrap();
    assert_eq!((wrong.success, wrong.current_version), (false, second.new_version));
    assert!(kv.cas_delete("k", second.new_version).await.unwrap().success);
    assert_eq!(kv.cas_get("k").await.unwrap(), None);
    assert!(!kv.cas_delete("k", 0).await.unwrap().success, "deleting an absent key fails");

    // Re-created after delete: a fresh, larger version (no ABA).
    let third = kv.cas_put("k", "v3", 0).await.unwrap();
    assert!(third.success && third.new_version > second.new_version);
}

#[tokio::test]
async fn scans_page_and_prefixes_handle_ff_bytes() {
    let c = Cluster::start(1).await;
    let kv = c.client().namespace("scan");
    for i in 0..25u32 {
        kv.cas_put(format!("item/{i:03}"), format!("{i}"), 0).await.unwrap();
    }
    kv.cas_put(&b"item\xff"[..], "after", 0).await.unwrap();
    kv.cas_put(&b"\xff\xff"[..], "last", 0).await.unwrap();
    kv.cas_put("other", "x", 0).await.unwrap();

    let page = kv.cas_scan("item/", "item0", 10).await.unwrap();
    assert_eq!(page.entries.len(), 10);
    assert_eq!(page.next_key.as_deref(), Some(&b"item/010"[..]));
    let rest = kv.cas_scan(page.next_key.unwrap(), "item0", 100).await.unwrap();
    assert_eq!((rest.entries.len(), rest.next_key), (15, None));

    let all = kv.scan_prefix("item/").await.unwrap();
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key), "keys ascend");
    assert_eq!(kv.scan_prefix(&b"item\xff"[..]).await.unwrap().len(), 1);
    assert_eq!(kv.scan_prefix(&b"\xff"[..]).await.unwrap().len(), 1);
    assert_eq!(kv.scan_prefix("").await.unwrap().len(), 28, "empty prefix = whole namespace");
    // Other namespaces are not visible.
    assert!(c.client().namespace("scan2").scan_prefix("").await.unwrap().is_empty());
}

#[tokio::test]
async fn raw_keys_put_get_scan_delete() {
    let c = Cluster::start(1).await;
    let raw = c.client().namespace("raw");
    raw.raw_put("a", "1").await.unwrap();
    raw.raw_put("b", "2").await.unwrap();
    raw.raw_put("a", "3").await.unwrap();
    assert_eq!(raw.raw_get("a").await.unwrap().as_deref(), Some(&b"3"[..]));
    let page = raw.raw_scan("", "", 0).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    assert!(raw.raw_delete("a").await.unwrap());
    assert!(!raw.raw_delete("a").await.unwrap(), "second delete reports absence");
    assert_eq!(raw.raw_get("a").await.unwrap(), None);
    assert_eq!(raw.raw_scan_prefix("").await.unwrap().len(), 1);
}

#[tokio::test]
async fn namespaces_take_the_mode_of_their_first_write() {
    let c = Cluster::start(1).await;
    let client = c.client();
    client.namespace("ev").raw_put("k", "v").await.unwrap();
    client.namespace("st").cas_put("k", "v", 0).await.unwrap();

    let e = client.namespace("ev").cas_put("k2", "v", 0).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("ev") && m.contains("EVENTUAL")), "{e}");
    let e = client.namespace("ev").cas_get("k").await.unwrap_err();
    assert!(matches!(e, ClientError::FailedPrecondition(_)), "{e}");
    let e = client.namespace("st").raw_get("k").await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("STRONG")), "{e}");
    let e = client.raw_put("k", "v").await.unwrap_err();
    assert!(matches!(e, ClientError::FailedPrecondition(_)), "default is STRONG: {e}");

    let made = client.create_namespace("made", NamespaceMode::Eventual).await.unwrap();
    assert_eq!(made.mode, NamespaceMode::Eventual as i32);
    assert_eq!(client.create_namespace("made", NamespaceMode::Eventual).await.unwrap().id, made.id);
    let e = client.create_namespace("made", NamespaceMode::Strong).await.unwrap_err();
    assert!(matches!(e, ClientError::FailedPrecondition(_)), "{e}");

    let names: Vec<String> = client.list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    for n in ["default", "ev", "st", "made"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    // Reading a namespace that does not exist yet reads as empty.
    assert_eq!(client.namespace("never").cas_get("k").await.unwrap(), None);
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let mut c = Cluster::start(1).await;
    let kv = c.client().namespace("durable");
    let mut versions = Vec::new();
    for i in 0..50u32 {
        versions.push(kv.cas_put(format!("k{i}"), format!("v{i}"), 0).await.unwrap().new_version);
    }
    c.client().namespace("durable-raw").raw_put("r", "raw").await.unwrap();
    c.restart(1);
    c.wait_leader().await;
    let kv = c.client().namespace("durable");
    for (i, v) in versions.iter().enumerate() {
        let got = kv.cas_get(format!("k{i}")).await.unwrap().expect("acknowledged write lost");
        assert_eq!((got.value, got.version), (format!("v{i}").into(), *v));
    }
    assert_eq!(c.client().namespace("durable-raw").raw_get("r").await.unwrap().as_deref(), Some(&b"raw"[..]));
    // Writing continues with larger versions.
    let next = kv.cas_put("k0", "again", versions[0]).await.unwrap();
    assert!(next.success && next.new_version > *versions.last().unwrap());
}
