//! Everything that touches RocksDB: the log store, the state machine and
//! snapshots, on one DB instance with column families.

pub mod apply;
mod apply_txn;
pub mod db;
mod db_options;
pub mod fail_point;
pub mod history;
pub mod lease;
pub mod log_store;
pub mod read;
mod session;
pub mod sm_meta;
pub mod snapshot;
mod snapshot_build;
pub mod snapshot_check;
mod snapshot_ckpt;
pub mod snapshot_file;
mod snapshot_handle;
mod snapshot_install;
mod snapshot_prune;
pub mod snapshot_recv;
pub mod snapshot_trigger;
pub mod state_machine;
mod store;
pub(crate) mod temp_file;
mod wal_flusher;

pub use db::DbError;
pub use log_store::LogStore;
pub use snapshot::{SnapshotDir, SnapshotFile};
pub use snapshot_trigger::SnapshotTrigger;
pub use state_machine::{SmShared, StateMachine};
pub use store::{DiskStats, Store};

#[cfg(test)]
mod apply_txn_test;

#[cfg(test)]
mod conformance_test;

#[cfg(test)]
mod install_recovery_test;
#[cfg(test)]
mod lease_test;

#[cfg(test)]
mod restore_test;

#[cfg(test)]
mod session_test;

#[cfg(test)]
mod snapshot_cleanup_test;

#[cfg(test)]
mod snapshot_ckpt_test;

#[cfg(test)]
mod snapshot_cost_test;

#[cfg(test)]
mod snapshot_crash_test;

#[cfg(test)]
mod snapshot_fixture_test;

#[cfg(test)]
mod snapshot_race_test;

#[cfg(test)]
mod snapshot_trigger_test;
