//! Per-connection request limits (`max_requests_per_connection`): requests
//! beyond the limit on one connection wait their turn, while another
//! connection is served at once, so one flooding client cannot take every
//! worker from the others.

use std::time::Duration;

use flaredb_proto::v1::{kv_cas_client::KvCasClient, CasRequest, GetRequest};
use flaredb_tests::{wait_until, Cluster, ClusterOpts, DEADLINE};
use tonic::transport::Channel;

async fn connect(addr: &str) -> KvCasClient<Channel> {
    // Each connect is its own HTTP/2 connection.
    KvCasClient::connect(format!("http://{addr}")).await.unwrap()
}

fn get(key: &str) -> GetRequest {
    GetRequest { key: key.as_bytes().to_vec().into(), namespace: "lim".into() }
}

#[tokio::test]
async fn a_busy_connection_queues_its_own_requests_but_not_another_clients() {
    let opts = ClusterOpts {
        fault_injection: true,
        extra_toml: "max_requests_per_connection = 1\n".into(),
        ..Default::default()
    };
    let c = Cluster::start_with(1, opts).await;
    let addr = c.addr(1);
    let (mut a, mut b) = (connect(&addr).await, connect(&addr).await);
    c.delay_replies(1, Duration::from_secs(3), 1).await;

    // Client A's write holds its connection's only slot (its reply is held back) ...
    let mut a2 = a.clone();
    let slow = tokio::spawn(async move {
        let put = CasRequest { key: "w".into(), value: "v".into(), namespace: "lim".into(), ..Default::default() };
        let r = a2.compare_and_swap(put).await;
        (r, std::time::Instant::now())
    });
    wait_until("the slow write applied", DEADLINE, || {
        let mut b = b.clone();
        async move { b.get(get("w")).await.ok().filter(|r| r.get_ref().found) }
    })
    .await;
    // ... so A's next request waits behind it ...
    let queued = tokio::spawn(async move {
        let r = a.get(get("w")).await;
        (r, std::time::Instant::now())
    });
    // ... while client B is answered at once.
    b.get(get("w")).await.unwrap();
    assert!(!slow.is_finished(), "the slow write finished early: the test shows nothing");
    let (written, write_done) = slow.await.unwrap();
    let (read, read_done) = queued.await.unwrap();
    assert!(written.unwrap().get_ref().success && read.unwrap().get_ref().found);
    // Without the limit the read ends milliseconds after it is sent, seconds before the held write.
    assert!(read_done >= write_done, "a second request ran beside the first on a connection limited to one");
}
