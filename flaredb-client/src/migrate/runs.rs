//! Migration runs: each has an id, and the keys it wrote (with the version
//! it wrote them at) are recorded in the [`RUNS_NAMESPACE`] namespace under
//! `{target namespace}/{run}/`, so that a rollback removes exactly them.
//!
//! A key is recorded right after the transaction that wrote it; a crash in
//! between leaves it written and unrecorded (a re-run finds it identical and
//! does not claim it), so a rollback of that run keeps it.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use super::{Endpoint, MigrateError, Options, Report};
use crate::{RdbClient, TxnOp};

/// Where runs are recorded, apart from the user's keys.
pub const RUNS_NAMESPACE: &str = "flaredb-migrations";

pub(super) struct Run {
    pub id: String,
    runs: RdbClient,
    prefix: String,
}

#[derive(Serialize)]
struct RunMeta<'a> {
    from: String,
    to: String,
    started_ms: u64,
    state: &'a str,
    written: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn run_prefix(namespace: &str, id: &str) -> String {
    let ns = if namespace.is_empty() { "default" } else { namespace };
    format!("{ns}/{id}/")
}

impl Run {
    pub async fn start(
        target: &RdbClient,
        namespace: &str,
        from: &Endpoint,
        to: &Endpoint,
    ) -> Result<Self, MigrateError> {
        let id = format!("{:x}-{:04x}", now_ms(), rand::random::<u16>());
        let runs = target.namespace(RUNS_NAMESPACE);
        let prefix = run_prefix(namespace, &id);
        let run = Self { id, runs, prefix };
        run.put_meta(from.to_string(), to.to_string(), "running", 0).await?;
        Ok(run)
    }

    async fn put_meta(&self, from: String, to: String, state: &str, written: u64) -> Result<(), MigrateError> {
        let meta = RunMeta { from, to, started_ms: now_ms(), state, written };
        let raw = serde_json::to_vec(&meta).unwrap_or_default();
        self.runs.txn().and_then([TxnOp::put(format!("{}meta", self.prefix), raw)]).commit().await?;
        Ok(())
    }

    /// Records `keys`, written at `version`.
    pub async fn record(&self, keys: &[Bytes], version: u64) -> Result<(), MigrateError> {
        let v = version.to_string();
        let ops = keys.iter().map(|k| TxnOp::put([format!("{}k/", self.prefix).as_bytes(), k].concat(), v.as_str()));
        self.runs.txn().and_then(ops).commit().await?;
        Ok(())
    }

    pub async fn finish(&self, report: &Report) -> Result<(), MigrateError> {
        let key = format!("{}meta", self.prefix);
        let mut meta: serde_json::Value = match self.runs.cas_get(key.as_str()).await? {
            Some(v) => serde_json::from_slice(&v.value).unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        if let Some(m) = meta.as_object_mut() {
            m.insert("state".into(), "done".into());
            m.insert("written".into(), report.written.into());
            m.insert("finished_ms".into(), now_ms().into());
        }
        let raw = serde_json::to_vec(&meta).unwrap_or_default();
        self.runs.txn().and_then([TxnOp::put(key, raw)]).commit().await?;
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackReport {
    /// Keys of the run deleted.
    pub removed: u64,
    /// Keys changed (or deleted) since the run wrote them: kept.
    pub changed_since: u64,
}

/// Removes what run `run_id` wrote into `to` (a key only if still at the
/// version the run wrote), then the run's records.
pub async fn rollback(to: &Endpoint, run_id: &str, opts: &Options) -> Result<RollbackReport, MigrateError> {
    let Endpoint::FlareDb { namespace, .. } = to else {
        return Err(MigrateError::Usage("--rollback needs a flaredb:// target".into()));
    };
    let target = to.flaredb_client(&opts.client)?;
    let runs = target.namespace(RUNS_NAMESPACE);
    let prefix = run_prefix(namespace, run_id);
    if runs.cas_get(format!("{prefix}meta")).await?.is_none() {
        return Err(MigrateError::Usage(format!("no run {run_id:?} recorded for namespace {namespace:?}")));
    }
    let kprefix = format!("{prefix}k/");
    let mut report = RollbackReport::default();
    for rec in runs.scan_prefix(kprefix.as_str()).await? {
        let key = rec.key.slice(kprefix.len()..);
        let version: u64 = String::from_utf8_lossy(&rec.value).parse().unwrap_or(0);
        match target.cas_delete(key, version).await?.success {
            true => report.removed += 1,
            false => report.changed_since += 1,
        }
    }
    runs.txn().and_then([TxnOp::delete_prefix(prefix)]).commit().await?;
    Ok(report)
}
