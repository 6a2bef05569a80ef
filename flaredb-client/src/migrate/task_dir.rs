//! `--as task-queue`: a file-based task store's directory (`tasks/<id>.json`
//! holding each task, `queue/<id>.json` marking the queued ones) imported
//! into a [`TaskQueue`]. A task's `status` field (queued/pending, running,
//! succeeded/done/completed, failed, cancelled/canceled) and `priority` are
//! read when present; a task in `queue/` is queued; a running one comes in
//! queued (its worker is gone). Re-running skips tasks already imported.

use std::{collections::HashSet, path::Path};

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

/// Imports the store at `root` into `queue`; only tasks of `only` status if given.
pub async fn import(
    root: &Path,
    queue: &TaskQueue,
    only: Option<TaskStatus>,
    dry_run: bool,
) -> Result<Report, MigrateError> {
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
        if only.is_some_and(|s| s != status) {
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
