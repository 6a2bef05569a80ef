//! Watches: changes of strong keys, delivered after they are applied.
//!
//! Apply records each change in the `history` column family (in the batch
//! that makes the change) and then hands it to the [`WatchHub`], which
//! passes it to the watchers whose key or prefix it matches. A watcher that
//! starts in the past replays history first (`storage::history`).

mod event;
mod filter;
mod hub;

pub use event::{ChangeEvent, EventKind};
pub use filter::WatchFilter;
pub use hub::{Ended, WatchHub, WatchLimits, Watcher};
