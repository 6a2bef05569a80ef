//! Password hashes: Argon2id with the crate's recommended parameters, in PHC
//! string form (the salt and parameters travel with the hash). Both hashing
//! and checking cost tens of milliseconds of CPU on purpose, so they run on
//! the blocking pool, never on a runtime thread.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use tonic::Status;

/// Longest password accepted (Argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub async fn hash(password: String) -> Result<String, Status> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Status::invalid_argument(format!("password is limited to {MAX_PASSWORD_BYTES} bytes")));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Status::internal(format!("hashing the password: {e}")))
    })
    .await
    .map_err(|e| Status::internal(format!("hashing the password: {e}")))?
}

/// Whether `password` matches `phc`. An empty or unreadable hash matches
/// nothing (a certificate-only user has no password).
pub async fn verify(password: String, phc: String) -> bool {
    if phc.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_checks_its_password_only() {
        let h = hash("s3cret".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("s3cret".into(), h.clone()).await);
        assert!(!verify("s3cret ".into(), h.clone()).await);
        assert!(!verify(String::new(), h).await);
        assert!(!verify("x".into(), String::new()).await, "a certificate-only user has no password");
        assert!(!verify("x".into(), "not a hash".into()).await);
        assert!(hash("a".repeat(MAX_PASSWORD_BYTES + 1)).await.is_err());
    }
}
