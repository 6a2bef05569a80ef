//! `flaredb migrate` and `flaredb export`: the command line over
//! `flaredb_client::migrate`.

use std::{
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use clap::Args;
use flaredb_client::{
    migrate::{self, Conflict, Endpoint, IntoCollection, MigrateError, Options, Progress},
    ClientConfig,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct MigrateArgs {
    /// Where to read: dir:PATH, jsonl:FILE (`jsonl:-` = stdin),
    /// etcd://HOST:PORT[,HOST:PORT], postgres://USER[:PASS]@HOST:PORT/DB?table=T[&key=COLUMN]
    /// (each row as one JSON record, key = --prefix + the key column; the
    /// primary key by default) or flaredb://HOST:PORT[,HOST:PORT]/NAMESPACE.
    #[arg(long, required_unless_present = "rollback")]
    from: Option<Endpoint>,
    /// Where to write: flaredb://HOST:PORT[,HOST:PORT]/NAMESPACE or jsonl:FILE.
    #[arg(long)]
    to: Endpoint,
    /// Only keys starting with PREFIX (for postgres://: the prefix each row's key gets).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Write each record (a JSON object) into the Collection at PREFIX in the
    /// target, id = its key without --prefix, with the indexes below rebuilt
    /// (so `Collection::get_by`/`list_by` find what was migrated).
    #[arg(long, value_name = "PREFIX")]
    into_collection: Option<String>,
    /// With --into-collection: a non-unique index on this top-level field (repeatable).
    #[arg(long = "index", value_name = "FIELD", requires = "into_collection")]
    indexes: Vec<String>,
    /// With --into-collection: a unique index on this top-level field (repeatable).
    #[arg(long = "unique-index", value_name = "FIELD", requires = "into_collection")]
    unique_indexes: Vec<String>,
    /// Keys per transaction (at most 60).
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Transactions in flight at once.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// A key the target already holds with another value: skip (keep the
    /// target's), overwrite, or fail (stop; the batch holding it writes nothing).
    #[arg(long, default_value = "fail")]
    conflict: Conflict,
    /// Read both sides and report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Read the source only and check that every record parses; write nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "rollback"])]
    validate: bool,
    /// After copying, compare counts and content hashes of source and target.
    #[arg(long)]
    verify: bool,
    /// Read --from (dir:PATH) as a file-based task store (`tasks/<id>.json`,
    /// `queue/<id>.json`) and import it into the TaskQueue under --task-prefix.
    #[arg(long = "as", value_name = "LAYOUT", value_parser = ["task-queue"])]
    layout: Option<String>,
    /// With --as task-queue: only tasks in this status (queued, running,
    /// succeeded, failed, cancelled).
    #[arg(long, requires = "layout")]
    status: Option<String>,
    /// With --as task-queue: only tasks created at or after this time (RFC 3339)
    /// or within this age (`36h`, `7days`); see the task's created_at, else its file's mtime.
    #[arg(long, requires = "layout")]
    since: Option<String>,
    /// With --as task-queue: the TaskQueue's prefix in the target namespace.
    #[arg(long, default_value = "/tasks/")]
    task_prefix: String,
    /// Remove exactly what run RUN_ID wrote into --to (keys changed since are kept).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["from", "dry_run", "verify"])]
    rollback: Option<String>,
}

/// `client`: the timeouts and TLS settings for flaredb:// endpoints.
pub async fn migrate_cmd(a: MigrateArgs, client: ClientConfig) -> ExitCode {
    let opts = Options {
        prefix: a.prefix.clone(),
        batch_size: a.batch_size,
        in_flight: a.in_flight,
        conflict: a.conflict,
        dry_run: a.dry_run,
        collection: None,
        client,
    };
    match run(a, opts).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flaredb: migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: MigrateArgs, mut opts: Options) -> Result<ExitCode, MigrateError> {
    if let Some(prefix) = &a.into_collection {
        let mut c = IntoCollection::new(a.to.flaredb_client(&opts.client)?, prefix);
        for f in &a.unique_indexes {
            c = c.unique(f);
        }
        for f in &a.indexes {
            c = c.index(f);
        }
        opts.collection = Some(c);
    }
    if let Some(run_id) = &a.rollback {
        let r = migrate::rollback(&a.to, run_id, &opts).await?;
        println!("run {run_id} rolled back: {} keys removed, {} changed since and kept", r.removed, r.changed_since);
        return Ok(ExitCode::SUCCESS);
    }
    let from = a.from.clone().ok_or_else(|| MigrateError::Usage("--from is required".into()))?;
    if a.layout.is_some() {
        let Endpoint::Dir(root) = &from else {
            return Err(MigrateError::Usage("--as task-queue reads a dir:PATH source".into()));
        };
        let client = a.to.flaredb_client(&opts.client)?;
        let only = migrate::task_dir::Selection {
            status: a.status.as_deref().map(migrate::task_dir::parse_status).transpose()?,
            since: a.since.as_deref().map(migrate::task_dir::parse_since).transpose()?,
        };
        let queue = flaredb_client::adapters::TaskQueue::new(client, &a.task_prefix);
        let r = migrate::task_dir::import(root, &queue, only, a.dry_run).await?;
        let verb = if a.dry_run { "would import" } else { "imported" };
        println!(
            "tasks: {} read, {} {verb}, {} already there, {} not selected (--status/--since)",
            r.read, r.written, r.identical, r.skipped
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.validate {
        let (good, bad) = migrate::validate(&from, &opts).await?;
        println!("{from}: {good} records parse, {} do not", bad.len());
        for b in &bad {
            println!("  {b}");
        }
        return Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(migrate::estimate(&from, &opts).await);
    let ticker = tokio::spawn(show_progress(progress.clone(), bar.clone()));
    let result = migrate::migrate(&from, &a.to, &opts, progress).await;
    ticker.abort();
    bar.finish_and_clear();
    let r = result?;
    let verb = if a.dry_run { "would write" } else { "written" };
    println!(
        "run {}: {} read, {} {verb} ({} overwritten), {} already identical, {} skipped (different in the target)",
        r.run_id, r.read, r.written, r.overwritten, r.identical, r.skipped
    );
    if a.verify && !a.dry_run {
        let v = migrate::verify(&from, &a.to, &opts).await?;
        println!(
            "verify: source {} keys {}, target {} keys {}",
            v.source_count, v.source_hash, v.target_count, v.target_hash
        );
        if !v.matches() {
            eprintln!("flaredb: migrate: verify failed; differing keys: {:?}", v.differing);
            return Ok(ExitCode::FAILURE);
        }
        println!("verify: match");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar with keys/s and ETA on stderr when the source's size is known
/// (a spinner with keys/s when not); drawn only on a terminal.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(n) => {
            (ProgressBar::new(n), "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} keys, {rate}, ETA {eta}")
        }
        None => (ProgressBar::new_spinner(), "{spinner} {elapsed_precise} {human_pos} keys, {rate}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} keys/s", s.per_sec());
        };
        bar.set_style(style.with_key("rate", rate));
    }
    bar
}

async fn show_progress(p: Arc<Progress>, bar: ProgressBar) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        bar.set_position(p.read.load(Ordering::Relaxed));
    }
}

/// `flaredb export`: the namespace (under a prefix) as JSON lines.
pub async fn export_cmd(
    endpoints: &[String],
    namespace: &str,
    prefix: String,
    to: String,
    client: ClientConfig,
) -> ExitCode {
    let from = Endpoint::FlareDb { endpoints: endpoints.to_vec(), namespace: namespace.into() };
    let to = Endpoint::Jsonl(to.into());
    let opts = Options { prefix, client, ..Options::default() };
    match migrate::migrate(&from, &to, &opts, Arc::new(Progress::default())).await {
        Ok(r) => {
            eprintln!("flaredb: exported {} keys", r.written);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flaredb: export: {e}");
            ExitCode::FAILURE
        }
    }
}
