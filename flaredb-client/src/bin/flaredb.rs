//! `flaredb`: a command-line client for FlareDB (keys and values as text).

// A binary's root resolves `mod` next to itself, where Cargo would take a
// file for another binary; keep the module in a directory of its own.
#[path = "flaredb/lease_cmd.rs"]
mod lease_cmd;
#[path = "flaredb/txn_json.rs"]
mod txn_json;
#[path = "flaredb/watch_json.rs"]
mod watch_json;

use std::{
    collections::BTreeSet,
    io::{ErrorKind, Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use flaredb_client::{ClientError, NamespaceMode, RdbClient, WatchEventKind};
use futures::StreamExt;

#[derive(Parser)]
#[command(name = "flaredb", version, about = "Command-line client for FlareDB")]
struct Cli {
    /// Comma-separated node addresses.
    #[arg(long, short, env = "FLAREDB_ENDPOINTS", value_delimiter = ',', default_value = "127.0.0.1:2479")]
    endpoints: Vec<String>,
    /// Namespace ("" = default).
    #[arg(long, short, default_value = "")]
    namespace: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Linearizable read: prints version and value.
    Get {
        key: String,
    },
    /// Compare-and-swap: writes if the version is --expect (0 = must be absent).
    Put {
        key: String,
        value: String,
        #[arg(long, default_value_t = 0)]
        expect: u64,
        /// Attach the key to lease ID (see `flaredb lease`): it is deleted
        /// when the lease is revoked or expires.
        #[arg(long, value_name = "ID")]
        lease: Option<u64>,
    },
    /// Compare-and-delete.
    Delete {
        key: String,
        #[arg(long)]
        expect: u64,
    },
    /// Every strong key with a prefix.
    Scan {
        prefix: String,
    },
    /// Multi-key transaction from a JSON document; prints the result as JSON.
    ///
    /// Reads FILE, or stdin when FILE is absent or `-`. Keys and values are text:
    ///
    ///   {"compares": [{"key": "a", "target": "version", "op": "=", "version": 3},
    ///                 {"key": "b", "target": "value", "op": "!=", "value": "x"}],
    ///    "success": [{"put": {"key": "a", "value": "1"}}, {"delete": {"key": "b"}},
    ///                {"get": {"key": "c"}}, {"delete_prefix": {"prefix": "tmp/"}}],
    ///    "failure": [{"get": {"key": "a"}}]}
    ///
    /// `target` is "version" or "value"; `op` is "=", "!=", ">" or "<" (or "equal",
    /// "not_equal", "greater", "less"); `version` defaults to 0 (absent). Every list
    /// is optional. If every compare holds the `success` ops run, else `failure`'s.
    /// Prints one line:
    ///
    ///   {"succeeded": true, "revision": 42, "results": [{"put": {"version": 42}},
    ///    {"delete": {"deleted": 1}}, {"get": {"found": true, "key": "c", "value": "..",
    ///    "version": 7}}, {"get": {"found": false, "key": "d"}}]}
    ///
    /// Values are printed as text; bytes that are not UTF-8 become U+FFFD. Exits 0
    /// when the transaction ran, also when `succeeded` is false; a malformed document
    /// is an error and nothing is sent.
    #[command(verbatim_doc_comment)]
    Txn {
        /// The document; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Streams the changes of KEY (or of every key under it, with --prefix)
    /// as JSON, one line per event, until interrupted or an error:
    ///
    ///   {"type":"PUT","key":"svc/a","value":"10.0.0.1:80","version":12,"prev_version":0}
    ///   {"type":"DELETE","key":"svc/a","version":14,"prev_version":12}
    ///   {"type":"PROGRESS","version":20}   (only with --progress)
    ///
    /// `version` is the change's revision (events of one transaction share it);
    /// `prev_version` is the key's version before it (0 = absent). Events come
    /// in revision order with no gap and no duplicate, also when the node
    /// serving the watch fails and another one takes over. Keys and values are
    /// text; bytes that are not UTF-8 become U+FFFD.
    ///
    /// Without --from the watch starts now. If the changes it still needs are
    /// no longer kept by any node, it fails: re-read the keys (get / scan) and
    /// watch again from after the version read.
    #[command(verbatim_doc_comment)]
    Watch {
        /// The key, or the prefix with --prefix (an empty prefix: every key).
        key: String,
        /// Watch every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
        /// The first revision to print (changes with version >= it); 0 = from now.
        /// To resume after an event at version V, use V + 1.
        #[arg(long = "from", value_name = "VERSION", default_value_t = 0)]
        from: u64,
        /// Also print progress events: every change up to `version` has been printed.
        #[arg(long)]
        progress: bool,
    },
    /// Leases: grant, revoke, keep alive, time to live.
    Lease {
        #[command(subcommand)]
        cmd: lease_cmd::LeaseCmd,
    },
    /// Takes lock NAME (waiting while someone else holds it) and runs COMMAND
    /// while holding it, or without COMMAND holds it until interrupted.
    ///
    /// The lock is the key NAME in the namespace (-n), held with a lease of
    /// --ttl seconds that this process keeps alive; its value is the holder,
    /// `host/pid`. If this process dies, the lock frees itself within the TTL.
    /// Once acquired it prints
    ///
    ///   lock NAME acquired (token T, lease L)
    ///
    /// on stdout without COMMAND, on stderr with one. T is the fencing token:
    /// it grows with every new holder, so a resource that remembers the
    /// highest token it saw can refuse a holder whose lock has passed on.
    ///
    /// With COMMAND (after `--`), COMMAND runs with FLAREDB_LOCK_TOKEN=T in
    /// its environment; when it exits the lock is released and flaredb exits
    /// with its exit status (128+N if signal N ended it). SIGINT and SIGTERM
    /// are passed on to it. If the lock is lost while it runs (its lease
    /// expired or was revoked), COMMAND gets SIGTERM (SIGKILL 5 s later) and
    /// flaredb exits 1 saying the lock was lost.
    ///
    /// Without COMMAND, Ctrl-C or SIGTERM releases the lock and exits 0; a
    /// lost lock exits 1. Interrupted while still waiting, it exits 130
    /// (SIGINT) or 143 (SIGTERM).
    ///
    ///   flaredb lock backup -- sh -c 'run-backup --fence "$FLAREDB_LOCK_TOKEN"'
    #[command(verbatim_doc_comment)]
    Lock {
        name: String,
        /// The lease's TTL in seconds: how long the lock outlives a holder that dies.
        #[arg(long, default_value_t = 10, value_parser = lease_cmd::ttl_secs)]
        ttl: i64,
        /// The command to run while holding the lock, and its arguments.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Campaigns in election NAME with PROPOSAL, or with --listen follows who leads it.
    ///
    /// An election is a lock (see `flaredb lock`) whose value is the leader's
    /// proposal. With PROPOSAL it waits until elected, prints
    ///
    ///   elected: PROPOSAL (token T)
    ///
    /// and leads until interrupted (Ctrl-C or SIGTERM: resigns and exits 0)
    /// or until its lease is lost (exits 1). T is the fencing token.
    ///
    /// With --listen it prints the current leader, then a line each time
    /// that changes, until interrupted (exits 0):
    ///
    ///   leader: PROPOSAL (token T)
    ///   no leader
    #[command(verbatim_doc_comment)]
    Elect {
        name: String,
        /// The value to lead with.
        #[arg(required_unless_present = "listen")]
        proposal: Option<String>,
        /// Print the leader as it changes instead of campaigning.
        #[arg(long, conflicts_with = "proposal")]
        listen: bool,
        /// The lease's TTL in seconds: how long leadership outlives a leader that dies.
        #[arg(long, default_value_t = 10, value_parser = lease_cmd::ttl_secs)]
        ttl: i64,
    },
    RawPut {
        key: String,
        value: String,
    },
    RawGet {
        key: String,
    },
    RawDelete {
        key: String,
    },
    RawScan {
        prefix: String,
    },
    Status,
    Namespaces,
    CreateNamespace {
        name: String,
        #[arg(value_parser = ["strong", "eventual"])]
        mode: String,
    },
    AddLearner {
        id: u64,
        addr: String,
        #[arg(long)]
        wait: bool,
    },
    /// Sets the voters, e.g. `change-membership 1,2,3`.
    ChangeMembership {
        #[arg(value_delimiter = ',')]
        voters: Vec<u64>,
    },
    RemoveNode {
        id: u64,
    },
    TransferLeader {
        id: u64,
    },
    Snapshot,
    Hash,
    /// Streams a backup to FILE.
    Backup {
        file: PathBuf,
    },
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The bytes of `file`, or of stdin for `None` or `-`, and how to name the source in errors.
fn read_input(file: Option<&std::path::Path>) -> Result<(String, Vec<u8>), ClientError> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => {
            let source = f.display().to_string();
            let input = std::fs::read(f).map_err(|e| ClientError::InvalidArgument(format!("{source}: {e}")))?;
            Ok((source, input))
        }
        None => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .map_err(|e| ClientError::InvalidArgument(format!("stdin: {e}")))?;
            Ok(("(stdin)".into(), input))
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, ClientError> {
    let mut config = flaredb_client::ClientConfig::default();
    if let Some(ms) = std::env::var("FLAREDB_RETRY_BUDGET_MS").ok().and_then(|v| v.parse().ok()) {
        config.retry_budget = std::time::Duration::from_millis(ms);
    }
    let client = RdbClient::with_config(cli.endpoints, config)?.namespace(cli.namespace);
    match cli.cmd {
        Cmd::Get { key } => match client.cas_get(key).await? {
            Some(v) => println!("{}\t{}", v.version, text(&v.value)),
            None => println!("(absent)"),
        },
        Cmd::Put { key, value, expect, lease } => {
            let o = match lease {
                Some(id) => client.cas_put_with_lease(key, value, expect, id).await?,
                None => client.cas_put(key, value, expect).await?,
            };
            if o.success {
                println!("ok version {}", o.new_version);
            } else {
                println!("conflict: current version {}", o.current_version);
                std::process::exit(3);
            }
        }
        Cmd::Delete { key, expect } => {
            let o = client.cas_delete(key, expect).await?;
            println!("{} (version was {})", if o.success { "deleted" } else { "conflict" }, o.current_version);
        }
        Cmd::Scan { prefix } => {
            for kv in client.scan_prefix(prefix).await? {
                println!("{}\t{}\t{}", text(&kv.key), kv.version, text(&kv.value));
            }
        }
        Cmd::Txn { file } => {
            let (source, input) = read_input(file.as_deref())?;
            let parsed = txn_json::parse(&input)
                .map_err(|e| ClientError::InvalidArgument(format!("txn document {source}: {e}")))?;
            let r = client
                .txn()
                .when(parsed.compares.clone())
                .and_then(parsed.success.clone())
                .or_else(parsed.failure.clone())
                .commit()
                .await?;
            let out = serde_json::to_string(&parsed.output(r)).expect("the output serializes");
            println!("{out}");
        }
        Cmd::Watch { key, prefix, from, progress } => watch(&client, key, prefix, from, progress).await?,
        Cmd::Lease { cmd } => return lease_cmd::lease(&client, cmd).await,
        Cmd::Lock { name, ttl, command } => return lease_cmd::lock(&client, name, ttl, command).await,
        Cmd::Elect { name, proposal, listen: _, ttl } => return lease_cmd::elect(&client, name, ttl, proposal).await,
        Cmd::RawPut { key, value } => client.raw_put(key, value).await?,
        Cmd::RawGet { key } => println!("{}", client.raw_get(key).await?.map_or("(absent)".into(), |v| text(&v))),
        Cmd::RawDelete { key } => println!("{}", if client.raw_delete(key).await? { "deleted" } else { "absent" }),
        Cmd::RawScan { prefix } => {
            for (k, v) in client.raw_scan_prefix(prefix).await? {
                println!("{}\t{}", text(&k), text(&v));
            }
        }
        Cmd::Status => println!("{:#?}", client.status().await?),
        Cmd::Namespaces => {
            for n in client.list_namespaces().await? {
                println!("{}\t{}\t{:?}", n.name, n.id, NamespaceMode::try_from(n.mode).unwrap_or_default());
            }
        }
        Cmd::CreateNamespace { name, mode } => {
            let mode = if mode == "strong" { NamespaceMode::Strong } else { NamespaceMode::Eventual };
            let n = client.create_namespace(&name, mode).await?;
            println!("{} id {}", n.name, n.id);
        }
        Cmd::AddLearner { id, addr, wait } => println!("{:#?}", client.add_learner(id, &addr, wait).await?),
        Cmd::ChangeMembership { voters } => {
            println!("{:#?}", client.change_membership(voters.into_iter().collect::<BTreeSet<_>>()).await?)
        }
        Cmd::RemoveNode { id } => println!("{:#?}", client.remove_node(id).await?),
        Cmd::TransferLeader { id } => client.transfer_leader(id).await?,
        Cmd::Snapshot => println!("snapshot at index {}", client.snapshot().await?),
        Cmd::Hash => {
            let (applied, hash) = client.hash().await?;
            println!("applied {applied} hash {hash:016x}");
        }
        Cmd::Backup { file } => {
            let mut f = std::fs::File::create(&file)
                .map_err(|e| ClientError::InvalidArgument(format!("{}: {e}", file.display())))?;
            let n = client.backup(&mut f).await?;
            f.sync_all().map_err(|e| ClientError::Unavailable(format!("{}: {e}", file.display())))?;
            println!("wrote {n} bytes to {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the events of a watch as JSON lines until it fails. A reader that
/// goes away (`| head -n 3`) ends it quietly: that is how a pipe says "enough".
async fn watch(client: &RdbClient, key: String, prefix: bool, from: u64, progress: bool) -> Result<(), ClientError> {
    let mut w = client.watch(key).from_version(from);
    if prefix {
        w = w.prefix();
    }
    let mut events = std::pin::pin!(w.start());
    while let Some(e) = events.next().await {
        let e = e.map_err(|e| match e {
            // The client already tried every endpoint: say what to do next in this CLI's terms.
            ClientError::Compacted { oldest, message } => ClientError::Compacted {
                oldest,
                message: format!(
                    "{message}\nflaredb: no node still has the changes this watch needs; re-read the keys \
                     (`flaredb get` / `flaredb scan`) and watch again with a later --from (revisions before \
                     {oldest} are gone)"
                ),
            },
            e => e,
        })?;
        if e.kind == WatchEventKind::Progress && !progress {
            continue;
        }
        // Flushed per line: a consumer reading a pipe sees each event as it happens.
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{}", watch_json::line(&e)).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => return Err(ClientError::Unavailable(format!("writing to stdout: {err}"))),
        }
    }
    // The stream only ends after an error, which it yields first.
    Err(ClientError::Unavailable("the watch ended without a reason".into()))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flaredb: {e}");
            ExitCode::FAILURE
        }
    }
}
