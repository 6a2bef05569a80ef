//! Forwarding to the leader: a follower sends writes and strong reads on to
//! the leader over a cached channel, marking them so they hop only once, and
//! tells the caller where the leader is. When the leader cannot be reached
//! (connect refused: the request never left) or none is known, the follower
//! waits for the next leader instead of sending the client into backoff; see
//! `Ctx::forward`.

use std::{future::Future, time::Duration};

use flaredb_proto::{
    channel::ChannelCache,
    leader_hint::{LeaderHint, FORWARDED_KEY},
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
    Request, Response, Status,
};

#[derive(Clone, Default)]
pub struct Forwarder {
    channels: ChannelCache,
}

/// Whether `req` was already forwarded once (then it is served or refused here).
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED_KEY)
}

impl Forwarder {
    /// Forwarding over TLS when the public addresses serve it.
    pub fn new(tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        Self { channels: ChannelCache::default().with_tls(tls) }
    }

    /// New TLS settings (a renewed certificate).
    pub fn set_tls(&self, tls: tonic::transport::ClientTlsConfig) {
        self.channels.set_tls(Some(tls));
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        self.channels.get(addr).map_err(|_| Status::unavailable(format!("leader address {addr:?} is not usable")))
    }

    /// Sends `msg` to `leader` with `call`, and returns its answer with the
    /// leader hint attached so the client goes there directly next time.
    pub async fn call<M, R, F, Fut>(
        &self,
        leader: (u64, String),
        msg: M,
        auth: Option<MetadataValue<Ascii>>,
        timeout: Duration,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let hint = LeaderHint { id: leader.0, addr: leader.1 };
        let mut req = Request::new(msg);
        req.metadata_mut().insert(FORWARDED_KEY, MetadataValue::from_static("1"));
        // The leader checks the caller's rights again (it trusts no marker).
        if let Some(auth) = auth {
            req.metadata_mut().insert(crate::auth::gate::AUTHORIZATION, auth);
        }
        req.set_timeout(timeout);
        let channel = self.channel(&hint.addr)?;
        // Errors pass through untouched: whether a write may have applied is
        // the leader's to say, not ours.
        let mut resp = call(channel, req).await?;
        hint.insert_into(resp.metadata_mut());
        Ok(resp)
    }
}

/// A forwarded call that failed in transport (not an answer from the leader)
/// says where it was going and why, with tonic's source chain, which the
/// caller would otherwise see only as "transport error". The returned status
/// has no source: use it only for the answer sent back.
pub fn with_cause(s: Status, leader: &(u64, String)) -> Status {
    let mut cause = String::new();
    let mut src = std::error::Error::source(&s);
    while let Some(e) = src {
        cause.push_str(": ");
        cause.push_str(&e.to_string());
        src = e.source();
    }
    if cause.is_empty() {
        return s;
    }
    let msg = format!("forwarding to the leader (node {} at {}): {}{cause}", leader.0, leader.1, s.message());
    Status::with_metadata(s.code(), msg, s.metadata().clone())
}

/// The caller's deadline for `req` (its `grpc-timeout` header), if it set one.
pub fn caller_timeout<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_failure_names_the_leader_and_its_cause_and_an_answer_is_untouched() {
        let leader = (1, "127.0.0.1:9".to_string());
        let broken = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        let s = with_cause(Status::from_error(Box::new(broken)), &leader);
        assert!(s.message().contains("node 1 at 127.0.0.1:9") && s.message().ends_with(": broken pipe"), "{s:?}");
        let answer = with_cause(Status::failed_precondition("namespace is EVENTUAL"), &leader);
        assert_eq!(answer.message(), "namespace is EVENTUAL");
    }

    #[test]
    fn the_callers_grpc_timeout_is_read_in_every_unit() {
        let with = |v: &'static str| {
            let mut r = Request::new(());
            r.metadata_mut().insert("grpc-timeout", MetadataValue::from_static(v));
            caller_timeout(&r)
        };
        assert_eq!(with("2999m"), Some(Duration::from_millis(2999)));
        assert_eq!(with("3S"), Some(Duration::from_secs(3)));
        assert_eq!(with("1M"), Some(Duration::from_secs(60)));
        assert_eq!(with("500u"), Some(Duration::from_micros(500)));
        assert_eq!(with("x"), None);
        assert_eq!(with("m"), None);
        assert_eq!(caller_timeout(&Request::new(())), None);
    }
}
