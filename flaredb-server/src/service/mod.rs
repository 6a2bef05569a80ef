//! The gRPC services: thin handlers that validate, call the node, map.

pub mod admin;
pub mod auth;
pub mod ctx;
pub mod faults;
pub mod kv_cas;
pub mod kv_raw;
pub mod lease;
pub mod raft;
pub mod txn;
pub mod watch;
