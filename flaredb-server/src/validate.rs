//! Request validation against the configured limits, before anything is
//! proposed: a refused request changes nothing.

use flaredb_raft::{namespace::validate_name, read::PageLimit};
use tonic::Status;

use crate::config::Limits;

pub fn key(limits: &Limits, key: &[u8]) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("key must not be empty (keys are 1 byte to the key limit)"));
    }
    if key.len() > limits.max_key_bytes {
        return Err(Status::invalid_argument(format!(
            "key is {} bytes; the limit is {} bytes",
            key.len(),
            limits.max_key_bytes
        )));
    }
    Ok(())
}

pub fn value(limits: &Limits, value: &[u8]) -> Result<(), Status> {
    if value.len() > limits.max_value_bytes {
        return Err(Status::invalid_argument(format!(
            "value is {} bytes; the limit is {} bytes",
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(())
}

/// A write id's client id must be short (it is stored with each answer).
pub fn write_id(id: &Option<flaredb_proto::v1::WriteId>) -> Result<(), Status> {
    const MAX: usize = 128;
    match id {
        Some(w) if w.client_id.len() > MAX => Err(Status::invalid_argument(format!(
            "write_id.client_id is {} bytes; the limit is {MAX} bytes",
            w.client_id.len()
        ))),
        _ => Ok(()),
    }
}

/// `""` (the default namespace) or a valid name.
pub fn namespace(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Ok(());
    }
    validate_name(name).map_err(Status::invalid_argument)
}

/// Checks a range and returns where its page ends: the requested entry count
/// (0 = default, capped) and the server's byte budget.
pub fn scan(limits: &Limits, start: &[u8], end: &[u8], limit: u32) -> Result<PageLimit, Status> {
    if start.len() > limits.max_key_bytes || end.len() > limits.max_key_bytes {
        return Err(Status::invalid_argument(format!("scan bounds are limited to {} bytes", limits.max_key_bytes)));
    }
    if !end.is_empty() && end < start {
        return Err(Status::invalid_argument("end_key is before start_key; the range is [start_key, end_key)"));
    }
    let limit = if limit == 0 { limits.default_scan_limit } else { limit };
    Ok(PageLimit { entries: limit.min(limits.max_scan_limit) as usize, bytes: limits.max_scan_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_respect_limits() {
        let l = Limits::default();
        assert!(key(&l, b"").is_err());
        assert!(key(&l, &[0; 4096]).is_ok());
        let e = key(&l, &[0; 4097]).unwrap_err();
        assert!(e.message().contains("4096"), "{}", e.message());
        assert!(value(&l, &[0; 1 << 20]).is_ok());
        assert!(value(&l, &[0; (1 << 20) + 1]).is_err());
    }

    #[test]
    fn scan_limits_default_and_cap() {
        let l = Limits::default();
        assert_eq!(scan(&l, b"a", b"", 0).unwrap().entries, 1000);
        assert_eq!(scan(&l, b"a", b"b", 5).unwrap().entries, 5);
        assert_eq!(scan(&l, b"a", b"b", u32::MAX).unwrap().entries, l.max_scan_limit as usize);
        assert_eq!(scan(&l, b"a", b"b", 5).unwrap().bytes, l.max_scan_bytes);
        assert!(scan(&l, b"b", b"a", 0).is_err());
    }

    #[test]
    fn namespaces() {
        assert!(namespace("").is_ok());
        assert!(namespace("svc-1").is_ok());
        assert!(namespace("Bad!").is_err());
    }
}
