//! Checks a snapshot file before it may replace the state machine.
//!
//! A file is accepted only if it is intact (format, lengths, count, checksum),
//! within the size cap, free of an install marker, and describes itself as
//! the meta says: its own `last_applied` and `membership` records equal the
//! meta's `last_log_id` and `last_membership`. Otherwise the state machine
//! would hold one applied index while openraft believes another (a restored
//! backup once shipped its old meta under a new one).

use std::{fs, io, path::Path};

use flaredb_proto::raft as pb;

use super::{
    sm_meta,
    snapshot_file::{Section, SnapshotReader},
};
use crate::{
    codec,
    types::{LogId, SnapshotMeta, StoredMembership},
};

/// Largest snapshot a node accepts by default: far above any state machine a
/// node of this design holds, low enough that a runaway sender cannot fill
/// the disk unnoticed.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotCheckError {
    #[error("snapshot is {size} bytes, above the {cap}-byte cap")]
    TooLarge { size: u64, cap: u64 },
    #[error("snapshot file is unreadable or corrupt: {0}")]
    Corrupt(#[from] io::Error),
    #[error("snapshot record is malformed: {0}")]
    Malformed(#[from] codec::CodecError),
    #[error("snapshot holds an install marker: it is not an exported state")]
    HoldsMarker,
    #[error("snapshot meta says {what} is {meta}, but its records say {content}")]
    MetaMismatch { what: &'static str, meta: String, content: String },
    #[error("snapshot index {0} leaves no room for the next log index")]
    IndexOverflow(u64),
}

/// The meta a snapshot file's own records describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub records: u64,
}

/// Reads the whole file, verifying it, and returns the meta its records hold.
pub fn embedded_meta(path: &Path) -> Result<Embedded, SnapshotCheckError> {
    let mut r = SnapshotReader::open(path)?;
    let (mut last_applied, mut membership, mut records) = (None, StoredMembership::default(), 0u64);
    while let Some((section, k, v)) = r.next_record()? {
        records = records.saturating_add(1);
        if section != Section::SmMeta {
            continue;
        }
        if k == sm_meta::LAST_APPLIED_KEY {
            last_applied = Some(codec::log_id_from_pb(&codec::decode_pb::<pb::LogId>("last applied", &v)?));
        } else if k == sm_meta::MEMBERSHIP_KEY {
            membership = codec::stored_membership_from_pb(&codec::decode_pb("membership", &v)?)?;
        } else if k == sm_meta::INSTALLING_KEY {
            return Err(SnapshotCheckError::HoldsMarker);
        }
    }
    Ok(Embedded { last_applied, membership, records })
}

/// Checks `path` against `meta` and the size cap; see the module comment.
pub fn check(path: &Path, meta: &SnapshotMeta, cap: u64) -> Result<Embedded, SnapshotCheckError> {
    let size = fs::metadata(path)?.len();
    if size > cap {
        return Err(SnapshotCheckError::TooLarge { size, cap });
    }
    // Log index arithmetic (`index + 1` when purging, appending) must stay defined.
    if let Some(id) = meta.last_log_id.filter(|id| id.index == u64::MAX) {
        return Err(SnapshotCheckError::IndexOverflow(id.index));
    }
    let found = embedded_meta(path)?;
    if found.last_applied != meta.last_log_id {
        return Err(SnapshotCheckError::MetaMismatch {
            what: "last applied",
            meta: format!("{:?}", meta.last_log_id),
            content: format!("{:?}", found.last_applied),
        });
    }
    if found.membership != meta.last_membership {
        return Err(SnapshotCheckError::MetaMismatch {
            what: "membership",
            meta: format!("{:?}", meta.last_membership),
            content: format!("{:?}", found.membership),
        });
    }
    Ok(found)
}

impl SnapshotCheckError {
    /// As an I/O error (what openraft's storage traits return), keeping the
    /// typed error inside for callers that downcast.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}
