//! Per-connection request limits: requests beyond
//! `max_requests_per_connection` on one connection wait their turn, and
//! beyond `max_requests_per_sec_per_connection` are refused at once
//! (RESOURCE_EXHAUSTED), while another connection is served as usual, so
//! one flooding client cannot take the node from the others.

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

#[tokio::test]
async fn a_flooding_connection_is_refused_past_its_rate_while_another_is_served() {
    const RATE: u64 = 500;
    let opts =
        ClusterOpts { extra_toml: format!("max_requests_per_sec_per_connection = {RATE}\n"), ..Default::default() };
    let c = Cluster::start_with(1, opts).await;
    let addr = c.addr(1);
    let (flooder, mut calm) = (connect(&addr).await, connect(&addr).await);
    let started = std::time::Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four tasks send as fast as they can on one connection, counting
    // answers and refusals.
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let (mut f, stop) = (flooder.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match f.get(get("k")).await {
                        Ok(_) => ok += 1,
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            assert!(s.message().contains("max_requests_per_sec_per_connection"), "{s:?}");
                            refused += 1;
                        }
                        Err(s) => panic!("flood: {s:?}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    wait_until("the flood to be refused", DEADLINE, || {
        let mut probe = flooder.clone();
        async move { probe.get(get("k")).await.err().filter(|s| s.code() == tonic::Code::ResourceExhausted) }
    })
    .await;
    // Meanwhile another client's calls are all answered, promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let t = std::time::Instant::now();
        calm.get(get("k")).await.expect("the calm client was refused or failed");
        slowest = slowest.max(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut refused) = (0, 0);
    for f in floods {
        let (o, r) = f.await.unwrap();
        (ok, refused) = (ok + o, refused + r);
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(refused > 0, "nothing was refused");
    // One second's burst, then the rate (the probes above count too).
    let allowed = RATE as f64 * (1.0 + elapsed) + 1.0;
    assert!((ok as f64) <= allowed, "{ok} answered in {elapsed:.2} s at a limit of {RATE}/s");
    assert!(slowest < Duration::from_secs(2), "the calm client waited {slowest:?}");
}
