//! Transport security against real server processes: a three-node cluster
//! with TLS on its public addresses and mutual TLS on its peer addresses.
//! Clients (Rust client, CLI, grpcurl) work over TLS, followers forward over
//! TLS, and the Raft attack from outside (an AppendEntries with a higher
//! term, which deposes the leader of a cluster without peer TLS — checked
//! too, so the test can fail) is refused without a peer certificate.
//! Certificates are made here with rcgen; a renewed certificate is picked
//! up without a restart, and a broken one keeps the old.

use std::{path::PathBuf, process::Command, time::Duration};

use flaredb_client::{ClientConfig, RdbClient};
use flaredb_proto::raft::{raft_client::RaftClient, AppendEntriesRequest, Vote};
use flaredb_tests::{
    auth_setup::add_user_with_role,
    free_port,
    raft_peer::{cluster_id, from_cluster},
    spawn_server, test_client_config, wait_until, Cluster, ServerProc, DEADLINE,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A CA and the certificates it signed, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// `name.pem` and `name-key.pem`: a leaf for 127.0.0.1 signed by `ca`, for servers and clients.
    fn leaf(&self, name: &str, cn: &str, ca: &Issuer<'_, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, ca).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    }

    fn ca(&self, name: &str) -> Issuer<'static, KeyPair> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        Issuer::new(p, key)
    }

    /// The cluster's CA with node and client certificates, and an outsider's CA with its own.
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        let ca = pki.ca("ca");
        pki.leaf("node", "node", &ca);
        pki.leaf("client", "alice", &ca);
        let rogue = pki.ca("rogue-ca");
        pki.leaf("rogue", "mallory", &rogue);
        pki
    }
}

/// Fields drop in order: the servers stop before their data dirs go.
struct TlsCluster {
    procs: Vec<ServerProc>,
    _dir: tempfile::TempDir,
    public: Vec<String>,
    peer: Vec<String>,
}

fn start_tls_cluster(pki: &Pki, extra: &[&str]) -> TlsCluster {
    let dir = tempfile::tempdir().unwrap();
    let public: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let peer: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let spec: Vec<String> = (0..3).map(|i| format!("{}={}@{}", i + 1, public[i], peer[i])).collect();
    let p = |n: &str| pki.path(n).display().to_string();
    let procs = (0..3)
        .map(|i| {
            let mut args: Vec<String> = [
                "--id",
                &(i + 1).to_string(),
                "--listen",
                &public[i],
                "--peer-listen",
                &peer[i],
                "--data-dir",
                &dir.path().join(format!("n{}", i + 1)).display().to_string(),
                "--initial-cluster",
                &spec.join(","),
                "--cert",
                &p("node.pem"),
                "--key",
                &p("node-key.pem"),
                "--trusted-ca",
                &p("ca.pem"),
                "--peer-cert",
                &p("node.pem"),
                "--peer-key",
                &p("node-key.pem"),
                "--peer-trusted-ca",
                &p("ca.pem"),
            ]
            .map(String::from)
            .to_vec();
            args.extend(extra.iter().map(|s| s.to_string()));
            spawn_server(&args, &dir.path().join(format!("n{}.log", i + 1)))
        })
        .collect();
    TlsCluster { procs, _dir: dir, public, peer }
}

fn tls_client(pki: &Pki, endpoints: &[String], with_cert: bool) -> RdbClient {
    let cert = pki.path("client.pem");
    let key = pki.path("client-key.pem");
    let config = test_client_config()
        .with_tls_files(&pki.path("ca.pem"), with_cert.then_some((cert.as_path(), key.as_path())))
        .unwrap();
    RdbClient::with_config(endpoints.to_vec(), config).unwrap()
}

async fn leader_of(client: &RdbClient) -> (u64, u64) {
    wait_until("a leader", DEADLINE, || async {
        let s = client.status().await.ok()?;
        (s.leader_id != 0).then_some((s.leader_id, s.term))
    })
    .await
}

/// The Raft message an outsider sends: "I lead a later term".
fn depose(term: u64, cluster_id: u64) -> tonic::Request<AppendEntriesRequest> {
    let vote = Vote { term, node_id: 99, committed: true };
    let mut req = from_cluster(AppendEntriesRequest { vote: Some(vote), ..Default::default() }, cluster_id);
    req.set_timeout(Duration::from_secs(2));
    req
}

async fn raft_over(addr: &str, tls: Option<ClientTlsConfig>) -> Result<RaftClient<tonic::transport::Channel>, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap().connect_timeout(Duration::from_secs(2));
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).unwrap();
    }
    ep.connect().await.map(RaftClient::new).map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn without_peer_tls_an_outsider_deposes_the_leader() {
    // The control: the same message against a plaintext cluster works, so the TLS test below can fail.
    let c = Cluster::start(3).await;
    let members: Vec<(u64, String)> = (1..=3).map(|i| (i, c.addr(i))).collect();
    let id = cluster_id(members.iter().map(|(i, a)| (*i, a.as_str())));
    let (leader, term) = leader_of(&c.client()).await;
    let mut raft = raft_over(&c.addr(leader), None).await.unwrap();
    let answer = raft.append_entries(depose(term + 10, id)).await;
    assert!(answer.is_ok(), "{answer:?}");
    // Status reads metrics, published just after the message was handled.
    let client = c.client_for(leader);
    wait_until("the leader to take the outsider's term", DEADLINE, || async {
        client.status().await.ok().filter(|s| s.term >= term + 10)
    })
    .await;
}

#[tokio::test]
async fn a_tls_cluster_serves_clients_and_refuses_raft_without_a_peer_certificate() {
    let pki = Pki::new();
    let c = start_tls_cluster(&pki, &[]);
    let client = tls_client(&pki, &c.public, false);
    let (leader, term) = leader_of(&client).await;
    let follower = (1..=3).find(|i| *i != leader).unwrap();

    // Writes through a follower are forwarded to the leader over TLS.
    let via_follower = tls_client(&pki, &[c.public[follower as usize - 1].clone()], false).namespace("tls");
    let put = via_follower.cas_put("k", "v", 0).await.unwrap();
    assert!(put.success);
    assert_eq!(&client.namespace("tls").cas_get("k").await.unwrap().unwrap().value[..], b"v");

    // Plaintext clients get nothing from a TLS address.
    let plain =
        RdbClient::with_config(c.public.clone(), ClientConfig { retry_budget: Duration::ZERO, ..test_client_config() })
            .unwrap();
    assert!(plain.namespace("tls").cas_get("k").await.is_err());

    // grpcurl with -cacert, through reflection.
    let out = Command::new(flaredb_tests::grpcurl())
        .args(["-cacert", pki.path("ca.pem").to_str().unwrap(), "-d", r#"{"key":"aw==","namespace":"tls"}"#])
        .arg(&c.public[0])
        .arg("flaredb.v1.KvCas/Get")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(r#""found": true"#),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI with --cacert.
    let out = Command::new(flaredb_tests::cli_bin())
        .args(["--cacert", pki.path("ca.pem").to_str().unwrap(), "-e", &c.public[1], "-n", "tls", "get", "k"])
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).trim_end().ends_with("\tv"), "{out:?}");

    // The attack, every way an outsider could try it.
    let members: Vec<(u64, String)> =
        (0..3).map(|i| (i as u64 + 1, format!("{}@{}", c.public[i], c.peer[i]))).collect();
    let id = cluster_id(members.iter().map(|(i, a)| (*i, a.as_str())));
    let peer = &c.peer[leader as usize - 1];
    let ca = || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.pem")));
    let with_identity = |name: &str| {
        ca().identity(Identity::from_pem(pki.read(&format!("{name}.pem")), pki.read(&format!("{name}-key.pem"))))
    };
    let attempts = [
        ("plaintext to the peer address", None),
        ("TLS without a client certificate", Some(ca())),
        ("a certificate from another CA", Some(with_identity("rogue"))),
    ];
    for (how, tls) in attempts {
        let refused = match raft_over(peer, tls).await {
            Err(_) => true,
            Ok(mut raft) => raft.append_entries(depose(term + 10, id)).await.is_err(),
        };
        assert!(refused, "{how}: the peer address accepted an outsider's AppendEntries");
    }
    // The public address does not serve Raft at all.
    let mut raft = raft_over(&c.public[leader as usize - 1], Some(ca())).await.unwrap();
    let e = raft.append_entries(depose(term + 10, id)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    // A peer's certificate does get through (a harmless stale term): the refusals above were the certificates'.
    let mut raft = raft_over(peer, Some(with_identity("node"))).await.unwrap();
    raft.append_entries(depose(0, id)).await.unwrap();

    let after = client.status().await.unwrap();
    assert_eq!((after.leader_id, after.term), (leader, term), "the leader was disturbed");
    assert!(client.namespace("tls").cas_put("k2", "still writable", 0).await.unwrap().success);
}

/// Certificates made by `scripts/make-certs.sh` (openssl), as the README does it.
fn pki_from_script() -> Pki {
    let pki = Pki { dir: tempfile::tempdir().unwrap() };
    script_certs(pki.dir.path());
    pki
}

fn script_certs(dir: &std::path::Path) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-certs.sh");
    let out = Command::new("bash").arg(script).arg(dir).arg("127.0.0.1").output().unwrap();
    assert!(out.status.success(), "make-certs.sh: {}", String::from_utf8_lossy(&out.stderr));
    for (from, to) in [("node-1.pem", "node.pem"), ("node-1-key.pem", "node-key.pem")] {
        std::fs::copy(dir.join(from), dir.join(to)).unwrap();
    }
}

#[tokio::test]
async fn client_certificates_are_required_when_asked_for_and_renewed_certificates_load_without_a_restart() {
    let pki = pki_from_script();
    let c = start_tls_cluster(&pki, &["--client-cert-auth", "true"]);
    let with_cert = tls_client(&pki, &c.public, true);
    leader_of(&with_cert).await;
    assert!(with_cert.namespace("a").cas_put("k", "v", 0).await.unwrap().success);
    let without = RdbClient::with_config(
        c.public.clone(),
        ClientConfig { retry_budget: Duration::ZERO, ..test_client_config() }
            .with_tls_files(&pki.path("ca.pem"), None)
            .unwrap(),
    )
    .unwrap();
    assert!(without.namespace("a").cas_get("k").await.is_err(), "no client certificate, no service");

    // A broken certificate file keeps the old certificate ...
    let node_pem = pki.read("node.pem");
    std::fs::write(pki.path("node.pem"), b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let probe = || async {
        let fresh = tls_client(&pki, &c.public[..1], true);
        fresh.namespace("a").cas_get("k").await.ok().flatten().map(|kv| kv.value)
    };
    wait_until("every node noticed the broken file", DEADLINE, || async {
        c.procs.iter().all(|p| p.log_text().contains("keeping the previous certificate")).then_some(())
    })
    .await;
    assert!(probe().await.is_some(), "a broken new certificate replaced the working one");
    // ... and a renewed one (a new CA, so clients of the old one are refused) is used without a restart.
    std::fs::write(pki.path("node.pem"), node_pem).unwrap();
    let renewed = Pki { dir: tempfile::tempdir().unwrap() };
    script_certs(renewed.dir.path());
    for f in ["node.pem", "node-key.pem", "ca.pem"] {
        std::fs::copy(renewed.path(f), pki.path(f)).unwrap();
    }
    let new_client = tls_client(&renewed, &c.public[..1], true);
    wait_until("the renewed certificate is served", DEADLINE, || async { new_client.status().await.ok() }).await;
}

#[tokio::test]
async fn a_client_certificate_names_its_user_once_auth_is_enabled() {
    use flaredb_client::{ClientError, PermissionType};
    let pki = Pki::new();
    let c = start_tls_cluster(&pki, &["--client-cert-auth", "true"]);
    let alice = tls_client(&pki, &c.public, true);
    leader_of(&alice).await;
    // Auth is off: anyone may set it up. "alice" (the CN of client.pem) has no password.
    alice.user_add("root", "rootpw").await.unwrap();
    add_user_with_role(&alice, "alice", "", "app-rw", "app", PermissionType::Readwrite).await;
    alice.create_namespace("app", flaredb_client::NamespaceMode::Strong).await.unwrap();
    alice.auth_enable().await.unwrap();
    // Through each node: a follower forwards with a token it signs for the certificate's user.
    for addr in &c.public {
        let one = tls_client(&pki, std::slice::from_ref(addr), true).namespace("app");
        one.cas_put(format!("k-{addr}"), "v", 0).await.unwrap();
        assert_eq!(one.scan_prefix("k-").await.unwrap().len(), c.public.iter().position(|a| a == addr).unwrap() + 1);
    }
    let denied = alice.namespace("other").cas_put("k", "v", 0).await.unwrap_err();
    assert!(matches!(&denied, ClientError::PermissionDenied(m) if m.contains("alice")), "{denied:?}");
    // A certificate-only user has no password: signing in by password fails.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
        .identity(Identity::from_pem(pki.read("client.pem"), pki.read("client-key.pem")));
    let ep = Endpoint::from_shared(format!("https://{}", c.public[0])).unwrap().tls_config(tls.clone()).unwrap();
    let mut auth = flaredb_proto::v1::auth_client::AuthClient::new(ep.connect().await.unwrap());
    let ask = flaredb_proto::v1::AuthenticateRequest { name: "alice".into(), password: String::new() };
    assert_eq!(auth.authenticate(ask).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    // A forwarded request's certificate is the forwarding node's: without a
    // token (a follower that has not applied AuthEnable yet sends none) it is
    // UNAVAILABLE and marked not applied, so the client retries; never taken
    // as the certificate's user (that was "node", refused as unknown).
    let (leader, _) = leader_of(&alice).await;
    let ep =
        Endpoint::from_shared(format!("https://{}", c.public[leader as usize - 1])).unwrap().tls_config(tls).unwrap();
    let mut kv = flaredb_proto::v1::kv_cas_client::KvCasClient::new(ep.connect().await.unwrap());
    let get = || flaredb_proto::v1::GetRequest { key: "k".into(), namespace: "app".into() };
    assert!(kv.get(get()).await.is_ok(), "the certificate's own user reads");
    let mut forwarded = tonic::Request::new(get());
    forwarded.metadata_mut().insert("x-flaredb-forwarded", "1".parse().unwrap());
    let refused = kv.get(forwarded).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.metadata().contains_key("x-flaredb-not-applied"), "{refused:?}");
}
