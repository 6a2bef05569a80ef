//! Ready-made stores for services that move their metadata to FlareDB,
//! each shaped like what the service codes against today, so that moving
//! is a change of constructor.
//!
//! - [`MetadataStore`]: get / put / delete / get_prefix / cas / delete_if on
//!   hierarchical keys (what a Raft+gossip KV's code uses), implemented on
//!   FlareDB ([`FlareDbMetadataStore`]) and in memory for unit tests
//!   ([`InMemoryMetadataStore`]).
//! - [`Collection`]: typed JSON records under a prefix with unique and
//!   non-unique secondary indexes kept in the same transaction as the record
//!   (what a bucket-per-entity embedded store becomes).
//! - [`TaskQueue`]: an orchestrator's tasks: priority order, `claim_next`
//!   handing each task to exactly one worker, claims on the worker's
//!   heartbeat lease (a dead worker's tasks return to the queue), validated
//!   transitions with an append-only audit log, and a watch.
//! - [`NodeRegistry`]: nodes heartbeating on leases, offline (and their
//!   lease-bound keys gone) when they stop, with no sweeper.
//! - [`Ledger`]: an object-storage control plane's conditional puts (the
//!   version as etag), content-addressed immutable puts, and an exclusive
//!   lock with holder, TTL and `force_unlock`.
//! - [`services`]: the namespace and root prefix each known service uses.

mod collection;
mod ledger;
mod memory;
mod metadata_store;
mod node_registry;
pub mod services;
mod task_queue;

pub use collection::{Change, Collection, CollectionError, Index};
pub use ledger::{Ledger, LedgerError, LedgerLock};
pub use memory::InMemoryMetadataStore;
pub use metadata_store::{FlareDbMetadataStore, MetadataError, MetadataStore, MetadataStoreExt, Record};
pub use node_registry::{NodeEntry, NodeRegistry, Presence, Registration};
pub use task_queue::{Task, TaskError, TaskQueue, TaskStatus, Transition, Worker};
