//! Unplanned leader loss (kill -9): a follower holds a write until the next
//! leader is known and forwards it, and a just-elected leader holds it until
//! its lease starts, so one client attempt rides out the failover.
//! (Its own file: its elections must not load the rolling-restart test's
//! machine while that one times write gaps.)

use std::time::{Duration, Instant};

use flaredb_client::{ClientConfig, ClientError, RdbClient};
use flaredb_tests::Cluster;

#[tokio::test]
async fn a_follower_holds_a_write_across_a_leader_kill_until_the_next_leader_takes_it() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // One attempt, no retries: only the server can ride out the failover.
    let config =
        ClientConfig { request_timeout: Duration::from_secs(10), retry_budget: Duration::ZERO, ..Default::default() };
    // A new client each time: it must not learn (and go to) the leader.
    let addr = c.addr(follower);
    let single = || RdbClient::with_config([addr.clone()], config.clone()).unwrap().namespace("held");
    // The follower forwards to the leader once, so it holds a connection to it.
    let put = single().cas_put("before", "1", 0).await.unwrap();
    assert!(put.success);

    c.kill(leader);
    let t = Instant::now();
    match single().cas_put("after", "2", 0).await {
        Ok(put) => assert!(put.success, "{put:?}"),
        // The follower may write the request on its connection to the dead
        // leader before it sees that connection close ("broken pipe"):
        // whether the leader took it cannot be known then (until writes
        // carry an id the state machine deduplicates), so the answer is
        // indeterminate, truthfully. Seen under a loaded CI machine only.
        // The write must then still go through on a second attempt, or be there.
        Err(ClientError::Indeterminate(why)) => {
            eprintln!("first attempt indeterminate ({why}); checking with a second");
            let again = single().cas_put("after", "2", 0).await.expect("a second attempt is answered");
            let stored = single().cas_get("after").await.expect("read").expect("the write is there");
            assert!(again.success || stored.value == "2", "{again:?} {stored:?}");
        }
        Err(e) => panic!("one attempt through the follower: {e}"),
    }
    eprintln!("kill -9 of leader {leader} -> write through follower {follower} acknowledged in {:?}", t.elapsed());
    assert_ne!(c.wait_leader().await, leader);
}
