//! Authentication and authorization against real server processes: every
//! RPC for every kind of caller (no token, a role on another namespace, a
//! read role, a write role, an admin), with nothing written by a refused
//! call; scans, watches and transactions that stay inside their namespace;
//! tokens signed by one node and accepted by the others; expiry; grpcurl
//! and the CLI driving the Auth service.

use std::process::Command;

use flaredb_client::{ClientError, NamespaceMode, PermissionType, RdbClient};
use flaredb_proto::v1::{
    self as pb, admin_client::AdminClient, auth_client::AuthClient, kv_cas_client::KvCasClient,
    kv_raw_client::KvRawClient,
};
use flaredb_tests::{
    auth_setup::add_user_with_role, cli_bin, grpcurl_run_with, test_client_config, wait_until, Cluster, ClusterOpts,
    DEADLINE,
};
use tonic::{transport::Channel, Code, Request, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    /// READWRITE on another namespace only.
    Wrong,
    Reader,
    Writer,
    Admin,
}

/// What an RPC needs.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Open,
    Authenticated,
    Read,
    Write,
    ReadWrite,
    /// WRITE on some namespace (leases).
    WriteAnywhere,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Unauthenticated,
    Denied,
}

fn expected(rule: Rule, who: Who) -> Outcome {
    use Outcome::*;
    if who == Who::Nobody {
        return if matches!(rule, Rule::Open) { Allowed } else { Unauthenticated };
    }
    let ok = match rule {
        Rule::Open | Rule::Authenticated => true,
        Rule::Read => matches!(who, Who::Reader | Who::Admin),
        Rule::Write => matches!(who, Who::Writer | Who::Admin),
        Rule::ReadWrite | Rule::Admin => who == Who::Admin,
        Rule::WriteAnywhere => matches!(who, Who::Wrong | Who::Writer | Who::Admin),
    };
    if ok {
        Allowed
    } else {
        Denied
    }
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Cas,
    Get,
    Scan,
    CompareAndDelete,
    TxnGet,
    TxnPut,
    TxnCompareAndPut,
    Watch,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    LeaseTimeToLive,
    RawPut,
    RawGet,
    RawScan,
    RawDelete,
    Status,
    CreateNamespace,
    ListNamespaces,
    AddLearner,
    ChangeMembership,
    RemoveNode,
    TransferLeader,
    Snapshot,
    Backup,
    Hash,
    Authenticate,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
    UserList,
    RoleAdd,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
    RoleList,
    AuthEnable,
    AuthStatus,
}

const RPCS: [(Rpc, Rule); 39] = [
    (Rpc::Cas, Rule::Write),
    (Rpc::Get, Rule::Read),
    (Rpc::Scan, Rule::Read),
    (Rpc::CompareAndDelete, Rule::Write),
    (Rpc::TxnGet, Rule::Read),
    (Rpc::TxnPut, Rule::Write),
    (Rpc::TxnCompareAndPut, Rule::ReadWrite),
    (Rpc::Watch, Rule::Read),
    (Rpc::LeaseGrant, Rule::WriteAnywhere),
    (Rpc::LeaseKeepAlive, Rule::WriteAnywhere),
    // The lease holds a key in "app": revoking deletes it, so WRITE there.
    (Rpc::LeaseRevoke, Rule::Write),
    (Rpc::LeaseTimeToLive, Rule::WriteAnywhere),
    (Rpc::RawPut, Rule::Write),
    (Rpc::RawGet, Rule::Read),
    (Rpc::RawScan, Rule::Read),
    (Rpc::RawDelete, Rule::Write),
    (Rpc::Status, Rule::Open),
    (Rpc::CreateNamespace, Rule::Admin),
    (Rpc::ListNamespaces, Rule::Authenticated),
    (Rpc::AddLearner, Rule::Admin),
    (Rpc::ChangeMembership, Rule::Admin),
    (Rpc::RemoveNode, Rule::Admin),
    (Rpc::TransferLeader, Rule::Admin),
    (Rpc::Snapshot, Rule::Admin),
    (Rpc::Backup, Rule::Admin),
    (Rpc::Hash, Rule::Admin),
    (Rpc::Authenticate, Rule::Open),
    (Rpc::UserAdd, Rule::Admin),
    (Rpc::UserDelete, Rule::Admin),
    (Rpc::UserGrantRole, Rule::Admin),
    (Rpc::UserRevokeRole, Rule::Admin),
    (Rpc::UserList, Rule::Admin),
    (Rpc::RoleAdd, Rule::Admin),
    (Rpc::RoleDelete, Rule::Admin),
    (Rpc::RoleGrantPermission, Rule::Admin),
    (Rpc::RoleRevokePermission, Rule::Admin),
    (Rpc::RoleList, Rule::Admin),
    (Rpc::AuthEnable, Rule::Admin),
    (Rpc::AuthStatus, Rule::Open),
];

struct Fixture {
    ch: Channel,
    lease: u64,
    seed_version: u64,
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

fn b(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

/// Calls `rpc` as the holder of `token`; keys are named after the caller so
/// that what a refused call must not have written is known.
async fn call(f: &Fixture, rpc: Rpc, who: Who, token: Option<&str>) -> Result<(), Status> {
    let (kv, raw, admin, auth) = (
        KvCasClient::new(f.ch.clone()),
        KvRawClient::new(f.ch.clone()),
        AdminClient::new(f.ch.clone()),
        AuthClient::new(f.ch.clone()),
    );
    let (mut kv, mut raw, mut admin, mut auth) = (kv, raw, admin, auth);
    let key = b(&format!("{who:?}"));
    let app = || "app".to_string();
    let perm = || Some(pb::Permission { namespace: "app".into(), r#type: pb::PermissionType::Read as i32 });
    let put_op = |k: &bytes::Bytes| pb::Op {
        op: Some(pb::op::Op::Put(pb::PutOp { key: k.clone(), value: b("v"), lease_id: 0 })),
    };
    macro_rules! r {
        ($m:expr) => {
            with_token($m, token)
        };
    }
    match rpc {
        Rpc::Cas => {
            kv.compare_and_swap(r!(pb::CasRequest { key, value: b("v"), namespace: app(), ..Default::default() }))
                .await?;
        }
        Rpc::Get => drop(kv.get(r!(pb::GetRequest { key, namespace: app() })).await?),
        Rpc::Scan => drop(kv.scan(r!(pb::ScanRequest { namespace: app(), ..Default::default() })).await?),
        Rpc::CompareAndDelete => {
            let msg = pb::CasDeleteRequest {
                key: b("seed"),
                expected_version: f.seed_version,
                namespace: app(),
                ..Default::default()
            };
            kv.compare_and_delete(r!(msg)).await?;
        }
        Rpc::TxnGet => {
            let get = pb::Op { op: Some(pb::op::Op::Get(pb::GetOp { key })) };
            kv.txn(r!(pb::TxnRequest { namespace: app(), success: vec![get], ..Default::default() })).await?;
        }
        Rpc::TxnPut => {
            let k = b(&format!("txn-{who:?}"));
            kv.txn(r!(pb::TxnRequest { namespace: app(), success: vec![put_op(&k)], ..Default::default() })).await?;
        }
        Rpc::TxnCompareAndPut => {
            let k = b(&format!("txn2-{who:?}"));
            let cmp = pb::Compare { key: k.clone(), ..Default::default() };
            let msg = pb::TxnRequest {
                namespace: app(),
                compares: vec![cmp],
                success: vec![put_op(&k)],
                ..Default::default()
            };
            kv.txn(r!(msg)).await?;
        }
        Rpc::Watch => {
            drop(kv.watch(r!(pb::WatchRequest { namespace: app(), key, prefix: true, start_version: 0 })).await?)
        }
        Rpc::LeaseGrant => drop(kv.lease_grant(r!(pb::LeaseGrantRequest { ttl_seconds: 60 })).await?),
        Rpc::LeaseKeepAlive => {
            let msgs = futures::stream::iter(vec![pb::LeaseKeepAliveRequest { lease_id: f.lease }]);
            drop(kv.lease_keep_alive(r!(msgs)).await?)
        }
        Rpc::LeaseRevoke => drop(kv.lease_revoke(r!(pb::LeaseRevokeRequest { lease_id: f.lease })).await?),
        Rpc::LeaseTimeToLive => {
            drop(kv.lease_time_to_live(r!(pb::LeaseTimeToLiveRequest { lease_id: f.lease, keys: false })).await?)
        }
        Rpc::RawPut => {
            raw.raw_put(r!(pb::RawPutRequest { key, value: b("v"), namespace: "app-raw".into() })).await?;
        }
        Rpc::RawGet => drop(raw.raw_get(r!(pb::RawGetRequest { key, namespace: "app-raw".into() })).await?),
        Rpc::RawScan => {
            drop(raw.raw_scan(r!(pb::RawScanRequest { namespace: "app-raw".into(), ..Default::default() })).await?)
        }
        Rpc::RawDelete => {
            drop(raw.raw_delete(r!(pb::RawDeleteRequest { key: b("seed"), namespace: "app-raw".into() })).await?)
        }
        Rpc::Status => drop(admin.status(r!(pb::StatusRequest {})).await?),
        Rpc::CreateNamespace => {
            let name = format!("made-by-{who:?}").to_lowercase();
            drop(admin.create_namespace(r!(pb::CreateNamespaceRequest { name, mode: 1 })).await?)
        }
        Rpc::ListNamespaces => drop(admin.list_namespaces(r!(pb::ListNamespacesRequest {})).await?),
        // Arguments an allowed caller is refused for (these would change the cluster).
        Rpc::AddLearner => {
            let msg = pb::AddLearnerRequest { node_id: 1, addr: "127.0.0.1:1".into(), wait: false };
            not_an_auth_error(admin.add_learner(r!(msg)).await)?
        }
        Rpc::ChangeMembership => {
            not_an_auth_error(admin.change_membership(r!(pb::ChangeMembershipRequest { voter_ids: vec![99] })).await)?
        }
        Rpc::RemoveNode => not_an_auth_error(admin.remove_node(r!(pb::RemoveNodeRequest { node_id: 99 })).await)?,
        Rpc::TransferLeader => {
            not_an_auth_error(admin.transfer_leader(r!(pb::TransferLeaderRequest { to_node_id: 99 })).await)?
        }
        Rpc::Snapshot => drop(admin.snapshot(r!(pb::SnapshotRequest {})).await?),
        Rpc::Backup => drop(admin.backup(r!(pb::BackupRequest {})).await?),
        Rpc::Hash => drop(admin.hash(r!(pb::HashRequest {})).await?),
        Rpc::Authenticate => {
            drop(auth.authenticate(r!(pb::AuthenticateRequest { name: "reader".into(), password: "pw".into() })).await?)
        }
        Rpc::UserAdd => {
            let name = format!("new-{who:?}");
            drop(auth.user_add(r!(pb::UserAddRequest { name, password: "x".into() })).await?)
        }
        Rpc::UserDelete => {
            not_an_auth_error(auth.user_delete(r!(pb::UserDeleteRequest { name: "ghost".into() })).await)?
        }
        Rpc::UserGrantRole => drop(
            auth.user_grant_role(r!(pb::UserGrantRoleRequest { user: "spare".into(), role: "spare".into() })).await?,
        ),
        Rpc::UserRevokeRole => {
            let msg = pb::UserRevokeRoleRequest { user: "spare".into(), role: "spare".into() };
            drop(auth.user_revoke_role(r!(msg)).await?)
        }
        Rpc::UserList => drop(auth.user_list(r!(pb::UserListRequest {})).await?),
        Rpc::RoleAdd => drop(auth.role_add(r!(pb::RoleAddRequest { name: format!("new-{who:?}") })).await?),
        Rpc::RoleDelete => {
            not_an_auth_error(auth.role_delete(r!(pb::RoleDeleteRequest { name: "ghost".into() })).await)?
        }
        Rpc::RoleGrantPermission => {
            let msg = pb::RoleGrantPermissionRequest { role: "spare".into(), perm: perm() };
            drop(auth.role_grant_permission(r!(msg)).await?)
        }
        Rpc::RoleRevokePermission => {
            let msg = pb::RoleRevokePermissionRequest { role: "spare".into(), perm: perm() };
            drop(auth.role_revoke_permission(r!(msg)).await?)
        }
        Rpc::RoleList => drop(auth.role_list(r!(pb::RoleListRequest {})).await?),
        Rpc::AuthEnable => drop(auth.auth_enable(r!(pb::AuthEnableRequest {})).await?),
        Rpc::AuthStatus => drop(auth.auth_status(r!(pb::AuthStatusRequest {})).await?),
    }
    Ok(())
}

/// An allowed call whose arguments are refused counts as allowed.
fn not_an_auth_error<T>(r: Result<T, Status>) -> Result<(), Status> {
    match r {
        Err(s) if matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied) => Err(s),
        _ => Ok(()),
    }
}

fn outcome(r: &Result<(), Status>) -> Outcome {
    match r {
        Ok(()) => Outcome::Allowed,
        Err(s) if s.code() == Code::Unauthenticated => Outcome::Unauthenticated,
        Err(s) if s.code() == Code::PermissionDenied => Outcome::Denied,
        // Refused for another reason (a lease already revoked...): past the check.
        Err(_) => Outcome::Allowed,
    }
}

async fn token(ch: &Channel, name: &str, password: &str) -> String {
    let msg = pb::AuthenticateRequest { name: name.into(), password: password.into() };
    AuthClient::new(ch.clone()).authenticate(msg).await.unwrap().into_inner().token
}

fn root_client(c: &Cluster) -> RdbClient {
    RdbClient::with_config(c.endpoints(), test_client_config().with_user("root", "rootpw")).unwrap()
}

/// Users reader/writer/wrong/admin with their roles; app, app-raw and other
/// seeded; auth enabled.
async fn set_up(c: &Cluster) -> Fixture {
    let setup = c.client();
    for (user, role, ns, kind) in [
        ("reader", "r", "app*", PermissionType::Read),
        ("writer", "w", "app*", PermissionType::Write),
        ("wrong", "o", "other", PermissionType::Readwrite),
        ("admin", "a", "*", PermissionType::Admin),
    ] {
        add_user_with_role(&setup, user, "pw", role, ns, kind).await;
    }
    setup.user_add("spare", "pw").await.unwrap();
    setup.role_add("spare").await.unwrap();
    setup.user_add("root", "rootpw").await.unwrap();
    setup.create_namespace("app-raw", NamespaceMode::Eventual).await.unwrap();
    let app = setup.namespace("app");
    let seed_version = app.cas_put("seed", "s", 0).await.unwrap().new_version;
    let (lease, _) = app.lease_grant(600).await.unwrap();
    app.cas_put_with_lease("leased", "x", 0, lease).await.unwrap();
    setup.namespace("app-raw").raw_put("seed", "s").await.unwrap();
    setup.namespace("other").cas_put("secret", "s", 0).await.unwrap();
    setup.auth_enable().await.unwrap();
    let ch = Channel::from_shared(format!("http://{}", c.addr(1))).unwrap().connect().await.unwrap();
    Fixture { ch, lease, seed_version }
}

/// Everything a refused call could have changed, read as root.
async fn snapshot_of_state(root: &RdbClient) -> String {
    let mut out = String::new();
    for ns in ["app", "other"] {
        for kv in root.namespace(ns).scan_prefix("").await.unwrap() {
            out.push_str(&format!("{ns}/{:?}@{}\n", kv.key, kv.version));
        }
    }
    for (k, _) in root.namespace("app-raw").raw_scan_prefix("").await.unwrap() {
        out.push_str(&format!("app-raw/{k:?}\n"));
    }
    let names: Vec<String> = root.list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    out.push_str(&format!("{names:?}\n{:?}\n", root.auth_status().await.unwrap()));
    out
}

#[tokio::test]
async fn every_rpc_refuses_callers_without_the_right_and_writes_nothing_for_them() {
    let c = Cluster::start(1).await;
    let f = set_up(&c).await;
    let root = root_client(&c);
    let mut tokens = std::collections::BTreeMap::new();
    for (who, name) in [(Who::Wrong, "wrong"), (Who::Reader, "reader"), (Who::Writer, "writer"), (Who::Admin, "admin")]
    {
        tokens.insert(format!("{who:?}"), token(&f.ch, name, "pw").await);
    }
    let before = snapshot_of_state(&root).await;
    let mut failures = Vec::new();
    // Callers with no write right first: afterwards nothing may have changed.
    for pass in [&[Who::Nobody, Who::Wrong, Who::Reader][..], &[Who::Writer, Who::Admin][..]] {
        for &who in pass {
            for (rpc, rule) in RPCS {
                let t = tokens.get(&format!("{who:?}")).map(String::as_str);
                let got = call(&f, rpc, who, t).await;
                let want = expected(rule, who);
                if outcome(&got) != want {
                    failures.push(format!("{rpc:?} as {who:?}: want {want:?}, got {got:?}"));
                }
            }
        }
        if pass[0] == Who::Nobody {
            assert_eq!(snapshot_of_state(&root).await, before, "a refused call changed something");
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // The allowed writes did write.
    let app = root.namespace("app");
    assert!(app.cas_get("Writer").await.unwrap().is_some() && app.cas_get("Admin").await.unwrap().is_some());
    assert!(app.cas_get("Reader").await.unwrap().is_none());
}

#[tokio::test]
async fn reads_watches_and_txns_stay_inside_the_namespaces_a_role_covers() {
    let c = Cluster::start(1).await;
    let f = set_up(&c).await;
    let root = root_client(&c);
    let reader = token(&f.ch, "reader", "pw").await;
    let mut kv = KvCasClient::new(f.ch.clone());
    // A scan over every key of "app" shows none of "other".
    let scan = pb::ScanRequest { namespace: "app".into(), ..Default::default() };
    let page = kv.scan(with_token(scan, Some(&reader))).await.unwrap().into_inner();
    let keys: Vec<_> = page.entries.iter().map(|e| String::from_utf8_lossy(&e.key).into_owned()).collect();
    assert!(keys.contains(&"seed".to_string()) && !keys.contains(&"secret".to_string()), "{keys:?}");
    // The pattern "app*" covers app and app-raw, not "ap" or "other".
    for (ns, ok) in [("app", true), ("app-x", true), ("ap", false), ("other", false), ("", false)] {
        let got = kv.get(with_token(pb::GetRequest { key: b("k"), namespace: ns.into() }, Some(&reader))).await;
        assert_eq!(got.is_ok(), ok, "get in {ns:?}: {got:?}");
        if !ok {
            assert_eq!(got.unwrap_err().code(), Code::PermissionDenied);
        }
    }
    // A watch on every key of "app" sees app's change, not the one in "other" made first.
    let watch = pb::WatchRequest { namespace: "app".into(), key: b(""), prefix: true, start_version: 0 };
    let mut events = kv.watch(with_token(watch, Some(&reader))).await.unwrap().into_inner();
    root.namespace("other").cas_put("secret2", "s", 0).await.unwrap();
    root.namespace("app").cas_put("visible", "v", 0).await.unwrap();
    let first = tokio::time::timeout(DEADLINE, async {
        loop {
            let e = events.message().await.unwrap().unwrap();
            if !e.progress {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first.key, b("visible"));
    // A watch of "other" is refused outright.
    let other = pb::WatchRequest { namespace: "other".into(), key: b(""), prefix: true, start_version: 0 };
    assert_eq!(kv.watch(with_token(other, Some(&reader))).await.err().map(|s| s.code()), Some(Code::PermissionDenied));
    // A transaction is in one namespace: the writer's txn in "other" is refused whole.
    let writer = token(&f.ch, "writer", "pw").await;
    let put = pb::Op { op: Some(pb::op::Op::Put(pb::PutOp { key: b("x"), value: b("v"), lease_id: 0 })) };
    let txn = pb::TxnRequest { namespace: "other".into(), success: vec![put], ..Default::default() };
    assert_eq!(kv.txn(with_token(txn, Some(&writer))).await.unwrap_err().code(), Code::PermissionDenied);
    assert!(root.namespace("other").cas_get("x").await.unwrap().is_none());
    // Revoking a lease that holds a key the caller may not write is refused.
    let (lease, _) = root.lease_grant(600).await.unwrap();
    root.namespace("other").cas_put_with_lease("held", "x", 0, lease).await.unwrap();
    let revoke = kv.lease_revoke(with_token(pb::LeaseRevokeRequest { lease_id: lease }, Some(&writer))).await;
    assert_eq!(revoke.unwrap_err().code(), Code::PermissionDenied);
    assert!(root.namespace("other").cas_get("held").await.unwrap().is_some());
    // ListNamespaces shows a user the namespaces it has a right on.
    let list = AdminClient::new(f.ch.clone())
        .list_namespaces(with_token(pb::ListNamespacesRequest {}, Some(&reader)))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert!(names.contains(&"app") && names.contains(&"app-raw") && !names.contains(&"other"), "{names:?}");
}

#[tokio::test]
async fn tokens_from_one_node_work_on_all_and_changes_take_effect_everywhere() {
    let c =
        Cluster::start_with(3, ClusterOpts { extra_toml: "auth_token_ttl_secs = 3\n".into(), ..Default::default() })
            .await;
    let setup = c.client();
    setup.user_add("root", "rootpw").await.unwrap();
    add_user_with_role(&setup, "alice", "pw", "app-rw", "app", PermissionType::Readwrite).await;
    // Enabling needs root: without it, FAILED_PRECONDITION and auth stays off.
    setup.user_delete("root").await.unwrap();
    let refused = setup.auth_enable().await.unwrap_err();
    assert!(matches!(&refused, ClientError::FailedPrecondition(m) if m.contains("root")), "{refused:?}");
    setup.user_add("root", "rootpw").await.unwrap();
    // With auth on, alice's WRITE does not create the namespace.
    setup.create_namespace("app", NamespaceMode::Strong).await.unwrap();
    setup.auth_enable().await.unwrap();
    let root = root_client(&c);
    let err = root.user_delete("root").await.unwrap_err();
    assert!(matches!(err, ClientError::FailedPrecondition(_)), "{err:?}");

    let channel = |id| Channel::from_shared(format!("http://{}", c.addr(id))).unwrap().connect_lazy();
    let wrong = AuthClient::new(channel(2))
        .authenticate(pb::AuthenticateRequest { name: "alice".into(), password: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // Signed on node 2, used on every node (followers forward it to the leader).
    let t = token(&channel(2), "alice", "pw").await;
    for id in 1..=3 {
        let msg =
            pb::CasRequest { key: b(&format!("k{id}")), value: b("v"), namespace: "app".into(), ..Default::default() };
        KvCasClient::new(channel(id)).compare_and_swap(with_token(msg, Some(&t))).await.unwrap();
    }
    // A forged or garbled token is UNAUTHENTICATED.
    let get = |ns: &str| pb::GetRequest { key: b("k1"), namespace: ns.into() };
    let forged = format!("{}x", &t[..t.len() - 1]);
    let e = KvCasClient::new(channel(3)).get(with_token(get("app"), Some(&forged))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // Revoking the role: refused on every node once applied there.
    root.role_revoke_permission("app-rw", "app", PermissionType::Readwrite).await.unwrap();
    for id in 1..=3 {
        wait_until("the revoke to apply", DEADLINE, || {
            let mut kv = KvCasClient::new(channel(id));
            let req = with_token(get("app"), Some(&t));
            async move { (kv.get(req).await.err().map(|s| s.code()) == Some(Code::PermissionDenied)).then_some(()) }
        })
        .await;
    }
    root.role_grant_permission("app-rw", "app", PermissionType::Readwrite).await.unwrap();
    // The token expires (ttl 3 s); a client with credentials renews its own.
    wait_until("the token to expire", DEADLINE, || {
        let mut kv = KvCasClient::new(channel(1));
        let req = with_token(get("app"), Some(&t));
        async move {
            let e = kv.get(req).await.err()?;
            (e.code() == Code::Unauthenticated && e.message().contains("expired")).then_some(())
        }
    })
    .await;
    let alice = RdbClient::with_config(c.endpoints(), test_client_config().with_user("alice", "pw")).unwrap();
    let app = alice.namespace("app");
    app.cas_put("renewed0", "v", 0).await.unwrap();
    // A token taken now expires no earlier than the client's: once it is refused, so would the client's be.
    let marker = token(&channel(1), "alice", "pw").await;
    wait_until("a token of the client's age to expire", DEADLINE, || {
        let mut kv = KvCasClient::new(channel(1));
        let req = with_token(get("app"), Some(&marker));
        async move { (kv.get(req).await.err()?.code() == Code::Unauthenticated).then_some(()) }
    })
    .await;
    app.cas_put("renewed1", "v", 0).await.unwrap();
    assert_eq!(app.scan_prefix("renewed").await.unwrap().len(), 2);
    assert!(matches!(alice.namespace("other").cas_get("x").await, Err(ClientError::PermissionDenied(_))));
    // Deleting the user ends its tokens at once; disabling auth opens the cluster.
    let t = token(&channel(1), "alice", "pw").await;
    root.user_delete("alice").await.unwrap();
    let e = KvCasClient::new(channel(1)).get(with_token(get("app"), Some(&t))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    root.auth_disable().await.unwrap();
    assert!(c.client().namespace("app").cas_get("k1").await.unwrap().is_some());
}

#[tokio::test]
async fn grpcurl_and_the_cli_drive_auth() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let grpc = |data: Option<&str>, method: &str, header: Option<&str>| {
        let mut flags = vec![];
        if let Some(h) = header {
            flags.push("-H");
            flags.push(h);
        }
        grpcurl_run_with(&flags, &addr, data, &[method])
    };
    let (ok, _, err) = grpc(None, "flaredb.v1.Auth/AuthEnable", None);
    assert!(!ok && err.contains("FailedPrecondition") && err.contains("root"), "{err}");
    let (ok, out, err) = grpc(Some(r#"{"name":"root","password":"rootpw"}"#), "flaredb.v1.Auth/UserAdd", None);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = grpc(None, "flaredb.v1.Auth/AuthEnable", None);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = grpc(None, "flaredb.v1.Auth/AuthStatus", None);
    assert!(ok && out.contains("\"enabled\": true"), "{out}");
    let (ok, _, err) = grpc(Some(r#"{"key":"aw=="}"#), "flaredb.v1.KvCas/Get", None);
    assert!(!ok && err.contains("Unauthenticated"), "{err}");
    let (ok, out, err) = grpc(Some(r#"{"name":"root","password":"rootpw"}"#), "flaredb.v1.Auth/Authenticate", None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let header = format!("authorization: Bearer {}", v["token"].as_str().unwrap());
    let (ok, out, err) = grpc(Some(r#"{"key":"aw=="}"#), "flaredb.v1.KvCas/Get", Some(&header));
    assert!(ok, "{out}{err}");
    let perm = r#"{"role":"ops","perm":{"namespace":"svc-*","type":"READWRITE"}}"#;
    assert!(grpc(Some(r#"{"name":"ops"}"#), "flaredb.v1.Auth/RoleAdd", Some(&header)).0);
    assert!(grpc(Some(perm), "flaredb.v1.Auth/RoleGrantPermission", Some(&header)).0);
    let (ok, out, _) = grpc(None, "flaredb.v1.Auth/RoleList", Some(&header));
    assert!(ok && out.contains("svc-*") && out.contains("READWRITE"), "{out}");

    // The CLI, signed in as root, manages users; a user signs in with --user.
    let cli = |args: &[&str]| {
        let out = Command::new(cli_bin()).args(["-e", addr.as_str()]).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let as_root = ["--user", "root:rootpw"];
    for args in [
        &["user", "add", "bob", "--new-password", "bobpw"][..],
        &["user", "grant-role", "bob", "ops"],
        &["role", "add", "viewer"],
        &["role", "grant-permission", "viewer", "read", "svc-a"],
        // bob's READWRITE does not create it: root does.
        &["ns", "create", "svc-a"],
    ] {
        let (code, out, err) = cli(&[&as_root[..], args].concat());
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    }
    let (_, out, _) = cli(&[&as_root[..], &["user", "list"]].concat());
    assert!(out.contains("bob") && out.contains("ops"), "{out}");
    let (_, out, _) = cli(&[&as_root[..], &["role", "list", "-o", "json"]].concat());
    assert!(out.contains(r#""namespace":"svc-a""#) && out.contains(r#""type":"READ""#), "{out}");
    let (code, out, err) = cli(&["--user", "bob:bobpw", "-n", "svc-a", "put", "k", "v"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = cli(&["-n", "svc-a", "get", "k"]);
    assert!(code == Some(1) && err.contains("unauthenticated"), "{err}");
    let (code, _, err) = cli(&["--user", "bob:bobpw", "-n", "other", "get", "k"]);
    assert!(code == Some(1) && err.contains("permission denied"), "{err}");
    let (code, _, err) = cli(&["--user", "bob:wrong", "-n", "svc-a", "get", "k"]);
    assert!(code == Some(1) && err.contains("wrong user name or password"), "{err}");
    let (code, out, _) = cli(&[&as_root[..], &["auth", "status"]].concat());
    assert!(code == Some(0) && out.starts_with("enabled"), "{out}");
    let (code, _, _) = cli(&[&as_root[..], &["auth", "disable"]].concat());
    assert_eq!(code, Some(0));
    let (code, out, err) = cli(&["-n", "svc-a", "get", "k"]);
    assert_eq!(code, Some(0), "{out}{err}");
}
