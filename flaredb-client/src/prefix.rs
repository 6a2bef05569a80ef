//! Prefix ranges: the exclusive end key of "every key starting with p".

/// The smallest key greater than every key with `prefix`, or empty (= no
/// upper bound) when there is none: the empty prefix or one of only 0xFF.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_the_last_byte() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\x00"), b"a\x01");
    }

    #[test]
    fn drops_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xfe\xff\xff"), b"a\xff");
    }

    #[test]
    fn unbounded_when_no_successor() {
        assert_eq!(prefix_end(b""), b"");
        assert_eq!(prefix_end(b"\xff\xff"), b"");
    }

    #[test]
    fn every_key_with_the_prefix_is_below_the_end() {
        for p in [&b"a"[..], b"a\xff", b"\x00", b"zz\xfe"] {
            let end = prefix_end(p);
            let mut longest = p.to_vec();
            longest.extend_from_slice(&[0xFF; 8]);
            assert!(longest < end, "{p:?}");
            assert!(p < &end[..]);
        }
    }
}
