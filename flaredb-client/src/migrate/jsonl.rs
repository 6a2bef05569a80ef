//! The export format: one `{"key","value","version"}` object a line, key and
//! value base64 (standard alphabet, padded); `version` is informational (a
//! target assigns its own).

use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Entry;

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    value: String,
    #[serde(default)]
    version: u64,
}

pub fn encode(e: &Entry) -> String {
    let line = Line { key: STANDARD.encode(&e.key), value: STANDARD.encode(&e.value), version: e.version };
    serde_json::to_string(&line).unwrap_or_default()
}

/// One line; `Err` says what is wrong with it.
pub fn decode(line: &str) -> Result<Entry, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let key = STANDARD.decode(&l.key).map_err(|e| format!("key: {e}"))?;
    let value = STANDARD.decode(&l.value).map_err(|e| format!("value: {e}"))?;
    if key.is_empty() {
        return Err("empty key".into());
    }
    Ok(Entry { key: Bytes::from(key), value: Bytes::from(value), version: l.version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_ones_say_why() {
        let e = Entry { key: Bytes::from_static(b"k\x00\xff"), value: Bytes::from_static(b"{\"a\":1}"), version: 7 };
        assert_eq!(decode(&encode(&e)).unwrap(), e);
        assert!(decode(r#"{"key":"!!","value":""}"#).unwrap_err().starts_with("key:"));
        assert_eq!(decode(r#"{"key":"","value":""}"#).unwrap_err(), "empty key");
        assert!(decode("not json").is_err());
    }
}
