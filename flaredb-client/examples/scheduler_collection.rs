//! A container scheduler's services, containers and nodes on `Collection`:
//! what a bucket-per-entity embedded store ("list all, filter in memory")
//! becomes. Lookups by name and listings by service or node are indexes
//! kept in the same transaction as each record.
//!
//! ```sh
//! FLAREDB_ENDPOINTS=127.0.0.1:2479 cargo run --release --example scheduler_collection
//! ```

use std::error::Error;

use flaredb_client::{
    adapters::{Collection, CollectionError, Index},
    RdbClient,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Container {
    name: String,
    service: String,
    node: String,
}

fn containers(client: &RdbClient) -> Collection<Container> {
    Collection::new(client.namespace("scheduler"), "/containers/")
        .index(Index::unique("name", |c: &Container| Some(c.name.clone())))
        .index(Index::non_unique("service", |c: &Container| Some(c.service.clone())))
        .index(Index::non_unique("node", |c: &Container| Some(c.node.clone())))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let endpoints = std::env::var("FLAREDB_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2479".into());
    let client = RdbClient::connect(endpoints.split(','))?;
    let containers = containers(&client);

    for (id, name, service, node) in
        [("c1", "web-1", "web", "n1"), ("c2", "web-2", "web", "n2"), ("c3", "db-1", "db", "n1")]
    {
        let c = Container { name: name.into(), service: service.into(), node: node.into() };
        containers.create(id, &c).await?;
    }
    // Names are unique: a second "web-1" is refused, naming who has it.
    let dup = Container { name: "web-1".into(), service: "web".into(), node: "n3".into() };
    match containers.create("c4", &dup).await {
        Err(CollectionError::Duplicate { holder, .. }) => println!("web-1 is taken by {holder}"),
        other => return Err(format!("expected a duplicate, got {other:?}").into()),
    }

    // Node n1 is drained: move its containers to n3 (each a CAS on its version).
    for (id, mut c, version) in containers.list_by("node", "n1").await? {
        c.node = "n3".into();
        containers.update(&id, &c, version).await?;
    }

    let (id, c, _) = containers.get_by("name", "db-1").await?.ok_or("db-1 is gone")?;
    println!("db-1 is {id} on {}", c.node);
    for (id, c, _) in containers.list_by("service", "web").await? {
        println!("web: {id} {} on {}", c.name, c.node);
    }
    println!("n1 runs {} containers", containers.list_by("node", "n1").await?.len());
    Ok(())
}
