//! Per-connection request rate limit (`max_requests_per_sec_per_connection`):
//! each client connection has a token bucket holding one second's worth of
//! requests; a call that finds it empty is answered RESOURCE_EXHAUSTED at
//! once, before any handler runs, so a flooding client gets refusals while
//! every other connection keeps its share of the node.
//!
//! Not limited: calls a follower forwards (limited where they arrived, and
//! one follower connection carries many clients' calls), the Raft transport
//! (peers, when it shares the public address) and health checks.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use flaredb_proto::leader_hint::FORWARDED_KEY;
use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
    Status,
};

/// Buckets of connections idle this long are dropped (a full bucket is the
/// same as none).
const IDLE: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct RateLimitLayer(Option<Arc<Limiter>>);

impl RateLimitLayer {
    /// `per_sec` requests a second per connection; 0: no limit.
    pub fn new(per_sec: u32) -> Self {
        Self((per_sec > 0).then(|| Arc::new(Limiter::new(per_sec))))
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit { inner, limiter: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Option<Arc<Limiter>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RateLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some((limiter, conn)) = self.limiter.as_ref().zip(limited_connection(&req)) {
            if !limiter.admit(conn, Instant::now()) {
                let refused = Status::resource_exhausted(format!(
                    "rate limit: this connection sent more than {} requests a second \
                     (max_requests_per_sec_per_connection); back off and retry",
                    limiter.per_sec
                ));
                return Box::pin(std::future::ready(Ok(refused.into_http())));
            }
        }
        Box::pin(self.inner.call(req))
    }
}

/// The client connection `req` is counted against, or `None` if it is not limited.
fn limited_connection<B>(req: &http::Request<B>) -> Option<SocketAddr> {
    let path = req.uri().path();
    if req.headers().contains_key(FORWARDED_KEY)
        || path.starts_with("/flaredb.raft.")
        || path.starts_with("/grpc.health.")
    {
        return None;
    }
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .or_else(|| ext.get::<TlsConnectInfo<TcpConnectInfo>>().map(|t| t.get_ref()))
        .and_then(TcpConnectInfo::remote_addr)
}

struct Limiter {
    per_sec: u32,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    by_conn: HashMap<SocketAddr, Bucket>,
    last_sweep: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    fn new(per_sec: u32) -> Self {
        Self { per_sec, buckets: Mutex::default() }
    }

    /// Takes one token from `conn`'s bucket, refilled at `per_sec` up to
    /// `per_sec` (one second's burst); false if it is empty.
    fn admit(&self, conn: SocketAddr, now: Instant) -> bool {
        let rate = f64::from(self.per_sec);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.last_sweep.is_none_or(|t| now.duration_since(t) > IDLE) {
            b.by_conn.retain(|_, bucket| now.duration_since(bucket.at) < IDLE);
            b.last_sweep = Some(now);
        }
        let bucket = b.by_conn.entry(conn).or_insert(Bucket { tokens: rate, at: now });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_a_seconds_burst_then_its_rate_and_others_are_apart() {
        let (l, t0) = (Limiter::new(10), Instant::now());
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        assert_eq!((0..20).filter(|_| l.admit(a, t0)).count(), 10);
        // Another connection is not affected by a's flood.
        assert!(l.admit(b, t0));
        // A tenth of a second refills one request.
        let later = t0 + Duration::from_millis(100);
        assert!(l.admit(a, later));
        assert!(!l.admit(a, later));
        // Idle buckets are swept; a swept one starts full again.
        let much_later = t0 + IDLE * 2;
        assert!(l.admit(b, much_later));
        assert_eq!(l.buckets.lock().unwrap().by_conn.len(), 1);
    }

    #[test]
    fn forwarded_raft_and_health_calls_and_unknown_connections_are_not_limited() {
        let conn = TcpConnectInfo { local_addr: None, remote_addr: Some("10.0.0.9:5000".parse().unwrap()) };
        let req = |path: &str, forwarded: bool| {
            let mut r = http::Request::builder().uri(path).body(()).unwrap();
            if forwarded {
                r.headers_mut().insert(FORWARDED_KEY, http::HeaderValue::from_static("1"));
            }
            r.extensions_mut().insert(conn.clone());
            r
        };
        assert!(limited_connection(&req("/flaredb.v1.KvCas/Get", false)).is_some());
        assert!(limited_connection(&req("/flaredb.v1.KvCas/Get", true)).is_none());
        assert!(limited_connection(&req("/flaredb.raft.v1.Raft/AppendEntries", false)).is_none());
        assert!(limited_connection(&req("/grpc.health.v1.Health/Check", false)).is_none());
        assert!(limited_connection(&http::Request::builder().uri("/flaredb.v1.KvCas/Get").body(()).unwrap()).is_none());
    }
}
