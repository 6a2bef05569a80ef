//! A load balancer's pools and backends on `MetadataStore`: what code
//! written against a Raft+gossip KV's `get_prefix` / `put` becomes.
//!
//! The service keeps its keys (`/fiberlb/pools/<pool>`,
//! `/fiberlb/backends/<pool>/<addr>`) and JSON values; only the store's
//! constructor changes. Run against a node:
//!
//! ```sh
//! FLAREDB_ENDPOINTS=127.0.0.1:2479 cargo run --release --example lb_metadata
//! ```

use std::{error::Error, sync::Arc};

use flaredb_client::{
    adapters::{FlareDbMetadataStore, MetadataError, MetadataStore, MetadataStoreExt},
    RdbClient,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Pool {
    name: String,
    port: u16,
}

#[derive(Debug, Serialize, Deserialize)]
struct Backend {
    addr: String,
    weight: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let endpoints = std::env::var("FLAREDB_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2479".into());
    let client = RdbClient::connect(endpoints.split(','))?;
    // The one line that changes (was: the Raft+gossip store's constructor).
    let store: Arc<dyn MetadataStore> = Arc::new(FlareDbMetadataStore::for_service(client, "fiberlb")?);

    store.put_json("/fiberlb/pools/web", &Pool { name: "web".into(), port: 80 }).await?;
    for (i, addr) in ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"].iter().enumerate() {
        let b = Backend { addr: addr.to_string(), weight: 10 * (i as u32 + 1) };
        store.put_json(&format!("/fiberlb/backends/web/{addr}"), &b).await?;
    }

    // Drain a backend: read-modify-write with a compare-and-swap, retried on conflict.
    let key = "/fiberlb/backends/web/10.0.0.2:80";
    loop {
        let Some((mut b, version)) = store.get_json::<Backend>(key).await? else { break };
        b.weight = 0;
        match store.cas_json(key, version, &b).await {
            Ok(_) => break,
            Err(MetadataError::Conflict { .. }) => continue, // someone else changed it: read again
            Err(e) => return Err(e.into()),
        }
    }
    store.delete("/fiberlb/backends/web/10.0.0.3:80").await?;

    // What the data plane reads: every backend of the pool, in key order.
    for (key, rec) in store.get_prefix("/fiberlb/backends/web/").await? {
        let b: Backend = serde_json::from_slice(&rec.value)?;
        println!("{key} weight={} version={}", b.weight, rec.version);
    }
    Ok(())
}
