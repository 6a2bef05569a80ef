//! The service adapters against a real server: the `MetadataStore`
//! contract on FlareDB and, identically, on the in-memory store.

use std::sync::Arc;

use flaredb_client::adapters::{
    services::SERVICES, FlareDbMetadataStore, InMemoryMetadataStore, MetadataError, MetadataStore,
};
use flaredb_tests::{metadata_contract::contract, Cluster};

#[tokio::test]
async fn the_flaredb_store_keeps_the_contract_for_each_service() {
    let c = Cluster::start(1).await;
    for s in SERVICES {
        let store = FlareDbMetadataStore::for_service(c.client(), s.name).unwrap();
        contract(Arc::new(store), s.root).await;
    }
    // Each service's keys live in its own namespace.
    let names: Vec<String> = c.client().list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    for s in SERVICES {
        assert!(names.iter().any(|n| n == s.namespace), "{names:?}");
    }
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_same_contract() {
    contract(Arc::new(InMemoryMetadataStore::new()), "/fiberlb/").await;
}

#[tokio::test]
async fn keys_outside_the_root_and_unknown_services_are_refused() {
    let c = Cluster::start(1).await;
    let store = FlareDbMetadataStore::for_service(c.client(), "flashdns").unwrap();
    let e = store.put("/fiberlb/pools/web", b"{}").await.unwrap_err();
    assert!(matches!(&e, MetadataError::OutsideRoot { root, .. } if root == "/flashdns/"), "{e}");
    assert!(c.client().namespace("flashdns").scan_prefix("").await.unwrap().is_empty(), "nothing written");
    // A prefix above the root lists the service's keys.
    store.put("/flashdns/zones/a", b"{}").await.unwrap();
    assert_eq!(store.get_prefix("/").await.unwrap().len(), 1);
    let e = FlareDbMetadataStore::for_service(c.client(), "nope").err().unwrap();
    assert!(matches!(e, MetadataError::UnknownService(_)), "{e}");
}

/// An example program of `flaredb-client`, built by `cargo test --workspace`.
fn example(name: &str) -> std::path::PathBuf {
    let bin = flaredb_tests::server_bin().with_file_name("examples").join(name);
    assert!(bin.exists(), "{} not found: `cargo test --release --workspace` builds the examples", bin.display());
    bin
}

#[tokio::test]
async fn the_load_balancer_example_runs_against_a_real_server() {
    let c = Cluster::start(1).await;
    let out = std::process::Command::new(example("lb_metadata"))
        .env("FLAREDB_ENDPOINTS", c.addr(1))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().map(|l| l.split(" version=").next().unwrap()).collect();
    assert_eq!(
        lines,
        ["/fiberlb/backends/web/10.0.0.1:80 weight=10", "/fiberlb/backends/web/10.0.0.2:80 weight=0"],
        "{stdout}"
    );
    // Its keys, in the service's namespace.
    let keys = c.client().namespace("fiberlb").scan_prefix("/fiberlb/").await.unwrap();
    assert_eq!(keys.len(), 3);
}
