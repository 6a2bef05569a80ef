//! Exactly-once writes end to end: a write whose answer came too late is
//! retried by the client and answered from the cluster's memory of it, not
//! applied twice; also through a follower whose forward to a killed leader
//! failed after the leader committed it.

use std::time::Duration;

use flaredb_client::{ClientConfig, ClientError, RdbClient};
use flaredb_tests::{test_client_config, wait_until, Cluster, ClusterOpts, DEADLINE};

fn opts() -> ClusterOpts {
    ClusterOpts { fault_injection: true, ..Default::default() }
}

/// Attempts that give up after 400 ms: a 1.5 s reply delay outlasts the first.
fn impatient(endpoints: Vec<String>, exactly_once: bool) -> RdbClient {
    let cfg = ClientConfig { request_timeout: Duration::from_millis(400), exactly_once, ..test_client_config() };
    RdbClient::with_config(endpoints, cfg).expect("client")
}

#[tokio::test]
async fn a_write_retried_after_a_timeout_is_applied_once_and_answered_as_first() {
    let c = Cluster::start_with(1, opts()).await;
    let client = impatient(c.endpoints(), true);
    let v0 = client.cas_put("k", "base", 0).await.unwrap().new_version;

    // The first attempt commits, but its answer comes after the client gave
    // up; the retry (same write id) gets the original answer. Applied twice,
    // the retry would fail its compare (the version moved).
    c.delay_replies(1, Duration::from_millis(1500), 1).await;
    let put = client.cas_put("k", "next", v0).await.expect("retried write");
    assert!(put.success && put.current_version == v0, "{put:?}");
    let now = client.cas_get("k").await.unwrap().unwrap();
    assert_eq!((now.version, &now.value[..]), (put.new_version, &b"next"[..]));

    // The same for a compare-and-delete and a transaction.
    c.delay_replies(1, Duration::from_millis(1500), 1).await;
    let del = client.cas_delete("k", put.new_version).await.expect("retried delete");
    assert!(del.success, "{del:?}");
    c.delay_replies(1, Duration::from_millis(1500), 1).await;
    let t = client.txn().when([]).and_then([flaredb_client::TxnOp::put("t", "1")]).commit().await.unwrap();
    assert_eq!(client.cas_get("t").await.unwrap().unwrap().version, t.revision);

    // Without write ids the same delay leaves the outcome unknown: the test can fail.
    let plain = impatient(c.endpoints(), false);
    c.delay_replies(1, Duration::from_millis(1500), 1).await;
    let r = plain.cas_put("p", "v", 0).await;
    assert!(matches!(r, Err(ClientError::Indeterminate(_))), "{r:?}");
}

#[tokio::test]
async fn a_write_through_a_follower_survives_the_leader_dying_after_commit() {
    let mut c = Cluster::start_with(3, opts()).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // The client knows only the follower, which forwards to the leader.
    let cfg = ClientConfig { request_timeout: Duration::from_secs(5), ..test_client_config() };
    let client = RdbClient::with_config([c.addr(follower)], cfg).unwrap();
    let v0 = client.cas_put("k", "base", 0).await.unwrap().new_version;
    c.wait_applied(follower, v0).await;

    c.delay_replies(leader, Duration::from_secs(10), 1).await;
    let write = tokio::spawn({
        let client = client.clone();
        async move { client.cas_put("k", "next", v0).await }
    });
    // Committed and applied on the follower while the leader sits on the answer.
    let status = c.client_for(follower);
    wait_until("the write applied on the follower", DEADLINE, || async {
        let s = status.status().await.ok()?;
        (s.applied_index > v0).then_some(())
    })
    .await;
    c.kill(leader);
    let put = write.await.unwrap().expect("the write is answered after the leader died");
    assert!(put.success && put.current_version == v0, "{put:?}");
    let now = client.cas_get("k").await.unwrap().unwrap();
    assert_eq!((now.version, &now.value[..]), (put.new_version, &b"next"[..]));
}

#[tokio::test]
async fn a_retry_older_than_the_window_is_refused_and_applies_nothing() {
    use flaredb_proto::v1::{kv_cas_client::KvCasClient, CasRequest, WriteId};
    let c = Cluster::start(1).await;
    let raw = KvCasClient::connect(format!("http://{}", c.addr(1))).await.unwrap();
    let put = move |key: String, sequence: u64| {
        let mut raw = raw.clone();
        let write_id = Some(WriteId { client_id: "stale-test".into(), sequence });
        async move {
            raw.compare_and_swap(CasRequest { key: key.into(), value: "v".into(), write_id, ..Default::default() })
                .await
        }
    };
    // 1,300 writes of one client: more than its 1,024-answer window. The
    // tasks interleave their sequences, as a shared client's tasks do (a
    // sequence far below the others in flight would fall out of the window).
    let tasks: Vec<_> = (0..13u64)
        .map(|t| {
            let put = put.clone();
            tokio::spawn(async move {
                for s in (t + 1..=1300).step_by(13) {
                    put(format!("w/{s}"), s).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Sequence 1 again, as a new key: refused as unknown, never applied.
    let e = put("w/retry".into(), 1).await.expect_err("a retry below the window");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("whether it applied is unknown") && !e.message().contains("  "), "{e:?}");
    assert!(e.metadata().contains_key("flaredb-write-stale"), "{e:?}");
    assert!(c.client().cas_get("w/retry").await.unwrap().is_none(), "the refused retry applied");
    // A recent sequence still gets its stored answer.
    let again = put("w/1300".into(), 1300).await.unwrap().into_inner();
    assert!(again.success, "{again:?}");
}
