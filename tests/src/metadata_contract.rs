//! The `MetadataStore` contract, run against every implementation (FlareDB
//! on a real server, and the in-memory one services unit-test with), so
//! that a service sees the same behaviour from both.

use std::sync::Arc;

use flaredb_client::adapters::{MetadataError, MetadataStore, MetadataStoreExt};

fn conflict(r: Result<impl std::fmt::Debug, MetadataError>, expected: u64, current: u64) {
    match r {
        Err(MetadataError::Conflict { expected: e, current: c, .. }) => assert_eq!((e, c), (expected, current)),
        other => panic!("expected a conflict (expected {expected}, current {current}), got {other:?}"),
    }
}

/// Every rule of the contract, on keys under `root` (which must be empty).
pub async fn contract(store: Arc<dyn MetadataStore>, root: &str) {
    let k = |p: &str| format!("{root}{p}");
    assert!(store.get(&k("pools/web")).await.unwrap().is_none());

    // put: unconditional, versions grow.
    let v1 = store.put(&k("pools/web"), br#"{"port":80}"#).await.unwrap();
    let v2 = store.put(&k("pools/web"), br#"{"port":81}"#).await.unwrap();
    assert!(v2 > v1);
    let got = store.get(&k("pools/web")).await.unwrap().unwrap();
    assert_eq!((&got.value[..], got.version), (&br#"{"port":81}"#[..], v2));

    // cas: create-only with 0, then on the version read; a stale version is a conflict.
    let c1 = store.cas(&k("pools/api"), 0, b"{}").await.unwrap();
    conflict(store.cas(&k("pools/api"), 0, b"{}").await, 0, c1);
    let c2 = store.cas(&k("pools/api"), c1, br#"{"port":8080}"#).await.unwrap();
    assert!(c2 > c1);
    conflict(store.cas(&k("pools/api"), c1, b"{}").await, c1, c2);

    // get_prefix: key order, only under the prefix, values and versions.
    store.put(&k("backends/web/1"), b"10.0.0.1").await.unwrap();
    store.put(&k("backends/web/2"), b"10.0.0.2").await.unwrap();
    store.put(&k("backends/webx/1"), b"other").await.unwrap();
    let listed: Vec<(String, Vec<u8>)> = store
        .get_prefix(&k("backends/web/"))
        .await
        .unwrap()
        .into_iter()
        .map(|(key, r)| (key, r.value.to_vec()))
        .collect();
    assert_eq!(listed, [(k("backends/web/1"), b"10.0.0.1".to_vec()), (k("backends/web/2"), b"10.0.0.2".to_vec())]);
    assert_eq!(store.get_prefix(&k("pools/")).await.unwrap().len(), 2);
    assert!(store.get_prefix(&k("none/")).await.unwrap().is_empty());

    // delete / delete_if.
    assert!(store.delete(&k("backends/webx/1")).await.unwrap());
    assert!(!store.delete(&k("backends/webx/1")).await.unwrap());
    conflict(store.delete_if(&k("pools/api"), c1).await, c1, c2);
    conflict(store.delete_if(&k("absent"), 0).await, 0, 0);
    store.delete_if(&k("pools/api"), c2).await.unwrap();
    assert!(store.get(&k("pools/api")).await.unwrap().is_none());

    // JSON values, as services keep them.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Pool {
        port: u16,
    }
    let (pool, v) = store.get_json::<Pool>(&k("pools/web")).await.unwrap().unwrap();
    assert_eq!((pool.port, v), (81, v2));
    let v3 = store.cas_json(&k("pools/web"), v, &Pool { port: 443 }).await.unwrap();
    assert_eq!(store.get_json::<Pool>(&k("pools/web")).await.unwrap(), Some((Pool { port: 443 }, v3)));
    store.put(&k("pools/bad"), b"not json").await.unwrap();
    assert!(matches!(store.get_json::<Pool>(&k("pools/bad")).await, Err(MetadataError::Json { .. })));

    // Concurrent creates of one key: exactly one wins, the others conflict.
    let racers = (0..8).map(|i| {
        let (store, key) = (store.clone(), k("leader"));
        tokio::spawn(async move { store.cas(&key, 0, format!("{i}").as_bytes()).await })
    });
    let mut wins = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => wins += 1,
            Err(MetadataError::Conflict { .. }) => {}
            Err(e) => panic!("a racing create failed: {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent create wins");
}
