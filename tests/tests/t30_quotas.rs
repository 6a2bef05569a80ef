//! Per-namespace quotas against real server processes: a write past a key or
//! byte quota is RESOURCE_EXHAUSTED naming the namespace and the limit and
//! writes nothing, while other namespaces keep writing; deletes and
//! overwrites that do not grow go through; usage is counted the same on every
//! replica, survives a restart, and follows lease revokes and transactions.

use std::process::Command;

use flaredb_client::{ClientError, Compare, CompareOp, NamespaceMode, RdbClient, TxnOp};
use flaredb_tests::{cli_bin, grpcurl_run, wait_until, Cluster, DEADLINE};

async fn usage(c: &RdbClient, ns: &str) -> (u64, u64, u64, u64) {
    let all = c.list_namespaces().await.unwrap();
    let n = all.iter().find(|n| n.name == ns).unwrap_or_else(|| panic!("no {ns} in {all:?}"));
    (n.keys, n.bytes, n.max_keys, n.max_bytes)
}

fn exhausted(r: Result<impl std::fmt::Debug, ClientError>, ns: &str, limit: &str) {
    match r {
        Err(ClientError::ResourceExhausted(m)) => {
            assert!(m.contains(&format!("namespace {ns:?}")) && m.contains(limit), "{m}")
        }
        other => panic!("want RESOURCE_EXHAUSTED naming {ns} and {limit}, got {other:?}"),
    }
}

#[tokio::test]
async fn writes_past_a_quota_are_refused_and_others_go_on() {
    let mut c = Cluster::start(3).await;
    let client = c.client();
    client.create_namespace("q", NamespaceMode::Strong).await.unwrap();
    client.create_namespace("r", NamespaceMode::Eventual).await.unwrap();
    let (q, r, free) = (client.namespace("q"), client.namespace("r"), client.namespace("free"));
    // Usage is counted from the first write, quota or not: "k0".."k4" with 2-byte values.
    for i in 0..5 {
        q.cas_put(format!("k{i}"), "vv", 0).await.unwrap();
    }
    assert_eq!(usage(&client, "q").await, (5, 20, 0, 0));
    let info = client.set_namespace_quota("q", 5, 0).await.unwrap();
    assert_eq!((info.keys, info.max_keys), (5, 5));
    exhausted(q.cas_put("k5", "vv", 0).await, "q", "max_keys = 5");
    assert!(q.cas_get("k5").await.unwrap().is_none(), "a refused write wrote");
    // Other namespaces are untouched by q's quota.
    for i in 0..20 {
        free.cas_put(format!("f{i}"), "v", 0).await.unwrap();
    }
    // An overwrite adds no key; a delete makes room.
    let v = q.cas_get("k0").await.unwrap().unwrap().version;
    q.cas_put("k0", "longer value", v).await.unwrap();
    let v = q.cas_get("k1").await.unwrap().unwrap().version;
    q.cas_delete("k1", v).await.unwrap();
    q.cas_put("k5", "vv", 0).await.unwrap();
    // A transaction that would add a key is refused whole; one that only overwrites is not.
    let refused = q.txn().and_then([TxnOp::put("k6", "x"), TxnOp::put("k2", "changed")]).commit().await;
    exhausted(refused, "q", "max_keys = 5");
    assert_eq!(q.cas_get("k2").await.unwrap().unwrap().value.as_ref(), b"vv", "part of a refused txn applied");
    let v2 = q.cas_get("k2").await.unwrap().unwrap().version;
    q.txn()
        .when([Compare::version("k2", CompareOp::Equal, v2)])
        .and_then([TxnOp::put("k2", "ok")])
        .commit()
        .await
        .unwrap();

    // Bytes, in an eventual namespace: 1-byte keys plus values.
    client.set_namespace_quota("r", 0, 100).await.unwrap();
    r.raw_put("a", vec![b'x'; 50]).await.unwrap();
    exhausted(r.raw_put("b", vec![b'x'; 50]).await, "r", "max_bytes = 100");
    assert!(r.raw_get("b").await.unwrap().is_none());
    r.raw_put("a", vec![b'x'; 10]).await.unwrap();
    r.raw_put("b", vec![b'x'; 50]).await.unwrap();
    assert_eq!(usage(&client, "r").await, (2, 62, 0, 100));

    // A quota below the usage stops growth only.
    client.set_namespace_quota("q", 2, 0).await.unwrap();
    exhausted(q.cas_put("new", "v", 0).await, "q", "max_keys = 2");
    let v = q.cas_get("k3").await.unwrap().unwrap().version;
    q.cas_delete("k3", v).await.unwrap();
    // Leases: revoking deletes the keys it holds, and they stop counting.
    client.set_namespace_quota("q", 0, 0).await.unwrap();
    let (lease, _) = q.lease_grant(60).await.unwrap();
    q.cas_put_with_lease("l1", "v", 0, lease).await.unwrap();
    q.cas_put_with_lease("l2", "v", 0, lease).await.unwrap();
    let before = usage(&client, "q").await;
    q.lease_revoke(lease).await.unwrap();
    let after = usage(&client, "q").await;
    assert_eq!((before.0 - after.0, before.1 - after.1), (2, 6));
    // Every replica counted the same, and the counts survive a restart.
    let want = (usage(&client, "q").await, usage(&client, "r").await, usage(&client, "free").await);
    for id in 1..=3 {
        let one = c.client_for(id);
        wait_until("the replica to catch up", DEADLINE, || {
            let one = one.clone();
            async move {
                let got = (usage(&one, "q").await, usage(&one, "r").await, usage(&one, "free").await);
                (got == want).then_some(())
            }
        })
        .await;
    }
    c.kill(2);
    c.restart(2);
    let two = c.client_for(2);
    wait_until("node 2 back with the same usage", DEADLINE, || {
        let two = two.clone();
        async move {
            let got = (usage(&two, "q").await, usage(&two, "r").await, usage(&two, "free").await);
            (got == want).then_some(())
        }
    })
    .await;
    let missing = client.set_namespace_quota("nope", 1, 1).await.unwrap_err();
    assert!(matches!(&missing, ClientError::NotFound(m) if m.contains("nope")), "{missing:?}");
}

#[tokio::test]
async fn grpcurl_and_the_cli_set_and_show_quotas() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    c.client().namespace("svc").cas_put("a", "1", 0).await.unwrap();
    let (ok, out, err) = grpcurl_run(
        &addr,
        Some(r#"{"namespace":"svc","max_keys":1,"max_bytes":1000}"#),
        &["flaredb.v1.Admin/SetNamespaceQuota"],
    );
    assert!(ok && out.contains(r#""maxKeys": "1""#) && out.contains(r#""keys": "1""#), "{out}{err}");
    let (ok, _, err) = grpcurl_run(
        &addr,
        Some(r#"{"namespace":"svc","key":"Yg==","value":"MQ=="}"#),
        &["flaredb.v1.KvCas/CompareAndSwap"],
    );
    assert!(!ok && err.contains("ResourceExhausted") && err.contains("max_keys = 1"), "{err}");
    let (ok, out, _) = grpcurl_run(&addr, None, &["flaredb.v1.Admin/ListNamespaces"]);
    assert!(ok && out.contains(r#""maxBytes": "1000""#), "{out}");

    let cli = |args: &[&str]| {
        let out = Command::new(cli_bin()).args(["-e", addr.as_str()]).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = cli(&["ns", "quota", "svc", "--max-keys", "2"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["svc", "1", "2", "2", "-"]), "{out}");
    assert_eq!(cli(&["-n", "svc", "put", "b", "2"]).0, Some(0));
    let (code, out) = cli(&["-n", "svc", "put", "c", "3"]);
    assert!(code == Some(1) && out.contains("resource exhausted") && out.contains("\"svc\""), "{out}");
    let (_, out) = cli(&["-o", "json", "ns", "usage"]);
    assert!(out.contains(r#""name":"svc""#) && out.contains(r#""keys":2"#) && out.contains(r#""max_keys":2"#), "{out}");
}
