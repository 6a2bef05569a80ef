//! KvCas/Watch end to end: events in order with no gap or duplicate, replay
//! from a version, pruned history answered OUT_OF_RANGE, a watcher that does
//! not read cut off without slowing anyone else, and a watch that survives
//! the kill -9 of the node serving it.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use flaredb_client::{ClientError, RdbClient, TxnOp, WatchEvent, WatchEventKind};
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use flaredb_tests::{b64, grpcurl_run, grpcurl_run_with, wait_until, Cluster, ClusterOpts};
use futures::StreamExt;

const DEADLINE: Duration = Duration::from_secs(30);

/// Collects a client watch's events (progress events left out) in the background.
fn collect(client: &RdbClient, key: &str, prefix: bool, from: u64) -> Arc<Mutex<Vec<WatchEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut w = client.watch(key.to_owned());
    if prefix {
        w = w.prefix();
    }
    let mut events = Box::pin(w.from_version(from).start());
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            let e = e.expect("watch failed");
            if e.kind != WatchEventKind::Progress {
                sink.lock().unwrap().push(e);
            }
        }
    });
    seen
}

async fn wait_for(seen: &Arc<Mutex<Vec<WatchEvent>>>, n: usize) -> Vec<WatchEvent> {
    wait_until(&format!("{n} watch events"), DEADLINE, || async {
        let s = seen.lock().unwrap();
        (s.len() >= n).then(|| s.clone())
    })
    .await
}

fn brief(events: &[WatchEvent]) -> Vec<(WatchEventKind, String, u64, u64)> {
    events.iter().map(|e| (e.kind, String::from_utf8_lossy(&e.key).into_owned(), e.version, e.prev_version)).collect()
}

#[tokio::test]
async fn events_come_in_order_with_previous_versions_and_replay_from_a_version() {
    let c = Cluster::start(1).await;
    let client = c.client().namespace("w");
    // From revision 1: whenever the watches attach, they miss nothing.
    let live = collect(&client, "svc/", true, 1);
    let one = collect(&client, "svc/a", false, 1);

    let a1 = client.cas_put("svc/a", "1", 0).await.unwrap().new_version;
    client.cas_put("other", "x", 0).await.unwrap();
    let b = client.cas_put("svc/b", "1", 0).await.unwrap().new_version;
    let a2 = client.cas_put("svc/a", "2", a1).await.unwrap().new_version;
    let t = client.txn().and_then([TxnOp::put("svc/c", "1"), TxnOp::delete_prefix("svc/a")]).commit().await.unwrap();
    let d = client.cas_delete("svc/b", b).await.unwrap();
    assert!(d.success);
    let del_b = client.cas_put("svc/z", "", 0).await.unwrap().new_version - 1;

    use WatchEventKind::{Delete, Put};
    let s = |k: &str| k.to_string();
    let expected = vec![
        (Put, s("svc/a"), a1, 0),
        (Put, s("svc/b"), b, 0),
        (Put, s("svc/a"), a2, a1),
        (Put, s("svc/c"), t.revision, 0),
        (Delete, s("svc/a"), t.revision, a2),
        (Delete, s("svc/b"), del_b, b),
        (Put, s("svc/z"), del_b + 1, 0),
    ];
    assert_eq!(brief(&wait_for(&live, expected.len()).await), expected);
    let only_a: Vec<_> = expected.iter().filter(|e| e.1 == "svc/a").cloned().collect();
    assert_eq!(brief(&wait_for(&one, only_a.len()).await), only_a);

    // From a version: the same events again, from history.
    let replayed = collect(&client, "svc/", true, a2);
    assert_eq!(brief(&wait_for(&replayed, 5).await), expected[2..]);
    let got = wait_for(&live, 7).await;
    assert_eq!(got[0].value, "1");
    assert_eq!(got[4].value, "", "a delete carries no value");
}

#[tokio::test]
async fn the_start_is_named_and_grpcurl_watches_with_the_documented_names() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client();
    let v = client.cas_put("g/k", "v", 0).await.unwrap().new_version;
    let (ok, desc, err) = grpcurl_run(&addr, None, &["describe", "flaredb.v1.KvCas.Watch"]);
    assert!(ok && desc.contains("stream .flaredb.v1.WatchEvent"), "{desc}{err}");
    let req = format!(r#"{{"key":"{}","prefix":true,"start_version":1}}"#, b64("g/"));
    // Ends at -max-time: what arrived by then is printed.
    let (_, out, _) = grpcurl_run_with(&["-max-time", "2"], &addr, Some(&req), &["flaredb.v1.KvCas/Watch"]);
    assert!(out.contains(&format!("\"version\": \"{v}\"")) && out.contains(&b64("g/k")), "{out}");

    // A watch from now first names the revision it starts after.
    let mut raw = KvCasClient::connect(format!("http://{addr}")).await.unwrap();
    let req = pb::WatchRequest { key: "g/".into(), prefix: true, ..Default::default() };
    let mut s = raw.watch(req).await.unwrap().into_inner();
    let first = s.message().await.unwrap().unwrap();
    assert!(first.progress && first.version >= v, "{first:?}");

    // Bad input.
    let bad = |req: pb::WatchRequest| {
        let mut raw = raw.clone();
        async move { raw.watch(req).await.err().map(|e| (e.code(), e.message().to_string())) }
    };
    let e = bad(pb::WatchRequest::default()).await.expect("empty key refused");
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{e:?}");
    let e = bad(pb::WatchRequest { namespace: "Bad".into(), key: "k".into(), ..Default::default() }).await.unwrap();
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{e:?}");
    client.namespace("ev").raw_put("k", "v").await.unwrap();
    let e = bad(pb::WatchRequest { namespace: "ev".into(), key: "k".into(), ..Default::default() }).await.unwrap();
    assert_eq!(e.0, tonic::Code::FailedPrecondition, "{e:?}");
}

#[tokio::test]
async fn pruned_history_is_out_of_range_naming_the_oldest_revision() {
    let opts = ClusterOpts {
        extra_toml: "watch_history_revisions = 5\nwatch_history_secs = 0\nwatch_history_check_ms = 50\n".into(),
        ..Default::default()
    };
    let c = Cluster::start_with(1, opts).await;
    let client = c.client();
    let mut last = 0;
    for i in 0..20 {
        last = client.cas_put(format!("p/{i}"), "v", 0).await.unwrap().new_version;
    }
    let oldest = wait_until("the history is pruned", DEADLINE, || async {
        let s = client.status().await.ok()?;
        (s.oldest_watch_revision > last - 5).then_some(s.oldest_watch_revision)
    })
    .await;
    let mut raw = KvCasClient::connect(format!("http://{}", c.addr(1))).await.unwrap();
    let req = pb::WatchRequest { key: "p/".into(), prefix: true, start_version: 2, ..Default::default() };
    let e = raw.watch(req).await.expect_err("a pruned revision is refused");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    assert!(e.message().contains(&format!("starts at revision {oldest}")), "{}", e.message());
    assert_eq!(e.metadata().get("flaredb-oldest-revision").unwrap().to_str().unwrap(), oldest.to_string());

    // The client helper reports it typed, after trying every node.
    let mut w = Box::pin(client.watch("p/").prefix().from_version(2).start());
    match w.next().await {
        Some(Err(ClientError::Compacted { oldest: o, .. })) => assert_eq!(o, oldest),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // What is retained still replays.
    let kept = collect(&client, "p/", true, oldest);
    assert_eq!(wait_for(&kept, (last - oldest + 1) as usize).await.last().unwrap().version, last);
}

#[tokio::test]
async fn a_watcher_that_does_not_read_is_cut_off_and_the_others_keep_up() {
    let opts = ClusterOpts {
        extra_toml: "watch_buffer_events = 4\nwatch_buffer_bytes = 262144\n".into(),
        ..Default::default()
    };
    let c = Cluster::start_with(1, opts).await;
    let client = c.client();
    let mut raw = KvCasClient::connect(format!("http://{}", c.addr(1))).await.unwrap();
    let req = pb::WatchRequest { key: "s/".into(), prefix: true, ..Default::default() };
    let mut slow = raw.watch(req).await.unwrap().into_inner();
    let start = slow.message().await.unwrap().unwrap().version;
    let fast = collect(&client, "s/", true, start + 1);

    // 200 writes of 64 KiB: far more than the stream, the connection's
    // windows and buffers and the watcher's own buffer hold together.
    let value = vec![b'x'; 64 << 10];
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    client.cas_put(format!("s/{w}/{i}"), value.clone(), 0).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(wait_for(&fast, 200).await.len(), 200, "a fast watcher missed events");

    // The slow one gets what was buffered, in order, then the reason and where to resume.
    let mut next = start + 1;
    let status = loop {
        let msg = tokio::time::timeout(DEADLINE, slow.message()).await;
        match msg.expect("the slow watcher was never cut off") {
            Ok(Some(e)) if e.progress => {}
            Ok(Some(e)) => {
                assert!(e.version >= next, "out of order: {} after {}", e.version, next - 1);
                next = e.version + 1;
            }
            Ok(None) => panic!("the slow watcher's stream ended without a status"),
            Err(s) => break s,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let resume: u64 = status.metadata().get("flaredb-resume-from").unwrap().to_str().unwrap().parse().unwrap();
    assert!(resume >= next && status.message().contains(&format!("start_version {resume}")), "{status:?}");
}

#[tokio::test]
async fn a_watch_continues_without_gap_or_duplicate_when_its_node_is_killed() {
    let mut c = Cluster::start(3).await;
    let watcher = c.client();
    let seen = collect(&watcher, "f/", true, 1);
    let writer = c.client();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let write = |n: std::ops::Range<u32>| {
        let (writer, acked) = (writer.clone(), acked.clone());
        async move {
            for i in n {
                let key = format!("f/{i}");
                match writer.cas_put(key.clone(), "v", 0).await {
                    Ok(o) => assert!(acked.lock().unwrap().insert((key, o.new_version))),
                    Err(ClientError::Indeterminate(_)) => {}
                    Err(e) => panic!("write {key}: {e}"),
                }
            }
        }
    };
    write(0..50).await;
    wait_for(&seen, 50).await;
    // The watch attached to the first endpoint, node 1.
    c.kill(1);
    write(50..150).await;
    let last = acked.lock().unwrap().iter().map(|(_, v)| *v).max().unwrap();
    let events = wait_until("the watch saw the last acknowledged write", DEADLINE, || async {
        let s = seen.lock().unwrap();
        s.last().is_some_and(|e| e.version >= last).then(|| s.clone())
    })
    .await;
    let got: Vec<(String, u64)> =
        events.iter().map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.version)).collect();
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "not in strictly increasing version order: {got:?}");
    let got_set: BTreeSet<(String, u64)> = got.iter().cloned().collect();
    let missing: Vec<_> = acked.lock().unwrap().difference(&got_set).cloned().collect();
    assert!(missing.is_empty(), "acknowledged writes missing from the watch: {missing:?}");
}

#[tokio::test]
async fn a_node_that_installs_a_snapshot_ends_its_watchers_and_they_resume_elsewhere() {
    let opts =
        ClusterOpts { snapshot_logs_since_last: 50, max_logs_to_keep: 10, fault_injection: true, ..Default::default() };
    let mut c = Cluster::start_with(3, opts).await;
    let leader = c.wait_leader().await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    // A watcher attached to the node that will install a snapshot first.
    let mut endpoints = vec![c.addr(lagging)];
    endpoints.extend((1..=3).filter(|id| *id != lagging).map(|id| c.addr(id)));
    let watcher = RdbClient::with_config(endpoints, flaredb_tests::test_client_config()).unwrap();
    let seen = collect(&watcher, "i/", true, 1);
    let client = c.client();
    for i in 0..10 {
        client.cas_put(format!("i/{i}"), "v", 0).await.unwrap();
    }
    wait_for(&seen, 10).await;

    // Cut it off while the others write past a snapshot and purge the log.
    let others: Vec<u64> = (1..=3).filter(|id| *id != lagging).collect();
    c.partition(&[&[lagging], &others]).await;
    for i in 10..190 {
        client.cas_put(format!("i/{i}"), "v", 0).await.unwrap();
    }
    // A snapshot now; the log before it (but the last 10 entries) is purged
    // once no replication uses it.
    c.client_for(leader).snapshot().await.unwrap();
    let behind = c.client_for(lagging).status().await.unwrap().applied_index;
    let leader_client = c.client_for(leader);
    let mut i = 190;
    wait_until("the leader purged past the cut-off node", DEADLINE, || {
        i += 1;
        let (client, leader_client, key) = (client.clone(), leader_client.clone(), format!("i/{}", i - 1));
        async move {
            client.cas_put(key, "v", 0).await.ok()?;
            (leader_client.status().await.ok()?.purged_index > behind).then_some(())
        }
    })
    .await;
    let last = client.cas_get(format!("i/{}", i - 1)).await.unwrap().unwrap().version;
    c.heal().await;
    c.wait_applied(lagging, last).await;

    // It caught up by a snapshot: its history starts after it.
    let oldest = c.client_for(lagging).status().await.unwrap().oldest_watch_revision;
    assert!(oldest > 1, "node {lagging} did not install a snapshot (oldest watch revision {oldest})");
    let mut raw = KvCasClient::connect(format!("http://{}", c.addr(lagging))).await.unwrap();
    let req = pb::WatchRequest { key: "i/".into(), prefix: true, start_version: 1, ..Default::default() };
    assert_eq!(raw.watch(req).await.expect_err("history before the snapshot").code(), tonic::Code::OutOfRange);

    // The watcher moved on without a gap or a duplicate.
    let events = wait_for(&seen, i).await;
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(events.len(), i, "{versions:?}");
    assert_eq!(versions.last(), Some(&last));
}

#[tokio::test]
async fn a_dropped_watch_is_unregistered_at_once() {
    // Progress events only every 10 minutes: nothing else would wake an idle watch.
    let opts = ClusterOpts { extra_toml: "watch_progress_ms = 600000\n".into(), ..Default::default() };
    let c = Cluster::start_with(1, opts).await;
    let client = c.client();
    let watchers = || async { client.status().await.ok().map(|s| s.watchers) };
    let mut events = Box::pin(client.watch("idle/").prefix().start());
    // Registered once the first (progress) message arrived.
    events.next().await.expect("open").expect("the starting progress event");
    assert_eq!(watchers().await, Some(1));
    drop(events);
    wait_until("the dropped watch is unregistered", Duration::from_secs(5), || async {
        (watchers().await? == 0).then_some(())
    })
    .await;
}
