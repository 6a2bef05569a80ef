//! Key encoding in the `cas` and `raw` column families: the namespace id as a
//! big-endian u32, then the user key. Byte order of encoded keys is therefore
//! (namespace, key) order, and one namespace is one contiguous range.
//!
//! A strong record's value is the key's version (big-endian u64, the log index
//! that last wrote it) followed by the user value.

/// Namespace ids are assigned in the replicated log; `default` is 1.
pub type NamespaceId = u32;

pub fn encode(ns: NamespaceId, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an encoded key into (namespace, user key).
pub fn decode(raw: &[u8]) -> Option<(NamespaceId, &[u8])> {
    let (ns, key) = raw.split_at_checked(4)?;
    Some((NamespaceId::from_be_bytes(ns.try_into().ok()?), key))
}

/// The encoded exclusive upper bound of `[start, end)` in `ns`; an empty `end`
/// means the end of the namespace. `None` means no bound (the last namespace id).
pub fn range_end(ns: NamespaceId, end: &[u8]) -> Option<Vec<u8>> {
    if end.is_empty() {
        ns.checked_add(1).map(|next| next.to_be_bytes().to_vec())
    } else {
        Some(encode(ns, end))
    }
}

/// The encoded exclusive upper bound of the keys in `ns` that start with
/// `prefix`: the prefix's successor (trailing 0xFF bytes dropped, the last
/// byte before them incremented), or the end of the namespace when there is
/// none (an empty or all-0xFF prefix). `None` as for [`range_end`].
pub fn prefix_end(ns: NamespaceId, prefix: &[u8]) -> Option<Vec<u8>> {
    let mut succ = prefix.to_vec();
    while let Some(last) = succ.pop() {
        if last < 0xFF {
            succ.push(last + 1);
            return Some(encode(ns, &succ));
        }
    }
    range_end(ns, b"")
}

pub fn encode_versioned(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits a strong record into (version, value).
pub fn decode_versioned(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (v, value) = raw.split_at_checked(8)?;
    Some((u64::from_be_bytes(v.try_into().ok()?), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefix_orders_before_key() {
        assert!(encode(1, b"\xff\xff") < encode(2, b""));
        assert!(encode(1, b"a") < encode(1, b"b"));
        assert_eq!(decode(&encode(9, b"k")), Some((9, &b"k"[..])));
        assert_eq!(decode(b"abc"), None);
    }

    #[test]
    fn empty_end_covers_the_whole_namespace() {
        let end = range_end(1, b"").unwrap();
        assert!(encode(1, &[0xFF; 100]) < end);
        assert!(encode(2, b"") >= end);
        assert_eq!(range_end(u32::MAX, b""), None);
        assert_eq!(range_end(3, b"m"), Some(encode(3, b"m")));
    }

    #[test]
    fn prefix_end_bounds_exactly_the_prefixed_keys() {
        let end = prefix_end(3, b"a/").unwrap();
        assert!(encode(3, b"a/\xff\xff") < end && encode(3, b"a0") >= end);
        assert_eq!(prefix_end(3, b"a\xff\xff"), Some(encode(3, b"b")));
        assert_eq!(prefix_end(3, b"\xff"), range_end(3, b""));
        assert_eq!(prefix_end(3, b""), range_end(3, b""));
        assert_eq!(prefix_end(u32::MAX, b"\xff"), None);
    }

    #[test]
    fn versioned_round_trip() {
        let raw = encode_versioned(42, b"v");
        assert_eq!(decode_versioned(&raw), Some((42, &b"v"[..])));
        assert_eq!(decode_versioned(b"short"), None);
    }
}
