//! Everything that touches RocksDB: the log store, the state machine and
//! snapshots, on one DB instance with column families.

pub mod apply;
pub mod db;
pub mod log_store;
pub mod sm_meta;
pub mod snapshot;
pub mod snapshot_file;
pub mod state_machine;

pub use log_store::LogStore;
pub use snapshot::{SnapshotDir, SnapshotFile};
pub use state_machine::{SmShared, StateMachine};

#[cfg(test)]
mod conformance_test;

#[cfg(test)]
mod install_recovery_test;
