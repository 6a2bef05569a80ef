//! Pipelined replication over one gRPC bidi stream (`Raft/StreamAppend`).
//!
//! openraft's replication task hands the transport a long-lived stream of
//! AppendEntries and reads the answers in order. Its default sends one
//! request and waits for the answer before the next, so a commit-only
//! request in flight delays the next write's entries by a round trip; on a
//! stream the requests go out as soon as they exist and the follower answers
//! each once its entries are durable.
//!
//! No gRPC deadline covers the whole stream (it lives as long as the leader
//! replicates): while requests are unanswered, the follower must answer one
//! within the RPC timeout of the later of the oldest one's sending and the
//! last answer, or the stream fails as Unreachable. Requests queued behind a
//! slow one do not time out while answers keep coming.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use flaredb_proto::raft as pb;
use futures::{stream::BoxStream, Stream, StreamExt};
use openraft::{
    errors::{NetworkError, RPCError, Unreachable},
    raft::{AppendEntriesRequest, StreamAppendResult},
};
use tokio::time::Instant;
use tonic::Streaming;

use super::{
    faults::{Faults, LinkCut},
    peer::rpc_error,
};
use crate::{
    rpc_codec as rc,
    types::{NodeId, TypeConfig},
};

type Answer = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// What the request side tells the answer side.
#[derive(Default)]
struct Sent {
    /// When each unanswered request was handed to the transport, oldest first.
    at: Mutex<VecDeque<Instant>>,
    /// The request side stopped because fault injection cut the link.
    cut: AtomicBool,
}

impl Sent {
    fn times(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The two halves of one stream: encoded requests to hand to tonic, and a
/// function turning tonic's answer stream into openraft's.
pub(super) struct AppendStream {
    sent: Arc<Sent>,
    target: NodeId,
    timeout: Duration,
    last_answer: Option<Instant>,
}

impl AppendStream {
    /// Encodes `input` for the wire, recording when each request leaves.
    /// With fault injection, a cut link ends the requests (nothing more is
    /// sent) and the answers then end with Unreachable.
    pub(super) fn requests<S>(
        input: S,
        target: NodeId,
        faults: Option<Arc<Faults>>,
        timeout: Duration,
    ) -> (Self, impl Stream<Item = pb::AppendEntriesRequest> + Send + 'static)
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let sent = Arc::new(Sent::default());
        let on_send = sent.clone();
        let requests = input
            .take_while(move |_| {
                let cut = faults.as_ref().is_some_and(|f| f.is_blocked(target));
                if cut {
                    on_send.cut.store(true, Ordering::Release);
                }
                std::future::ready(!cut)
            })
            .map({
                let sent = sent.clone();
                move |req| {
                    sent.times().push_back(Instant::now());
                    rc::append_req_to_pb(&req)
                }
            });
        (Self { sent, target, timeout, last_answer: None }, requests)
    }

    /// openraft's answer stream: in order, one per request; ends after the
    /// first error.
    pub(super) fn answers(self, resp: Streaming<pb::StreamAppendResponse>) -> BoxStream<'static, Answer> {
        futures::stream::unfold(Some((self, resp)), |state| async move {
            let (mut this, mut resp) = state?;
            match this.next(&mut resp).await {
                Some(Ok(answer)) => Some((Ok(answer), Some((this, resp)))),
                Some(Err(e)) => Some((Err(e), None)),
                None => None,
            }
        })
        .boxed()
    }

    async fn next(&mut self, resp: &mut Streaming<pb::StreamAppendResponse>) -> Option<Answer> {
        loop {
            // With none outstanding, look again after one timeout.
            let deadline = self.due().unwrap_or_else(Instant::now) + self.timeout;
            match tokio::time::timeout_at(deadline, resp.message()).await {
                Ok(Ok(Some(msg))) => {
                    self.sent.times().pop_front();
                    self.last_answer = Some(Instant::now());
                    return Some(rc::stream_resp_from_pb(&msg).map_err(|e| RPCError::Network(NetworkError::new(&e))));
                }
                Ok(Ok(None)) if self.sent.cut.load(Ordering::Acquire) => {
                    return Some(Err(RPCError::Unreachable(Unreachable::new(&LinkCut(self.target)))));
                }
                Ok(Ok(None)) => return None,
                Ok(Err(status)) => return Some(Err(rpc_error(status))),
                // A request sent while this waited with none outstanding may not be due yet.
                Err(_) if self.due().is_some_and(|t| t + self.timeout <= Instant::now()) => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("node {} answered no AppendEntries for {:?}", self.target, self.timeout),
                    );
                    return Some(Err(RPCError::Unreachable(Unreachable::new(&e))));
                }
                Err(_) => {}
            }
        }
    }

    /// Whence the next answer is awaited: the later of the oldest unanswered
    /// request's sending and the last answer; None with nothing outstanding.
    fn due(&self) -> Option<Instant> {
        let oldest = self.sent.times().front().copied()?;
        Some(self.last_answer.map_or(oldest, |a| a.max(oldest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_restarts_the_wait_for_requests_queued_behind_it() {
        let mut s =
            AppendStream { sent: Arc::default(), target: 2, timeout: Duration::from_millis(50), last_answer: None };
        assert_eq!(s.due(), None, "nothing outstanding: nothing is due");
        let t0 = Instant::now();
        s.sent.times().extend([t0, t0 + Duration::from_millis(1)]);
        assert_eq!(s.due(), Some(t0), "the oldest request's sending");
        s.sent.times().pop_front();
        s.last_answer = Some(t0 + Duration::from_millis(40));
        assert_eq!(s.due(), Some(t0 + Duration::from_millis(40)), "the last answer, when later");
        s.last_answer = Some(t0);
        assert_eq!(s.due(), Some(t0 + Duration::from_millis(1)), "the request, when sent after the last answer");
    }
}
