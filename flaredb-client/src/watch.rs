//! Watches that outlive the node serving them.
//!
//! [`RdbClient::watch`] opens `KvCas/Watch` on one endpoint and, when that
//! node fails, stops, installs a snapshot or cuts the watcher off for
//! falling behind, re-attaches (to the next endpoint) from the first event it
//! has not delivered: the events it yields have no gap and no duplicate. A
//! node whose history no longer reaches that far is skipped; when no node
//! has it, the stream ends with [`ClientError::Compacted`], and the caller
//! re-reads (e.g. `scan_prefix`) and watches again from the version read.

use std::{collections::HashSet, time::Instant};

use bytes::Bytes;
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Code, Status};

use crate::IntoBytes;
use crate::{ClientError, RdbClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
    /// Every change up to `version` has been delivered.
    Progress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    pub key: Bytes,
    /// The new value of a put.
    pub value: Bytes,
    /// The revision of the change (a put's new version), or of a progress event.
    pub version: u64,
    /// The key's version before the change (0 = absent).
    pub prev_version: u64,
}

/// What to watch; built by [`RdbClient::watch`], started by [`WatchBuilder::start`].
pub struct WatchBuilder {
    client: RdbClient,
    key: Bytes,
    prefix: bool,
    from: u64,
}

impl RdbClient {
    /// Watches `key` (or, with [`WatchBuilder::prefix`], every key under it).
    ///
    /// ```no_run
    /// # async fn demo(client: flaredb_client::RdbClient) -> Result<(), flaredb_client::ClientError> {
    /// use futures::StreamExt;
    /// let mut events = client.watch("backend/").prefix().start();
    /// while let Some(e) = events.next().await {
    ///     let e = e?;
    ///     println!("{:?} {:?} @ {}", e.kind, e.key, e.version);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, key: impl IntoBytes) -> WatchBuilder {
        WatchBuilder { client: self.clone(), key: key.into_bytes(), prefix: false, from: 0 }
    }
}

impl WatchBuilder {
    pub fn prefix(mut self) -> Self {
        self.prefix = true;
        self
    }

    /// Start at this revision (events with version >= it); the default, 0, is from now.
    pub fn from_version(mut self, version: u64) -> Self {
        self.from = version;
        self
    }

    /// The events, until the stream is dropped or fails for good.
    pub fn start(self) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + 'static {
        let (tx, mut rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut w = Attach { b: self, at: Position::default() };
            if let Err(e) = w.run(&tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}

/// Where the watch resumes: at `revision`, skipping the `delivered` events of
/// it already passed on (a node sends one revision's events in the same order).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Position {
    revision: u64,
    delivered: usize,
}

struct Attach {
    b: WatchBuilder,
    at: Position,
}

/// The consumer dropped the stream.
struct Closed;

type Out = mpsc::Sender<Result<WatchEvent, ClientError>>;

impl Attach {
    async fn run(&mut self, out: &Out) -> Result<(), ClientError> {
        let conn = self.b.client.conn.clone();
        self.at = Position { revision: self.b.from, delivered: 0 };
        let mut backoff = conn.config.backoff_initial;
        let mut failing_since: Option<Instant> = None;
        // Since the watch last moved: endpoints whose history is too short,
        // and endpoints that failed otherwise (down, unreachable).
        let mut compacted: HashSet<String> = HashSet::new();
        let mut failed: HashSet<String> = HashSet::new();
        loop {
            let addr = conn.next_endpoint();
            let before = self.at;
            let status = match self.follow(&addr, out).await {
                Ok(()) => return Ok(()),
                Err(Ok(status)) => status,
                Err(Err(Closed)) => return Ok(()),
            };
            if self.at != before {
                // It moved: earlier failures are behind it.
                (failing_since, backoff) = (None, conn.config.backoff_initial);
                compacted.clear();
                failed.clear();
            }
            match status.code() {
                Code::OutOfRange => {
                    failed.remove(&addr);
                    compacted.insert(addr.clone());
                    // No reachable endpoint has the revision: only a re-read helps.
                    if compacted.len() + failed.len() >= conn.endpoint_count() {
                        let oldest = header(&status, "flaredb-oldest-revision").unwrap_or(0);
                        return Err(ClientError::Compacted { oldest, message: status.message().to_string() });
                    }
                    continue;
                }
                Code::Unavailable
                | Code::ResourceExhausted
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted
                | Code::Internal => {}
                _ => return Err(ClientError::from_status(&status)),
            }
            if !compacted.contains(&addr) {
                failed.insert(addr.clone());
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() > conn.config.retry_budget {
                return Err(ClientError::Unavailable(format!(
                    "watch could not re-attach for {:?}; last error from {addr}: {}",
                    since.elapsed(),
                    status.message()
                )));
            }
            tracing::debug!(%addr, code = ?status.code(), revision = self.at.revision, "re-attaching watch");
            // Cut off for falling behind: resume at once.
            if status.code() != Code::ResourceExhausted {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(conn.config.backoff_max);
            }
        }
    }

    /// One attachment, until it ends: `Err(Ok(status))` says why.
    async fn follow(&mut self, addr: &str, out: &Out) -> Result<(), Result<Status, Closed>> {
        let channel = self.b.client.conn.channel(addr).map_err(|e| Ok(Status::unavailable(e.to_string())))?;
        let req = pb::WatchRequest {
            namespace: self.b.client.namespace.clone(),
            key: self.b.key.clone(),
            prefix: self.b.prefix,
            start_version: self.at.revision,
        };
        let req = self.b.client.conn.request(req).await.map_err(|e| Ok(Status::unauthenticated(e.to_string())))?;
        let mut stream = KvCasClient::new(channel).watch(req).await.map_err(Ok)?.into_inner();
        let mut skip = self.at.delivered;
        loop {
            // A consumer that dropped the stream ends the watch now, not at the next message.
            let next = tokio::select! {
                _ = out.closed() => return Err(Err(Closed)),
                next = stream.message() => next,
            };
            let msg = match next {
                Ok(Some(m)) => m,
                Ok(None) => return Err(Ok(Status::unavailable(format!("watch stream from {addr} ended")))),
                Err(s) => return Err(Ok(s)),
            };
            if msg.progress {
                // Nothing at or below it is still to come.
                if msg.version + 1 > self.at.revision {
                    self.at = Position { revision: msg.version + 1, delivered: 0 };
                }
                let e = WatchEvent {
                    kind: WatchEventKind::Progress,
                    key: Bytes::new(),
                    value: Bytes::new(),
                    version: msg.version,
                    prev_version: 0,
                };
                out.send(Ok(e)).await.map_err(|_| Err(Closed))?;
                continue;
            }
            if msg.version < self.at.revision {
                continue;
            }
            if msg.version == self.at.revision && skip > 0 {
                skip -= 1;
                continue;
            }
            if msg.version > self.at.revision {
                self.at = Position { revision: msg.version, delivered: 0 };
                skip = 0;
            }
            self.at.delivered += 1;
            let kind = match pb::EventType::try_from(msg.r#type) {
                Ok(pb::EventType::Delete) => WatchEventKind::Delete,
                _ => WatchEventKind::Put,
            };
            let e = WatchEvent {
                kind,
                key: msg.key,
                value: msg.value,
                version: msg.version,
                prev_version: msg.prev_version,
            };
            out.send(Ok(e)).await.map_err(|_| Err(Closed))?;
        }
    }
}

fn header(s: &Status, name: &str) -> Option<u64> {
    s.metadata().get(name)?.to_str().ok()?.parse().ok()
}
