//! `flaredb lease …`, `flaredb lock` and `flaredb elect`: the commands built
//! on leases, and the signal handling of those that run until interrupted.

use std::{
    io::{ErrorKind, Write},
    process::ExitCode,
    time::Duration,
};

use bytes::Bytes;
use clap::Subcommand;
use flaredb_client::{ClientError, LockGuard, RdbClient, WatchEventKind};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::process::{Child, Command};

use crate::{
    cli_bytes::{json_field, show},
    output::{print_json, Output},
};

/// How long a command whose lock was lost has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A TTL in whole seconds, at least 1 (the server raises it to its minimum, 2).
pub fn ttl_secs(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("a TTL is at least 1 second".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Subcommand)]
pub enum LeaseCmd {
    /// Grants a lease of TTL seconds: prints `lease ID granted with TTL Ns`
    ///
    /// The server raises a TTL below its minimum (2 s); N is the TTL granted.
    /// Nothing keeps the lease alive: it expires after N seconds, deleting its
    /// keys, unless `flaredb lease keepalive ID` runs. Attach keys with
    /// `flaredb put --lease ID`. In scripts use --id-only (or -o json:
    /// {"id": ID, "ttl": N}):
    ///
    ///   id=$(flaredb lease grant 30 --id-only)
    #[command(verbatim_doc_comment)]
    Grant {
        /// Seconds.
        #[arg(value_parser = ttl_secs)]
        ttl: i64,
        /// Print only the lease id.
        #[arg(long)]
        id_only: bool,
    },
    /// Revokes lease ID, deleting its keys: prints `lease ID revoked (N keys deleted)`.
    ///
    /// Every key attached to the lease is deleted at once (JSON: {"id",
    /// "deleted"}). A lease that does not exist (never granted, expired or
    /// revoked) is an error (exit 2).
    Revoke { id: u64 },
    /// Keeps lease ID alive until interrupted or lost.
    ///
    /// Prints `lease ID kept alive (TTL Ns) until interrupted` when it starts.
    /// Ctrl-C or SIGTERM stops renewing and exits 0: the lease is not revoked,
    /// it expires after its TTL. A lost lease (revoked, expired, or no renewal
    /// answered for a whole TTL) exits 1. A lease that does not exist is an error.
    #[command(name = "keepalive")]
    KeepAlive { id: u64 },
    /// Prints how long lease ID has left (and with --keys its keys).
    ///
    /// Prints `lease ID: remaining Ns of Gs` (seconds left, rounded up, of
    /// the TTL granted), then with --keys each key attached to it, one per
    /// line: namespace, a tab, key. JSON: {"id", "ttl", "granted_ttl"} and
    /// with --keys "keys": [{"namespace", "key"}]. A lease that does not
    /// exist is an error (exit 2).
    Ttl {
        id: u64,
        /// Also list the keys attached.
        #[arg(long)]
        keys: bool,
    },
}

fn no_lease(id: u64) -> ClientError {
    ClientError::NotFound(format!("lease {id} does not exist (never granted, expired or revoked)"))
}

pub async fn lease(client: &RdbClient, out: Output, cmd: LeaseCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        LeaseCmd::Grant { ttl, id_only } => {
            let (id, ttl) = client.lease_grant(ttl).await?;
            if id_only {
                println!("{id}");
            } else if out.json() {
                print_json(&json!({"id": id, "ttl": ttl}));
            } else {
                println!("lease {id} granted with TTL {ttl}s");
            }
        }
        LeaseCmd::Revoke { id } => {
            let deleted = client.lease_revoke(id).await?.ok_or_else(|| no_lease(id))?;
            if out.json() {
                print_json(&json!({"id": id, "deleted": deleted}));
            } else {
                println!("lease {id} revoked ({deleted} keys deleted)");
            }
        }
        LeaseCmd::KeepAlive { id } => return keep_alive(client, id).await,
        LeaseCmd::Ttl { id, keys } => {
            let t = client.lease_time_to_live(id, keys).await?.ok_or_else(|| no_lease(id))?;
            if out.json() {
                let mut j = json!({"id": id, "ttl": t.ttl_secs, "granted_ttl": t.granted_ttl_secs});
                if keys {
                    let list = t
                        .keys
                        .iter()
                        .map(|(ns, key)| {
                            let mut o = Map::new();
                            o.insert("namespace".into(), ns.clone().into());
                            json_field(&mut o, "key", key);
                            Value::Object(o)
                        })
                        .collect();
                    j["keys"] = Value::Array(list);
                }
                print_json(&j);
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = format!("lease {id}: remaining {}s of {}s\n", t.ttl_secs, t.granted_ttl_secs);
            for (ns, key) in &t.keys {
                out.push_str(&format!("{ns}\t{}\n", show(key)));
            }
            print!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keep_alive(client: &RdbClient, id: u64) -> Result<ExitCode, ClientError> {
    let mut signals = Signals::new()?;
    let ttl = client.lease_time_to_live(id, false).await?.ok_or_else(|| no_lease(id))?.granted_ttl_secs;
    let lease = client.keep_alive(id, ttl);
    say(&format!("lease {id} kept alive (TTL {ttl}s) until interrupted"));
    tokio::select! {
        why = lease.lost() => {
            eprintln!("flaredb: lease lost: {why}");
            Ok(ExitCode::FAILURE)
        }
        // Stops renewing; the lease runs out its TTL.
        _ = signals.recv() => Ok(ExitCode::SUCCESS),
    }
}

/// Prints a line at once (stdout may be a pipe). A reader that went away
/// does not matter to a command that holds something until interrupted.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Who holds a lock: `host/pid`.
fn holder() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

/// Waits for `acquire` unless a signal comes first: then says so and exits
/// 128 + the signal (nothing is held yet; the lease the wait used expires).
async fn acquire(
    signals: &mut Signals,
    what: &str,
    acquire: impl std::future::Future<Output = Result<LockGuard, ClientError>>,
) -> Result<Result<LockGuard, ExitCode>, ClientError> {
    tokio::select! {
        guard = acquire => guard.map(Ok),
        sig = signals.recv() => {
            eprintln!("flaredb: interrupted (SIG{}) while waiting for {what}", sig.name());
            Ok(Err(sig.exit_code()))
        }
    }
}

/// Holds `guard` until a signal (then releases it and exits 0) or until it is lost.
async fn hold(guard: LockGuard, what: &str, signals: &mut Signals) -> Result<ExitCode, ClientError> {
    tokio::select! {
        why = guard.lost() => Err(ClientError::LockLost(format!("{what}: {why}"))),
        _ = signals.recv() => {
            guard.release().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn lock(client: &RdbClient, name: String, ttl: i64, command: Vec<String>) -> Result<ExitCode, ClientError> {
    let mut signals = Signals::new()?;
    let what = format!("lock {name}");
    let guard = match acquire(&mut signals, &what, client.lock(name.clone(), holder(), ttl)).await? {
        Ok(guard) => guard,
        Err(code) => return Ok(code),
    };
    let acquired = format!("{what} acquired (token {}, lease {})", guard.fencing_token(), guard.lease().id());
    if command.is_empty() {
        say(&acquired);
        return hold(guard, &what, &mut signals).await;
    }
    eprintln!("flaredb: {acquired}");
    let child = Command::new(&command[0])
        .args(&command[1..])
        .env("FLAREDB_LOCK_TOKEN", guard.fencing_token().to_string())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            guard.release().await?;
            return Err(ClientError::InvalidArgument(format!("cannot run {:?}: {e}", command[0])));
        }
    };
    run_locked(child, guard, &what, &mut signals).await
}

/// Waits for the command holding `guard`; releases it and exits as the
/// command did. Signals are passed on to the command. If the lock is lost the
/// command gets SIGTERM (SIGKILL after [`KILL_GRACE`]) and this fails.
async fn run_locked(
    mut child: Child,
    guard: LockGuard,
    what: &str,
    signals: &mut Signals,
) -> Result<ExitCode, ClientError> {
    let mut lost: Option<String> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => {
                break status.map_err(|e| ClientError::Unavailable(format!("waiting for the command: {e}")))?;
            }
            why = guard.lost(), if lost.is_none() => {
                eprintln!("flaredb: {what} lost ({why}); stopping the command");
                signal(&mut child, Caught::Term).await;
                lost = Some(why);
                kill_at = Some(tokio::time::Instant::now() + KILL_GRACE);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                let _ = child.start_kill();
                kill_at = None;
            }
            sig = signals.recv() => signal(&mut child, sig).await,
        }
    };
    if let Some(why) = lost {
        return Err(ClientError::LockLost(format!(
            "{what} was lost while the command ran ({why}); it was stopped ({status})"
        )));
    }
    if let Err(e) = guard.release().await {
        eprintln!("flaredb: releasing {what}: {e} (it frees itself when its lease expires)");
    }
    Ok(exit_code(status))
}

/// The exit code a shell would report for `status`: its code, or 128 + the
/// signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    #[cfg(unix)]
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return ExitCode::from((128 + sig) as u8);
    }
    match status.code() {
        Some(code) => ExitCode::from(code as u8),
        None => ExitCode::FAILURE,
    }
}

/// Sends `sig` to `child` (if still running), or SIGKILL where that cannot be done.
async fn signal(child: &mut Child, sig: Caught) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        let sent = Command::new("kill").arg(format!("-{}", sig.name())).arg(pid.to_string()).status().await;
        if sent.is_ok_and(|s| s.success()) {
            return;
        }
    }
    let _ = sig;
    let _ = child.start_kill();
}

pub async fn elect(
    client: &RdbClient,
    name: String,
    ttl: i64,
    proposal: Option<String>,
) -> Result<ExitCode, ClientError> {
    let mut signals = Signals::new()?;
    let Some(proposal) = proposal else {
        // Listening: an interrupt is the normal end.
        return tokio::select! {
            r = listen(client, &name) => r.map(|()| ExitCode::SUCCESS),
            _ = signals.recv() => Ok(ExitCode::SUCCESS),
        };
    };
    let what = format!("leadership of {name}");
    let guard = match acquire(&mut signals, &what, client.campaign(name.clone(), proposal.clone(), ttl)).await? {
        Ok(guard) => guard,
        Err(code) => return Ok(code),
    };
    say(&format!("elected: {proposal} (token {})", guard.fencing_token()));
    hold(guard, &what, &mut signals).await
}

/// Prints the leader of election `name` now and after each change, until an
/// error, or `Ok` when stdout is closed.
async fn listen(client: &RdbClient, name: &str) -> Result<(), ClientError> {
    let mut shown: Option<Option<(Bytes, u64)>> = None;
    let mut show = |leader: Option<(Bytes, u64)>| -> Result<bool, ClientError> {
        if shown.as_ref() == Some(&leader) {
            return Ok(true);
        }
        let line = match &leader {
            Some((value, version)) => format!("leader: {} (token {version})", show(value)),
            None => "no leader".into(),
        };
        shown = Some(leader);
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(ClientError::Unavailable(format!("writing to stdout: {e}"))),
        }
    };
    loop {
        // A watch from now first names the revision it starts after: once
        // that is in, it sees every later change, and the read that follows
        // misses none before.
        let mut events = std::pin::pin!(client.watch(name.to_owned()).start());
        let first = match events.next().await {
            Some(first) => first?,
            None => return Err(ClientError::Unavailable("the watch ended without a reason".into())),
        };
        let current = client.election_leader(name.to_owned()).await?;
        let mut seen = current.as_ref().map_or(0, |v| v.version);
        if !show(current.map(|v| (v.value, v.version)))? {
            return Ok(());
        }
        let mut pending = Some(Ok(first));
        loop {
            let e = match pending.take() {
                Some(e) => e,
                None => match events.next().await {
                    Some(e) => e,
                    None => return Err(ClientError::Unavailable("the watch ended without a reason".into())),
                },
            };
            let e = match e {
                Ok(e) => e,
                // Too far behind to follow: read the leader again.
                Err(ClientError::Compacted { .. }) => break,
                Err(e) => return Err(e),
            };
            if e.kind == WatchEventKind::Progress || e.version <= seen {
                continue;
            }
            seen = e.version;
            let leader = (e.kind == WatchEventKind::Put).then_some((e.value, e.version));
            if !show(leader)? {
                return Ok(());
            }
        }
    }
}

/// A signal that asks a command to stop.
#[derive(Debug, Clone, Copy)]
pub enum Caught {
    Int,
    Term,
}

impl Caught {
    fn name(self) -> &'static str {
        match self {
            Caught::Int => "INT",
            Caught::Term => "TERM",
        }
    }

    /// 128 + the signal number, as a shell reports a command it ended.
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Caught::Int => 130,
            Caught::Term => 143,
        })
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from when this is made: the process
/// no longer dies of them.
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> Result<Self, ClientError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let failed = |e: std::io::Error| ClientError::Unavailable(format!("catching signals: {e}"));
            Ok(Signals {
                int: signal(SignalKind::interrupt()).map_err(failed)?,
                term: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    pub async fn recv(&mut self) -> Caught {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Caught::Int,
                _ = self.term.recv() => Caught::Term,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Caught::Int
        }
    }
}
