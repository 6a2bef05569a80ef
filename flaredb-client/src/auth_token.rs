//! The token a client with credentials sends: fetched from Auth/Authenticate
//! on first use, renewed when half its lifetime has passed or when a server
//! answers UNAUTHENTICATED (it expired, or auth was re-enabled).

use std::time::{Duration, Instant};

use flaredb_proto::v1::{auth_client::AuthClient, AuthenticateRequest};
use tonic::{
    metadata::{Ascii, MetadataValue},
    Code, Request,
};

use crate::{conn::Conn, ClientError};

/// A user name and password (never printed).
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

#[derive(Default)]
pub(crate) struct TokenCache {
    /// The header to send (`None`: the cluster has auth off) and when to renew.
    current: tokio::sync::Mutex<Option<(Option<MetadataValue<Ascii>>, Instant)>>,
}

/// How long "auth is not enabled" is believed before asking again.
const AUTH_OFF_RECHECK: Duration = Duration::from_secs(10);

impl TokenCache {
    /// Forgets the token (a server refused it).
    pub(crate) async fn invalidate(&self) {
        *self.current.lock().await = None;
    }

    /// The authorization header for the next request, if any.
    pub(crate) async fn header(&self, conn: &Conn) -> Result<Option<MetadataValue<Ascii>>, ClientError> {
        let Some(creds) = &conn.config.credentials else { return Ok(None) };
        let mut current = self.current.lock().await;
        if let Some((h, renew_at)) = current.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(h.clone());
            }
        }
        let fresh = authenticate(conn, creds).await?;
        *current = Some(fresh.clone());
        Ok(fresh.0)
    }
}

/// Asks each endpoint in turn until one answers, within the retry budget.
async fn authenticate(
    conn: &Conn,
    creds: &Credentials,
) -> Result<(Option<MetadataValue<Ascii>>, Instant), ClientError> {
    let start = Instant::now();
    let mut backoff = conn.config.backoff_initial;
    loop {
        let addr = conn.next_endpoint();
        let mut req = Request::new(AuthenticateRequest { name: creds.user.clone(), password: creds.password.clone() });
        req.set_timeout(conn.config.request_timeout);
        let status = match AuthClient::new(conn.channel(&addr)?).authenticate(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let header = format!("Bearer {}", r.token)
                    .parse()
                    .map_err(|_| ClientError::Unauthenticated("the server sent an unusable token".into()))?;
                let ttl = Duration::from_secs(r.ttl_seconds.max(1) as u64);
                return Ok((Some(header), Instant::now() + ttl / 2));
            }
            Err(s) => s,
        };
        match status.code() {
            Code::FailedPrecondition => return Ok((None, Instant::now() + AUTH_OFF_RECHECK)),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {}
            _ => return Err(ClientError::from_status(&status)),
        }
        if start.elapsed() + backoff > conn.config.retry_budget {
            return Err(ClientError::Unavailable(format!(
                "could not authenticate as {:?}; last error from {addr}: {}",
                creds.user,
                status.message()
            )));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(conn.config.backoff_max);
    }
}
