//! What the operator gives: command-line flags and the TOML file's keys.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Command-line flags. Each can also be set in the TOML file under the same
/// name with `_` for `-` (e.g. `data_dir = "/var/lib/flaredb"`), except
/// `--config` itself, `--join` and the test-only fault hook; a flag wins over
/// the file. Some settings (limits, Raft timings) exist only in the file.
#[derive(Debug, Parser, Default)]
#[command(name = "flaredb-server", version, about = "FlareDB: a Raft-replicated metadata store")]
pub struct Flags {
    /// This node's id (unique in the cluster, never reused). Default 1.
    #[arg(long)]
    pub id: Option<u64>,
    /// Address to serve the public API on (and the Raft transport, unless
    /// --peer-listen is given). Default 127.0.0.1:2479.
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve the Raft transport on its own address; the public address then
    /// does not serve it. Name it in --initial-cluster / AddLearner as
    /// ID=PUBLIC@PEER so peers find it.
    #[arg(long)]
    pub peer_listen: Option<String>,
    /// Data directory. Default ./flaredb-data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial members as "1=ADDR,2=ADDR,3=ADDR" (ADDR is PUBLIC or
    /// PUBLIC@PEER); used only to bootstrap an empty data dir, ignored once it
    /// holds state. Default: this node alone.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// TOML file with any of these settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Create a namespace on its first write (default true).
    #[arg(long)]
    pub auto_create_namespaces: Option<bool>,
    /// Log filter (tracing EnvFilter syntax); default "warn". RUST_LOG also works.
    #[arg(long)]
    pub log: Option<String>,
    /// Join an existing cluster (e.g. its leader's address) instead of
    /// bootstrapping: the node waits with an empty data dir until the leader
    /// adds it with Admin/AddLearner.
    #[arg(long)]
    pub join: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Log lines as text (default) or json (one object a line, with the
    /// node id and, for requests, the RPC path of the span it was logged in).
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// TLS on the public address: this certificate chain (PEM) ...
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// ... and its private key (PEM). Both are re-read when they change or on SIGHUP.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The CA (PEM) that client certificates must chain to; also what this
    /// node trusts when it forwards a request to the leader's public address.
    #[arg(long)]
    pub trusted_ca: Option<PathBuf>,
    /// Require a client certificate signed by --trusted-ca on the public address.
    #[arg(long)]
    pub client_cert_auth: Option<bool>,
    /// mTLS on the peer address (needs --peer-listen): this node's peer
    /// certificate (PEM), shown to peers both ways ...
    #[arg(long)]
    pub peer_cert: Option<PathBuf>,
    /// ... its private key (PEM) ...
    #[arg(long)]
    pub peer_key: Option<PathBuf>,
    /// ... and the CA (PEM) every peer's certificate must chain to.
    #[arg(long)]
    pub peer_trusted_ca: Option<PathBuf>,
    /// Test-only: serve flaredb.testing.v1.Faults, which can cut Raft links.
    #[arg(long, hide = true)]
    pub enable_fault_injection: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Seed a new single-node cluster from a backup (Admin/Backup); grow it with AddLearner.
    Restore(RestoreArgs),
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Backup file written from Admin/Backup.
    #[arg(long)]
    pub from: PathBuf,
    /// An empty or absent data dir for the new node.
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    /// The address the restored node will listen on (PUBLIC@PEER when it
    /// will run with --peer-listen).
    #[arg(long, default_value = "127.0.0.1:2479")]
    pub listen: String,
}

/// The TOML file: every flag, plus limits and Raft tuning.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub id: Option<u64>,
    pub listen: Option<String>,
    pub peer_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub initial_cluster: Option<String>,
    pub auto_create_namespaces: Option<bool>,
    pub log: Option<String>,
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub max_scan_limit: Option<u32>,
    pub max_scan_bytes: Option<usize>,
    pub max_txn_ops: Option<usize>,
    pub max_txn_bytes: Option<usize>,
    pub heartbeat_ms: Option<u64>,
    pub election_timeout_ms: Option<u64>,
    pub snapshot_logs_since_last: Option<u64>,
    pub snapshot_log_bytes_since_last: Option<u64>,
    pub max_logs_to_keep: Option<u64>,
    pub min_free_disk_bytes: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_requests_per_connection: Option<usize>,
    pub max_requests_per_sec_per_connection: Option<u32>,
    pub max_streams_per_connection: Option<u32>,
    pub corruption_check_ms: Option<u64>,
    pub auth_token_ttl_secs: Option<u64>,
    pub allow_auth_without_peer_tls: Option<bool>,
    pub watch_history_revisions: Option<u64>,
    pub watch_history_secs: Option<u64>,
    pub watch_history_check_ms: Option<u64>,
    pub watch_progress_ms: Option<u64>,
    pub watch_buffer_events: Option<usize>,
    pub watch_buffer_bytes: Option<usize>,
    pub metrics_listen: Option<String>,
    pub log_format: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub trusted_ca: Option<PathBuf>,
    pub client_cert_auth: Option<bool>,
    pub peer_cert: Option<PathBuf>,
    pub peer_key: Option<PathBuf>,
    pub peer_trusted_ca: Option<PathBuf>,
}
