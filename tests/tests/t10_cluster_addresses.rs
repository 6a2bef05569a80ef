//! How nodes find each other (issue 9 §5): the cluster id is stored at
//! bootstrap, so a member restarted with an updated --initial-cluster rejoins;
//! with --peer-listen, Raft runs on its own address and the public one serves
//! clients only.

use std::{collections::BTreeSet, path::Path};

use flaredb_client::RdbClient;
use flaredb_proto::{
    raft::{raft_client::RaftClient, VoteRequest},
    v1::{kv_cas_client::KvCasClient, GetRequest},
};
use flaredb_tests::{free_port, spawn_server, test_client_config, wait_until, Cluster, ServerProc, DEADLINE};
use tonic::Code;

#[tokio::test]
async fn an_original_member_rejoins_with_the_grown_initial_cluster() {
    let mut c = Cluster::start(3).await;
    let addr4 = c.start_joining(4);
    c.client().add_learner(4, &addr4, true).await.unwrap();
    c.client().change_membership(BTreeSet::from([1, 2, 3, 4])).await.unwrap();
    let raw = c.client().namespace("grown");
    raw.raw_put("before", "1").await.unwrap();

    // The operator updates the flag to the four members and restarts node 1 with it.
    c.kill(1);
    raw.raw_put("while-down", "2").await.unwrap();
    let spec = (1..=4).map(|id| format!("{id}={}", c.addr(id))).collect::<Vec<_>>().join(",");
    let (addr1, dir1) = (c.addr(1), c.nodes[&1].data_dir.display().to_string());
    let log = c.dir.path().join("n1-grown.log");
    let args = ["--id", "1", "--listen", &addr1, "--data-dir", &dir1, "--initial-cluster", &spec];
    c.nodes.get_mut(&1).unwrap().proc = Some(spawn_server(&args.map(String::from), &log));

    let on1 = c.client_for(1).namespace("grown");
    wait_until("node 1 rejoined and caught up", DEADLINE, || async {
        on1.raw_get("while-down").await.ok()?.map(|_| ())
    })
    .await;
    assert!(c.client_for(1).namespace("grown-cas").cas_put("k", "v", 0).await.unwrap().success);
    // A full voter again: it can lead.
    c.client().transfer_leader(1).await.unwrap();
    assert_eq!(c.wait_leader().await, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("--initial-cluster is ignored"), "{text}");
}

/// A node serving clients on `public` and Raft on `peer`.
struct PeerNode {
    public: String,
    peer: String,
    proc: Option<ServerProc>,
}

fn start(dir: &Path, id: u64, node: &PeerNode, extra: &[&str]) -> ServerProc {
    let data = dir.join(format!("n{id}")).display().to_string();
    let mut args: Vec<String> =
        ["--id", &id.to_string(), "--listen", &node.public, "--peer-listen", &node.peer].map(String::from).to_vec();
    args.extend(["--data-dir".to_string(), data]);
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn_server(&args, &dir.join(format!("n{id}.log")))
}

fn new_node() -> PeerNode {
    PeerNode { public: format!("127.0.0.1:{}", free_port()), peer: format!("127.0.0.1:{}", free_port()), proc: None }
}

/// (node id, node): ids count from 1.
fn ids(nodes: &[PeerNode]) -> Vec<(u64, &PeerNode)> {
    nodes.iter().zip(1u64..).map(|(n, id)| (id, n)).collect()
}

/// The leader every running node agrees on.
async fn agreed_leader(nodes: &[(u64, &PeerNode)]) -> u64 {
    let running: Vec<(u64, String)> =
        nodes.iter().filter(|(_, n)| n.proc.is_some()).map(|(id, n)| (*id, n.public.clone())).collect();
    wait_until("a leader all running nodes agree on", DEADLINE, || async {
        let mut leader = None;
        for (_, addr) in &running {
            let c = RdbClient::with_config([addr.clone()], test_client_config()).ok()?;
            let s = c.status().await.ok()?;
            let alive = running.iter().any(|(id, _)| *id == s.leader_id);
            if !alive || leader.is_some_and(|l| l != s.leader_id) {
                return None;
            }
            leader = Some(s.leader_id);
        }
        leader
    })
    .await
}

#[tokio::test]
async fn a_cluster_with_peer_listen_serves_fails_over_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<PeerNode> = (0..3).map(|_| new_node()).collect();
    let spec = nodes.iter().enumerate().map(|(i, n)| format!("{}={}@{}", i + 1, n.public, n.peer)).collect::<Vec<_>>();
    let spec = spec.join(",");
    for (i, n) in nodes.iter_mut().enumerate() {
        n.proc = Some(start(dir.path(), i as u64 + 1, n, &["--initial-cluster", &spec]));
    }
    let leader = agreed_leader(&ids(&nodes)).await;

    // Clients use the public addresses only; a follower forwards to the leader's public address.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let via_follower = RdbClient::with_config([nodes[follower as usize - 1].public.clone()], test_client_config())
        .unwrap()
        .namespace("peers");
    assert!(via_follower.cas_put("k", "v1", 0).await.unwrap().success);
    let members = via_follower.status().await.unwrap().members;
    for (m, n) in members.iter().zip(&nodes) {
        assert_eq!((m.addr.as_str(), m.peer_addr.as_str()), (n.public.as_str(), n.peer.as_str()), "{members:?}");
    }

    // The public address does not serve Raft; the peer address serves only Raft.
    let n1 = &nodes[0];
    let mut raft_on_public = RaftClient::connect(format!("http://{}", n1.public)).await.unwrap();
    assert_eq!(raft_on_public.vote(VoteRequest::default()).await.unwrap_err().code(), Code::Unimplemented);
    let mut raft_on_peer = RaftClient::connect(format!("http://{}", n1.peer)).await.unwrap();
    let refused = raft_on_peer.vote(VoteRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "Raft on the peer address checks the cluster id");
    let mut kv_on_peer = KvCasClient::connect(format!("http://{}", n1.peer)).await.unwrap();
    let get = GetRequest { key: "k".into(), namespace: "peers".into() };
    assert_eq!(kv_on_peer.get(get).await.unwrap_err().code(), Code::Unimplemented);

    // Failover runs over the peer addresses.
    nodes[leader as usize - 1].proc.take().unwrap().kill();
    let new_leader = agreed_leader(&ids(&nodes)).await;
    assert_ne!(new_leader, leader);
    let publics: Vec<String> = nodes.iter().map(|n| n.public.clone()).collect();
    let client = RdbClient::with_config(publics, test_client_config()).unwrap().namespace("peers");
    let got = client.cas_get("k").await.unwrap().expect("written before the failover");
    assert!(client.cas_put("k", "v2", got.version).await.unwrap().success);

    // A node joins with its own peer address, named as PUBLIC@PEER.
    let mut n4 = new_node();
    n4.proc = Some(start(dir.path(), 4, &n4, &["--join", &nodes[new_leader as usize - 1].public]));
    client.add_learner(4, &format!("{}@{}", n4.public, n4.peer), true).await.unwrap();
    let on4 = RdbClient::with_config([n4.public.clone()], test_client_config()).unwrap().namespace("peers-raw");
    client.namespace("peers-raw").raw_put("r", "x").await.unwrap();
    wait_until("node 4 receives the log over its peer address", DEADLINE, || async {
        on4.raw_get("r").await.ok()?.map(|_| ())
    })
    .await;
}
