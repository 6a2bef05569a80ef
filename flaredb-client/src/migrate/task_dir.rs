//! `--as task-queue`: a file-based task store's directory (`tasks/<id>.json`
//! holding each task, `queue/<id>.json` marking the queued ones) imported
//! into a [`TaskQueue`]. A task's `status` field (queued/pending, running,
//! succeeded/done/completed, failed, cancelled/canceled) and `priority` are
//! read when present; a task in `queue/` is queued; a running one comes in
//! queued (its worker is gone). Re-running skips tasks already imported.
//! `--since` keeps the tasks created at or after a time: the task's
//! `created_at` (or `createdAt`, `created`, `submitted_at`, `timestamp`:
//! RFC 3339 text or Unix seconds/milliseconds), else its file's mtime.

use std::{collections::HashSet, path::Path, time::SystemTime};

use super::{MigrateError, Report};
use crate::adapters::{TaskError, TaskQueue, TaskStatus};

fn status_of(v: &serde_json::Value) -> Option<TaskStatus> {
    let s = v.get("status")?.as_str()?.to_ascii_lowercase();
    Some(match s.as_str() {
        "queued" | "pending" | "waiting" => TaskStatus::Queued,
        "running" | "claimed" | "in_progress" => TaskStatus::Running,
        "succeeded" | "success" | "done" | "completed" => TaskStatus::Succeeded,
        "failed" | "error" => TaskStatus::Failed,
        "cancelled" | "canceled" => TaskStatus::Cancelled,
        _ => return None,
    })
}

/// Parses a status name as `--status` takes it.
pub fn parse_status(s: &str) -> Result<TaskStatus, MigrateError> {
    status_of(&serde_json::json!({ "status": s })).ok_or_else(|| {
        MigrateError::Usage(format!("status {s:?}: expected queued, running, succeeded, failed or cancelled"))
    })
}

/// Parses `--since`: an RFC 3339 time (`2026-11-01T00:00:00Z`) or an age (`36h`, `7days`).
pub fn parse_since(s: &str) -> Result<SystemTime, MigrateError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc).into());
    }
    match humantime::parse_duration(s) {
        Ok(age) => Ok(SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH)),
        Err(_) => Err(MigrateError::Usage(format!(
            "--since {s:?}: expected an RFC 3339 time (2026-11-01T00:00:00Z) or an age (36h, 7days)"
        ))),
    }
}

/// When a task was created, from its fields (see the module docs).
fn created_at(v: &serde_json::Value) -> Option<SystemTime> {
    let field = ["created_at", "createdAt", "created", "submitted_at", "submittedAt", "timestamp"]
        .iter()
        .find_map(|f| v.get(*f))?;
    if let Some(text) = field.as_str() {
        return chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&chrono::Utc).into());
    }
    let n = field.as_u64()?;
    // Past 1e11 it cannot be seconds (that is the year 5138): milliseconds.
    let d = if n > 100_000_000_000 { std::time::Duration::from_millis(n) } else { std::time::Duration::from_secs(n) };
    SystemTime::UNIX_EPOCH.checked_add(d)
}

fn ids_in(dir: &Path) -> Result<Vec<String>, MigrateError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut ids = Vec::new();
    for e in entries {
        let e = e.map_err(|e| MigrateError::Io(format!("{}: {e}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".json") {
            ids.push(id.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

/// Which tasks an import takes (`None`: all).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    pub status: Option<TaskStatus>,
    pub since: Option<SystemTime>,
}

/// Imports the store at `root` into `queue`, the tasks `only` selects.
pub async fn import(root: &Path, queue: &TaskQueue, only: Selection, dry_run: bool) -> Result<Report, MigrateError> {
    let queued: HashSet<String> = ids_in(&root.join("queue"))?.into_iter().collect();
    let mut report = Report { run_id: "(task queue import)".into(), ..Report::default() };
    for (n, id) in ids_in(&root.join("tasks"))?.into_iter().enumerate() {
        let path = root.join("tasks").join(format!("{id}.json"));
        let raw = std::fs::read(&path).map_err(|e| MigrateError::Io(format!("{}: {e}", path.display())))?;
        let payload: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| MigrateError::Parse(format!("{}: {e}", path.display())))?;
        report.read += 1;
        let status = match queued.contains(&id) {
            true => TaskStatus::Queued,
            false => status_of(&payload).unwrap_or(TaskStatus::Queued),
        };
        let created = || created_at(&payload).or_else(|| std::fs::metadata(&path).and_then(|m| m.modified()).ok());
        let too_old = only.since.is_some_and(|since| created().is_some_and(|t| t < since));
        if only.status.is_some_and(|s| s != status) || too_old {
            report.skipped += 1;
            continue;
        }
        let priority = payload.get("priority").and_then(|p| p.as_u64()).map_or(0, |p| p.min(u32::MAX as u64) as u32);
        if dry_run {
            report.written += 1;
            continue;
        }
        // Files in name order keep their order in the queue.
        match queue.import(&id, payload, priority, status, n as u64).await {
            Ok(_) => report.written += 1,
            Err(TaskError::AlreadyExists(_)) => report.identical += 1,
            Err(TaskError::Client(e)) => return Err(e.into()),
            Err(e) => return Err(MigrateError::Parse(e.to_string())),
        }
    }
    Ok(report)
}
