//! `NodeRegistry`: nodes that heartbeat on leases. A registered node keeps
//! a lease alive; its presence key (and any key it attached to the lease)
//! vanishes when it stops, so it shows offline with no sweeper process.
//!
//! Keys, in the client's namespace:
//! - `{prefix}info/{id}` → the node's JSON description (kept when it goes offline);
//! - `{prefix}alive/{id}` → empty, attached to the node's lease.
//!
//! ```no_run
//! # async fn demo(client: flaredb_client::RdbClient) -> Result<(), flaredb_client::ClientError> {
//! use flaredb_client::adapters::NodeRegistry;
//! let nodes = NodeRegistry::new(client.namespace("orchestrator"), "/nodes/");
//! let me = nodes.register("n1", &serde_json::json!({"addr": "10.0.0.7", "cpus": 8}), 10).await?;
//! for n in nodes.list().await? {
//!     println!("{} online={}", n.id, n.online);
//! }
//! drop(me); // stops heartbeating: n1 shows offline within 10 s
//! # Ok(()) }
//! ```

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::{ClientError, Lease, RdbClient, TxnOp, WatchEventKind};

#[derive(Clone)]
pub struct NodeRegistry {
    client: RdbClient,
    prefix: String,
}

/// A node as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub id: String,
    /// The node's JSON description, as registered.
    pub info: Bytes,
    /// Whether its heartbeat lease is alive.
    pub online: bool,
}

/// A node going online or offline, from [`NodeRegistry::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Online { id: String, version: u64 },
    Offline { id: String, version: u64 },
}

/// This process's registration: heartbeats while it lives. Dropping it
/// stops them (the node goes offline after the TTL);
/// [`Registration::deregister`] takes it offline at once.
pub struct Registration {
    lease: Lease,
}

impl Registration {
    /// Its lease: attach keys with `cas_put_with_lease` and they vanish with the node.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    pub async fn deregister(self) -> Result<(), ClientError> {
        self.lease.revoke().await.map(|_| ())
    }
}

impl NodeRegistry {
    pub fn new(client: RdbClient, prefix: &str) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn info_key(&self, id: &str) -> String {
        format!("{}info/{id}", self.prefix)
    }

    fn alive_prefix(&self) -> String {
        format!("{}alive/", self.prefix)
    }

    /// Registers node `id` with `info` and heartbeats on a lease of `ttl_secs`.
    pub async fn register(&self, id: &str, info: &impl Serialize, ttl_secs: i64) -> Result<Registration, ClientError> {
        let info = serde_json::to_vec(info).map_err(|e| ClientError::InvalidArgument(format!("node info: {e}")))?;
        let lease = self.client.lease(ttl_secs).await?;
        let alive = format!("{}{id}", self.alive_prefix());
        let ops = [TxnOp::put(self.info_key(id), info), TxnOp::put_with_lease(alive, Bytes::new(), lease.id())];
        self.client.txn().and_then(ops).commit().await?;
        Ok(Registration { lease })
    }

    /// Every node ever registered (until forgotten), online or not, in id order.
    pub async fn list(&self) -> Result<Vec<NodeEntry>, ClientError> {
        let alive_prefix = self.alive_prefix();
        let alive: std::collections::HashSet<Bytes> = self
            .client
            .scan_prefix(alive_prefix.as_str())
            .await?
            .into_iter()
            .map(|kv| kv.key.slice(alive_prefix.len()..))
            .collect();
        let info_prefix = self.info_key("");
        let nodes = self.client.scan_prefix(info_prefix.as_str()).await?;
        Ok(nodes
            .into_iter()
            .map(|kv| {
                let id = kv.key.slice(info_prefix.len()..);
                let online = alive.contains(&id);
                NodeEntry { id: String::from_utf8_lossy(&id).into_owned(), info: kv.value, online }
            })
            .collect())
    }

    /// Removes node `id` from the registry (its description and presence).
    pub async fn forget(&self, id: &str) -> Result<(), ClientError> {
        let alive = format!("{}{id}", self.alive_prefix());
        self.client.txn().and_then([TxnOp::delete(self.info_key(id)), TxnOp::delete(alive)]).commit().await?;
        Ok(())
    }

    /// Nodes going online and offline from `from_version` (0 = now).
    pub fn watch(&self, from_version: u64) -> impl Stream<Item = Result<Presence, ClientError>> + Send + 'static {
        let prefix = self.alive_prefix();
        let events = self.client.watch(prefix.clone()).prefix().from_version(from_version).start();
        events.filter_map(move |e| {
            let out = e
                .map(|e| {
                    let id = String::from_utf8_lossy(e.key.get(prefix.len()..).unwrap_or_default()).into_owned();
                    match e.kind {
                        // A re-registration that keeps it alive is still a put: online.
                        WatchEventKind::Put => Some(Presence::Online { id, version: e.version }),
                        WatchEventKind::Delete => Some(Presence::Offline { id, version: e.version }),
                        WatchEventKind::Progress => None,
                    }
                })
                .transpose();
            async move { out }
        })
    }
}
