//! The leader hint: one gRPC metadata entry, written by the server and read by
//! the client, so both agree on its name and format.
//!
//! A node that is not the leader attaches `x-flaredb-leader: <id>@<addr>` to
//! responses it forwarded and to UNAVAILABLE errors when it knows the leader;
//! the client then sends its next requests straight to that address.

use tonic::metadata::{MetadataMap, MetadataValue};

/// Metadata key carrying the current leader as `<id>@<addr>`.
pub const LEADER_KEY: &str = "x-flaredb-leader";

/// Marks a request that a follower forwarded, so it is never forwarded twice.
pub const FORWARDED_KEY: &str = "x-flaredb-forwarded";

/// Set on an error when the request was certainly not applied (the node
/// refused it before proposing), so even a compare-and-swap may be retried.
pub const NOT_APPLIED_KEY: &str = "x-flaredb-not-applied";

/// Marks `md` as belonging to a request that was not applied.
pub fn mark_not_applied(md: &mut MetadataMap) {
    md.insert(NOT_APPLIED_KEY, MetadataValue::from_static("1"));
}

/// Whether the error carrying `md` is known not to have applied its request.
pub fn is_not_applied(md: &MetadataMap) -> bool {
    md.contains_key(NOT_APPLIED_KEY)
}

/// Whether a call failed before its request left the caller, so it may be
/// sent elsewhere whatever it was (even a CAS): it could not connect, or
/// hyper dropped it unsent ("operation was canceled") because the cached
/// connection had just closed, as when the peer was killed a moment before.
/// tonic reports the cause only as the text of a source error, so the chain
/// is searched.
pub fn is_connect_failure(s: &tonic::Status) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = src {
        let refused =
            e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        let text = e.to_string();
        let unsent = text.starts_with("operation was canceled");
        if refused || unsent || text.contains("tcp connect error") || text.contains("Connection refused") {
            return true;
        }
        src = e.source();
    }
    false
}

/// The leader a node pointed to: its Raft node id and client-facing address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: u64,
    pub addr: String,
}

impl LeaderHint {
    /// Writes the hint into `md`; an address that is not valid metadata is skipped.
    pub fn insert_into(&self, md: &mut MetadataMap) {
        if let Ok(v) = MetadataValue::try_from(format!("{}@{}", self.id, self.addr)) {
            md.insert(LEADER_KEY, v);
        }
    }

    /// Reads the hint from `md`, if present and well formed.
    pub fn from_metadata(md: &MetadataMap) -> Option<Self> {
        let raw = md.get(LEADER_KEY)?.to_str().ok()?;
        Self::parse(raw)
    }

    fn parse(raw: &str) -> Option<Self> {
        let (id, addr) = raw.split_once('@')?;
        let id = id.parse().ok()?;
        if addr.is_empty() {
            return None;
        }
        Some(Self { id, addr: addr.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_metadata() {
        let hint = LeaderHint { id: 3, addr: "127.0.0.1:2479".into() };
        let mut md = MetadataMap::new();
        hint.insert_into(&mut md);
        assert_eq!(LeaderHint::from_metadata(&md), Some(hint));
    }

    #[test]
    fn a_refused_connection_is_a_connect_failure_and_a_plain_status_is_not() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_connect_failure(&tonic::Status::from_error(Box::new(refused))));
        assert!(!is_connect_failure(&tonic::Status::unavailable("tcp connect error, but only in the message")));
    }

    #[test]
    fn a_request_hyper_dropped_unsent_is_a_connect_failure_and_a_reset_stream_is_not() {
        let unsent = std::io::Error::other("operation was canceled");
        assert!(is_connect_failure(&tonic::Status::from_error(Box::new(unsent))));
        let reset = std::io::Error::other("stream error received: stream no longer needed");
        assert!(!is_connect_failure(&tonic::Status::from_error(Box::new(reset))));
    }

    #[test]
    fn rejects_malformed_hints() {
        for raw in ["", "3", "x@127.0.0.1:1", "3@"] {
            assert_eq!(LeaderHint::parse(raw), None, "{raw:?}");
        }
    }
}
