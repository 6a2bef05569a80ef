//! Server configuration: command-line flags, optionally layered over a TOML
//! file (`--config`). A flag given on the command line wins over the file.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid --initial-cluster {spec:?}: {why} (expected \"1=127.0.0.1:2479,2=127.0.0.1:2480\")")]
    InitialCluster { spec: String, why: String },
    #[error("invalid --listen {0:?}: expected HOST:PORT, e.g. 127.0.0.1:2479")]
    Listen(String),
    #[error("node {id} is not in --initial-cluster {spec:?}")]
    NotInCluster { id: u64, spec: String },
    #[error("{0}")]
    Invalid(String),
}

/// Command-line flags. Every one can also be set in the TOML file under the
/// same name with `_` for `-` (e.g. `data_dir = "/var/lib/flaredb"`).
#[derive(Debug, Parser, Default)]
#[command(name = "flaredb-server", version, about = "FlareDB: a Raft-replicated metadata store")]
pub struct Flags {
    /// This node's id (unique in the cluster, never reused). Default 1.
    #[arg(long)]
    pub id: Option<u64>,
    /// Address to serve the public API and the Raft transport on. Default 127.0.0.1:2479.
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory. Default ./flaredb-data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial members as "1=ADDR,2=ADDR,3=ADDR"; ignored once the data dir holds state.
    /// Default: this node alone.
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
    /// The address the restored node will listen on.
    #[arg(long, default_value = "127.0.0.1:2479")]
    pub listen: String,
}

/// Settings only the TOML file carries (limits and Raft tuning).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    initial_cluster: Option<String>,
    auto_create_namespaces: Option<bool>,
    log: Option<String>,
    max_key_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    max_message_bytes: Option<usize>,
    max_scan_limit: Option<u32>,
    heartbeat_ms: Option<u64>,
    election_timeout_ms: Option<u64>,
    snapshot_logs_since_last: Option<u64>,
    max_logs_to_keep: Option<u64>,
    request_timeout_ms: Option<u64>,
}

/// Request limits enforced by the services before anything is proposed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_message_bytes: usize,
    pub default_scan_limit: u32,
    pub max_scan_limit: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_message_bytes: 4 * 1024 * 1024,
            default_scan_limit: 1000,
            max_scan_limit: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub initial_cluster: BTreeMap<u64, String>,
    pub initial_cluster_explicit: bool,
    pub auto_create_namespaces: bool,
    pub log: String,
    pub limits: Limits,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs_since_last: u64,
    pub max_logs_to_keep: u64,
    pub request_timeout_ms: u64,
    pub join: Option<String>,
    pub fault_injection: bool,
}

impl Config {
    pub fn from_flags(flags: Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.clone(), source })?
            }
            None => FileConfig::default(),
        };
        let id = flags.id.or(file.id).unwrap_or(1);
        if id == 0 {
            return Err(ConfigError::Invalid("node id must be at least 1".into()));
        }
        let listen_s = flags.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:2479".into());
        let listen: SocketAddr = listen_s.parse().map_err(|_| ConfigError::Listen(listen_s.clone()))?;
        if let Some(j) = &flags.join {
            j.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid(format!("--join {j:?}: expected HOST:PORT")))?;
        }
        let initial_spec = flags.initial_cluster.or(file.initial_cluster);
        let initial_cluster_explicit = initial_spec.is_some();
        let initial_cluster = match initial_spec {
            Some(spec) => {
                let members = parse_initial_cluster(&spec)?;
                if !members.contains_key(&id) {
                    return Err(ConfigError::NotInCluster { id, spec });
                }
                members
            }
            None => BTreeMap::from([(id, listen_s)]),
        };
        let d = Limits::default();
        let limits = Limits {
            max_key_bytes: file.max_key_bytes.unwrap_or(d.max_key_bytes),
            max_value_bytes: file.max_value_bytes.unwrap_or(d.max_value_bytes),
            max_message_bytes: file.max_message_bytes.unwrap_or(d.max_message_bytes),
            default_scan_limit: d.default_scan_limit,
            max_scan_limit: file.max_scan_limit.unwrap_or(d.max_scan_limit).max(1),
        };
        let heartbeat_ms = file.heartbeat_ms.unwrap_or(100);
        let election_timeout_ms = file.election_timeout_ms.unwrap_or(1000);
        if election_timeout_ms <= heartbeat_ms * 2 {
            return Err(ConfigError::Invalid(format!(
                "election_timeout_ms ({election_timeout_ms}) must exceed twice heartbeat_ms ({heartbeat_ms})"
            )));
        }
        Ok(Self {
            id,
            listen,
            data_dir: flags.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("flaredb-data")),
            initial_cluster,
            initial_cluster_explicit,
            auto_create_namespaces: flags.auto_create_namespaces.or(file.auto_create_namespaces).unwrap_or(true),
            log: flags.log.or(file.log).unwrap_or_else(|| "warn".into()),
            limits,
            heartbeat_ms,
            election_timeout_ms,
            snapshot_logs_since_last: file.snapshot_logs_since_last.unwrap_or(10_000),
            max_logs_to_keep: file.max_logs_to_keep.unwrap_or(1_000),
            request_timeout_ms: file.request_timeout_ms.unwrap_or(5_000),
            join: flags.join,
            fault_injection: flags.enable_fault_injection,
        })
    }
}

/// Parses "1=ADDR,2=ADDR" into id → address.
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let err = |why: String| ConfigError::InitialCluster { spec: spec.into(), why };
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| err(format!("{part:?} has no '='")))?;
        let id: u64 = id.trim().parse().map_err(|_| err(format!("{id:?} is not a node id")))?;
        if id == 0 {
            return Err(err("node ids start at 1".into()));
        }
        let addr = addr.trim();
        addr.parse::<SocketAddr>().map_err(|_| err(format!("{addr:?} is not HOST:PORT")))?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(err(format!("node {id} appears twice")));
        }
    }
    if out.is_empty() {
        return Err(err("no members".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_single_node_on_2479() {
        let c = Config::from_flags(Flags::default()).unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.listen.to_string(), "127.0.0.1:2479");
        assert_eq!(c.data_dir, PathBuf::from("flaredb-data"));
        assert_eq!(c.initial_cluster, BTreeMap::from([(1, "127.0.0.1:2479".to_string())]));
        assert!(c.auto_create_namespaces);
    }

    #[test]
    fn parses_initial_cluster_and_rejects_bad_specs() {
        let m = parse_initial_cluster("1=127.0.0.1:1, 2=127.0.0.1:2").unwrap();
        assert_eq!(m.len(), 2);
        for bad in ["", "1", "x=127.0.0.1:1", "0=127.0.0.1:1", "1=nohost", "1=127.0.0.1:1,1=127.0.0.1:2"] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_settings_apply_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "id = 2\nlisten = \"127.0.0.1:3000\"\nmax_value_bytes = 10\n").unwrap();
        let flags = Flags { config: Some(path.clone()), id: Some(3), ..Default::default() };
        let c = Config::from_flags(flags).unwrap();
        assert_eq!((c.id, c.listen.port(), c.limits.max_value_bytes), (3, 3000, 10));
        std::fs::write(&path, "bogus = 1\n").unwrap();
        let flags = Flags { config: Some(path), ..Default::default() };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn node_must_be_in_initial_cluster() {
        let flags = Flags { id: Some(4), initial_cluster: Some("1=127.0.0.1:1".into()), ..Default::default() };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::NotInCluster { .. })));
    }
}
