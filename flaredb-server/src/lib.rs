//! The FlareDB server: configuration, gRPC services and their assembly.
//! Storage and Raft live in `flaredb-raft`; this crate is the edge where
//! requests are validated and errors become gRPC statuses.

pub mod auth;
pub mod config;
pub mod corruption;
pub mod disk_guard;
pub mod forward;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod service;
pub mod size_limit;
pub mod status;
pub mod tls;
pub mod validate;
pub mod validate_txn;

#[cfg(test)]
mod validate_fuzz_test;
