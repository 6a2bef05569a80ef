//! What auth must hold beyond the per-RPC check: a lease and an exactly-once
//! session belong to the user who made them; an open watch or keep-alive
//! stream ends once its user loses the right (and outlives only its token);
//! and AuthEnable is refused while the Raft transport is reachable off the
//! machine without peer TLS (auth could be bypassed through Raft).

use flaredb_client::{NamespaceMode, PermissionType, RdbClient};
use flaredb_proto::v1::{self as pb, auth_client::AuthClient, kv_cas_client::KvCasClient};
use flaredb_tests::{
    auth_setup::add_user_with_role, free_port, spawn_server, test_client_config, wait_until, Cluster, ClusterOpts,
    DEADLINE,
};
use tonic::{transport::Channel, Code, Request, Status};

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn b(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

async fn token(ch: &Channel, name: &str) -> String {
    let msg = pb::AuthenticateRequest { name: name.into(), password: "pw".into() };
    AuthClient::new(ch.clone()).authenticate(msg).await.unwrap().into_inner().token
}

/// alice and bob (READWRITE on "app"), admin (ADMIN on "*"), root; auth on.
async fn set_up(c: &Cluster) -> Channel {
    let setup = c.client();
    add_user_with_role(&setup, "alice", "pw", "rw", "app", PermissionType::Readwrite).await;
    add_user_with_role(&setup, "admin", "pw", "a", "*", PermissionType::Admin).await;
    setup.user_add("bob", "pw").await.unwrap();
    setup.user_grant_role("bob", "rw").await.unwrap();
    setup.user_add("root", "rootpw").await.unwrap();
    // With auth on, WRITE alone does not create a namespace.
    setup.create_namespace("app", NamespaceMode::Strong).await.unwrap();
    setup.auth_enable().await.unwrap();
    Channel::from_shared(format!("http://{}", c.addr(1))).unwrap().connect().await.unwrap()
}

fn put(key: &str, expected: u64, lease_id: u64, write_id: Option<(&str, u64)>) -> pb::CasRequest {
    pb::CasRequest {
        namespace: "app".into(),
        key: b(key),
        value: b("v"),
        expected_version: expected,
        lease_id,
        write_id: write_id.map(|(c, s)| pb::WriteId { client_id: c.into(), sequence: s }),
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> Code {
    r.map(|v| panic!("expected a refusal, got {v:?}")).unwrap_err().code()
}

/// The next watch event that is not a progress event.
async fn next_change(events: &mut tonic::Streaming<pb::WatchEvent>) -> Result<Option<pb::WatchEvent>, Status> {
    loop {
        match events.message().await {
            Ok(Some(e)) if e.progress => continue,
            other => return other,
        }
    }
}

/// One keep-alive of `lease` on a new stream as `token`.
async fn keep_alive_once(kv: &mut KvCasClient<Channel>, lease: u64, token: &str) -> Result<i64, Status> {
    let msg = pb::LeaseKeepAliveRequest { lease_id: lease };
    let mut answers = kv.lease_keep_alive(with_token(futures::stream::iter([msg]), token)).await?.into_inner();
    match answers.message().await? {
        Some(a) => Ok(a.ttl_seconds),
        None => Err(Status::unknown("the stream ended without an answer")),
    }
}

#[tokio::test]
async fn leases_and_sessions_belong_to_the_user_who_made_them() {
    let c = Cluster::start(1).await;
    let ch = set_up(&c).await;
    let (alice, bob, admin) = (token(&ch, "alice").await, token(&ch, "bob").await, token(&ch, "admin").await);
    let mut kv = KvCasClient::new(ch.clone());
    let grant = kv.lease_grant(with_token(pb::LeaseGrantRequest { ttl_seconds: 600 }, &alice)).await;
    let lease = grant.unwrap().into_inner().lease_id;
    assert!(kv.compare_and_swap(with_token(put("a", 0, lease, None), &alice)).await.unwrap().into_inner().success);

    // Bob, who may write "app", may not use alice's lease in any way.
    assert_eq!(code(kv.compare_and_swap(with_token(put("b", 0, lease, None), &bob)).await), Code::PermissionDenied);
    let leased_put = pb::Op { op: Some(pb::op::Op::Put(pb::PutOp { key: b("t"), value: b("v"), lease_id: lease })) };
    let txn = pb::TxnRequest { namespace: "app".into(), success: vec![leased_put], ..Default::default() };
    assert_eq!(code(kv.txn(with_token(txn, &bob)).await), Code::PermissionDenied);
    assert_eq!(code(keep_alive_once(&mut kv, lease, &bob).await), Code::PermissionDenied);
    let ttl = |keys| pb::LeaseTimeToLiveRequest { lease_id: lease, keys };
    assert_eq!(code(kv.lease_time_to_live(with_token(ttl(false), &bob)).await), Code::PermissionDenied);
    let revoke = pb::LeaseRevokeRequest { lease_id: lease };
    let refused = kv.lease_revoke(with_token(revoke, &bob)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("another user"), "{refused:?}");
    let get = |key: &str| pb::GetRequest { namespace: "app".into(), key: b(key) };
    for key in ["b", "t"] {
        assert!(!kv.get(with_token(get(key), &alice)).await.unwrap().into_inner().found, "{key} was written");
    }
    // Alice may; so may an admin, who revokes it (and its key).
    assert_eq!(keep_alive_once(&mut kv, lease, &alice).await.unwrap(), 600);
    assert_eq!(kv.lease_time_to_live(with_token(ttl(true), &alice)).await.unwrap().into_inner().keys, [b("a")]);
    assert_eq!(kv.lease_revoke(with_token(revoke, &admin)).await.unwrap().into_inner().deleted, 1);

    // An exactly-once session is alice's: bob can neither replay its
    // answers nor write under its client id; alice's retry answers as first.
    let first = kv.compare_and_swap(with_token(put("s", 0, 0, Some(("alice-1", 1))), &alice)).await.unwrap();
    for seq in [1, 2] {
        let replay = kv.compare_and_swap(with_token(put("s", 0, 0, Some(("alice-1", seq))), &bob)).await;
        let refused = replay.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("another user's session"), "{refused:?}");
    }
    let again = kv.compare_and_swap(with_token(put("s", 0, 0, Some(("alice-1", 1))), &alice)).await.unwrap();
    assert_eq!(again.into_inner(), first.into_inner());
    assert!(
        kv.compare_and_swap(with_token(put("s2", 0, 0, Some(("bob-1", 1))), &bob)).await.unwrap().into_inner().success
    );
}

#[tokio::test]
async fn open_streams_end_when_their_user_loses_the_right_but_outlive_their_token() {
    let opts = ClusterOpts { extra_toml: "auth_token_ttl_secs = 2\n".into(), ..Default::default() };
    let c = Cluster::start_with(1, opts).await;
    let ch = set_up(&c).await;
    let root = RdbClient::with_config(c.endpoints(), test_client_config().with_user("root", "rootpw")).unwrap();
    let mut kv = KvCasClient::new(ch.clone());
    let alice = token(&ch, "alice").await;
    let watch = pb::WatchRequest { namespace: "app".into(), key: b(""), prefix: true, start_version: 0 };
    let mut events = kv.watch(with_token(watch.clone(), &alice)).await.unwrap().into_inner();
    // The token expires; the stream opened with it goes on.
    wait_until("alice's token to expire", DEADLINE, || {
        let (mut kv, alice) = (kv.clone(), alice.clone());
        async move {
            let r = kv.get(with_token(pb::GetRequest { namespace: "app".into(), key: b("x") }, &alice)).await;
            (r.err()?.code() == Code::Unauthenticated).then_some(())
        }
    })
    .await;
    root.namespace("app").cas_put("after-expiry", "v", 0).await.unwrap();
    let e = tokio::time::timeout(DEADLINE, next_change(&mut events)).await.unwrap().unwrap().unwrap();
    assert_eq!(e.key, b("after-expiry"));

    // Her role loses "app": the watch ends with PERMISSION_DENIED, and sends
    // nothing written after.
    root.role_revoke_permission("rw", "app", PermissionType::Readwrite).await.unwrap();
    root.namespace("app").cas_put("after-revoke", "v", 0).await.unwrap();
    let ended = tokio::time::timeout(DEADLINE, next_change(&mut events)).await.unwrap();
    assert_eq!(ended.map(|e| e.map(|e| e.key)).unwrap_err().code(), Code::PermissionDenied);

    // A keep-alive stream of a user who is deleted ends at its next message.
    root.role_grant_permission("rw", "app", PermissionType::Readwrite).await.unwrap();
    let bob = token(&ch, "bob").await;
    let lease = kv.lease_grant(with_token(pb::LeaseGrantRequest { ttl_seconds: 60 }, &bob)).await.unwrap();
    let lease = lease.into_inner().lease_id;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let outbound = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut answers = kv.lease_keep_alive(with_token(outbound, &bob)).await.unwrap().into_inner();
    tx.send(pb::LeaseKeepAliveRequest { lease_id: lease }).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl_seconds, 60);
    root.user_delete("bob").await.unwrap();
    tx.send(pb::LeaseKeepAliveRequest { lease_id: lease }).await.unwrap();
    let ended = tokio::time::timeout(DEADLINE, answers.message()).await.unwrap();
    assert_eq!(ended.unwrap_err().code(), Code::Unauthenticated);
}

/// A single node listening on every interface (as a real deployment would),
/// with `toml` as its config file.
fn start_exposed(dir: &std::path::Path, toml: &str) -> (flaredb_tests::ServerProc, String) {
    let port = free_port();
    let config = dir.join("node.toml");
    std::fs::write(&config, toml).unwrap();
    let args = [
        "--id".to_string(),
        "1".into(),
        "--listen".into(),
        format!("0.0.0.0:{port}"),
        "--initial-cluster".into(),
        format!("1=127.0.0.1:{port}"),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    (spawn_server(&args, &dir.join("node.log")), format!("127.0.0.1:{port}"))
}

#[tokio::test]
async fn auth_enable_is_refused_while_raft_is_reachable_off_the_machine_without_peer_tls() {
    for (toml, allowed) in [("", false), ("allow_auth_without_peer_tls = true\n", true)] {
        let dir = tempfile::tempdir().unwrap();
        let (proc, addr) = start_exposed(dir.path(), toml);
        let client = RdbClient::with_config([addr.clone()], test_client_config()).unwrap();
        wait_until("the node to serve", DEADLINE, || async { client.status().await.ok() }).await;
        client.user_add("root", "rootpw").await.unwrap();
        let ch = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let answer = AuthClient::new(ch).auth_enable(pb::AuthEnableRequest {}).await;
        if allowed {
            answer.unwrap();
        } else {
            let refused = answer.unwrap_err();
            assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
            assert!(refused.message().contains("--peer-trusted-ca"), "{refused:?}");
            assert!(!client.auth_status().await.unwrap().0, "auth was enabled");
            assert!(proc.log_text().contains("INSECURE"), "{}", proc.log_text());
        }
    }
}

#[tokio::test]
async fn tokens_namespaces_versions_and_password_guessing_give_nothing_away() {
    let c = Cluster::start(1).await;
    let ch = set_up(&c).await;
    let root = RdbClient::with_config(c.endpoints(), test_client_config().with_user("root", "rootpw")).unwrap();
    let mut kv = KvCasClient::new(ch.clone());
    let get = |ns: &str, key: &str| pb::GetRequest { namespace: ns.into(), key: b(key) };

    // A user deleted and added again does not inherit the old one's tokens,
    // leases or sessions.
    let old = token(&ch, "alice").await;
    let grant = kv.lease_grant(with_token(pb::LeaseGrantRequest { ttl_seconds: 600 }, &old)).await;
    let old_lease = grant.unwrap().into_inner().lease_id;
    let session_put = |key: &str| pb::CasRequest {
        namespace: "app".into(),
        key: b(key),
        value: b("v"),
        write_id: Some(pb::WriteId { client_id: "alice-s".into(), sequence: 1 }),
        ..Default::default()
    };
    kv.compare_and_swap(with_token(session_put("s1"), &old)).await.unwrap();
    root.user_delete("alice").await.unwrap();
    root.user_add("alice", "pw").await.unwrap();
    root.user_grant_role("alice", "rw").await.unwrap();
    let refused = kv.get(with_token(get("app", "k"), &old)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("added again"), "{refused:?}");
    let alice = token(&ch, "alice").await;
    kv.get(with_token(get("app", "k"), &alice)).await.unwrap();
    assert_eq!(code(keep_alive_once(&mut kv, old_lease, &alice).await), Code::PermissionDenied);
    assert_eq!(code(kv.compare_and_swap(with_token(session_put("s1"), &alice)).await), Code::PermissionDenied);

    // WRITE alone does not create a namespace; ADMIN on it does.
    root.role_add("w-new").await.unwrap();
    root.role_grant_permission("w-new", "new*", PermissionType::Write).await.unwrap();
    root.user_grant_role("bob", "w-new").await.unwrap();
    let bob = token(&ch, "bob").await;
    let put = |ns: &str, expected: u64| pb::CasRequest {
        namespace: ns.into(),
        key: b("k"),
        value: b("v"),
        expected_version: expected,
        ..Default::default()
    };
    let refused = kv.compare_and_swap(with_token(put("new-a", 0), &bob)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert!(!root.list_namespaces().await.unwrap().iter().any(|n| n.name == "new-a"));
    root.role_grant_permission("w-new", "new-b", PermissionType::Admin).await.unwrap();
    assert!(kv.compare_and_swap(with_token(put("new-b", 0), &bob)).await.unwrap().into_inner().success);

    // A failed compare shows the key's version only to a writer who may read.
    root.namespace("new-a").cas_put("k", "v", 0).await.unwrap();
    let blind = kv.compare_and_swap(with_token(put("new-a", 99), &bob)).await.unwrap().into_inner();
    assert_eq!((blind.success, blind.current_version), (false, 0));
    let del = pb::CasDeleteRequest { namespace: "new-a".into(), key: b("k"), expected_version: 99, write_id: None };
    assert_eq!(kv.compare_and_delete(with_token(del, &bob)).await.unwrap().into_inner().current_version, 0);
    let seen = kv.compare_and_swap(with_token(put("app", 99), &alice)).await.unwrap().into_inner();
    assert!(!seen.success);
    let mut probe = put("app", 0);
    probe.key = b("fresh");
    kv.compare_and_swap(with_token(probe.clone(), &alice)).await.unwrap();
    let seen = kv.compare_and_swap(with_token(probe, &alice)).await.unwrap().into_inner();
    assert!(!seen.success && seen.current_version > 0, "{seen:?}");

    // Password guessing: five wrong tries, then even the right password waits.
    let mut auth = AuthClient::new(ch.clone());
    let sign_in = |password: &str| pb::AuthenticateRequest { name: "bob".into(), password: password.into() };
    for _ in 0..5 {
        assert_eq!(auth.authenticate(sign_in("guess")).await.unwrap_err().code(), Code::Unauthenticated);
    }
    let held = auth.authenticate(sign_in("pw")).await.unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted, "{held:?}");
    assert!(held.message().contains("too many wrong passwords"), "{held:?}");
    // Another user is not held up; bob gets in once the wait is over.
    token(&ch, "alice").await;
    wait_until("bob's wait to end", DEADLINE, || {
        let mut auth = auth.clone();
        async move { auth.authenticate(pb::AuthenticateRequest { name: "bob".into(), password: "pw".into() }).await.ok() }
    })
    .await;
}

#[tokio::test]
async fn auth_enable_asks_every_member_and_an_exposed_node_with_auth_on_refuses_to_start() {
    let opts = ClusterOpts { listen_on_all: [3].into(), ..Default::default() };
    let mut c = Cluster::start_with(3, opts).await;
    let setup = c.client();
    setup.user_add("root", "rootpw").await.unwrap();
    let addrs: Vec<String> = (0..=3).map(|id| if id == 0 { String::new() } else { c.addr(id) }).collect();
    let enable = |id: u64| {
        let addr = addrs[id as usize].clone();
        async move {
            let ch = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
            AuthClient::new(ch).auth_enable(pb::AuthEnableRequest {}).await
        }
    };
    // Node 3 listens off loopback without peer TLS: asked through node 1, refused naming it.
    let leader = c.wait_leader().await;
    let asked = if leader == 3 { 1 } else { leader };
    let refused = enable(asked).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("node 3"), "{refused:?}");
    // A member that cannot be asked is not taken on trust.
    c.kill(3);
    let refused = enable(asked).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("node 3"), "{refused:?}");
    assert!(!setup.auth_status().await.unwrap().0, "auth was enabled");

    // A node that accepted the risk enables auth; restarted without that
    // setting, it refuses to start rather than serve an open Raft port.
    let dir = tempfile::tempdir().unwrap();
    let (mut proc, addr) = start_exposed(dir.path(), "allow_auth_without_peer_tls = true\n");
    let one = RdbClient::with_config([addr.clone()], test_client_config()).unwrap();
    wait_until("the node to serve", DEADLINE, || async { one.status().await.ok() }).await;
    one.user_add("root", "rootpw").await.unwrap();
    one.auth_enable().await.unwrap();
    proc.kill();
    let port = addr.rsplit(':').next().unwrap().to_string();
    std::fs::write(dir.path().join("node.toml"), "").unwrap();
    let args = [
        "--id",
        "1",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--initial-cluster",
        &format!("1={addr}"),
        "--data-dir",
        &dir.path().join("data").display().to_string(),
    ];
    let mut again = spawn_server(&args.map(String::from), &dir.path().join("again.log"));
    let status =
        wait_until("the node to refuse to start", DEADLINE, || std::future::ready(again.child.try_wait().unwrap()))
            .await;
    assert!(!status.success());
    assert!(again.log_text().contains("auth is enabled but the Raft transport"), "{}", again.log_text());
}

#[tokio::test]
async fn with_auth_on_a_learner_with_an_exposed_raft_port_is_not_added() {
    let opts = ClusterOpts { listen_on_all: [2].into(), ..Default::default() };
    let mut c = Cluster::start_with(1, opts).await;
    let setup = c.client();
    setup.user_add("root", "rootpw").await.unwrap();
    setup.auth_enable().await.unwrap();
    let root = RdbClient::with_config(c.endpoints(), test_client_config().with_user("root", "rootpw")).unwrap();
    let addr2 = c.start_joining(2);
    let refused = wait_until("node 2 to answer and be refused", DEADLINE, || {
        let (root, addr2) = (root.clone(), addr2.clone());
        async move {
            match root.add_learner(2, &addr2, true).await {
                Err(flaredb_client::ClientError::FailedPrecondition(m)) => Some(m),
                _ => None,
            }
        }
    })
    .await;
    assert!(refused.contains("node 2") && refused.contains("peer TLS"), "{refused}");
    let members = root.status().await.unwrap().members;
    assert!(!members.iter().any(|m| m.id == 2), "node 2 was added: {members:?}");
}

#[tokio::test]
async fn a_signed_in_client_rides_out_kill_9_of_the_leader_and_a_restart() {
    let mut c = Cluster::start(3).await;
    let setup = c.client();
    setup.user_add("root", "rootpw").await.unwrap();
    add_user_with_role(&setup, "svc", "pw", "rw", "app", PermissionType::Readwrite).await;
    setup.create_namespace("app", NamespaceMode::Strong).await.unwrap();
    setup.auth_enable().await.unwrap();
    let svc = RdbClient::with_config(c.endpoints(), test_client_config().with_user("svc", "pw")).unwrap();
    let app = svc.namespace("app");
    let mut version = app.cas_put("k", "0", 0).await.unwrap().new_version;

    // kill -9 of the leader: the survivors check the same token (the signing
    // key is replicated) and the client's writes go on.
    let leader = c.wait_leader().await;
    c.kill(leader);
    for i in 1..=5 {
        let r = app.cas_put("k", i.to_string(), version).await.unwrap();
        assert!(r.success, "{r:?}");
        version = r.new_version;
    }
    // Restarted (loopback: not exposed), the old leader serves again with auth on.
    c.start_node(leader);
    let on_old = RdbClient::with_config([c.addr(leader)], test_client_config().with_user("svc", "pw")).unwrap();
    let got = wait_until("the restarted node to serve the last write", DEADLINE, || {
        let on_old = on_old.namespace("app");
        async move { on_old.cas_get("k").await.ok().flatten().filter(|kv| kv.version == version) }
    })
    .await;
    assert_eq!(got.value.as_ref(), b"5");
    let anonymous = c.client_for(leader).namespace("app").cas_get("k").await.unwrap_err();
    assert!(matches!(anonymous, flaredb_client::ClientError::Unauthenticated(_)), "{anonymous:?}");
}
