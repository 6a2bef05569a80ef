//! KvCas/Watch: a watcher replays this node's history from its start
//! version, then follows the live feed, with progress events when idle.

use std::{sync::Arc, time::Duration};

use flaredb_proto::v1::{EventType, WatchEvent, WatchRequest};
use flaredb_raft::{
    auth::Need,
    namespace::Mode,
    storage::history::{Cursor, Replay},
    watch::{ChangeEvent, Ended, EventKind, WatchFilter, Watcher},
};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{metadata::MetadataValue, Status};

use super::ctx::Ctx;
use crate::{
    auth::gate::{Credential, Scope},
    status, validate,
};

pub type WatchStream = std::pin::Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

/// History events read per step of a replay.
const REPLAY_PAGE: usize = 1024;
/// Messages queued for the client; past this the live feed's buffer fills.
const STREAM_BUFFER: usize = 64;
/// How often an idle watch looks for an auth change that ends it.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts a watch: the checks and the first replay step answer as the call's
/// status; everything later ends the stream with a status.
pub async fn start(ctx: &Arc<Ctx>, r: WatchRequest, cred: Credential) -> Result<WatchStream, Status> {
    validate::namespace(&r.namespace)?;
    if r.prefix {
        if r.key.len() > ctx.limits.max_key_bytes {
            return Err(Status::invalid_argument(format!("prefix is limited to {} bytes", ctx.limits.max_key_bytes)));
        }
    } else {
        validate::key(&ctx.limits, &r.key)?;
    }
    // A namespace that does not exist yet may be watched (its first write
    // creates it), unless namespaces are not created on demand.
    ctx.read_namespace(&r.namespace, Mode::Strong)?;
    let filter = WatchFilter::new(&r.namespace, r.key, r.prefix);
    let watcher = ctx.node.watch(filter.clone());
    let start = match r.start_version {
        0 => watcher.live_from(),
        v => v,
    };
    // Checked again before the first send: the auth state may have changed since the call's check.
    let checked_revision = u64::MAX;
    let mut feed = Feed { ctx: ctx.clone(), filter, watcher, start, cred, namespace: r.namespace, checked_revision };
    let first = feed.replay_step(Cursor::at(start)).await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    if r.start_version == 0 {
        // "From now" names the revision it starts after, so that a client can
        // resume from it even before the first change arrives.
        let now = WatchEvent { progress: true, version: start - 1, ..Default::default() };
        let _ = tx.try_send(Ok(now));
    }
    tokio::spawn(async move {
        if let Err(status) = feed.run(&tx, first).await {
            let _ = tx.send(Err(status)).await;
        }
    });
    let mut rx = rx;
    Ok(Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))))
}

struct Feed {
    ctx: Arc<Ctx>,
    filter: WatchFilter,
    watcher: Watcher,
    /// The watch's start version.
    start: u64,
    /// Who opened it, checked again whenever the auth state changed.
    cred: Credential,
    namespace: String,
    /// The auth revision it was last checked at.
    checked_revision: u64,
}

type Out = mpsc::Sender<Result<WatchEvent, Status>>;

/// The client went away: nothing more to send.
struct Gone;

impl Feed {
    /// One replay step from `at`, up to where the live feed starts.
    /// `Ok(None)`: nothing (more) to replay.
    async fn replay_step(&self, at: Cursor) -> Result<Option<(Vec<ChangeEvent>, Option<Cursor>)>, Status> {
        let until = self.watcher.live_from();
        if at.revision >= until {
            return Ok(None);
        }
        match self.ctx.node.watch_replay(self.filter.clone(), at, until, REPLAY_PAGE).await {
            Ok(Replay::Page { events, next }) => Ok(Some((events, next))),
            Ok(Replay::Compacted { oldest }) => Err(compacted(at.revision, oldest)),
            Err(e) => Err(status::node_error(e)),
        }
    }

    async fn run(&mut self, out: &Out, first: Option<(Vec<ChangeEvent>, Option<Cursor>)>) -> Result<(), Status> {
        let mut step = first;
        while let Some((events, next)) = step {
            self.still_allowed()?;
            if self.send(out, &events).await.is_err() {
                return Ok(());
            }
            step = match next {
                Some(at) => self.replay_step(at).await?,
                None => None,
            };
        }
        let every = Duration::from_millis(self.ctx.watch_progress_ms.max(1));
        let mut idle_until = tokio::time::Instant::now() + every;
        let mut recheck = tokio::time::interval(RECHECK_EVERY);
        loop {
            tokio::select! {
                _ = out.closed() => return Ok(()),
                _ = recheck.tick() => {
                    self.still_allowed()?;
                    // Not activity: the idle timer runs on.
                    continue;
                }
                item = self.watcher.recv() => {
                    let events = item.map_err(|why| ended(&self.ctx, why))?;
                    self.still_allowed()?;
                    if self.send(out, &events).await.is_err() {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(idle_until) => {
                    // Published first: with nothing queued after, all up to it was sent.
                    let published = self.watcher.published();
                    self.still_allowed()?;
                    let sent = match self.watcher.try_recv().map_err(|why| ended(&self.ctx, why))? {
                        Some(events) => self.send(out, &events).await,
                        None if published + 1 >= self.start => {
                            let progress = WatchEvent { progress: true, version: published, ..Default::default() };
                            out.send(Ok(progress)).await.map_err(|_| Gone)
                        }
                        None => Ok(()),
                    };
                    if sent.is_err() {
                        return Ok(());
                    }
                }
            }
            idle_until = tokio::time::Instant::now() + every;
        }
    }

    /// Checks the caller again if the auth state changed since the last
    /// check: a deleted user or a revoked right ends the watch before it
    /// sends anything applied after the change (the auth state of a batch is
    /// published before its events).
    fn still_allowed(&mut self) -> Result<(), Status> {
        let revision = self.ctx.node.auth().revision;
        if revision != self.checked_revision {
            self.ctx.gate.recheck(&self.cred, Scope::Namespace(&self.namespace), &[Need::Read])?;
            self.checked_revision = revision;
        }
        Ok(())
    }

    /// Sends the events at or after the start version.
    async fn send(&self, out: &Out, events: &[ChangeEvent]) -> Result<(), Gone> {
        for e in events.iter().filter(|e| e.revision >= self.start) {
            out.send(Ok(to_wire(e))).await.map_err(|_| Gone)?;
        }
        Ok(())
    }
}

fn to_wire(e: &ChangeEvent) -> WatchEvent {
    WatchEvent {
        r#type: match e.kind {
            EventKind::Put => EventType::Put,
            EventKind::Delete => EventType::Delete,
        } as i32,
        key: e.key.clone(),
        value: e.value.clone(),
        version: e.revision,
        prev_version: e.prev_version,
        progress: false,
    }
}

/// Metadata naming the oldest revision a watch on this node can start from.
pub const OLDEST_REVISION_HEADER: &str = "flaredb-oldest-revision";
/// Metadata naming the revision a cut-off watcher resumes from.
pub const RESUME_FROM_HEADER: &str = "flaredb-resume-from";

fn with_header(mut s: Status, name: &'static str, value: u64) -> Status {
    s.metadata_mut().insert(name, MetadataValue::from(value));
    s
}

pub(crate) fn compacted(asked: u64, oldest: u64) -> Status {
    let s = Status::out_of_range(format!(
        "revision {asked} is older than this node's watch history, which starts at revision {oldest}; \
         re-read the keys (Get/Scan) and watch from the revision read, or resume on a node that still has it"
    ));
    with_header(s, OLDEST_REVISION_HEADER, oldest)
}

fn ended(ctx: &Ctx, why: Ended) -> Status {
    match why {
        Ended::Lagged { resume_from } => {
            let s = Status::resource_exhausted(format!(
                "watcher fell behind: its buffer (watch_buffer_events / watch_buffer_bytes) was full at revision \
                 {resume_from}; read faster, or resume with start_version {resume_from}"
            ));
            with_header(s, RESUME_FROM_HEADER, resume_from)
        }
        Ended::SnapshotInstalled { revision } => {
            let s = Status::unavailable(format!(
                "node {} installed a snapshot at revision {revision} and its watch history restarts after it; \
                 resume from your last version + 1 on another node (or here, if that is above {revision})",
                ctx.node.id()
            ));
            with_header(s, OLDEST_REVISION_HEADER, revision + 1)
        }
        Ended::Stopped => Status::unavailable(format!(
            "node {} is stopping; resume the watch on another node from your last version + 1",
            ctx.node.id()
        )),
    }
}
