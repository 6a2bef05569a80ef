//! Server configuration: command-line flags, optionally layered over a TOML
//! file (`--config`). A flag given on the command line wins over the file.

mod cluster;
mod flags;
mod limits;
mod tls;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use flaredb_raft::{node::HistoryRetention, watch::WatchLimits};

pub use cluster::parse_initial_cluster;
pub use flags::{Command, Flags, RestoreArgs};
pub use limits::Limits;
pub use tls::{TlsConfig, TlsFiles};

use flags::FileConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error(
        "invalid --initial-cluster {spec:?}: {why} (expected \"1=127.0.0.1:2479,2=127.0.0.1:2480\", \
         or ID=PUBLIC@PEER for nodes with --peer-listen)"
    )]
    InitialCluster { spec: String, why: String },
    #[error("invalid --{flag} {value:?}: expected HOST:PORT, e.g. 127.0.0.1:2479")]
    Addr { flag: &'static str, value: String },
    #[error("node {id} is not in --initial-cluster {spec:?}")]
    NotInCluster { id: u64, spec: String },
    #[error("{0}")]
    Invalid(String),
}

/// Raft timing defaults, chosen by measurement (BENCHMARKS.md, "Failover"):
/// a follower campaigns about 2.25 x the election timeout after the leader's
/// last heartbeat (openraft's lease is the timeout's max, 1.25 x), so kill -9
/// of a leader costs ~0.7 s to the next acknowledged write; a 60 s, 64-client
/// write load on 2 busy cores showed no spurious election with these values.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;
/// Room for RocksDB to flush and compact, and for a snapshot, before the disk is full.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 256 << 20;
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 300;

#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    /// The public API (and the Raft transport unless `peer_listen` is set).
    pub listen: SocketAddr,
    /// The Raft transport's own address, if any.
    pub peer_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// id → `PUBLIC` or `PUBLIC@PEER`.
    pub initial_cluster: BTreeMap<u64, String>,
    pub initial_cluster_explicit: bool,
    pub auto_create_namespaces: bool,
    pub log: String,
    pub limits: Limits,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_logs_since_last: u64,
    /// Also snapshot once this many bytes of commands were applied since the last one (0 = off).
    pub snapshot_log_bytes_since_last: u64,
    pub max_logs_to_keep: u64,
    pub request_timeout_ms: u64,
    pub join: Option<String>,
    pub fault_injection: bool,
    pub watch: WatchConfig,
    pub tls: TlsConfig,
    /// Where `/metrics` is served (None: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as JSON objects.
    pub log_json: bool,
    /// Refuse writes that add data below this much free disk space (0: off).
    pub min_free_disk_bytes: u64,
    /// Requests one connection (one client) may have in progress; more wait
    /// their turn, so a flooding client cannot take every worker from the others.
    pub max_requests_per_connection: usize,
    /// Requests a second one connection may send (0: no limit); past it a
    /// call is answered RESOURCE_EXHAUSTED at once.
    pub max_requests_per_sec_per_connection: u32,
    /// HTTP/2 streams one connection may have open (watches included).
    pub max_streams_per_connection: u32,
    /// How often replicas' state hashes are compared (0: never).
    pub corruption_check_ms: u64,
    /// How long a token from Auth/Authenticate is good for.
    pub auth_token_ttl_secs: u64,
    /// Let AuthEnable through even though the Raft transport is reachable
    /// off this machine without peer TLS (the operator accepts the risk).
    pub allow_auth_without_peer_tls: bool,
}

impl Config {
    /// The Raft transport's address when anyone off this machine can reach
    /// it without a peer certificate: then whoever reaches it can rewrite the
    /// replicated state, the auth record included.
    pub fn raft_exposed(&self) -> Option<SocketAddr> {
        let raft_addr = self.peer_listen.unwrap_or(self.listen);
        (!raft_addr.ip().is_loopback() && self.tls.peer.is_none()).then_some(raft_addr)
    }
}

/// Watch settings (TOML only).
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    pub history: HistoryRetention,
    pub limits: WatchLimits,
    /// An idle watcher gets a progress event this often.
    pub progress_ms: u64,
}

impl WatchConfig {
    fn from_file(file: &FileConfig) -> Result<Self, ConfigError> {
        let (history, limits) = (HistoryRetention::default(), WatchLimits::default());
        let c = Self {
            history: HistoryRetention {
                revisions: file.watch_history_revisions.unwrap_or(history.revisions),
                secs: file.watch_history_secs.unwrap_or(history.secs),
                check_every: file.watch_history_check_ms.map_or(history.check_every, std::time::Duration::from_millis),
            },
            limits: WatchLimits {
                items: file.watch_buffer_events.unwrap_or(limits.items),
                bytes: file.watch_buffer_bytes.unwrap_or(limits.bytes),
            },
            progress_ms: file.watch_progress_ms.unwrap_or(10_000),
        };
        if c.progress_ms == 0 || c.limits.items == 0 || c.limits.bytes == 0 {
            return Err(ConfigError::Invalid(
                "watch_progress_ms, watch_buffer_events and watch_buffer_bytes must be at least 1".into(),
            ));
        }
        Ok(c)
    }
}

fn socket_addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Addr { flag, value: value.into() })
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
        let limits = Limits::from_file(&file)?;
        let tls = TlsConfig::from(&flags, &file, flags.peer_listen.is_some() || file.peer_listen.is_some())?;
        let watch = WatchConfig::from_file(&file)?;
        let id = flags.id.or(file.id).unwrap_or(1);
        if id == 0 {
            return Err(ConfigError::Invalid("node id must be at least 1".into()));
        }
        let listen_s = flags.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:2479".into());
        let listen = socket_addr("listen", &listen_s)?;
        let peer_s = flags.peer_listen.or(file.peer_listen);
        let peer_listen = peer_s.as_deref().map(|p| socket_addr("peer-listen", p)).transpose()?;
        if peer_listen == Some(listen) {
            return Err(ConfigError::Invalid("--peer-listen must differ from --listen".into()));
        }
        let metrics_listen =
            flags.metrics_listen.or(file.metrics_listen).map(|a| socket_addr("metrics-listen", &a)).transpose()?;
        let log_json = match flags.log_format.or(file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(ConfigError::Invalid(format!("log_format {other:?}: expected text or json"))),
        };
        if let Some(j) = &flags.join {
            socket_addr("join", j)?;
        }
        let initial_spec = flags.initial_cluster.or(file.initial_cluster);
        let initial_cluster_explicit = initial_spec.is_some();
        let initial_cluster = match initial_spec {
            Some(spec) => {
                let members = parse_initial_cluster(&spec)?;
                let own = members.get(&id).ok_or_else(|| ConfigError::NotInCluster { id, spec: spec.clone() })?;
                cluster::check_own_entry(id, own, peer_listen)?;
                members
            }
            None => {
                let own = match &peer_s {
                    Some(p) => format!("{listen_s}@{p}"),
                    None => listen_s,
                };
                BTreeMap::from([(id, own)])
            }
        };
        let heartbeat_ms = file.heartbeat_ms.unwrap_or(DEFAULT_HEARTBEAT_MS);
        let election_timeout_ms = file.election_timeout_ms.unwrap_or(DEFAULT_ELECTION_TIMEOUT_MS);
        if election_timeout_ms <= heartbeat_ms * 2 {
            return Err(ConfigError::Invalid(format!(
                "election_timeout_ms ({election_timeout_ms}) must exceed twice heartbeat_ms ({heartbeat_ms})"
            )));
        }
        Ok(Self {
            id,
            listen,
            peer_listen,
            data_dir: flags.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("flaredb-data")),
            initial_cluster,
            initial_cluster_explicit,
            auto_create_namespaces: flags.auto_create_namespaces.or(file.auto_create_namespaces).unwrap_or(true),
            log: flags.log.or(file.log).unwrap_or_else(|| "warn".into()),
            limits,
            heartbeat_ms,
            election_timeout_ms,
            // etcd's default: a snapshot (a checkpoint, which flushes every
            // memtable) once a second under load cost throughput and p99;
            // the 64 MiB byte trigger still bounds the log of large values.
            snapshot_logs_since_last: file.snapshot_logs_since_last.unwrap_or(100_000),
            snapshot_log_bytes_since_last: file.snapshot_log_bytes_since_last.unwrap_or(64 << 20),
            max_logs_to_keep: file.max_logs_to_keep.unwrap_or(1_000),
            request_timeout_ms: file.request_timeout_ms.unwrap_or(5_000),
            join: flags.join,
            fault_injection: flags.enable_fault_injection,
            watch,
            tls,
            metrics_listen,
            log_json,
            min_free_disk_bytes: file.min_free_disk_bytes.unwrap_or(DEFAULT_MIN_FREE_DISK_BYTES),
            max_requests_per_connection: match file.max_requests_per_connection {
                Some(0) => return Err(ConfigError::Invalid("max_requests_per_connection must be at least 1".into())),
                Some(n) if n > 1 << 20 => {
                    return Err(ConfigError::Invalid("max_requests_per_connection is at most 1048576".into()))
                }
                Some(n) => n,
                None => 1024,
            },
            max_requests_per_sec_per_connection: file.max_requests_per_sec_per_connection.unwrap_or(0),
            max_streams_per_connection: match file.max_streams_per_connection {
                Some(0) => return Err(ConfigError::Invalid("max_streams_per_connection must be at least 1".into())),
                Some(n) => n,
                None => 4096,
            },
            corruption_check_ms: file.corruption_check_ms.unwrap_or(300_000),
            auth_token_ttl_secs: match file.auth_token_ttl_secs {
                Some(n) if !(1..=MAX_TOKEN_TTL_SECS).contains(&n) => {
                    return Err(ConfigError::Invalid(format!(
                        "auth_token_ttl_secs must be between 1 and {MAX_TOKEN_TTL_SECS} (a week)"
                    )))
                }
                Some(n) => n,
                None => 300,
            },
            allow_auth_without_peer_tls: file.allow_auth_without_peer_tls.unwrap_or(false),
        })
    }
}

/// Longest token lifetime: a stolen token is good for at most this long.
const MAX_TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_single_node_on_2479() {
        let c = Config::from_flags(Flags::default()).unwrap();
        assert_eq!(c.id, 1);
        assert_eq!(c.listen.to_string(), "127.0.0.1:2479");
        assert_eq!(c.peer_listen, None);
        assert_eq!(c.data_dir, PathBuf::from("flaredb-data"));
        assert_eq!(c.initial_cluster, BTreeMap::from([(1, "127.0.0.1:2479".to_string())]));
        assert!(c.auto_create_namespaces);
        assert_eq!(c.limits.max_scan_bytes, 1 << 20);
        assert_eq!((c.limits.max_txn_ops, c.limits.max_txn_bytes), (128, 1 << 20));
    }

    #[test]
    fn file_settings_apply_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "id = 2\nlisten = \"127.0.0.1:3000\"\nmax_value_bytes = 10\nmax_scan_bytes = 4096\n\
             max_txn_ops = 8\nmax_txn_bytes = 2048\n",
        )
        .unwrap();
        let flags = Flags { config: Some(path.clone()), id: Some(3), ..Default::default() };
        let c = Config::from_flags(flags).unwrap();
        assert_eq!((c.id, c.listen.port(), c.limits.max_value_bytes), (3, 3000, 10));
        assert_eq!(c.limits.max_scan_bytes, 4096);
        assert_eq!((c.limits.max_txn_ops, c.limits.max_txn_bytes), (8, 2048));
        std::fs::write(&path, "bogus = 1\n").unwrap();
        let flags = Flags { config: Some(path), ..Default::default() };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn a_scan_budget_over_the_message_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max_scan_bytes = 4194304\n").unwrap();
        let flags = Flags { config: Some(path), ..Default::default() };
        let e = Config::from_flags(flags).unwrap_err().to_string();
        assert!(e.contains("max_scan_bytes") && e.contains("max_message_bytes"), "{e}");
    }

    #[test]
    fn peer_listen_joins_the_own_address_or_must_be_named() {
        let flags = Flags { peer_listen: Some("127.0.0.1:2579".into()), ..Default::default() };
        let c = Config::from_flags(flags).unwrap();
        assert_eq!(c.peer_listen.map(|p| p.port()), Some(2579));
        assert_eq!(c.initial_cluster[&1], "127.0.0.1:2479@127.0.0.1:2579");
        let flags = Flags {
            peer_listen: Some("127.0.0.1:2579".into()),
            initial_cluster: Some("1=127.0.0.1:2479".into()),
            ..Default::default()
        };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::Invalid(_))));
        let flags = Flags { peer_listen: Some("nonsense".into()), ..Default::default() };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::Addr { flag: "peer-listen", .. })));
    }

    #[test]
    fn node_must_be_in_initial_cluster() {
        let flags = Flags { id: Some(4), initial_cluster: Some("1=127.0.0.1:1".into()), ..Default::default() };
        assert!(matches!(Config::from_flags(flags), Err(ConfigError::NotInCluster { .. })));
    }
}
