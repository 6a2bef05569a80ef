//! The admin path as operators use it: the real grpcurl binary, with no
//! .proto file at hand (server reflection), against a real node.

use flaredb_tests::{b64, grpcurl_run, Cluster};

/// Runs `grpcurl -plaintext [-d DATA] ADDR ARGS...` and returns stdout,
/// failing the test on a non-zero exit.
fn call(addr: &str, data: Option<&str>, args: &[&str]) -> String {
    let (ok, out, err) = grpcurl_run(addr, data, args);
    assert!(ok, "grpcurl {args:?}: {err}");
    out
}

#[tokio::test]
async fn grpcurl_lists_describes_and_round_trips() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);

    let list = call(&addr, None, &["list"]);
    for svc in ["flaredb.v1.KvCas", "flaredb.v1.KvRaw", "flaredb.v1.Admin", "grpc.health.v1.Health"] {
        assert!(list.contains(svc), "{svc} missing from:\n{list}");
    }
    let desc = call(&addr, None, &["describe", "flaredb.v1.KvCas"]);
    for m in ["CompareAndSwap", "Get", "Scan", "CompareAndDelete"] {
        assert!(desc.contains(m), "{m} missing from:\n{desc}");
    }
    let msg = call(&addr, None, &["describe", "flaredb.v1.CasRequest"]);
    assert!(msg.contains("expected_version"), "{msg}");

    let (k, v) = (b64("gk"), b64("gv"));
    let put_json = format!(r#"{{"key":"{k}","value":"{v}","namespace":"ops"}}"#);
    let put = call(&addr, Some(&put_json), &["flaredb.v1.KvCas/CompareAndSwap"]);
    assert!(put.contains(r#""success": true"#), "{put}");
    let version: String =
        put.split(r#""newVersion": ""#).nth(1).and_then(|s| s.split('"').next()).expect("newVersion").to_string();

    let get = call(&addr, Some(&format!(r#"{{"key":"{k}","namespace":"ops"}}"#)), &["flaredb.v1.KvCas/Get"]);
    assert!(
        get.contains(&format!(r#""value": "{v}""#)) && get.contains(&format!(r#""version": "{version}""#)),
        "{get}"
    );
    let scan = call(&addr, Some(r#"{"namespace":"ops"}"#), &["flaredb.v1.KvCas/Scan"]);
    assert!(scan.contains(&k), "{scan}");
    let del_json = format!(r#"{{"key":"{k}","expected_version":{version},"namespace":"ops"}}"#);
    let del = call(&addr, Some(&del_json), &["flaredb.v1.KvCas/CompareAndDelete"]);
    assert!(del.contains(r#""success": true"#), "{del}");

    let raw_json = format!(r#"{{"key":"{k}","value":"{v}","namespace":"ops-raw"}}"#);
    let raw = call(&addr, Some(&raw_json), &["flaredb.v1.KvRaw/RawPut"]);
    assert!(raw.contains(r#""success": true"#), "{raw}");
    let got = call(&addr, Some(&format!(r#"{{"key":"{k}","namespace":"ops-raw"}}"#)), &["flaredb.v1.KvRaw/RawGet"]);
    assert!(got.contains(&v), "{got}");

    let status = call(&addr, None, &["flaredb.v1.Admin/Status"]);
    assert!(status.contains(r#""role": "LEADER""#), "{status}");
    let ns = call(&addr, Some(r#"{"name":"ops2","mode":"EVENTUAL"}"#), &["flaredb.v1.Admin/CreateNamespace"]);
    assert!(ns.contains("EVENTUAL"), "{ns}");
    let health = call(&addr, None, &["grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");
}

#[tokio::test]
async fn grpcurl_sees_clear_errors() {
    let c = Cluster::start(1).await;
    let (ok, _, err) = grpcurl_run(&c.addr(1), Some(r#"{"key":""}"#), &["flaredb.v1.KvCas/CompareAndSwap"]);
    assert!(!ok);
    assert!(err.contains("InvalidArgument") && err.contains("key must not be empty"), "{err}");
}

#[test]
fn base64_matches_known_vectors() {
    assert_eq!(b64("gk"), "Z2s=");
    assert_eq!(b64("key"), "a2V5");
    assert_eq!(b64("value"), "dmFsdWU=");
}

#[tokio::test]
async fn grpcurl_drives_membership_and_maintenance() {
    let mut c = Cluster::start(1).await;
    let addr = c.addr(1);
    let desc = call(&addr, None, &["describe", "flaredb.v1.Admin"]);
    for m in ["AddLearner", "ChangeMembership", "RemoveNode", "TransferLeader", "Snapshot", "Backup", "Hash"] {
        assert!(desc.contains(m), "{m} missing from:\n{desc}");
    }
    let new_addr = c.start_joining(2);
    let add = call(
        &addr,
        Some(&format!(r#"{{"node_id":2,"addr":"{new_addr}","wait":true}}"#)),
        &["flaredb.v1.Admin/AddLearner"],
    );
    assert!(add.contains(&new_addr), "{add}");
    let change = call(&addr, Some(r#"{"voter_ids":[1,2]}"#), &["flaredb.v1.Admin/ChangeMembership"]);
    assert_eq!(change.matches(r#""voter": true"#).count(), 2, "{change}");
    let moved = call(&addr, Some(r#"{"to_node_id":2}"#), &["flaredb.v1.Admin/TransferLeader"]);
    assert!(moved.contains(r#""leaderId": "2""#), "{moved}");
    let snap = call(&new_addr, None, &["flaredb.v1.Admin/Snapshot"]);
    assert!(snap.contains("snapshotIndex"), "{snap}");
    let hash = call(&new_addr, None, &["flaredb.v1.Admin/Hash"]);
    assert!(hash.contains("appliedIndex") && hash.contains("hash"), "{hash}");

    let (ok, _, err) = grpcurl_run(&addr, Some(r#"{"voter_ids":[]}"#), &["flaredb.v1.Admin/ChangeMembership"]);
    assert!(!ok && err.contains("FailedPrecondition") && err.contains("at least one voter"), "{err}");
}
