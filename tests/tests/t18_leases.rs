//! Leases end to end: keys deleted (with watch DELETE events) when their
//! lease is revoked or expires, keep-alives through any node, no early
//! expiry across a leader change, and the Lock and election helpers.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use flaredb_client::{ClientError, RdbClient, TxnOp, WatchEvent, WatchEventKind};
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use flaredb_tests::{b64, grpcurl_run, wait_until, Cluster, ClusterOpts};
use futures::StreamExt;

const DEADLINE: Duration = Duration::from_secs(30);

fn collect(client: &RdbClient, key: &str, from: u64) -> Arc<Mutex<Vec<WatchEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut events = Box::pin(client.watch(key.to_owned()).prefix().from_version(from).start());
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(e)) = events.next().await {
            if e.kind != WatchEventKind::Progress {
                sink.lock().unwrap().push(e);
            }
        }
    });
    seen
}

async fn gone(client: &RdbClient, key: &str) {
    wait_until(&format!("{key} deleted"), DEADLINE, || async {
        client.cas_get(key.to_owned()).await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn revoke_and_expiry_delete_the_leased_keys_with_delete_events() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let (id, ttl) = client.lease_grant(60).await.unwrap();
    assert_eq!(ttl, 60);
    let a = client.cas_put_with_lease("l/a", "1", 0, id).await.unwrap();
    let t = client.txn().when([]).and_then([TxnOp::put_with_lease("l/b", "2", id), TxnOp::put("l/c", "3")]);
    let t = t.commit().await.unwrap();
    let seen = collect(&client, "l/", a.new_version);

    let info = client.lease_time_to_live(id, true).await.unwrap().expect("lease exists");
    assert_eq!(client.status().await.unwrap().leases, 1);
    assert_eq!(info.granted_ttl_secs, 60);
    assert!(info.ttl_secs > 55 && info.ttl_secs <= 60, "{info:?}");
    let keys: Vec<(&str, &[u8])> = info.keys.iter().map(|(ns, k)| (ns.as_str(), &k[..])).collect();
    assert_eq!(keys, [("default", &b"l/a"[..]), ("default", &b"l/b"[..])]);

    assert_eq!(client.lease_revoke(id).await.unwrap(), Some(2));
    assert_eq!(client.lease_revoke(id).await.unwrap(), None, "a second revoke finds nothing");
    assert!(client.lease_time_to_live(id, false).await.unwrap().is_none());
    assert!(client.cas_get("l/a").await.unwrap().is_none() && client.cas_get("l/b").await.unwrap().is_none());
    assert_eq!(client.cas_get("l/c").await.unwrap().unwrap().version, t.revision, "a key without lease stays");
    let events = wait_until("the DELETE events", DEADLINE, || async {
        let s = seen.lock().unwrap().clone();
        (s.iter().filter(|e| e.kind == WatchEventKind::Delete).count() >= 2).then_some(s)
    })
    .await;
    let deletes: Vec<(&[u8], u64)> =
        events.iter().filter(|e| e.kind == WatchEventKind::Delete).map(|e| (&e.key[..], e.prev_version)).collect();
    assert_eq!(deletes, [(&b"l/a"[..], a.new_version), (&b"l/b"[..], t.revision)]);

    // An unknown lease: NOT_FOUND and nothing written, for a put and a txn.
    let e = client.cas_put_with_lease("l/x", "v", 0, id).await.unwrap_err();
    assert!(matches!(&e, ClientError::NotFound(m) if m.contains(&format!("lease {id} not found"))), "{e}");
    let e = client.txn().when([]).and_then([TxnOp::put("l/y", "1"), TxnOp::put_with_lease("l/z", "1", id)]);
    assert!(matches!(e.commit().await, Err(ClientError::NotFound(_))));
    assert!(client.cas_get("l/x").await.unwrap().is_none() && client.cas_get("l/y").await.unwrap().is_none());

    // Not kept alive: the leader expires it after its TTL (raised to 2 s).
    let (short, ttl) = client.lease_grant(1).await.unwrap();
    assert_eq!(ttl, 2, "raised to the minimum");
    let started = Instant::now();
    client.cas_put_with_lease("l/short", "v", 0, short).await.unwrap();
    gone(&client, "l/short").await;
    assert!(started.elapsed() >= Duration::from_millis(1900), "expired early: {:?}", started.elapsed());
    assert!(client.lease_time_to_live(short, false).await.unwrap().is_none());
    assert_eq!(client.status().await.unwrap().leases, 0);
}

#[tokio::test]
async fn a_kept_lease_outlives_its_ttl_and_a_dropped_one_expires() {
    let c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // Keep-alives through a follower, which pipes the stream to the leader.
    let client = c.client_for(follower);
    let lease = client.lease(2).await.unwrap();
    client.cas_put_with_lease("kept", "v", 0, lease.id()).await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let info = client.lease_time_to_live(lease.id(), false).await.unwrap().expect("kept alive");
        assert!(info.ttl_secs >= 1, "{info:?}");
        assert!(lease.is_alive());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(client.cas_get("kept").await.unwrap().is_some());
    // The holder stops (as if it died): the key goes within TTL + slack.
    let id = lease.id();
    drop(lease);
    gone(&client, "kept").await;
    assert!(client.lease_time_to_live(id, false).await.unwrap().is_none());
}

#[tokio::test]
async fn leases_survive_kill_9_of_every_node_and_still_expire() {
    let mut c = Cluster::start(3).await;
    let client = c.client();
    let (id, _) = client.lease_grant(3).await.unwrap();
    let put = client.cas_put_with_lease("durable", "v", 0, id).await.unwrap();
    for n in 1..=3 {
        c.kill(n);
    }
    for n in 1..=3 {
        c.start_node(n);
    }
    c.wait_leader().await;
    // Acknowledged, so still there after the restart, with its key attached.
    let info = client.lease_time_to_live(id, true).await.unwrap().expect("the lease survived the restart");
    assert_eq!(info.keys.len(), 1, "{info:?}");
    assert_eq!(client.cas_get("durable").await.unwrap().unwrap().version, put.new_version);
    gone(&client, "durable").await;
    assert!(client.lease_time_to_live(id, false).await.unwrap().is_none());
}

#[tokio::test]
async fn a_node_that_catches_up_by_snapshot_has_the_leases_of_the_snapshot() {
    let opts =
        ClusterOpts { snapshot_logs_since_last: 50, max_logs_to_keep: 10, fault_injection: true, ..Default::default() };
    let mut c = Cluster::start_with(3, opts).await;
    let leader = c.wait_leader().await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    let client = c.client();
    let (before, _) = client.lease_grant(60).await.unwrap();
    let v = client.cas_put_with_lease("s/before", "v", 0, before).await.unwrap().new_version;
    c.wait_applied(lagging, v).await;
    assert_eq!(c.client_for(lagging).status().await.unwrap().leases, 1);

    // Cut off while one lease goes and another comes, and the log is purged past it.
    let others: Vec<u64> = (1..=3).filter(|id| *id != lagging).collect();
    c.partition(&[&[lagging], &others]).await;
    client.lease_revoke(before).await.unwrap();
    let (after, _) = client.lease_grant(60).await.unwrap();
    client.lease_grant(60).await.unwrap();
    client.cas_put_with_lease("s/after", "v", 0, after).await.unwrap();
    c.client_for(leader).snapshot().await.unwrap();
    let behind = c.client_for(lagging).status().await.unwrap().applied_index;
    let leader_client = c.client_for(leader);
    let mut i = 0;
    wait_until("the leader purged past the cut-off node", DEADLINE, || {
        i += 1;
        let (client, leader_client, key) = (client.clone(), leader_client.clone(), format!("s/{i}"));
        async move {
            client.cas_put(key, "v", 0).await.ok()?;
            (leader_client.status().await.ok()?.purged_index > behind).then_some(())
        }
    })
    .await;
    let last = client.cas_get(format!("s/{i}")).await.unwrap().unwrap().version;
    c.heal().await;
    c.wait_applied(lagging, last).await;
    let s = c.client_for(lagging).status().await.unwrap();
    assert!(s.oldest_watch_revision > 1, "node {lagging} did not install a snapshot");
    // Its table came from the snapshot: the revoked lease gone, the new ones there.
    assert_eq!(s.leases, 2);
    let info = client.lease_time_to_live(after, true).await.unwrap().unwrap();
    assert_eq!(info.keys.len(), 1);
}

#[tokio::test]
async fn a_kept_lease_rides_out_a_paused_leader() {
    let c = Cluster::start(3).await;
    let old = c.wait_leader().await;
    // The client knows the leader first, then the others.
    let mut endpoints = vec![c.addr(old)];
    endpoints.extend((1..=3).filter(|id| *id != old).map(|id| c.addr(id)));
    let client = RdbClient::with_config(endpoints, flaredb_tests::test_client_config()).unwrap();
    let lease = client.lease(6).await.unwrap();
    client.cas_put_with_lease("paused", "v", 0, lease.id()).await.unwrap();
    c.pause(old);
    // Two TTLs later: the keeper left the stopped node and renewed through
    // the others (the new leader restarted the lease's TTL when elected).
    let until = Instant::now() + Duration::from_secs(12);
    while Instant::now() < until {
        assert!(lease.is_alive(), "{:?}", lease.state());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let info = client.lease_time_to_live(lease.id(), false).await.unwrap().expect("kept alive");
    assert!(info.ttl_secs >= 3, "{info:?}");
    assert!(client.cas_get("paused").await.unwrap().is_some());
    c.resume(old);
}

#[tokio::test]
async fn one_client_keeps_many_leases_and_lets_go_of_each_alone() {
    let c = Cluster::start(1).await;
    let client = c.client();
    let mut leases = Vec::new();
    for i in 0..40 {
        let lease = client.lease(2 + i % 3).await.unwrap();
        client.cas_put_with_lease(format!("many/{i:02}"), "v", 0, lease.id()).await.unwrap();
        leases.push(lease);
    }
    // Half let go (dropped): only their keys go, after their TTL.
    let kept: Vec<_> = leases.drain(..).enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, l)| l).collect();
    wait_until("the dropped leases' keys deleted", DEADLINE, || async {
        (client.scan_prefix("many/").await.ok()?.len() == 20).then_some(())
    })
    .await;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(kept.iter().all(|l| l.is_alive()), "a kept lease was lost");
    }
    let left: Vec<String> =
        client.scan_prefix("many/").await.unwrap().iter().map(|kv| String::from_utf8_lossy(&kv.key).into()).collect();
    let even: Vec<String> = (0..40).step_by(2).map(|i| format!("many/{i:02}")).collect();
    assert_eq!(left, even);
    assert_eq!(client.status().await.unwrap().leases, 20);
}

#[tokio::test]
async fn a_leader_change_gives_every_lease_its_full_ttl_again() {
    let mut c = Cluster::start(3).await;
    let old = c.wait_leader().await;
    let client = c.client();
    let (id, _) = client.lease_grant(4).await.unwrap();
    client.cas_put_with_lease("held", "v", 0, id).await.unwrap();
    // Let it run down to its last second on the old leader, then kill it.
    wait_until("the lease nearly expired", DEADLINE, || async {
        let info = client.lease_time_to_live(id, false).await.ok()??;
        (info.ttl_secs <= 1).then_some(())
    })
    .await;
    c.kill(old);
    let new = c.wait_leader().await;
    assert_ne!(new, old);
    // Its old deadline has passed by now; the new leader restarted it.
    let info = client.lease_time_to_live(id, false).await.unwrap().expect("not expired early by the failover");
    assert!(info.ttl_secs >= 2, "{info:?}");
    assert!(client.cas_get("held").await.unwrap().is_some());
    // And it still expires, by the new leader's clock.
    gone(&client, "held").await;
}

#[tokio::test]
async fn the_lock_passes_on_when_its_holder_dies_with_a_larger_fencing_token() {
    let c = Cluster::start(1).await;
    let (a, b) = (c.client().namespace("locks"), c.client().namespace("locks"));
    let held = a.lock("job", "a", 2).await.unwrap();
    assert!(b.try_lock("job", "b", 2).await.unwrap().is_none(), "the lock is held");
    let waiter = tokio::spawn(async move { b.lock("job", "b", 2).await });
    let token = held.fencing_token();
    assert_eq!(a.election_leader("job").await.unwrap().map(|v| v.version), Some(token));
    // The holder dies (its keep-alive stops): the waiter gets it after the TTL.
    let died = Instant::now();
    drop(held);
    let next = tokio::time::timeout(DEADLINE, waiter).await.unwrap().unwrap().unwrap();
    assert!(died.elapsed() >= Duration::from_millis(1500), "taken over early: {:?}", died.elapsed());
    assert!(next.fencing_token() > token);
    assert_eq!(a.election_leader("job").await.unwrap().unwrap().value, "b");
    // Released at once on release.
    let t2 = next.fencing_token();
    next.release().await.unwrap();
    let again = a.try_lock("job", "a", 2).await.unwrap().expect("free after release");
    assert!(again.fencing_token() > t2);
}

#[tokio::test]
async fn an_elected_leader_proclaims_and_observers_read_it() {
    let c = Cluster::start(1).await;
    let client = c.client().namespace("el");
    let mut leader = client.campaign("svc", "node-1", 5).await.unwrap();
    let v = leader.proclaim("node-1 v2").await.unwrap();
    let seen = client.election_leader("svc").await.unwrap().unwrap();
    assert_eq!((&seen.value[..], seen.version), (&b"node-1 v2"[..], v));
    // Deleted under it (an operator) and taken by another: proclaiming no longer writes.
    let mut other = {
        client.cas_delete("svc", v).await.unwrap();
        client.campaign("svc", "node-2", 5).await.unwrap()
    };
    let e = leader.proclaim("node-1 v3").await.unwrap_err();
    assert!(matches!(e, flaredb_client::ClientError::LockLost(_)), "{e}");
    assert_eq!(&client.election_leader("svc").await.unwrap().unwrap().value[..], b"node-2");
    other.proclaim("node-2 v2").await.unwrap();
    other.release().await.unwrap();
    leader.release().await.unwrap();
    assert!(client.election_leader("svc").await.unwrap().is_none());
}

#[tokio::test]
async fn grpcurl_drives_leases_with_the_documented_names() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let (ok, out, err) = grpcurl_run(&addr, Some(r#"{"ttl_seconds":30}"#), &["flaredb.v1.KvCas/LeaseGrant"]);
    assert!(ok, "{out}{err}");
    let id: u64 = out.split("\"leaseId\": \"").nth(1).and_then(|s| s.split('"').next()).unwrap().parse().unwrap();
    let put = format!(r#"{{"key":"{}","value":"{}","lease_id":{id}}}"#, b64("g/k"), b64("v"));
    let (ok, out, err) = grpcurl_run(&addr, Some(&put), &["flaredb.v1.KvCas/CompareAndSwap"]);
    assert!(ok && out.contains("\"success\": true"), "{out}{err}");
    let ttl = format!(r#"{{"lease_id":{id},"keys":true}}"#);
    let (ok, out, err) = grpcurl_run(&addr, Some(&ttl), &["flaredb.v1.KvCas/LeaseTimeToLive"]);
    assert!(ok && out.contains(&b64("g/k")) && out.contains("\"grantedTtlSeconds\": \"30\""), "{out}{err}");
    let ka = format!(r#"{{"lease_id":{id}}}"#);
    let (ok, out, err) = grpcurl_run(&addr, Some(&ka), &["flaredb.v1.KvCas/LeaseKeepAlive"]);
    assert!(ok && out.contains("\"ttlSeconds\": \"30\""), "{out}{err}");
    let (ok, out, err) = grpcurl_run(&addr, Some(&ka), &["flaredb.v1.KvCas/LeaseRevoke"]);
    assert!(ok && out.contains("\"deleted\": \"1\""), "{out}{err}");
    let (ok, out, err) = grpcurl_run(&addr, Some(&ka), &["flaredb.v1.KvCas/LeaseRevoke"]);
    assert!(!ok && err.contains("NotFound") && err.contains(&format!("lease {id} not found")), "{out}{err}");

    // Bad input: clear statuses, nothing granted.
    let mut raw = KvCasClient::connect(format!("http://{addr}")).await.unwrap();
    let e = raw.lease_grant(pb::LeaseGrantRequest { ttl_seconds: 0 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let e = raw.lease_revoke(pb::LeaseRevokeRequest { lease_id: 0 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // A keep-alive of an unknown lease answers TTL 0 and the stream goes on.
    let reqs = futures::stream::iter([pb::LeaseKeepAliveRequest { lease_id: id }]);
    let mut s = raw.lease_keep_alive(reqs).await.unwrap().into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().ttl_seconds, 0);
}
