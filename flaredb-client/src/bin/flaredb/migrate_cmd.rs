//! `flaredb migrate` and `flaredb export`: the command line over
//! `flaredb_client::migrate`.

use std::{
    io::IsTerminal,
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use clap::Args;
use flaredb_client::{
    migrate::{self, Conflict, Endpoint, MigrateError, Options, Progress},
    ClientConfig,
};

#[derive(Args)]
pub struct MigrateArgs {
    /// Where to read: dir:PATH, jsonl:FILE (`jsonl:-` = stdin),
    /// etcd://HOST:PORT[,HOST:PORT] or flaredb://HOST:PORT[,HOST:PORT]/NAMESPACE.
    #[arg(long, required_unless_present = "rollback")]
    from: Option<Endpoint>,
    /// Where to write: flaredb://HOST:PORT[,HOST:PORT]/NAMESPACE or jsonl:FILE.
    #[arg(long)]
    to: Endpoint,
    /// Only keys starting with PREFIX.
    #[arg(long, default_value = "")]
    prefix: String,
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
    /// With --as task-queue: the TaskQueue's prefix in the target namespace.
    #[arg(long, default_value = "/tasks/")]
    task_prefix: String,
    /// Remove exactly what run RUN_ID wrote into --to (keys changed since are kept).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["from", "dry_run", "verify"])]
    rollback: Option<String>,
}

pub async fn migrate_cmd(a: MigrateArgs) -> ExitCode {
    let opts = Options {
        prefix: a.prefix.clone(),
        batch_size: a.batch_size,
        in_flight: a.in_flight,
        conflict: a.conflict,
        dry_run: a.dry_run,
        client: ClientConfig::default(),
    };
    match run(a, opts).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flaredb: migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: MigrateArgs, opts: Options) -> Result<ExitCode, MigrateError> {
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
        let only = a.status.as_deref().map(migrate::task_dir::parse_status).transpose()?;
        let queue = flaredb_client::adapters::TaskQueue::new(client, &a.task_prefix);
        let r = migrate::task_dir::import(root, &queue, only, a.dry_run).await?;
        let verb = if a.dry_run { "would import" } else { "imported" };
        println!(
            "tasks: {} read, {} {verb}, {} already there, {} not in the status asked",
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
    let ticker = tokio::spawn(show_progress(progress.clone()));
    let result = migrate::migrate(&from, &a.to, &opts, progress).await;
    ticker.abort();
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

/// A progress line on stderr (when it is a terminal) once a second.
async fn show_progress(p: Arc<Progress>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (read, written) = (p.read.load(Ordering::Relaxed), p.written.load(Ordering::Relaxed));
        let rate = written as f64 / started.elapsed().as_secs_f64().max(0.001);
        eprint!("\r{read} read, {written} written, {rate:.0} keys/s   ");
    }
}

/// `flaredb export`: the namespace (under a prefix) as JSON lines.
pub async fn export_cmd(endpoints: &[String], namespace: &str, prefix: String, to: String) -> ExitCode {
    let from = Endpoint::FlareDb { endpoints: endpoints.to_vec(), namespace: namespace.into() };
    let to = Endpoint::Jsonl(to.into());
    let opts = Options { prefix, ..Options::default() };
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
