//! A node's data dir belongs to one cluster: a node carrying another
//! cluster's data dir is refused by its peers and refuses them, and the
//! cluster carries on. Clean shutdown on SIGTERM.

use flaredb_tests::{wait_until, Cluster, DEADLINE};

#[tokio::test]
async fn a_data_dir_from_another_cluster_is_refused() {
    let mut ours = Cluster::start(3).await;
    let other = Cluster::start(3).await;
    other.client().namespace("theirs").raw_put("k", "foreign").await.unwrap();
    ours.wait_leader().await;

    // Node 3 of our cluster restarts on node 3's data dir of the other cluster.
    let leader = ours.wait_leader().await;
    let victim = if leader == 3 { 2 } else { 3 };
    ours.kill(victim);
    let mut other = other;
    // Applied there before it stops: an acknowledged write is only known to
    // be committed on a majority, which need not include the victim yet.
    let there = other.client_for(victim).namespace("theirs");
    wait_until("the foreign write applied on the victim", DEADLINE, || async {
        (there.raw_get("k").await.ok()?.as_deref() == Some(&b"foreign"[..])).then_some(())
    })
    .await;
    other.kill(victim);
    // Started without --initial-cluster (a node with data ignores it anyway:
    // see the next test), so only the peers can tell.
    let foreign_dir = other.nodes[&victim].data_dir.display().to_string();
    let log = ours.dir.path().join("foreign.log");
    let _foreign = flaredb_tests::spawn_server(
        &["--id", &victim.to_string(), "--listen", &ours.addr(victim), "--data-dir", &foreign_dir].map(String::from),
        &log,
    );

    // Our cluster keeps working on its remaining majority ...
    let kv = ours.client_for(leader).namespace("ours");
    assert!(kv.cas_put("k", "v", 0).await.unwrap().success);
    // ... and the foreign node says why it is refused.
    wait_until("the refusal in the foreign node's log", DEADLINE, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("another cluster").then_some(())
    })
    .await;
    // It never takes our data: its local state is still the other cluster's.
    let local = ours.client_for(victim).namespace("theirs");
    assert_eq!(local.raw_get("k").await.unwrap().as_deref(), Some(&b"foreign"[..]));
}

#[tokio::test]
async fn initial_cluster_is_ignored_on_a_node_with_data() {
    let mut a = Cluster::start(1).await;
    a.client().namespace("kept").raw_put("k", "v").await.unwrap();
    a.kill(1);
    let dir = a.nodes[&1].data_dir.display().to_string();
    let addr = a.addr(1);
    // A flag describing another cluster changes nothing on a node with data
    // (its cluster id was stored at bootstrap); the log says it is ignored.
    let other = format!("1={addr},2=127.0.0.1:1");
    let log = a.dir.path().join("ignored.log");
    let args = ["--id", "1", "--listen", &addr, "--data-dir", &dir, "--initial-cluster", &other];
    a.nodes.get_mut(&1).unwrap().proc = Some(flaredb_tests::spawn_server(&args.map(String::from), &log));
    a.wait_leader().await;
    assert_eq!(a.client().namespace("kept").raw_get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(a.client().status().await.unwrap().members.len(), 1, "membership comes from the log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("--initial-cluster is ignored"), "{text}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let mut c = Cluster::start(1).await;
    c.client().namespace("term").raw_put("k", "v").await.unwrap();
    let proc = c.nodes.get_mut(&1).unwrap().proc.as_mut().unwrap();
    let status = std::process::Command::new("kill").args(["-TERM", &proc.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let child = std::sync::Mutex::new(&mut proc.child);
    let exit = wait_until("exit after SIGTERM", DEADLINE, || {
        let r = child.lock().unwrap().try_wait().ok().flatten();
        async move { r }
    })
    .await;
    assert!(exit.success(), "exit status {exit:?}: {}", proc.log_text());
    c.start_node(1);
    c.wait_leader().await;
    assert_eq!(c.client().namespace("term").raw_get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}
