//! The Rust client for FlareDB.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flaredb_client::ClientError> {
//! use flaredb_client::RdbClient;
//!
//! let client = RdbClient::connect(["127.0.0.1:2479", "127.0.0.1:2480"])?;
//! let lb = client.namespace("lb");
//!
//! // Create only if absent (expected version 0), then update with CAS.
//! let put = lb.cas_put("backend/1", "10.0.0.1:80", 0).await?;
//! assert!(put.success);
//! let got = lb.cas_get("backend/1").await?.expect("just written");
//! lb.cas_put("backend/1", "10.0.0.2:80", got.version).await?;
//!
//! for kv in lb.scan_prefix("backend/").await? {
//!     println!("{:?} = {:?} @ {}", kv.key, kv.value, kv.version);
//! }
//! # Ok(()) }
//! ```
//!
//! Keys, values and prefixes are [`IntoBytes`]: `&str`, `&[u8]`, `&String`
//! and other borrowed data of any lifetime (copied once), or an owned
//! `String`, `Vec<u8>` or `Bytes` (moved, never copied):
//!
//! ```no_run
//! # async fn demo(lb: flaredb_client::RdbClient) -> Result<(), flaredb_client::ClientError> {
//! let (key, value) = (format!("backend/{}", 2), String::from("10.0.0.3:80"));
//! lb.cas_put(key.as_str(), value.as_str(), 0).await?;
//! # Ok(()) }
//! ```
//!
//! Calls go to the cached leader (learned from the `x-flaredb-leader` hint)
//! and are retried with jittered backoff on UNAVAILABLE and leader changes,
//! within [`ClientConfig::retry_budget`]. Every compare-and-swap,
//! compare-and-delete and writing transaction carries a write id (this
//! client's random id and a sequence number), so the cluster applies it at
//! most once: it is retried after timeouts and leader changes too, and a
//! retry of one that did apply gets the original answer. The cluster keeps
//! the answers to a client's last 1,024 writes for 10 minutes after its last
//! write; when no attempt got an answer within the budget (or a retry fell
//! out of that window), the call fails with [`ClientError::Indeterminate`].
//!
//! Multi-key transactions ([`RdbClient::txn`]): compares, then one branch of
//! ops, applied atomically; see [`Txn`] for an example.
//!
//! Watches ([`RdbClient::watch`]): every change of a key or prefix, in
//! version order, re-attached to another node when one fails.

pub mod adapters;
mod admin;
mod auth;
mod auth_token;
mod bytes_arg;
mod client;
mod conn;
mod error;
mod lease;
mod lease_keeper;
mod lock;
pub mod migrate;
pub mod prefix;
mod txn;
mod watch;

pub use auth::{PermissionType, UserInfo};
pub use auth_token::Credentials;
pub use bytes_arg::IntoBytes;
pub use client::{CasOutcome, DeleteOutcome, NamespaceMode, Page, RdbClient, Versioned, VersionedKv};
pub use conn::ClientConfig;
pub use error::ClientError;
pub use lease::{Lease, LeaseState, LeaseTtl};
pub use lock::LockGuard;
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResult, TxnResult};
pub use watch::{WatchBuilder, WatchEvent, WatchEventKind};
