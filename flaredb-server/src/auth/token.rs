//! Signed tokens: `v1.<payload>.<mac>`, the payload `<expiry ms>:<user>` and
//! the MAC an HMAC-SHA256 under the cluster's signing key (replicated with
//! the auth state), so any node checks a token without asking another.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match (signed by another cluster, or before auth was last enabled)")]
    BadSignature,
    #[error("the token expired; authenticate again")]
    Expired,
}

fn mac(key: &[u8], payload: &str) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    m.update(VERSION.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    m
}

pub fn sign(key: &[u8], user: &str, expires_at_ms: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{expires_at_ms}:{user}"));
    let sig = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{VERSION}.{payload}.{sig}")
}

/// The user a token names, if `key` signed it and it has not expired at `now_ms`.
pub fn verify(key: &[u8], token: &str, now_ms: u64) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(VERSION), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    // Constant-time comparison, before anything in the payload is trusted.
    mac(key, payload).verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let (expiry, user) = payload.split_once(':').ok_or(TokenError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    if now_ms >= expiry {
        return Err(TokenError::Expired);
    }
    Ok(user.to_string())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_until_it_expires_and_only_under_its_key() {
        let key = [7u8; 32];
        let t = sign(&key, "alice:ops", 2_000);
        assert_eq!(verify(&key, &t, 1_999), Ok("alice:ops".to_string()));
        assert_eq!(verify(&key, &t, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&[8u8; 32], &t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_changed_payload_or_a_garbled_token_is_refused() {
        let key = [7u8; 32];
        let t = sign(&key, "alice", 2_000);
        let (head, sig) = t.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("9999999:root");
        let forged = format!("v1.{forged_payload}.{sig}");
        assert_eq!(verify(&key, &forged, 0), Err(TokenError::BadSignature));
        for bad in ["", "v1", "v1..", "v2.a.b", &format!("{head}.!!"), &format!("{t}.x"), &"a".repeat(5000)] {
            assert!(verify(&key, bad, 0).is_err(), "{bad:?}");
        }
    }
}
