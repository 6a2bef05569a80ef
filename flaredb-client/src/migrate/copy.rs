//! The copy itself: batches of source entries, each checked against and
//! written to the target in transactions, several in flight.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::{stream::FuturesUnordered, StreamExt};

use super::{jsonl, left_behind, runs::Run, Conflict, Endpoint, Entry, MigrateError, Options, Report};
use crate::{Compare, CompareOp, RdbClient, TxnOp, TxnOpResult};

/// Bytes of keys and values per batch at most (a Txn is limited to 1 MiB by default).
const BATCH_BYTES: usize = 512 << 10;
/// Keys per batch at most: a batch is one Txn of a compare and a put per key (128 ops by default).
const MAX_BATCH: usize = 60;

/// Counters a progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub read: AtomicU64,
    pub written: AtomicU64,
}

/// Copies `from` into `to` by `opts`; `progress` is updated as it goes.
pub async fn migrate(
    from: &Endpoint,
    to: &Endpoint,
    opts: &Options,
    progress: Arc<Progress>,
) -> Result<Report, MigrateError> {
    let source = super::source(from, opts)?;
    match to {
        Endpoint::Jsonl(path) => export(source, path, progress).await,
        Endpoint::FlareDb { namespace, .. } => {
            let client = to.flaredb_client(&opts.client)?;
            let run = match opts.dry_run {
                true => None,
                false => Some(Run::start(&client, namespace, from, to).await?),
            };
            into_flaredb(source, client, run, opts, progress).await
        }
        Endpoint::Dir(_) | Endpoint::Etcd { .. } | Endpoint::Postgres(_) => {
            Err(MigrateError::Usage(format!("{to} is a source only; write to jsonl: or flaredb://")))
        }
    }
}

use super::endpoint::Entries as Source;

async fn export(mut source: Source, path: &std::path::Path, progress: Arc<Progress>) -> Result<Report, MigrateError> {
    let io = |e: std::io::Error| MigrateError::Io(format!("{}: {e}", path.display()));
    let mut out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?))
    };
    let mut report = Report::default();
    while let Some(e) = source.next().await {
        let e = e?;
        writeln!(out, "{}", jsonl::encode(&e)).map_err(io)?;
        report.read += 1;
        report.written += 1;
        progress.read.fetch_add(1, Ordering::Relaxed);
        progress.written.fetch_add(1, Ordering::Relaxed);
    }
    out.flush().map_err(io)?;
    Ok(report)
}

/// What one batch did.
#[derive(Default)]
struct BatchReport {
    written: u64,
    identical: u64,
    skipped: u64,
    overwritten: u64,
}

async fn into_flaredb(
    mut source: Source,
    client: RdbClient,
    run: Option<Run>,
    opts: &Options,
    progress: Arc<Progress>,
) -> Result<Report, MigrateError> {
    let run = run.map(Arc::new);
    let run_id = run.as_ref().map_or_else(|| "(dry run)".to_string(), |r| r.id.clone());
    let mut report = Report { run_id: run_id.clone(), ..Report::default() };
    let mut in_flight = FuturesUnordered::new();
    let mut batch: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    let batch_size = opts.batch_size.clamp(1, MAX_BATCH);
    let fail = |why: MigrateError, report: &Report| match why {
        MigrateError::Conflict { key, .. } => MigrateError::Conflict {
            key,
            run_id: run_id.clone(),
            written: report.written,
            state: left_behind(&run_id, report.written),
        },
        other => MigrateError::Interrupted {
            why: other.to_string(),
            run_id: run_id.clone(),
            written: report.written,
            state: left_behind(&run_id, report.written),
        },
    };
    let mut ended = false;
    // The first failure: nothing more starts, what is in flight finishes
    // (so the counts say what was written), then the run stops.
    let mut failure: Option<MigrateError> = None;
    loop {
        // Fill the pipeline.
        while !ended && failure.is_none() && in_flight.len() < opts.in_flight.max(1) {
            match source.next().await {
                Some(Ok(e)) => {
                    report.read += 1;
                    progress.read.fetch_add(1, Ordering::Relaxed);
                    bytes += e.key.len() + e.value.len();
                    batch.push(e);
                    if batch.len() < batch_size && bytes < BATCH_BYTES {
                        continue;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => ended = true,
            }
            if !batch.is_empty() {
                let b = std::mem::take(&mut batch);
                bytes = 0;
                in_flight.push(one_batch(client.clone(), run.clone(), b, opts.conflict, opts.dry_run));
            }
        }
        let Some(done) = in_flight.next().await else { break };
        let b = match done {
            Ok(b) => b,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        report.written += b.written;
        report.identical += b.identical;
        report.skipped += b.skipped;
        report.overwritten += b.overwritten;
        progress.written.fetch_add(b.written, Ordering::Relaxed);
    }
    if let Some(e) = failure {
        return Err(fail(e, &report));
    }
    if let Some(run) = &run {
        run.finish(&report).await?;
    }
    Ok(report)
}

/// Reads the batch's keys in the target, decides each by the policy, and
/// writes those to write in one Txn that checks they did not change since.
async fn one_batch(
    client: RdbClient,
    run: Option<Arc<Run>>,
    batch: Vec<Entry>,
    policy: Conflict,
    dry_run: bool,
) -> Result<BatchReport, MigrateError> {
    loop {
        let read = client.txn().and_then(batch.iter().map(|e| TxnOp::get(e.key.clone()))).commit().await?;
        let mut r = BatchReport::default();
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        let mut keys = Vec::new();
        for (e, got) in batch.iter().zip(read.results) {
            let current = match got {
                TxnOpResult::Get(kv) => kv,
                _ => None,
            };
            let version = current.as_ref().map_or(0, |kv| kv.version);
            match current {
                Some(kv) if kv.value == e.value => {
                    r.identical += 1;
                    continue;
                }
                Some(_) => match policy {
                    Conflict::Skip => {
                        r.skipped += 1;
                        continue;
                    }
                    Conflict::Overwrite => r.overwritten += 1,
                    Conflict::Fail => {
                        let key = String::from_utf8_lossy(&e.key).into_owned();
                        return Err(MigrateError::Conflict {
                            key,
                            run_id: String::new(),
                            written: 0,
                            state: String::new(),
                        });
                    }
                },
                None => {}
            }
            compares.push(Compare::version(e.key.clone(), CompareOp::Equal, version));
            puts.push(TxnOp::put(e.key.clone(), e.value.clone()));
            keys.push(e.key.clone());
        }
        r.written = puts.len() as u64;
        if dry_run || puts.is_empty() {
            return Ok(r);
        }
        let w = client.txn().when(compares).and_then(puts).commit().await?;
        if !w.succeeded {
            // A key changed between the read and the write: decide again.
            continue;
        }
        if let Some(run) = &run {
            run.record(&keys, w.revision).await?;
        }
        return Ok(r);
    }
}
