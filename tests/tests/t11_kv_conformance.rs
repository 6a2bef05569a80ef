//! The KV conformance suite (`flaredb_tests::kv_suite`) on one node and on
//! three, through the real client.

use flaredb_tests::{kv_suite, Cluster};

#[tokio::test]
async fn kv_suite_on_one_node() {
    let c = Cluster::start(1).await;
    kv_suite::run_all(&kv_suite::Target::of(&c).await).await;
}

#[tokio::test]
async fn kv_suite_on_three_nodes_through_followers() {
    let c = Cluster::start(3).await;
    kv_suite::run_all(&kv_suite::Target::of(&c).await).await;
}
