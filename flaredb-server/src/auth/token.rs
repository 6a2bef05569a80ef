//! Signed tokens: `v2.<payload>.<mac>`, the payload `<expiry ms>:<incarnation>:<user>`
//! and the MAC an HMAC-SHA256 under the cluster's signing key (replicated
//! with the auth state), so any node checks a token without asking another.
//! The incarnation is the auth revision the user was added at: a user
//! deleted and added again does not inherit the old one's tokens.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v2";
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

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    /// The revision the user was added at (`User::added_at`).
    pub incarnation: u64,
}

pub fn sign(key: &[u8], claims: &Claims, expires_at_ms: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{expires_at_ms}:{}:{}", claims.incarnation, claims.user));
    let sig = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{VERSION}.{payload}.{sig}")
}

/// Who a token names, if `key` signed it and it has not expired at `now_ms`.
pub fn verify(key: &[u8], token: &str, now_ms: u64) -> Result<Claims, TokenError> {
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
    let mut fields = payload.splitn(3, ':');
    let (Some(expiry), Some(incarnation), Some(user)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(TokenError::Malformed);
    };
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let incarnation: u64 = incarnation.parse().map_err(|_| TokenError::Malformed)?;
    if now_ms >= expiry {
        return Err(TokenError::Expired);
    }
    Ok(Claims { user: user.to_string(), incarnation })
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: &str) -> Claims {
        Claims { user: user.into(), incarnation: 12 }
    }

    #[test]
    fn a_token_names_its_user_until_it_expires_and_only_under_its_key() {
        let key = [7u8; 32];
        let t = sign(&key, &claims("alice:ops"), 2_000);
        assert_eq!(verify(&key, &t, 1_999), Ok(claims("alice:ops")));
        assert_eq!(verify(&key, &t, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&[8u8; 32], &t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_changed_payload_or_a_garbled_token_is_refused() {
        let key = [7u8; 32];
        let t = sign(&key, &claims("alice"), 2_000);
        let (head, sig) = t.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("9999999:12:root");
        let forged = format!("v2.{forged_payload}.{sig}");
        assert_eq!(verify(&key, &forged, 0), Err(TokenError::BadSignature));
        // A token of the old format (no incarnation), even correctly signed.
        let old_payload = URL_SAFE_NO_PAD.encode("9999999:alice");
        let old_sig = URL_SAFE_NO_PAD.encode(mac(&key, &old_payload).finalize().into_bytes());
        assert_eq!(verify(&key, &format!("v2.{old_payload}.{old_sig}"), 0), Err(TokenError::Malformed));
        for bad in ["", "v1", "v2..", "v1.a.b", &format!("{head}.!!"), &format!("{t}.x"), &"a".repeat(5000)] {
            assert!(verify(&key, bad, 0).is_err(), "{bad:?}");
        }
    }
}
