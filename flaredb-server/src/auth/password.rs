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

/// Argon2 runs at once at most (each takes ~19 MiB and a core for tens of
/// ms): a flood of sign-ins waits here instead of filling the blocking pool
/// that storage also uses, and is refused past a short wait.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn slot() -> Result<tokio::sync::SemaphorePermit<'static>, Status> {
    slot_in(&SLOTS, SLOT_WAIT).await
}

async fn slot_in(
    slots: &'static tokio::sync::Semaphore,
    wait: std::time::Duration,
) -> Result<tokio::sync::SemaphorePermit<'static>, Status> {
    match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(Status::resource_exhausted("too many password checks at once; retry shortly")),
    }
}

/// Checked in place of a missing hash, so that an unknown or certificate-only
/// user costs as much as a wrong password (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"not a password", &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

pub async fn hash(password: String) -> Result<String, Status> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Status::invalid_argument(format!("password is limited to {MAX_PASSWORD_BYTES} bytes")));
    }
    let _slot = slot().await?;
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
/// nothing (a certificate-only user has no password), after the same work.
/// RESOURCE_EXHAUSTED when too many checks are already running.
pub async fn verify(password: String, phc: String) -> Result<bool, Status> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let _slot = slot().await?;
    Ok(tokio::task::spawn_blocking(move || {
        let real = !phc.is_empty();
        let phc = if real { phc } else { dummy_hash().to_string() };
        let Ok(parsed) = PasswordHash::new(&phc) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
    })
    .await
    .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_past_the_wait_for_a_slot_is_resource_exhausted() {
        static BUSY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let _held = slot_in(&BUSY, SLOT_WAIT).await.unwrap();
        let refused = slot_in(&BUSY, std::time::Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry"), "{}", refused.message());
    }

    #[tokio::test]
    async fn a_hash_checks_its_password_only() {
        let h = hash("s3cret".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("s3cret".into(), h.clone()).await.unwrap());
        assert!(!verify("s3cret ".into(), h.clone()).await.unwrap());
        assert!(!verify(String::new(), h).await.unwrap());
        assert!(!verify("x".into(), String::new()).await.unwrap(), "a certificate-only user has no password");
        assert!(!verify("not a password".into(), String::new()).await.unwrap(), "the dummy hash matches nothing");
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
        assert!(hash("a".repeat(MAX_PASSWORD_BYTES + 1)).await.is_err());
    }
}
