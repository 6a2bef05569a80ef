//! Moving data into (and out of) FlareDB: `flaredb migrate` and
//! `flaredb export` are thin wrappers over this module.
//!
//! - Sources are streamed ([`Endpoint::read`]), never loaded whole.
//! - Writes go in batches, one `Txn` each, several in flight; a batch reads
//!   the target's current values first: a key already holding the same
//!   value counts as done (so re-running an interrupted migration continues
//!   and never duplicates), a different value is a conflict handled by the
//!   [`Conflict`] policy.
//! - Each run has an id; the keys it wrote, with their versions, are recorded
//!   in the `flaredb-migrations` namespace (not among the user's keys), so
//!   `--rollback RUN` removes exactly what that run wrote (a key changed
//!   since is kept, and said so).

mod copy;
mod endpoint;
mod estimate;
mod etcd;
mod into_collection;
mod jsonl;
mod postgres;
mod runs;
pub mod task_dir;
mod verify;

use bytes::Bytes;

pub use copy::{migrate, Progress};
pub use endpoint::Endpoint;
pub use estimate::estimate;
pub use into_collection::IntoCollection;
pub use postgres::PgTable;
pub use runs::{rollback, RollbackReport, RUNS_NAMESPACE};
pub use verify::{verify, Verification};

use crate::{ClientConfig, ClientError};

/// One key of a source or target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Bytes,
    pub value: Bytes,
    /// The version at the source (informational).
    pub version: u64,
}

/// What to do with a key the target already holds with another value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Keep the target's value (counted as skipped).
    Skip,
    /// Write the source's value.
    Overwrite,
    /// Stop the run (the batch holding it writes nothing).
    Fail,
}

impl std::str::FromStr for Conflict {
    type Err = MigrateError;

    fn from_str(s: &str) -> Result<Self, MigrateError> {
        match s {
            "skip" => Ok(Conflict::Skip),
            "overwrite" => Ok(Conflict::Overwrite),
            "fail" => Ok(Conflict::Fail),
            _ => Err(MigrateError::Usage(format!("conflict policy {s:?}: expected skip, overwrite or fail"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Only keys starting with this.
    pub prefix: String,
    /// Keys per transaction (at most 60: a batch is one Txn of compares and puts).
    pub batch_size: usize,
    /// Batches in flight at once.
    pub in_flight: usize,
    pub conflict: Conflict,
    /// Read both sides and report what would change; write nothing.
    pub dry_run: bool,
    /// Write each source entry as a record of this collection, its indexes rebuilt.
    pub collection: Option<IntoCollection>,
    pub client: ClientConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            batch_size: 50,
            in_flight: 16,
            conflict: Conflict::Fail,
            dry_run: false,
            collection: None,
            client: ClientConfig::default(),
        }
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub run_id: String,
    /// Entries read from the source.
    pub read: u64,
    /// Written to the target (new or overwritten).
    pub written: u64,
    /// Already in the target with the same value.
    pub identical: u64,
    /// In the target with another value, kept (policy skip).
    pub skipped: u64,
    /// In the target with another value, overwritten (policy overwrite).
    pub overwritten: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
    /// A source record that does not parse.
    #[error("bad record: {0}")]
    Parse(String),
    /// A key the target holds with another value, under policy `fail`.
    #[error(
        "conflict: {key:?} already exists in the target with a different value (policy fail); \
         {written} keys were written before it by run {run_id}: {state}"
    )]
    Conflict { key: String, run_id: String, written: u64, state: String },
    /// The run stopped after writing some keys: what is there, and what to do.
    #[error("{why}; {written} keys were written by run {run_id}: {state}")]
    Interrupted { why: String, run_id: String, written: u64, state: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// `validate`: reads the whole source, checks that every record parses,
/// writes nothing. The count of good records and the first problems (at most 20).
pub async fn validate(from: &Endpoint, opts: &Options) -> Result<(u64, Vec<String>), MigrateError> {
    use futures::StreamExt;
    let mut source = source(from, opts)?;
    let (mut good, mut bad) = (0, Vec::new());
    while let Some(e) = source.next().await {
        match e {
            Ok(_) => good += 1,
            Err(e @ MigrateError::Parse(_)) if bad.len() < 20 => bad.push(e.to_string()),
            Err(MigrateError::Parse(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((good, bad))
}

/// `from`'s entries under `opts.prefix`, as they are to be written (as
/// collection records when `opts.collection` says so).
fn source(from: &Endpoint, opts: &Options) -> Result<endpoint::Entries, MigrateError> {
    use futures::StreamExt;
    let entries = from.read(&opts.prefix, &opts.client)?;
    let Some(c) = opts.collection.clone() else { return Ok(entries) };
    let prefix = opts.prefix.clone();
    Ok(Box::pin(entries.flat_map(move |e| {
        futures::stream::iter(match e {
            Ok(e) => c.expand(prefix.as_bytes(), e),
            Err(e) => vec![Err(e)],
        })
    })))
}

/// What a stopped run left, for its error message.
fn left_behind(run_id: &str, written: u64) -> String {
    match written {
        0 => "the target is unchanged".into(),
        _ => format!(
            "the target is resumable: run the same command again to continue (keys already copied are \
             recognised), or `flaredb migrate --rollback {run_id} --to TARGET` to remove them"
        ),
    }
}
