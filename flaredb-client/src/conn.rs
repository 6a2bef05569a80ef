//! Endpoints, the leader cache and the retry loop shared by every call.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use flaredb_proto::{
    channel::ChannelCache,
    leader_hint::{is_connect_failure, is_not_applied, LeaderHint},
};
use tonic::{transport::Channel, Code, Request, Response, Status};

use crate::ClientError;

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
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(500),
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
}

pub(crate) struct Conn {
    endpoints: Vec<String>,
    channels: ChannelCache,
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
    pub(crate) config: ClientConfig,
}

impl Conn {
    pub(crate) fn new(endpoints: Vec<String>, config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::InvalidEndpoint("no endpoints given".into()));
        }
        let conn = Self {
            endpoints,
            channels: ChannelCache::new(config.connect_timeout),
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
            config,
        };
        for e in &conn.endpoints {
            conn.channel(e)?;
        }
        Ok(Arc::new(conn))
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        self.channels.get(addr).map_err(|e| ClientError::InvalidEndpoint(e.0))
    }

    pub(crate) fn channel_for(&self, addr: &str) -> Result<Channel, ClientError> {
        self.channel(addr)
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

    fn set_leader(&self, addr: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    pub(crate) fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        let mut skipped = 0;
        loop {
            let addr = self.target();
            let channel = self.channel(&addr)?;
            let mut req = Request::new(msg.clone());
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
            let hint = LeaderHint::from_metadata(status.metadata());
            let said_not_applied = is_not_applied(status.metadata());
            let connect_failed = !said_not_applied && is_connect_failure(&status);
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {}
                // A server failure after the write was proposed: it may have
                // applied, so it is indeterminate (just below), not a plain error.
                Code::Internal if retry == Retry::OnlyIfNotApplied && !said_not_applied => {}
                _ => return Err(ClientError::from_status(&status)),
            }
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
                return Err(if retry == Retry::OnlyIfNotApplied && uncertain {
                    ClientError::Indeterminate(format!(
                        "{why}; a connection failed, so whether it applied is not known"
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

fn jitter(d: Duration) -> Duration {
    let f = rand::random_range(0.5..1.0);
    d.mul_f64(f)
}
