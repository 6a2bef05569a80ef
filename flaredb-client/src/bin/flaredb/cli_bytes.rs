//! Keys, values and prefixes on the command line, and how bytes are printed.
//!
//! An argument is text, or binary written as `0x…` (hex) or `base64:…`
//! (standard alphabet, padding optional); `text:…` takes the rest as is, for
//! text that itself starts with one of these prefixes. Printed bytes are text
//! when they are UTF-8, else `0x…` hex (text output) or a `…_base64` field
//! holding standard base64 (JSON output).

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};
use bytes::Bytes;
use serde_json::{Map, Value};

/// A key, value or prefix argument, decoded (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin(pub Bytes);

/// Parses an argument: `0x…` hex, `base64:…`, `text:…` or plain text.
pub fn parse(s: &str) -> Result<Bin, String> {
    let bytes = if let Some(hex) = s.strip_prefix("0x") {
        decode_hex(hex).map_err(|e| format!("{e} (write text that starts with 0x as text:{s})"))?
    } else if let Some(b64) = s.strip_prefix("base64:") {
        decode_base64(b64).map_err(|e| format!("{e} (write text that starts with base64: as text:{s})"))?
    } else if let Some(text) = s.strip_prefix("text:") {
        text.as_bytes().to_vec()
    } else {
        s.as_bytes().to_vec()
    };
    Ok(Bin(Bytes::from(bytes)))
}

/// For text output: the text when UTF-8, else `0x` and lower-case hex.
pub fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", encode_hex(b)),
    }
}

/// For JSON output: sets `name` to the text when UTF-8, else `name_base64`
/// to the bytes in standard base64.
pub fn json_field(obj: &mut Map<String, Value>, name: &str, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => obj.insert(name.to_owned(), Value::String(s.to_owned())),
        Err(_) => obj.insert(format!("{name}_base64"), Value::String(encode_base64(b))),
    };
}

pub fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("0x{s}: hex needs an even number of digits"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("0x{s}: {:?} is not a hex digit", c as char)),
    };
    s.as_bytes().chunks(2).map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?)).collect()
}

/// Standard alphabet; padding optional on input, written on output; stray
/// bits after the last byte refused (one spelling per value).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn encode_base64(b: &[u8]) -> String {
    BASE64.encode(b)
}

fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    BASE64.decode(s).map_err(|e| format!("base64:{s}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<u8> {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).0.to_vec()
    }

    #[test]
    fn text_hex_base64_and_the_text_escape() {
        assert_eq!(p("svc/a"), b"svc/a");
        assert_eq!(p(""), b"");
        assert_eq!(p("0x00ff10Ab"), [0x00, 0xff, 0x10, 0xab]);
        assert_eq!(p("0x"), b"");
        assert_eq!(p("base64:AP8Q"), [0x00, 0xff, 0x10]);
        assert_eq!(p("base64:AP8="), [0x00, 0xff]);
        assert_eq!(p("base64:AP8"), [0x00, 0xff]);
        assert_eq!(p("base64:AA=="), [0x00]);
        assert_eq!(p("base64:AA"), [0x00]);
        assert_eq!(p("base64:"), b"");
        assert_eq!(p("text:0xzz"), b"0xzz");
        assert_eq!(p("text:text:x"), b"text:x");
        // Only the exact prefixes are special.
        assert_eq!(p("0X12"), b"0X12");
        assert_eq!(p("Base64:AA"), b"Base64:AA");
    }

    #[test]
    fn malformed_binary_is_refused_with_a_hint() {
        for bad in ["0x1", "0x0g", "0xzz", "base64:A", "base64:AP8Q=", "base64:A===", "base64:AP-Q", "base64:AB"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("text:"), "{bad}: {e}");
        }
    }

    #[test]
    fn base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).rev().collect();
        for n in 0..40 {
            let enc = encode_base64(&data[..n]);
            assert_eq!(enc.len() % 4, 0, "{enc}");
            assert_eq!(p(&format!("base64:{enc}")), &data[..n], "{enc}");
            assert_eq!(p(&format!("base64:{}", enc.trim_end_matches('='))), &data[..n]);
            assert_eq!(p(&format!("0x{}", encode_hex(&data[..n]))), &data[..n]);
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(encode_base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn output_is_text_when_utf8_else_hex_or_base64() {
        assert_eq!(show("héllo".as_bytes()), "héllo");
        assert_eq!(show(&[0xff, 0x00, 0x41]), "0xff0041");
        let mut obj = Map::new();
        json_field(&mut obj, "key", b"k");
        json_field(&mut obj, "value", &[0xff, 0x00]);
        assert_eq!(Value::Object(obj), serde_json::json!({"key": "k", "value_base64": "/wA="}));
    }
}
