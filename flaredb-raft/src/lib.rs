//! FlareDB's replicated state machine: openraft over one RocksDB instance.
//!
//! - [`storage`]: log store, state machine and snapshots (the only module that sees RocksDB);
//! - [`network`]: the Raft transport client to peers;
//! - [`node::FlareNode`]: propose, linearizable and local reads, status.

pub mod auth;
pub mod codec;
pub mod data_dir;
pub mod error;
mod fnv;
pub mod keys;
pub mod lease;
pub mod namespace;
pub mod network;
pub mod node;
pub mod quota;
pub mod restore;
pub mod rpc_codec;
pub mod storage;
pub mod types;
pub mod watch;

#[cfg(test)]
mod fuzz_test;

pub use error::{NodeError, OpenError, StoreError};
pub use storage::read;
pub use types::{FlareRequest, FlareResponse, TxnOpResult, TypeConfig};
