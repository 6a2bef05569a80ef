//! One KV conformance suite, many deployments (databend-meta's kvapi habit):
//! the same CAS, scan, raw and namespace cases run through the real client on
//! one node and on three (where writes and reads go to different followers,
//! so forwarding is exercised too). New primitives add their cases here
//! (Txn has; Watch will).

use std::time::Duration;

use flaredb_client::{
    ClientError, Compare, CompareOp, NamespaceMode, RdbClient, TxnOp, TxnOpResult, Versioned, VersionedKv,
};

use crate::{wait_until, Cluster};

/// Where a case sends its calls: `writer` and `reader` talk to one node each
/// (the same node on a one-node cluster, two followers on a larger one).
#[derive(Clone)]
pub struct Target {
    pub writer: RdbClient,
    pub reader: RdbClient,
}

impl Target {
    pub async fn of(c: &Cluster) -> Self {
        let leader = c.wait_leader().await;
        let others: Vec<u64> = c.nodes.keys().copied().filter(|id| *id != leader).collect();
        let (w, r) = match others.as_slice() {
            [] => (leader, leader),
            [one] => (*one, leader),
            [a, b, ..] => (*a, *b),
        };
        Self { writer: c.client_for(w), reader: c.client_for(r) }
    }

    fn ns(&self, name: &str) -> (RdbClient, RdbClient) {
        (self.writer.namespace(name), self.reader.namespace(name))
    }
}

/// Runs every case against `t`; each case uses namespaces of its own.
pub async fn run_all(t: &Target) {
    cas_versions_follow_the_log(t).await;
    a_write_is_read_at_once_on_another_node(t).await;
    scans_page_and_resume(t).await;
    prefixes_cover_ff_bytes_and_namespaces_isolate(t).await;
    raw_keys_round_trip(t).await;
    namespaces_keep_their_mode(t).await;
    only_a_successful_write_creates_a_namespace(t).await;
    txn_compares_choose_the_branch(t).await;
    txn_value_compares_and_delete_prefix(t).await;
}

async fn cas_versions_follow_the_log(t: &Target) {
    let (w, r) = t.ns("suite-cas");
    let first = w.cas_put("k", "v1", 0).await.unwrap();
    assert!(first.success && first.new_version > 0, "{first:?}");
    let again = w.cas_put("k", "v1", 0).await.unwrap();
    assert_eq!((again.success, again.current_version), (false, first.new_version), "create-only put must fail");
    assert!(!w.cas_put("k", "x", first.new_version + 100).await.unwrap().success, "stale version");
    let second = w.cas_put("k", "v2", first.new_version).await.unwrap();
    assert!(second.success && second.new_version > first.new_version, "{second:?}");
    let got = r.cas_get("k").await.unwrap().expect("written");
    assert_eq!((&got.value[..], got.version), (&b"v2"[..], second.new_version));

    let wrong = w.cas_delete("k", first.new_version).await.unwrap();
    assert_eq!((wrong.success, wrong.current_version), (false, second.new_version));
    assert!(w.cas_delete("k", second.new_version).await.unwrap().success);
    assert_eq!(r.cas_get("k").await.unwrap(), None);
    let absent = w.cas_delete("k", 0).await.unwrap();
    assert_eq!((absent.success, absent.current_version), (false, 0), "deleting an absent key fails");
    // Re-created after delete: a fresh, larger version (no ABA).
    let third = w.cas_put("k", "v3", 0).await.unwrap();
    assert!(third.success && third.new_version > second.new_version, "{third:?}");
}

async fn a_write_is_read_at_once_on_another_node(t: &Target) {
    let (w, r) = t.ns("suite-ryw");
    let mut expected = 0;
    for i in 0..20u32 {
        let put = w.cas_put("k", format!("v{i}"), expected).await.unwrap();
        assert!(put.success, "{put:?}");
        expected = put.new_version;
        let got = r.cas_get("k").await.unwrap().expect("just written");
        assert_eq!((got.value, got.version), (format!("v{i}").into(), expected), "a strong read lagged a write");
    }
}

async fn scans_page_and_resume(t: &Target) {
    let (w, r) = t.ns("suite-scan");
    for i in 0..25u32 {
        w.cas_put(format!("item/{i:03}"), format!("{i}"), 0).await.unwrap();
    }
    let page = r.cas_scan("item/", "item0", 10).await.unwrap();
    assert_eq!(page.entries.len(), 10);
    assert_eq!(page.next_key.as_deref(), Some(&b"item/010"[..]));
    let rest = r.cas_scan(page.next_key.unwrap(), "item0", 100).await.unwrap();
    assert_eq!((rest.entries.len(), rest.next_key), (15, None));
    let all = r.scan_prefix("item/").await.unwrap();
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|p| p[0].key < p[1].key), "keys ascend");
    assert!(all.iter().all(|e| e.version > 0), "every entry carries its version");
}

async fn prefixes_cover_ff_bytes_and_namespaces_isolate(t: &Target) {
    let (w, r) = t.ns("suite-prefix");
    for k in [&b"a/1"[..], b"a\xff", b"\xff\xff", b"b"] {
        w.cas_put(k, "x", 0).await.unwrap();
    }
    assert_eq!(r.scan_prefix("a/").await.unwrap().len(), 1);
    assert_eq!(r.scan_prefix(&b"a\xff"[..]).await.unwrap().len(), 1);
    assert_eq!(r.scan_prefix(&b"\xff"[..]).await.unwrap().len(), 1);
    assert_eq!(r.scan_prefix("").await.unwrap().len(), 4, "empty prefix = whole namespace");
    assert!(t.reader.namespace("suite-prefix2").scan_prefix("").await.unwrap().is_empty());
}

async fn raw_keys_round_trip(t: &Target) {
    let (w, r) = t.ns("suite-raw");
    w.raw_put("a", "1").await.unwrap();
    w.raw_put("b", "2").await.unwrap();
    w.raw_put("a", "3").await.unwrap();
    assert_eq!(w.raw_get("a").await.unwrap().as_deref(), Some(&b"3"[..]));
    // Raw reads are served by the node asked: another node catches up.
    wait_until("the raw write reaches the reader's node", Duration::from_secs(10), || async {
        (r.raw_scan_prefix("").await.ok()?.len() == 2 && r.raw_get("a").await.ok()?.as_deref() == Some(b"3"))
            .then_some(())
    })
    .await;
    assert!(w.raw_delete("a").await.unwrap());
    assert!(!w.raw_delete("a").await.unwrap(), "second delete reports absence");
    assert_eq!(w.raw_get("a").await.unwrap(), None);
}

async fn namespaces_keep_their_mode(t: &Target) {
    let (w, r) = (&t.writer, &t.reader);
    w.namespace("suite-ev").raw_put("k", "v").await.unwrap();
    w.namespace("suite-st").cas_put("k", "v", 0).await.unwrap();
    let e = w.namespace("suite-ev").cas_put("k2", "v", 0).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("EVENTUAL")), "{e}");
    let e = w.namespace("suite-ev").txn().and_then([TxnOp::get("k")]).commit().await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("EVENTUAL")), "{e}");
    let e = r.namespace("suite-st").raw_get("k").await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("STRONG")), "{e}");

    let made = w.create_namespace("suite-made", NamespaceMode::Eventual).await.unwrap();
    assert_eq!(made.mode, NamespaceMode::Eventual as i32);
    assert_eq!(w.create_namespace("suite-made", NamespaceMode::Eventual).await.unwrap().id, made.id, "idempotent");
    let e = w.create_namespace("suite-made", NamespaceMode::Strong).await.unwrap_err();
    assert!(matches!(e, ClientError::FailedPrecondition(_)), "{e}");
    // The list is read from the node asked, which may apply a little later.
    wait_until("every namespace listed", Duration::from_secs(10), || async {
        let names: Vec<String> = r.list_namespaces().await.ok()?.into_iter().map(|n| n.name).collect();
        ["default", "suite-ev", "suite-st", "suite-made"].iter().all(|n| names.iter().any(|m| m == n)).then_some(())
    })
    .await;
    assert_eq!(r.namespace("suite-never").cas_get("k").await.unwrap(), None, "an unknown namespace reads as empty");
}

async fn only_a_successful_write_creates_a_namespace(t: &Target) {
    let w = &t.writer;
    let failed = w.namespace("suite-ghost-cas").cas_put("k", "v", 5).await.unwrap();
    assert_eq!((failed.success, failed.current_version), (false, 0));
    assert!(!w.namespace("suite-ghost-del").cas_delete("k", 3).await.unwrap().success);
    assert!(!w.namespace("suite-ghost-raw").raw_delete("k").await.unwrap());
    let failed = w.namespace("suite-ghost-txn").txn().when([Compare::version("k", CompareOp::Equal, 7)]);
    assert!(!failed.and_then([TxnOp::put("k", "v")]).commit().await.unwrap().succeeded);
    let read_only = w.namespace("suite-ghost-txn-read").txn().and_then([TxnOp::get("k"), TxnOp::delete("k")]);
    assert_eq!(read_only.commit().await.unwrap().results, [TxnOpResult::Get(None), TxnOpResult::Delete { deleted: 0 }]);
    // A later write that does create one: once the reader lists it, it has
    // applied the failed ones too, and they created nothing.
    w.namespace("suite-real").cas_put("k", "v", 0).await.unwrap();
    let names = wait_until("the reader lists the new namespace", Duration::from_secs(10), || async {
        let names: Vec<String> = t.reader.list_namespaces().await.ok()?.into_iter().map(|n| n.name).collect();
        names.iter().any(|n| n == "suite-real").then_some(names)
    })
    .await;
    assert!(!names.iter().any(|n| n.starts_with("suite-ghost")), "a failed write created a namespace: {names:?}");
}

fn kv(key: &str, value: &str, version: u64) -> TxnOpResult {
    TxnOpResult::Get(Some(VersionedKv { key: key.to_owned().into(), value: value.to_owned().into(), version }))
}

async fn txn_compares_choose_the_branch(t: &Target) {
    let (w, r) = t.ns("suite-txn");
    let create = || {
        w.txn()
            .when([Compare::version("a", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("a", "1"), TxnOp::put("b", "2"), TxnOp::get("a")])
            .or_else([TxnOp::get("a")])
    };
    let made = create().commit().await.unwrap();
    let rev = made.revision;
    assert!(made.succeeded && rev > 0, "{made:?}");
    assert_eq!(made.results, [TxnOpResult::Put { version: rev }, TxnOpResult::Put { version: rev }, kv("a", "1", rev)]);
    // Both keys at once, at the revision, on the other node.
    assert_eq!(r.cas_get("a").await.unwrap(), Some(Versioned { value: "1".into(), version: rev }));
    assert_eq!(r.cas_get("b").await.unwrap(), Some(Versioned { value: "2".into(), version: rev }));

    let again = create().commit().await.unwrap();
    assert!(!again.succeeded && again.revision > rev, "{again:?}");
    assert_eq!(again.results, [kv("a", "1", rev)], "the failure branch ran");
    // From the reader's node too: every compare must hold, and an empty
    // failure branch answers no results.
    let half = r
        .txn()
        .when([Compare::version("a", CompareOp::Equal, rev), Compare::version("b", CompareOp::Less, rev)])
        .and_then([TxnOp::put("b", "never")])
        .commit()
        .await
        .unwrap();
    assert!(!half.succeeded && half.results.is_empty(), "{half:?}");
    assert_eq!(r.cas_get("b").await.unwrap().map(|v| v.version), Some(rev));
}

async fn txn_value_compares_and_delete_prefix(t: &Target) {
    let (w, r) = t.ns("suite-txn-value");
    for k in ["p/1", "p/2", "p0", "q"] {
        assert!(w.cas_put(k, "v", 0).await.unwrap().success);
    }
    let q = r.cas_get("q").await.unwrap().expect("written");
    let done = w
        .txn()
        .when([
            Compare::value("q", CompareOp::Equal, "v"),
            Compare::value("q", CompareOp::Greater, "u"),
            Compare::value("absent", CompareOp::NotEqual, "v"),
            Compare::version("q", CompareOp::NotEqual, 0),
        ])
        .and_then([
            TxnOp::delete_prefix("p/"),
            TxnOp::get("p/1"),
            TxnOp::delete("q"),
            TxnOp::get("q"),
            TxnOp::put("q2", "moved"),
        ])
        .commit()
        .await
        .unwrap();
    let rev = done.revision;
    assert!(done.succeeded, "{done:?}");
    assert_eq!(
        done.results,
        [
            TxnOpResult::Delete { deleted: 2 },
            TxnOpResult::Get(None),
            TxnOpResult::Delete { deleted: 1 },
            TxnOpResult::Get(None),
            TxnOpResult::Put { version: rev },
        ]
    );
    let left: Vec<_> = r.scan_prefix("").await.unwrap().into_iter().map(|e| (e.key, e.version)).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0].0, "p0");
    assert_eq!((&left[1].0[..], left[1].1), (&b"q2"[..], rev));
    assert!(rev > q.version);
    // An absent key's value is neither equal to nor ordered against anything.
    for op in [CompareOp::Equal, CompareOp::Greater, CompareOp::Less] {
        assert!(!r.txn().when([Compare::value("q", op, "")]).commit().await.unwrap().succeeded, "{op:?}");
    }
}
