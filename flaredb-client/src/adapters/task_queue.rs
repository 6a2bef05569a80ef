//! `TaskQueue`: an orchestrator's task storage. Tasks wait in priority
//! order (then first in, first out); `claim_next` hands each to exactly one
//! worker even when workers race (each claim is a `Txn` on the queue entry
//! and the task's version); a claim is attached to the worker's heartbeat
//! lease, so a task whose worker died goes back to the queue (any worker's
//! next `claim_next` puts it back: no sweeper); status transitions are
//! validated; every transition is appended to the task's audit log in the
//! same `Txn`; and the tasks can be watched.
//!
//! Keys, in the client's namespace, under the queue's prefix `P`:
//! - `P t/{id}` → the task (JSON);
//! - `P q/{inverted priority}/{created µs}/{id}` → empty: the ready queue;
//! - `P r/{id}` → the worker's name: running tasks;
//! - `P c/{id}` → the worker's name, on its lease: the live claim;
//! - `P a/{id}/{n}` → the n-th transition (JSON), append-only.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::{ClientError, Compare, CompareOp, Lease, RdbClient, TxnOp, WatchEventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    /// The transitions a task may make.
    pub fn may_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Queued, Running) | (Queued, Cancelled) | (Running, Succeeded | Failed | Queued) | (Failed, Queued)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub payload: serde_json::Value,
    /// Higher runs first.
    pub priority: u32,
    pub status: TaskStatus,
    /// The worker running it (or that ran it last).
    pub worker: Option<String>,
    /// How many times it was claimed.
    pub attempts: u32,
    pub created_us: u64,
    /// How many transitions its audit log holds.
    pub transitions: u64,
}

/// One entry of a task's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Option<TaskStatus>,
    pub to: TaskStatus,
    pub worker: Option<String>,
    pub at_ms: u64,
    pub note: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    #[error("task {0:?} already exists")]
    AlreadyExists(String),
    #[error("task {0:?} not found")]
    NotFound(String),
    #[error("task {id:?} cannot go from {from:?} to {to:?}")]
    InvalidTransition { id: String, from: TaskStatus, to: TaskStatus },
    #[error("task {id:?} is not claimed by {worker:?}")]
    NotClaimed { id: String, worker: String },
    #[error("task {id:?}: {why}")]
    Json { id: String, why: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A worker: its name and the heartbeat lease its claims hang on. Dropping
/// it stops the heartbeat; its tasks go back to the queue after the TTL.
pub struct Worker {
    name: String,
    lease: Lease,
}

impl Worker {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

#[derive(Clone)]
pub struct TaskQueue {
    client: RdbClient,
    prefix: String,
}

/// Candidates looked at per `claim_next` (racing workers skip taken ones).
const CLAIM_SCAN: u32 = 16;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn parse<T: serde::de::DeserializeOwned>(id: &str, raw: &[u8]) -> Result<T, TaskError> {
    serde_json::from_slice(raw).map_err(|e| TaskError::Json { id: id.into(), why: e.to_string() })
}

fn json<T: Serialize>(id: &str, v: &T) -> Result<Vec<u8>, TaskError> {
    serde_json::to_vec(v).map_err(|e| TaskError::Json { id: id.into(), why: e.to_string() })
}

impl TaskQueue {
    pub fn new(client: RdbClient, prefix: &str) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}/{id}", self.prefix)
    }

    fn queue_key(&self, t: &Task) -> String {
        format!("{}q/{:010}/{:020}/{}", self.prefix, u32::MAX - t.priority, t.created_us, t.id)
    }

    fn audit_key(&self, id: &str, n: u64) -> String {
        format!("{}a/{id}/{n:020}", self.prefix)
    }

    /// A worker named `name` heartbeating on a lease of `ttl_secs`.
    pub async fn worker(&self, name: &str, ttl_secs: i64) -> Result<Worker, TaskError> {
        Ok(Worker { name: name.into(), lease: self.client.lease(ttl_secs).await? })
    }

    /// Adds task `id` to the queue; its version.
    pub async fn enqueue(&self, id: &str, payload: serde_json::Value, priority: u32) -> Result<u64, TaskError> {
        self.insert(id, payload, priority, TaskStatus::Queued, now_us(), "enqueued").await
    }

    /// Adds task `id` as another store had it (a migration): `Running` comes
    /// in as `Queued` (its worker is not ours), `created_us` keeps its place in
    /// the queue. `AlreadyExists` if the id is taken.
    pub async fn import(
        &self,
        id: &str,
        payload: serde_json::Value,
        priority: u32,
        status: TaskStatus,
        created_us: u64,
    ) -> Result<u64, TaskError> {
        let status = if status == TaskStatus::Running { TaskStatus::Queued } else { status };
        self.insert(id, payload, priority, status, created_us, "imported").await
    }

    async fn insert(
        &self,
        id: &str,
        payload: serde_json::Value,
        priority: u32,
        status: TaskStatus,
        created_us: u64,
        note: &str,
    ) -> Result<u64, TaskError> {
        let mut t =
            Task { id: id.into(), payload, priority, status, worker: None, attempts: 0, created_us, transitions: 0 };
        let audit = self.audit(&mut t, None, note)?;
        let tkey = self.key("t", id);
        let mut ops = vec![TxnOp::put(tkey.as_str(), json(id, &t)?), audit];
        if status == TaskStatus::Queued {
            ops.push(TxnOp::put(self.queue_key(&t), ""));
        }
        let r = self
            .client
            .txn()
            .when([Compare::version(tkey.as_str(), CompareOp::Equal, 0)])
            .and_then(ops)
            .commit()
            .await?;
        match r.succeeded {
            true => Ok(r.revision),
            false => Err(TaskError::AlreadyExists(id.into())),
        }
    }

    /// The audit entry of `t` moving from `from` to its current status (and counts it).
    fn audit(&self, t: &mut Task, from: Option<TaskStatus>, note: &str) -> Result<TxnOp, TaskError> {
        let entry =
            Transition { from, to: t.status, worker: t.worker.clone(), at_ms: now_us() / 1000, note: note.into() };
        t.transitions += 1;
        Ok(TxnOp::put(self.audit_key(&t.id, t.transitions), json(&t.id, &entry)?))
    }

    pub async fn get(&self, id: &str) -> Result<Option<(Task, u64)>, TaskError> {
        let Some(v) = self.client.cas_get(self.key("t", id)).await? else { return Ok(None) };
        Ok(Some((parse(id, &v.value)?, v.version)))
    }

    /// Hands the next ready task to `worker` (status Running, claim on its
    /// lease), or `None` when the queue is empty. Tasks of dead workers go
    /// back to the queue first.
    pub async fn claim_next(&self, worker: &Worker) -> Result<Option<Task>, TaskError> {
        self.requeue_orphans().await?;
        let start = format!("{}q/", self.prefix);
        let end = crate::prefix::prefix_end(start.as_bytes());
        let mut from = bytes::Bytes::from(start);
        loop {
            // Each page resumes after the last: entries passed over (a task
            // another worker just took) are not read again.
            let page = self.client.cas_scan(from, end.clone(), CLAIM_SCAN).await?;
            let next = page.next_key.clone();
            for entry in page.entries {
                let qkey = String::from_utf8_lossy(&entry.key).into_owned();
                let id = qkey.rsplit('/').next().unwrap_or_default().to_string();
                let Some((mut t, version)) = self.get(&id).await? else { continue };
                if t.status != TaskStatus::Queued {
                    continue;
                }
                t.status = TaskStatus::Running;
                t.worker = Some(worker.name.clone());
                t.attempts += 1;
                let audit = self.audit(&mut t, Some(TaskStatus::Queued), "claimed")?;
                let tkey = self.key("t", &id);
                let r = self
                    .client
                    .txn()
                    .when([
                        Compare::version(qkey.as_str(), CompareOp::Greater, 0),
                        Compare::version(tkey.as_str(), CompareOp::Equal, version),
                    ])
                    .and_then([
                        TxnOp::delete(qkey.as_str()),
                        TxnOp::put(tkey.as_str(), json(&id, &t)?),
                        TxnOp::put(self.key("r", &id), worker.name.as_str()),
                        TxnOp::put_with_lease(self.key("c", &id), worker.name.as_str(), worker.lease.id()),
                        audit,
                    ])
                    .commit()
                    .await?;
                if r.succeeded {
                    return Ok(Some(t));
                }
                // Another worker took it: the next candidate.
            }
            match next {
                Some(k) => from = k,
                None => return Ok(None),
            }
        }
    }

    /// Running tasks whose claim vanished (their worker's lease ended) go
    /// back to the queue.
    pub async fn requeue_orphans(&self) -> Result<usize, TaskError> {
        let rprefix = self.key("r", "");
        let mut requeued = 0;
        for entry in self.client.scan_prefix(rprefix.as_str()).await? {
            let id = String::from_utf8_lossy(&entry.key[rprefix.len()..]).into_owned();
            if self.client.cas_get(self.key("c", &id)).await?.is_some() {
                continue;
            }
            let Some((mut t, version)) = self.get(&id).await? else { continue };
            if t.status != TaskStatus::Running {
                continue;
            }
            t.status = TaskStatus::Queued;
            let audit = self.audit(&mut t, Some(TaskStatus::Running), "worker lost; requeued")?;
            let (tkey, ckey) = (self.key("t", &id), self.key("c", &id));
            let r = self
                .client
                .txn()
                .when([
                    Compare::version(ckey.as_str(), CompareOp::Equal, 0),
                    Compare::version(tkey.as_str(), CompareOp::Equal, version),
                ])
                .and_then([
                    TxnOp::delete(self.key("r", &id)),
                    TxnOp::put(tkey.as_str(), json(&id, &t)?),
                    TxnOp::put(self.queue_key(&t), ""),
                    audit,
                ])
                .commit()
                .await?;
            requeued += usize::from(r.succeeded);
        }
        Ok(requeued)
    }

    /// Moves task `id` to `to` (validated), optionally only while `worker`
    /// holds its claim; retried when the task changes under it.
    async fn transition(
        &self,
        id: &str,
        to: TaskStatus,
        worker: Option<&Worker>,
        note: &str,
    ) -> Result<u64, TaskError> {
        loop {
            let Some((mut t, version)) = self.get(id).await? else { return Err(TaskError::NotFound(id.into())) };
            let from = t.status;
            if !from.may_become(to) {
                return Err(TaskError::InvalidTransition { id: id.into(), from, to });
            }
            let (tkey, ckey, rkey) = (self.key("t", id), self.key("c", id), self.key("r", id));
            let mut compares = vec![Compare::version(tkey.as_str(), CompareOp::Equal, version)];
            if let Some(w) = worker {
                if t.worker.as_deref() != Some(w.name.as_str()) {
                    return Err(TaskError::NotClaimed { id: id.into(), worker: w.name.clone() });
                }
                // Only while its claim lives: a worker presumed dead must not finish.
                compares.push(Compare::value(ckey.as_str(), CompareOp::Equal, w.name.clone()));
            }
            t.status = to;
            let mut ops = vec![self.audit(&mut t, Some(from), note)?];
            if from == TaskStatus::Running {
                ops.extend([TxnOp::delete(ckey.as_str()), TxnOp::delete(rkey.as_str())]);
            }
            match (from, to) {
                (TaskStatus::Queued, _) => ops.push(TxnOp::delete(self.queue_key(&t))),
                (_, TaskStatus::Queued) => ops.push(TxnOp::put(self.queue_key(&t), "")),
                _ => {}
            }
            ops.push(TxnOp::put(tkey.as_str(), json(id, &t)?));
            let r = self.client.txn().when(compares).and_then(ops).commit().await?;
            if r.succeeded {
                return Ok(r.revision);
            }
            if let Some(w) = worker {
                let claim = self.client.cas_get(ckey.as_str()).await?;
                if claim.is_none_or(|c| c.value != w.name.as_bytes()) {
                    return Err(TaskError::NotClaimed { id: id.into(), worker: w.name.clone() });
                }
            }
        }
    }

    /// The worker finished task `id`: Succeeded or Failed.
    pub async fn finish(&self, worker: &Worker, id: &str, succeeded: bool, note: &str) -> Result<u64, TaskError> {
        let to = if succeeded { TaskStatus::Succeeded } else { TaskStatus::Failed };
        self.transition(id, to, Some(worker), note).await
    }

    /// The worker gives task `id` back to the queue.
    pub async fn release(&self, worker: &Worker, id: &str) -> Result<u64, TaskError> {
        self.transition(id, TaskStatus::Queued, Some(worker), "released").await
    }

    /// Cancels a queued task.
    pub async fn cancel(&self, id: &str) -> Result<u64, TaskError> {
        self.transition(id, TaskStatus::Cancelled, None, "cancelled").await
    }

    /// Queues a failed task again.
    pub async fn retry(&self, id: &str) -> Result<u64, TaskError> {
        self.transition(id, TaskStatus::Queued, None, "retried").await
    }

    /// Task `id`'s transitions, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Transition>, TaskError> {
        let entries = self.client.scan_prefix(self.key("a", &format!("{id}/"))).await?;
        entries.into_iter().map(|e| parse(id, &e.value)).collect()
    }

    /// Every task, in id order.
    pub async fn list(&self) -> Result<Vec<Task>, TaskError> {
        let prefix = self.key("t", "");
        let entries = self.client.scan_prefix(prefix.as_str()).await?;
        entries.into_iter().map(|e| parse(&String::from_utf8_lossy(&e.key), &e.value)).collect()
    }

    /// Task changes from `from_version` (0 = now): each new state of a task.
    pub fn watch(&self, from_version: u64) -> impl Stream<Item = Result<(Task, u64), TaskError>> + Send + 'static {
        let events = self.client.watch(self.key("t", "")).prefix().from_version(from_version).start();
        events.filter_map(|e| {
            let out = match e {
                Err(e) => Some(Err(e.into())),
                Ok(e) if e.kind == WatchEventKind::Put => {
                    Some(parse(&String::from_utf8_lossy(&e.key), &e.value).map(|t| (t, e.version)))
                }
                Ok(_) => None,
            };
            async move { out }
        })
    }
}
