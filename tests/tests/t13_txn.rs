//! KvCas/Txn end to end: transfers between accounts stay atomic under
//! concurrent clients on three nodes, bad transactions are refused before
//! anything is applied, and operators can script Txn with grpcurl.

use std::time::{Duration, Instant};

use flaredb_client::{ClientError, Compare, CompareOp, RdbClient, TxnOp, TxnOpResult};
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use flaredb_tests::{
    b64,
    bank::{account, transfer, ACCOUNTS, INITIAL},
    grpcurl_run, Cluster, ClusterOpts,
};

const TASKS: usize = 8;

/// Every account's (version, balance), read in one transaction.
async fn read_all(c: &RdbClient) -> Vec<(u64, u64)> {
    let r = c.txn().and_then((0..ACCOUNTS).map(|i| TxnOp::get(account(i)))).commit().await.expect("audit read");
    r.results.iter().map(balance).collect()
}

fn balance(r: &TxnOpResult) -> (u64, u64) {
    let TxnOpResult::Get(Some(kv)) = r else { panic!("an account is missing: {r:?}") };
    let n = std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok()).expect("a decimal balance");
    (kv.version, n)
}

#[derive(Debug, Default)]
struct Tally {
    moved: u64,
    conflicts: u64,
    unknown: u64,
    audits: u64,
}

/// Moves random amounts between random accounts until `until`: read both,
/// then write both only if neither changed since (VERSION EQUAL on each).
/// Every few rounds, checks the total in one read of every account.
async fn transfers(c: RdbClient, seed: u64, until: Instant) -> Tally {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut t = Tally::default();
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        if round.is_multiple_of(8) {
            let total: u64 = read_all(&c).await.iter().map(|(_, b)| b).sum();
            assert_eq!(total, INITIAL * ACCOUNTS as u64, "an audit saw money created or lost");
            t.audits += 1;
        }
        let from = next(ACCOUNTS as u64) as usize;
        let to = (from + 1 + next(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
        let read = c.txn().and_then([TxnOp::get(account(from)), TxnOp::get(account(to))]).commit().await;
        let read = read.expect("read two accounts");
        let ((fv, fb), (tv, tb)) = (balance(&read.results[0]), balance(&read.results[1]));
        if fb == 0 {
            continue;
        }
        let amount = 1 + next(fb.min(20));
        let moved = transfer(&c, (from, fv, fb), (to, tv, tb), amount).await;
        match moved {
            Ok(r) if r.succeeded => {
                let put = TxnOpResult::Put { version: r.revision };
                assert_eq!(r.results, [put.clone(), put], "both puts take the revision");
                t.moved += 1;
            }
            Ok(_) => t.conflicts += 1,
            // Applied or not, a transfer is whole: the audits still hold.
            Err(ClientError::Indeterminate(_)) => t.unknown += 1,
            Err(e) => panic!("transfer failed: {e}"),
        }
    }
    t
}

#[tokio::test]
async fn transfers_keep_the_total_under_concurrent_clients() {
    let c = Cluster::start(3).await;
    // Clients on every node, so most transactions are forwarded.
    let clients: Vec<RdbClient> = (1..=3).map(|id| c.client_for(id).namespace("bank")).collect();
    let open = clients[0]
        .txn()
        .when((0..ACCOUNTS).map(|i| Compare::version(account(i), CompareOp::Equal, 0)))
        .and_then((0..ACCOUNTS).map(|i| TxnOp::put(account(i), INITIAL.to_string())))
        .commit()
        .await
        .unwrap();
    assert!(open.succeeded);

    let secs = std::env::var("FLAREDB_TXN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> =
        (0..TASKS).map(|i| tokio::spawn(transfers(clients[i % clients.len()].clone(), i as u64 + 1, until))).collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.expect("transfer task");
        total.moved += t.moved;
        total.conflicts += t.conflicts;
        total.unknown += t.unknown;
        total.audits += t.audits;
    }
    let last = read_all(&clients[2]).await;
    assert_eq!(last.iter().map(|(_, b)| b).sum::<u64>(), INITIAL * ACCOUNTS as u64, "{last:?} after {total:?}");
    assert!(total.moved > 0 && total.audits > 0, "{total:?}");
    // Contention is real: with 8 clients on 5 accounts some compares fail.
    eprintln!("bank: {total:?}");
}

fn invalid(r: Result<flaredb_client::TxnResult, ClientError>, needle: &str) {
    match r {
        Err(ClientError::InvalidArgument(m)) if m.contains(needle) => {}
        other => panic!("expected INVALID_ARGUMENT naming {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_transactions_are_refused_and_change_nothing() {
    let opts = ClusterOpts { extra_toml: "max_txn_ops = 4\nmax_txn_bytes = 6000\n".into(), ..Default::default() };
    let c = Cluster::start_with(1, opts).await;
    let client = c.client();
    // Versions are log indexes: the next write after the refused ones must
    // take the very next index.
    let before = client.cas_put("before", "v", 0).await.unwrap().new_version;
    let ns = client.namespace("txn-bad");
    let get = |k: &str| TxnOp::get(k.to_owned());
    let cmp = |k: &str| Compare::version(k.to_owned(), CompareOp::Equal, 0);

    // Limits: compares plus the larger branch; the encoded request.
    invalid(ns.txn().when([cmp("a"), cmp("b"), cmp("c")]).and_then([get("a"), get("b")]).commit().await, "max_txn_ops");
    invalid(ns.txn().and_then([TxnOp::put("k", vec![0u8; 7000])]).commit().await, "max_txn_bytes");
    invalid(ns.txn().and_then([get(&"k".repeat(4097))]).commit().await, "key is 4097 bytes");
    // A key written twice in one branch.
    invalid(ns.txn().and_then([TxnOp::put("a", "1"), TxnOp::put("a", "2")]).commit().await, "both write key");
    invalid(ns.txn().or_else([TxnOp::put("a", "1"), TxnOp::delete("a")]).commit().await, "failure[0] and failure[1]");
    invalid(ns.txn().and_then([TxnOp::delete_prefix("p/"), TxnOp::put("p/1", "v")]).commit().await, "under");
    // Empty keys and prefixes.
    invalid(ns.txn().and_then([TxnOp::put("", "v")]).commit().await, "key must not be empty");
    invalid(ns.txn().and_then([TxnOp::delete("")]).commit().await, "key must not be empty");
    invalid(ns.txn().or_else([get("")]).commit().await, "key must not be empty");
    invalid(ns.txn().when([cmp("")]).commit().await, "compares[0]: key must not be empty");
    invalid(ns.txn().and_then([TxnOp::delete_prefix("")]).commit().await, "non-empty prefix");
    invalid(client.namespace("Bad Name").txn().and_then([get("k")]).commit().await, "namespace");

    // What the Rust client cannot build: an unknown operator, an empty op.
    let mut raw = KvCasClient::connect(format!("http://{}", c.addr(1))).await.unwrap();
    let put = |lease_id: u64| pb::Op {
        op: Some(pb::op::Op::Put(pb::PutOp { key: "k".into(), value: "v".into(), lease_id })),
    };
    let req = |compares: Vec<pb::Compare>, success: Vec<pb::Op>| pb::TxnRequest {
        namespace: "txn-bad".into(),
        compares,
        success,
        ..Default::default()
    };
    let bad_op = pb::Compare { key: "k".into(), op: 9, ..Default::default() };
    let e = raw.txn(req(vec![bad_op], vec![put(0)])).await.unwrap_err();
    assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("unknown op 9"), "{e:?}");
    let e = raw.txn(req(vec![], vec![pb::Op { op: None }])).await.unwrap_err();
    assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("sets none of"), "{e:?}");

    // Nothing reached the log: no entry, no namespace, no key.
    let after = client.cas_put("after", "v", 0).await.unwrap().new_version;
    assert_eq!(after, before + 1, "a refused transaction reached the log");
    // An unknown lease is found out when applying: it takes a log entry but
    // changes nothing, and creates no namespace.
    let e = raw.txn(req(vec![], vec![put(7)])).await.unwrap_err();
    assert!(e.code() == tonic::Code::NotFound && e.message().starts_with("lease 7 not found"), "{e:?}");
    let names: Vec<String> = client.list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["default"]);
    assert_eq!(client.scan_prefix("").await.unwrap().len(), 2);

    // At the limit is fine: 2 compares + the larger of 2 and 2 ops.
    let ok = ns.txn().when([cmp("a"), cmp("b")]).and_then([get("a"), get("b")]).or_else([get("a"), get("b")]);
    assert!(ok.commit().await.unwrap().succeeded);
    client.namespace("txn-raw").raw_put("k", "v").await.unwrap();
    let e = client.namespace("txn-raw").txn().and_then([get("k")]).commit().await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("EVENTUAL")), "{e}");
}

fn grpcurl(addr: &str, data: &str, method: &str) -> String {
    let (ok, out, err) = grpcurl_run(addr, Some(data), &[method]);
    assert!(ok, "grpcurl {method} {data}: {err}");
    out
}

/// The uint64 JSON field `name` (proto3 JSON writes it as a string).
fn u64_field(json: &str, name: &str) -> u64 {
    let pat = format!("\"{name}\": \"");
    json.split(&pat).nth(1).and_then(|s| s.split('"').next()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn grpcurl_scripts_a_transaction_with_the_documented_names() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let (ok, desc, err) = grpcurl_run(&addr, None, &["describe", "flaredb.v1.KvCas.Txn"]);
    assert!(ok && desc.contains("TxnRequest") && desc.contains("TxnResponse"), "{desc}{err}");
    let (ok, desc, _) = grpcurl_run(&addr, None, &["describe", "flaredb.v1.CompareOp"]);
    assert!(ok && ["EQUAL = 0", "NOT_EQUAL = 1", "GREATER = 2", "LESS = 3"].iter().all(|v| desc.contains(v)), "{desc}");

    let (a, b, v1, v2) = (b64("ga"), b64("gb"), b64("one"), b64("two"));
    let create = format!(
        r#"{{"namespace":"ops",
            "compares":[{{"key":"{a}","target":"VERSION","op":"EQUAL","version":0}}],
            "success":[{{"put":{{"key":"{a}","value":"{v1}"}}}},{{"put":{{"key":"{b}","value":"{v2}","lease_id":0}}}}],
            "failure":[{{"get":{{"key":"{a}"}}}}],
            "write_id":{{"client_id":"ops-script","sequence":1}}}}"#
    );
    let out = grpcurl(&addr, &create, "flaredb.v1.KvCas/Txn");
    let rev = u64_field(&out, "revision");
    assert!(out.contains(r#""succeeded": true"#) && rev > 0, "{out}");
    assert_eq!(out.matches(&format!(r#""version": "{rev}""#)).count(), 2, "{out}");

    // Sent again with the same write id (a retry): the original answer, nothing applied.
    let again = grpcurl(&addr, &create, "flaredb.v1.KvCas/Txn");
    assert_eq!(again, out, "a retry with the same write id");
    // A new write (sequence 2): the compare fails (succeeded is false, so
    // proto3 JSON omits it) and the failure branch reads the key.
    let out = grpcurl(&addr, &create.replace(r#""sequence":1"#, r#""sequence":2"#), "flaredb.v1.KvCas/Txn");
    assert!(!out.contains("succeeded") && out.contains(r#""found": true"#) && out.contains(&v1), "{out}");

    let next = rev + 1;
    let clear = format!(
        r#"{{"namespace":"ops",
            "compares":[{{"key":"{a}","target":"VALUE","op":"EQUAL","value":"{v1}"}},
                        {{"key":"{b}","target":"VALUE","op":"GREATER","value":"{v1}"}},
                        {{"key":"{b}","target":"VERSION","op":"LESS","version":{next}}},
                        {{"key":"{b}","target":"VERSION","op":"NOT_EQUAL","version":0}}],
            "success":[{{"delete_prefix":{{"prefix":"{g}"}}}},{{"delete":{{"key":"{other}"}}}},{{"get":{{"key":"{b}"}}}}]}}"#,
        g = b64("g"),
        other = b64("other")
    );
    let out = grpcurl(&addr, &clear, "flaredb.v1.KvCas/Txn");
    assert!(out.contains(r#""succeeded": true"#) && out.contains(r#""deleted": "2""#), "{out}");
    // Deleting an absent key answers deleted 0 (omitted); the get finds nothing.
    let compact: String = out.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(r#""delete":{}"#) && compact.contains(r#""get":{}"#), "{out}");

    let leased = format!(r#"{{"success":[{{"put":{{"key":"{a}","value":"{v1}","lease_id":3}}}}]}}"#);
    let (ok, _, err) = grpcurl_run(&addr, Some(&leased), &["flaredb.v1.KvCas/Txn"]);
    assert!(!ok && err.contains("NotFound") && err.contains("lease 3 not found"), "{err}");
    let (ok, _, err) = grpcurl_run(&addr, Some(r#"{"success":[{"deletePrefix":{}}]}"#), &["flaredb.v1.KvCas/Txn"]);
    assert!(!ok && err.contains("InvalidArgument") && err.contains("non-empty prefix"), "{err}");
}

#[tokio::test]
async fn a_transaction_of_128_ops_applies_whole_and_is_watched_as_one_revision() {
    use futures::StreamExt;
    let c = Cluster::start(3).await;
    let client = c.client().namespace("big");
    // A watcher on another node than the first endpoint, from revision 1.
    let watcher = c.client_for(3).namespace("big");
    let mut events = Box::pin(watcher.watch("item/").prefix().from_version(1).start());
    let ops: Vec<TxnOp> = (0..128).map(|i| TxnOp::put(format!("item/{i:03}"), format!("v{i}"))).collect();
    let r = client.txn().and_then(ops).commit().await.expect("a 128-op transaction (the default limit)");
    assert!(r.succeeded && r.results.len() == 128, "{r:?}");
    assert!(r.results.iter().all(|x| *x == TxnOpResult::Put { version: r.revision }));
    assert_eq!(client.scan_prefix("item/").await.unwrap().len(), 128);
    // 129 ops is over the limit, and nothing of it applies.
    let over: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("over/{i}"), "v")).collect();
    invalid(client.txn().and_then(over).commit().await, "max_txn_ops");
    assert!(client.scan_prefix("over/").await.unwrap().is_empty());

    let mut seen = Vec::new();
    while seen.len() < 128 {
        let e = tokio::time::timeout(Duration::from_secs(30), events.next()).await.expect("watch events in time");
        let e = e.expect("stream open").expect("watch ok");
        if e.kind != flaredb_client::WatchEventKind::Progress {
            seen.push(e);
        }
    }
    assert!(seen.iter().all(|e| e.version == r.revision), "one revision for the whole transaction");
    let keys: Vec<String> = seen.iter().map(|e| String::from_utf8_lossy(&e.key).into_owned()).collect();
    let want: Vec<String> = (0..128).map(|i| format!("item/{i:03}")).collect();
    assert_eq!(keys, want, "the transaction's events in op order");
}
