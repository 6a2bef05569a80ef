//! Request limits, enforced by the services before anything is proposed.

use flaredb_raft::read::ENTRY_OVERHEAD_BYTES;

use super::{flags::FileConfig, ConfigError};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Largest gRPC message, request or response.
    pub max_message_bytes: usize,
    pub default_scan_limit: u32,
    pub max_scan_limit: u32,
    /// A scan page ends once it holds about this many bytes (always at least
    /// one entry), so a page of large values stays under the message limit.
    pub max_scan_bytes: usize,
    /// A transaction holds at most this many compares plus ops of its
    /// larger branch.
    pub max_txn_ops: usize,
    /// A transaction request encodes to at most this many bytes.
    pub max_txn_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_message_bytes: 4 * 1024 * 1024,
            default_scan_limit: 1000,
            max_scan_limit: 10_000,
            max_scan_bytes: 1024 * 1024,
            max_txn_ops: 128,
            max_txn_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    pub(super) fn from_file(file: &FileConfig) -> Result<Self, ConfigError> {
        let d = Limits::default();
        let limits = Limits {
            max_key_bytes: file.max_key_bytes.unwrap_or(d.max_key_bytes),
            max_value_bytes: file.max_value_bytes.unwrap_or(d.max_value_bytes),
            max_message_bytes: file.max_message_bytes.unwrap_or(d.max_message_bytes),
            default_scan_limit: d.default_scan_limit,
            max_scan_limit: file.max_scan_limit.unwrap_or(d.max_scan_limit).max(1),
            max_scan_bytes: file.max_scan_bytes.unwrap_or(d.max_scan_bytes).max(1),
            max_txn_ops: file.max_txn_ops.unwrap_or(d.max_txn_ops),
            max_txn_bytes: file.max_txn_bytes.unwrap_or(d.max_txn_bytes),
        };
        // A full page is the budget plus the response's own framing and
        // next_key; it must fit the message limit or a scan could never answer.
        let page_room = limits.max_message_bytes.saturating_sub(limits.max_key_bytes + ENTRY_OVERHEAD_BYTES);
        if limits.max_scan_bytes > page_room {
            return Err(ConfigError::Invalid(format!(
                "max_scan_bytes ({}) must be at most max_message_bytes ({}) minus max_key_bytes ({}) minus {}",
                limits.max_scan_bytes, limits.max_message_bytes, limits.max_key_bytes, ENTRY_OVERHEAD_BYTES
            )));
        }
        Ok(limits)
    }
}
