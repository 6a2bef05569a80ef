//! Membership and operations through the Admin RPCs: learners, joint
//! consensus, removal (of the leader too), leader transfer, snapshots,
//! backup and restore.

use std::collections::BTreeSet;

use flaredb_client::ClientError;
use flaredb_tests::{spawn_server, wait_until, Cluster, DEADLINE};

#[tokio::test]
async fn a_learner_joins_catches_up_and_becomes_a_voter() {
    let mut c = Cluster::start(3).await;
    let raw = c.client().namespace("grow-raw");
    for i in 0..100u32 {
        raw.raw_put(format!("k{i:03}"), "v").await.unwrap();
    }
    c.client().snapshot().await.unwrap();

    let addr = c.start_joining(4);
    let members = c.client().add_learner(4, &addr, true).await.unwrap();
    let m4 = members.iter().find(|m| m.id == 4).expect("node 4 listed");
    assert!(!m4.voter);
    // A learner serves raw reads from its own state machine, which applies what it received.
    let on4 = c.client_for(4).namespace("grow-raw");
    wait_until("node 4 holds all 100 keys", DEADLINE, || async {
        (on4.raw_scan_prefix("k").await.ok()?.len() == 100).then_some(())
    })
    .await;

    let members = c.client().change_membership(BTreeSet::from([1, 2, 3, 4])).await.unwrap();
    assert!(members.iter().all(|m| m.voter), "{members:?}");
    // The leader reports every member's matched index.
    let leader = c.wait_leader().await;
    let st = c.client_for(leader).status().await.unwrap();
    assert!(st.members.iter().all(|m| m.matched_index > 0), "{:?}", st.members);

    // Voters 1..=4 now; a write needs 3 of them: kill two others and it must still fail over cleanly.
    raw.raw_put("after", "4 voters").await.unwrap();
    wait_until("node 4 applies", DEADLINE, || async {
        c.client_for(4).namespace("grow-raw").raw_get("after").await.ok()?.map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn bad_membership_changes_are_refused() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let e = client.change_membership(BTreeSet::new()).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("at least one voter")), "{e}");
    let e = client.change_membership(BTreeSet::from([1, 9])).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("node 9")), "{e}");
    let e = client.remove_node(9).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("not a member")), "{e}");
    let e = client.remove_node(1).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("last voter")), "{e}");
    let e = client.transfer_leader(7).await.unwrap_err();
    assert!(matches!(e, ClientError::FailedPrecondition(_)), "{e}");
    let e = client.add_learner(1, "127.0.0.1:1", false).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("never reused")), "{e}");
    let e = client.add_learner(5, "not-an-addr", false).await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e}");
    assert_eq!(client.status().await.unwrap().members.len(), 1, "nothing changed");
}

#[tokio::test]
async fn leadership_moves_and_a_removed_leader_hands_over_first() {
    let c = Cluster::start(3).await;
    let client = c.client();
    let leader = c.wait_leader().await;
    let target = (1..=3).find(|id| *id != leader).unwrap();
    client.transfer_leader(target).await.unwrap();
    assert_eq!(c.wait_leader().await, target);

    // Remove the current leader through itself: it hands over, then is removed.
    let members = c.client_for(target).remove_node(target).await.unwrap();
    assert!(members.iter().all(|m| m.id != target), "{members:?}");
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != target).collect();
    let new_leader = wait_until("a leader among the survivors", DEADLINE, || async {
        let s = c.client_for(survivors[0]).status().await.ok()?;
        survivors.contains(&s.leader_id).then_some(s.leader_id)
    })
    .await;
    let term = c.client_for(new_leader).status().await.unwrap().term;
    // The removed node keeps running; it must not disturb the cluster.
    let kv = c.client_for(new_leader).namespace("after-removal");
    for i in 0..30u32 {
        assert!(kv.cas_put(format!("k{i}"), "v", 0).await.unwrap().success);
    }
    let st = c.client_for(new_leader).status().await.unwrap();
    assert_eq!((st.leader_id, st.term), (new_leader, term), "the removed node disturbed the cluster");
    // Its id is retired: it cannot come back under the same id, even with a new data dir.
    let e = c.client_for(new_leader).add_learner(target, "127.0.0.1:9", false).await.unwrap_err();
    assert!(matches!(&e, ClientError::FailedPrecondition(m) if m.contains("never reused")), "{e}");
}

#[tokio::test]
async fn backup_restores_into_a_new_cluster_and_corrupt_backups_are_refused() {
    let c = Cluster::start(3).await;
    let kv = c.client().namespace("bk");
    let mut versions = Vec::new();
    for i in 0..40u32 {
        versions.push(kv.cas_put(format!("k{i:02}"), format!("v{i}"), 0).await.unwrap().new_version);
    }
    c.client().namespace("bk-raw").raw_put("r", "raw").await.unwrap();
    let mut bytes = Vec::new();
    let n = c.client().backup(&mut bytes).await.unwrap();
    assert_eq!(n as usize, bytes.len());
    let file = c.dir.path().join("backup.fdb");
    std::fs::write(&file, &bytes).unwrap();

    // Through the CLI (`flaredb restore`), which runs `flaredb-server restore`.
    let restore = |from: &std::path::Path, dir: &std::path::Path, addr: &str| {
        std::process::Command::new(flaredb_tests::cli_bin())
            .args(["restore", "--id", "1", "--listen", addr])
            .arg(from)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    // Truncated and altered backups are refused and leave nothing behind.
    for (name, data) in [
        ("cut", bytes[..bytes.len() / 2].to_vec()),
        ("flip", {
            let mut b = bytes.clone();
            let mid = b.len() / 3;
            b[mid] ^= 0x40;
            b
        }),
    ] {
        let bad = c.dir.path().join(name);
        std::fs::write(&bad, data).unwrap();
        let dir = c.dir.path().join(format!("restore-{name}"));
        let out = restore(&bad, &dir, "127.0.0.1:1");
        assert!(!out.status.success(), "{name} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("corrupt") || err.contains("truncated") || err.contains("checksum"), "{name}: {err}");
        assert!(!dir.join("db").exists(), "{name}: a refused restore wrote a DB");
    }

    let addr = format!("127.0.0.1:{}", flaredb_tests::free_port());
    let dir = c.dir.path().join("restored");
    let out = restore(&file, &dir, &addr);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _node = spawn_server(
        &["--id".into(), "1".into(), "--listen".into(), addr.clone(), "--data-dir".into(), dir.display().to_string()],
        &c.dir.path().join("restored.log"),
    );
    let client = flaredb_client::RdbClient::with_config([addr.clone()], flaredb_tests::test_client_config()).unwrap();
    wait_until("restored node leads", DEADLINE, || async {
        (client.status().await.ok()?.leader_id == 1).then_some(())
    })
    .await;
    let kv = client.namespace("bk");
    for (i, v) in versions.iter().enumerate() {
        let got = kv.cas_get(format!("k{i:02}")).await.unwrap().expect("restored key");
        assert_eq!((got.value, got.version), (format!("v{i}").into(), *v));
    }
    assert_eq!(client.namespace("bk-raw").raw_get("r").await.unwrap().as_deref(), Some(&b"raw"[..]));
    let st = client.status().await.unwrap();
    assert_eq!(st.members.len(), 1, "a restored node is a one-node cluster");
    // New writes get versions above every restored one.
    let next = kv.cas_put("new", "x", 0).await.unwrap();
    assert!(next.new_version > *versions.iter().max().unwrap());

    // The restored node grows into a cluster again: a learner joins and catches up.
    let learner_addr = format!("127.0.0.1:{}", flaredb_tests::free_port());
    let learner_dir = c.dir.path().join("restored-learner").display().to_string();
    let _learner = spawn_server(
        &["--id", "2", "--listen", &learner_addr, "--data-dir", &learner_dir, "--join", &addr].map(String::from),
        &c.dir.path().join("restored-learner.log"),
    );
    client.add_learner(2, &learner_addr, true).await.unwrap();
    let on2 = flaredb_client::RdbClient::with_config([learner_addr], flaredb_tests::test_client_config())
        .unwrap()
        .namespace("bk-raw");
    wait_until("the learner of the restored cluster has the data", DEADLINE, || async {
        on2.raw_get("r").await.ok()?.map(|_| ())
    })
    .await;
}
