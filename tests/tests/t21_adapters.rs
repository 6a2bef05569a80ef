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
