//! `flaredb`: a command-line client for FlareDB, in the manner of etcdctl.

// A binary's root resolves `mod` next to itself, where Cargo would take a
// file for another binary; keep the module in a directory of its own.
#[path = "flaredb/auth_cmd.rs"]
mod auth_cmd;
#[path = "flaredb/cli_bytes.rs"]
mod cli_bytes;
#[path = "flaredb/cluster_cmd.rs"]
mod cluster_cmd;
#[path = "flaredb/kv_cmd.rs"]
mod kv_cmd;
#[path = "flaredb/lease_cmd.rs"]
mod lease_cmd;
#[path = "flaredb/migrate_cmd.rs"]
mod migrate_cmd;
#[path = "flaredb/output.rs"]
mod output;
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
use cli_bytes::Bin;
use flaredb_client::{ClientError, RdbClient, WatchEventKind};
use futures::StreamExt;
use output::Output;

const LONG_ABOUT: &str = "\
Command-line client for FlareDB, in the manner of etcdctl.

Endpoints come from --endpoints (-e) or FLAREDB_ENDPOINTS, comma-separated;
any node serves any request.

Keys, values and prefixes (get, put, del, scan, watch) are text, or bytes as
  0x0aff          hex (an even number of digits)
  base64:Cv8=     base64 (standard alphabet, padding optional)
  text:0x0aff     the text after `text:`, as is (for text starting with 0x, base64: or text:)

Output (--output/-o):
  text  for people (the default). Keys and values print as text when they are
        UTF-8, else as 0x hex.
  json  one JSON document on stdout, for scripts (get, put, del, scan, ns,
        member, status, lease). A key or value prints as the string `key` /
        `value` when it is UTF-8, else as `key_base64` / `value_base64` in
        standard base64. txn and watch always print JSON (see their --help).

Exit codes:
  0  success
  1  any other error: unreachable cluster, invalid argument, bad usage, a
     member that did not answer `status`, ...
  2  not found: get or del of an absent key; a namespace, lease or member
     that does not exist
  3  conflict: put or del with --expect N while the key is at another version
     (without --expect, put and del are unconditional)
  lock with a COMMAND exits with the command's status; lock, elect and
  lease keepalive exit 130/143 when interrupted while waiting (see --help).";

#[derive(Parser)]
#[command(name = "flaredb", version, about = "Command-line client for FlareDB", long_about = LONG_ABOUT)]
struct Cli {
    /// Comma-separated node addresses.
    #[arg(long, short, env = "FLAREDB_ENDPOINTS", value_delimiter = ',', default_value = "127.0.0.1:2479")]
    endpoints: Vec<String>,
    /// Namespace ("" = default).
    #[arg(long, short, default_value = "")]
    namespace: String,
    /// Output format (accepted before or after the command).
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// TLS: trust the cluster certificates signed by this CA (PEM).
    #[arg(long, global = true, env = "FLAREDB_CACERT")]
    cacert: Option<PathBuf>,
    /// TLS: this client certificate (PEM), when the cluster asks for one.
    #[arg(long = "cert", global = true, env = "FLAREDB_CERT", requires_all = ["tls_key", "cacert"])]
    tls_cert: Option<PathBuf>,
    /// TLS: the client certificate's key (PEM).
    #[arg(long = "key", global = true, env = "FLAREDB_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Sign in as USER (or USER:PASSWORD) on a cluster with auth enabled.
    #[arg(long = "user", id = "sign_in_user", global = true, env = "FLAREDB_USER", value_name = "USER[:PASSWORD]")]
    sign_in_user: Option<String>,
    /// The password for --user (or FLAREDB_PASSWORD).
    #[arg(long = "password", id = "sign_in_password", global = true, env = "FLAREDB_PASSWORD", hide_env_values = true)]
    sign_in_password: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Linearizable read: prints `VERSION<tab>VALUE`, or `(absent)` and exits 2.
    ///
    /// JSON: {"key", "found": true, "value", "version"}, or {"key", "found": false}.
    Get {
        /// Text, 0x… hex or base64:… (see `flaredb --help`).
        #[arg(value_parser = cli_bytes::parse)]
        key: Bin,
    },
    /// Writes KEY: prints `ok version V` (the key's new version).
    ///
    /// Unconditional: it reads the key's version and writes with a
    /// compare-and-swap on it, again on the version it lost to if another
    /// write came first. With --expect N it is one compare-and-swap that
    /// writes only if the key is at version N (0: only if absent), else prints
    /// `conflict: current version C` and exits 3.
    ///
    /// JSON: {"key", "succeeded": true, "version"} or {"key", "succeeded": false, "current_version"}.
    Put {
        /// Text, 0x… hex or base64:… (see `flaredb --help`).
        #[arg(value_parser = cli_bytes::parse)]
        key: Bin,
        /// Text, 0x… hex or base64:… (see `flaredb --help`).
        #[arg(value_parser = cli_bytes::parse)]
        value: Bin,
        /// Write only if the key's version is N (0 = absent).
        #[arg(long, alias = "expected-version", value_name = "N")]
        expect: Option<u64>,
        /// Attach the key to lease ID (see `flaredb lease`): it is deleted
        /// when the lease is revoked or expires.
        #[arg(long, value_name = "ID")]
        lease: Option<u64>,
    },
    /// Deletes KEY: prints `deleted (version was V)`, or `(absent)` and exits 2.
    ///
    /// Unconditional unless --expect N: then only if the key is at version N,
    /// else prints `conflict (version was C)` and exits 3.
    ///
    /// JSON: {"key", "deleted": true, "prev_version"} or {"key", "deleted": false,
    /// "current_version"} (0 when absent).
    #[command(alias = "delete")]
    Del {
        /// Text, 0x… hex or base64:… (see `flaredb --help`).
        #[arg(value_parser = cli_bytes::parse)]
        key: Bin,
        /// Delete only if the key's version is N.
        #[arg(long, alias = "expected-version", value_name = "N")]
        expect: Option<u64>,
    },
    /// Every strong key under a prefix: `KEY<tab>VERSION<tab>VALUE` per line.
    ///
    /// The prefix is --prefix or the positional argument; neither (or "")
    /// lists every key of the namespace. JSON: an array of {"key", "value", "version"}.
    Scan {
        /// Text, 0x… hex or base64:… (see `flaredb --help`).
        #[arg(value_parser = cli_bytes::parse, value_name = "PREFIX")]
        positional: Option<Bin>,
        /// The same as the positional PREFIX.
        #[arg(long, value_parser = cli_bytes::parse, conflicts_with = "positional")]
        prefix: Option<Bin>,
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
        #[arg(value_parser = cli_bytes::parse)]
        key: Bin,
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
    /// Copies keys from a source into FlareDB (or into an export file):
    ///
    ///   flaredb migrate --from dir:/var/lib/svc/data --to flaredb://10.0.0.1:2479/svc --verify
    ///   flaredb migrate --from jsonl:dump.jsonl --to flaredb://h1:2479,h2:2479/svc --conflict skip
    ///   flaredb migrate --from etcd://10.0.0.5:2379 --prefix /registry/ --to flaredb://10.0.0.1:2479/k8s
    ///   flaredb migrate --from 'postgres://sched@db:5432/sched?table=tasks' --to flaredb://10.0.0.1:2479/sched \
    ///       --into-collection /tasks/ --index status --index node
    ///   flaredb migrate --from dir:data/queue.rkvs --as task-queue --since 7days --to flaredb://10.0.0.1:2479/orch
    ///   flaredb migrate --rollback RUN_ID --to flaredb://10.0.0.1:2479/svc
    ///
    /// Streamed (memory does not grow with the source), in transactions of
    /// --batch-size keys, --in-flight at once. A key the target already holds
    /// with the same value counts as done, so running the same command again
    /// after an interruption continues where it stopped and never duplicates.
    /// Each run prints its id; --rollback RUN_ID removes exactly what that run
    /// wrote (keys changed since are kept). A failed run says whether the
    /// target is unchanged or resumable.
    #[command(verbatim_doc_comment)]
    Migrate(Box<migrate_cmd::MigrateArgs>),
    /// Writes every key of the namespace (-n) under --prefix as JSON lines,
    /// one {"key","value","version"} object a line, key and value base64.
    Export {
        #[arg(long, default_value = "")]
        prefix: String,
        /// The file to write; `-` = stdout.
        #[arg(long, default_value = "-")]
        to: String,
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
    /// Every member's state, as a table: ID, ADDRESS, ROLE, TERM, APPLIED
    /// (index) and LAG (entries behind the leader's applied index).
    ///
    /// Each member is asked directly; one that does not answer shows as
    /// `unreachable` and the command exits 1 after printing the table.
    /// JSON: an array of {"id", "addr", "voter", "role", "leader_id", "term",
    /// "last_log_index", "applied_index", "lag"}, or {"id", "addr", "voter", "error"}.
    Status,
    /// Namespaces: create, list.
    Ns {
        #[command(subcommand)]
        cmd: cluster_cmd::NsCmd,
    },
    /// Members: list, add (a learner), promote (to voter), remove.
    Member {
        #[command(subcommand)]
        cmd: cluster_cmd::MemberCmd,
    },
    /// Users: add, delete, grant-role, revoke-role, list.
    User {
        #[command(subcommand)]
        cmd: auth_cmd::UserCmd,
    },
    /// Roles: add, delete, grant-permission, revoke-permission, list.
    Role {
        #[command(subcommand)]
        cmd: auth_cmd::RoleCmd,
    },
    /// Auth: enable, disable, status.
    Auth {
        #[command(subcommand)]
        cmd: auth_cmd::AuthCmd,
    },
    /// Same as `ns list`.
    #[command(hide = true)]
    Namespaces,
    /// Same as `ns create NAME --mode MODE`.
    #[command(hide = true)]
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
    /// Seeds a new single-node cluster's data dir from a backup file (runs
    /// `flaredb-server restore`, found next to this binary or on PATH);
    /// start it with `flaredb-server --data-dir DIR`, then grow it with `member add`.
    Restore {
        /// The backup file (from `flaredb backup`).
        file: PathBuf,
        /// An empty or absent data dir for the new node.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// The address the restored node will listen on (PUBLIC@PEER with --peer-listen).
        #[arg(long, default_value = "127.0.0.1:2479")]
        listen: String,
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
    if let Some(ca) = &cli.cacert {
        config = config.with_tls_files(ca, cli.tls_cert.as_deref().zip(cli.tls_key.as_deref()))?;
    }
    if let Some(user) = &cli.sign_in_user {
        let (name, inline) = match user.split_once(':') {
            Some((n, p)) => (n, Some(p.to_string())),
            None => (user.as_str(), None),
        };
        let password = inline.or(cli.sign_in_password.clone()).ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "--user {name}: give the password as --user {name}:PASSWORD, --password or FLAREDB_PASSWORD"
            ))
        })?;
        config = config.with_user(name, password);
    }
    let (endpoints, namespace) = (cli.endpoints.clone(), cli.namespace.clone());
    let client = RdbClient::with_config(cli.endpoints, config.clone())?.namespace(cli.namespace);
    let out = cli.output;
    match cli.cmd {
        Cmd::Export { prefix, to } => {
            return Ok(migrate_cmd::export_cmd(&endpoints, &namespace, prefix, to, config).await)
        }
        Cmd::Migrate(args) => return Ok(migrate_cmd::migrate_cmd(*args, config).await),
        Cmd::Restore { file, data_dir, id, listen } => return Ok(restore(&file, &data_dir, id, &listen)),
        Cmd::Get { key } => return kv_cmd::get(&client, out, key.0).await,
        Cmd::Put { key, value, expect, lease } => {
            return kv_cmd::put(&client, out, key.0, value.0, expect, lease).await
        }
        Cmd::Del { key, expect } => return kv_cmd::del(&client, out, key.0, expect).await,
        Cmd::Scan { positional, prefix } => {
            let prefix = prefix.or(positional).map_or_else(bytes::Bytes::new, |p| p.0);
            return kv_cmd::scan(&client, out, prefix).await;
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
        Cmd::Watch { key, prefix, from, progress } => watch(&client, key.0, prefix, from, progress).await?,
        Cmd::Lease { cmd } => return lease_cmd::lease(&client, out, cmd).await,
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
        Cmd::Status => return cluster_cmd::status(&client, out).await,
        Cmd::Ns { cmd } => return cluster_cmd::ns(&client, out, cmd).await,
        Cmd::Member { cmd } => return cluster_cmd::member(&client, out, cmd).await,
        Cmd::User { cmd } => return auth_cmd::user(&client, out, cmd).await,
        Cmd::Role { cmd } => return auth_cmd::role(&client, out, cmd).await,
        Cmd::Auth { cmd } => return auth_cmd::auth(&client, out, cmd).await,
        Cmd::Namespaces => return cluster_cmd::ns(&client, out, cluster_cmd::NsCmd::List).await,
        Cmd::CreateNamespace { name, mode } => {
            return cluster_cmd::ns(&client, out, cluster_cmd::NsCmd::Create { name, mode }).await
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

/// `flaredb restore`: the server binary does it (the client carries no RocksDB).
fn restore(file: &std::path::Path, data_dir: &std::path::Path, id: u64, listen: &str) -> ExitCode {
    let beside = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.join("flaredb-server")));
    let server = beside.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("flaredb-server"));
    let status = std::process::Command::new(&server)
        .arg("restore")
        .arg("--from")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--id", &id.to_string(), "--listen", listen])
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!(
                "flaredb: restore: cannot run {}: {e} (install flaredb-server next to flaredb)",
                server.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Prints the events of a watch as JSON lines until it fails. A reader that
/// goes away (`| head -n 3`) ends it quietly: that is how a pipe says "enough".
async fn watch(
    client: &RdbClient,
    key: bytes::Bytes,
    prefix: bool,
    from: u64,
    progress: bool,
) -> Result<(), ClientError> {
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version exit 0; usage errors exit 1 (clap's 2 means "not found" here).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flaredb: {e}");
            output::error_exit_code(&e)
        }
    }
}
