//! The JSON lines `flaredb watch` prints, one per event: text keys and
//! values, like the rest of the CLI.

use flaredb_client::{WatchEvent, WatchEventKind};
use serde::Serialize;

/// `{"type":"PUT","key","value","version","prev_version"}`,
/// `{"type":"DELETE","key","version","prev_version"}` or
/// `{"type":"PROGRESS","version"}`.
#[derive(Debug, Serialize)]
pub struct EventOut {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// Only for a put: a delete has no value, and an empty string would
    /// read as a put of "".
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_version: Option<u64>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl From<&WatchEvent> for EventOut {
    fn from(e: &WatchEvent) -> Self {
        let (kind, value) = match e.kind {
            WatchEventKind::Put => ("PUT", Some(text(&e.value))),
            WatchEventKind::Delete => ("DELETE", None),
            WatchEventKind::Progress => {
                return EventOut { kind: "PROGRESS", key: None, value: None, version: e.version, prev_version: None }
            }
        };
        EventOut { kind, key: Some(text(&e.key)), value, version: e.version, prev_version: Some(e.prev_version) }
    }
}

/// The line for `e` (without the newline).
pub fn line(e: &WatchEvent) -> String {
    serde_json::to_string(&EventOut::from(e)).expect("the output serializes")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(kind: WatchEventKind, key: &'static [u8], value: &'static [u8], version: u64, prev: u64) -> WatchEvent {
        WatchEvent { kind, key: Bytes::from_static(key), value: Bytes::from_static(value), version, prev_version: prev }
    }

    #[test]
    fn each_kind_prints_its_fields() {
        assert_eq!(
            line(&event(WatchEventKind::Put, b"a/b", b"v \"q\"", 12, 0)),
            r#"{"type":"PUT","key":"a/b","value":"v \"q\"","version":12,"prev_version":0}"#
        );
        assert_eq!(
            line(&event(WatchEventKind::Put, b"a/b", b"", 13, 12)),
            r#"{"type":"PUT","key":"a/b","value":"","version":13,"prev_version":12}"#
        );
        assert_eq!(
            line(&event(WatchEventKind::Delete, b"a/b", b"", 14, 13)),
            r#"{"type":"DELETE","key":"a/b","version":14,"prev_version":13}"#
        );
        assert_eq!(line(&event(WatchEventKind::Progress, b"", b"", 20, 0)), r#"{"type":"PROGRESS","version":20}"#);
    }

    #[test]
    fn bytes_that_are_not_utf8_print_lossily() {
        assert_eq!(
            line(&event(WatchEventKind::Put, b"k\xff", b"\xfe1", 3, 0)),
            r#"{"type":"PUT","key":"k�","value":"�1","version":3,"prev_version":0}"#
        );
    }
}
