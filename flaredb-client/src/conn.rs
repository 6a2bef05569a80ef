//! Endpoints, the leader cache and the retry loop shared by every call.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use flaredb_proto::v1 as pb;
use flaredb_proto::{
    channel::ChannelCache,
    leader_hint::{is_connect_failure, is_not_applied, LeaderHint},
};
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code, Request, Response, Status,
};

use crate::{
    auth_token::{Credentials, TokenCache},
    ClientError,
};

/// Timeouts and retry policy.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Deadline of one attempt (sent to the server as grpc-timeout).
    pub request_timeout: Duration,
    /// Total time a call may spend retrying before it fails.
    pub retry_budget: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    /// Give every compare-and-swap, compare-and-delete and writing
    /// transaction a write id (a client id and a sequence number), so the
    /// cluster applies it at most once however often it is sent: such writes
    /// are then retried after timeouts and leader changes like reads. Turn
    /// off only against servers older than exactly-once writes, which ignore
    /// the id (a retry could then apply twice).
    pub exactly_once: bool,
    /// Talk TLS to the cluster (see [`ClientConfig::with_tls_files`]).
    pub tls: Option<ClientTlsConfig>,
    /// Sign in as this user (see [`ClientConfig::with_user`]).
    pub credentials: Option<Credentials>,
}

impl ClientConfig {
    /// Signs in as `user` on a cluster with auth enabled: the client fetches
    /// a token with Auth/Authenticate and sends it with every request,
    /// renewing it before it expires. Against a cluster with auth off it
    /// sends none. (With a client certificate, its CN can name the user
    /// instead: see [`ClientConfig::with_tls_files`].)
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials { user: user.into(), password: password.into() });
        self
    }

    /// TLS trusting the CA in `ca_pem` (a PEM file), showing the client
    /// certificate `cert`/`key` (PEM files) when the cluster asks for one.
    pub fn with_tls_files(
        mut self,
        ca_pem: &std::path::Path,
        cert_key: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self, ClientError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ClientError::InvalidArgument(format!("{}: {e}", p.display())))
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca_pem)?));
        if let Some((cert, key)) = cert_key {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        self.tls = Some(tls);
        Ok(self)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(500),
            exactly_once: true,
            tls: None,
            credentials: None,
        }
    }
}

/// Whether a failed attempt may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and idempotent writes: retry on any transient failure.
    Always,
    /// Conditional writes: retry only when the request surely did not apply.
    OnlyIfNotApplied,
    /// Writes with a write id: the cluster applies them at most once, so
    /// they are retried on any transient failure.
    Deduplicated,
}

pub(crate) struct Conn {
    endpoints: Vec<String>,
    channels: ChannelCache,
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
    pub(crate) config: ClientConfig,
    /// This client's identity for exactly-once writes, and its next sequence.
    client_id: String,
    sequence: AtomicU64,
    /// The keep-alive stream shared by this client's leases.
    pub(crate) leases: Arc<crate::lease_keeper::Keeper>,
    token: TokenCache,
}

impl Conn {
    pub(crate) fn new(endpoints: Vec<String>, config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::InvalidEndpoint("no endpoints given".into()));
        }
        let conn = Self {
            endpoints,
            channels: ChannelCache::new(config.connect_timeout).with_tls(config.tls.clone()),
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
            config,
            client_id: format!("{:032x}", rand::random::<u128>()),
            sequence: AtomicU64::new(1),
            leases: Default::default(),
            token: TokenCache::default(),
        };
        for e in &conn.endpoints {
            conn.channel(e)?;
        }
        Ok(Arc::new(conn))
    }

    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        self.channels.get(addr).map_err(|e| ClientError::InvalidEndpoint(e.0))
    }

    /// A fresh write id for one write (reused by its retries), or `None`
    /// when exactly-once writes are off. With it, the write is `Deduplicated`.
    pub(crate) fn write_id(&self) -> (Option<pb::WriteId>, Retry) {
        if !self.config.exactly_once {
            return (None, Retry::OnlyIfNotApplied);
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        (Some(pb::WriteId { client_id: self.client_id.clone(), sequence }), Retry::Deduplicated)
    }

    /// The next endpoint in turn (for calls any node serves).
    pub(crate) fn next_endpoint(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.endpoints[i % self.endpoints.len()].clone()
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The leader if known, else the next endpoint in turn.
    fn target(&self) -> String {
        if let Some(l) = self.leader.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return l;
        }
        self.next_endpoint()
    }

    pub(crate) fn set_leader(&self, addr: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    pub(crate) fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A request carrying this client's token, if it has credentials.
    pub(crate) async fn request<M>(&self, msg: M) -> Result<Request<M>, ClientError> {
        let mut req = Request::new(msg);
        if let Some(h) = self.token.header(self).await? {
            req.metadata_mut().insert("authorization", h);
        }
        Ok(req)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the budget ends.
    pub(crate) async fn call<M, R, F, Fut>(&self, retry: Retry, msg: M, attempt: F) -> Result<R, ClientError>
    where
        M: Clone,
        F: Fn(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let start = Instant::now();
        let mut backoff = self.config.backoff_initial;
        let mut followed_hint = false;
        let mut uncertain = false;
        // A deduplicated write that may have reached a server: if no attempt
        // answers, its outcome is unknown.
        let mut maybe_sent = false;
        let mut skipped = 0;
        let mut renewed = false;
        loop {
            let addr = self.target();
            let channel = self.channel(&addr)?;
            let mut req = self.request(msg.clone()).await?;
            req.set_timeout(self.config.request_timeout);
            let status = match attempt(channel, req).await {
                Ok(resp) => {
                    if let Some(h) = LeaderHint::from_metadata(resp.metadata()) {
                        self.set_leader(Some(h.addr));
                    }
                    return Ok(resp.into_inner());
                }
                Err(s) => s,
            };
            // A token that expired or predates a re-enable: renew it once.
            if status.code() == Code::Unauthenticated && self.config.credentials.is_some() && !renewed {
                renewed = true;
                self.token.invalidate().await;
                continue;
            }
            let hint = LeaderHint::from_metadata(status.metadata());
            let said_not_applied = is_not_applied(status.metadata());
            let connect_failed = !said_not_applied && is_connect_failure(&status);
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {}
                // A server failure after the write was proposed: it may have
                // applied, so it is indeterminate (just below), not a plain error.
                Code::Internal if retry != Retry::Always && !said_not_applied => {}
                // A retry the cluster no longer recognises: the first attempt may have applied.
                Code::FailedPrecondition if retry == Retry::Deduplicated && status.metadata().contains_key(STALE) => {
                    return Err(ClientError::Indeterminate(format!("{} (from {addr})", status.message())));
                }
                _ => return Err(ClientError::from_status(&status)),
            }
            maybe_sent |= retry == Retry::Deduplicated && !said_not_applied && !connect_failed;
            if retry == Retry::OnlyIfNotApplied && !said_not_applied && !connect_failed {
                self.set_leader(None);
                return Err(ClientError::Indeterminate(format!("{} (from {addr})", status.message())));
            }
            // Retrying after a failed connect is safe (nothing was sent), but
            // only the server's word makes "not applied" certain at the end.
            uncertain |= connect_failed;
            let hinted = hint.map(|h| h.addr).filter(|a| *a != addr);
            // Follow a fresh hint at once, but never twice in a row (two nodes
            // pointing at each other during an election must not spin).
            let follow = hinted.is_some() && !followed_hint;
            followed_hint = follow;
            if follow {
                backoff = self.config.backoff_initial;
            }
            // A node that refused the connection is down: try the next one at
            // once, sleeping only after a whole round of endpoints failed.
            let next_now = connect_failed && hinted.is_none() && skipped < self.endpoints.len();
            skipped = if next_now { skipped + 1 } else { 0 };
            let go_now = follow || next_now;
            self.set_leader(hinted);
            if start.elapsed() + backoff > self.config.retry_budget {
                let why = format!("gave up after {:?}; last error from {addr}: {}", start.elapsed(), status.message());
                return Err(if (retry == Retry::OnlyIfNotApplied && uncertain) || maybe_sent {
                    ClientError::Indeterminate(format!(
                        "{why}; an attempt may have reached a server, so whether it applied is not known"
                    ))
                } else {
                    ClientError::Unavailable(why)
                });
            }
            if !go_now {
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(self.config.backoff_max);
            }
        }
    }
}

/// Metadata the server sets on a retry older than the client's retained window.
const STALE: &str = "flaredb-write-stale";

fn jitter(d: Duration) -> Duration {
    let f = rand::random_range(0.5..1.0);
    d.mul_f64(f)
}
