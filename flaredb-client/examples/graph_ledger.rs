//! A graph store's commit ledger and write lock on `Ledger`: what an
//! object-storage ledger built on conditional puts becomes. Two writers race
//! to move HEAD; exactly one wins, the other sees the conflict and rebases.
//!
//! ```sh
//! FLAREDB_ENDPOINTS=127.0.0.1:2479 cargo run --release --example graph_ledger
//! ```

use std::error::Error;

use flaredb_client::{
    adapters::{Ledger, LedgerError},
    RdbClient,
};

/// Commits `change` on top of HEAD, retrying on top of whatever won a race.
async fn commit(ledger: &Ledger, who: &str, change: &str) -> Result<u64, Box<dyn Error + Send + Sync>> {
    loop {
        let head = ledger.get("/graph/HEAD").await?.ok_or("no HEAD")?;
        let parent = String::from_utf8_lossy(&head.value).into_owned();
        let (object, _) = ledger.put_content("/graph/objects/", format!("{parent}+{change}")).await?;
        match ledger.put_if_version("/graph/HEAD", object.as_str(), head.version).await {
            Ok(v) => return Ok(v),
            Err(LedgerError::Conflict { current, .. }) => println!("{who}: HEAD moved to version {current}; rebasing"),
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let endpoints = std::env::var("FLAREDB_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2479".into());
    let client = RdbClient::connect(endpoints.split(','))?;
    let ledger = Ledger::new(client.namespace("graph"));
    if let Err(LedgerError::Conflict { .. }) = ledger.put_if_absent("/graph/HEAD", "root").await {
        println!("HEAD already exists");
    }

    // Two writers race; both commits land, one after the other.
    let (a, b) = (ledger.clone(), ledger.clone());
    let (ra, rb) = tokio::join!(commit(&a, "writer-a", "a"), commit(&b, "writer-b", "b"));
    println!("writer-a at version {}, writer-b at version {}", ra?, rb?);

    // Compaction takes the exclusive lock; a second taker is told who holds it.
    let lock = ledger.try_lock("compaction", "writer-a", 30).await?;
    if let Err(LedgerError::Locked { holder, .. }) = ledger.try_lock("compaction", "writer-b", 30).await {
        println!("compaction lock held by {holder}");
    }
    lock.unlock().await?;
    println!("{} objects", ledger.list("/graph/objects/").await?.len());
    Ok(())
}
