//! Where a migration reads from or writes to, as written on the command
//! line, and reading a source as a stream (never loaded whole).

use std::{
    io::BufRead,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use futures::{stream, Stream, StreamExt};

use super::{jsonl, postgres::PgTable, Entry, MigrateError};
use crate::{ClientConfig, RdbClient};

/// A source's entries, in the order it holds them.
pub type Entries = std::pin::Pin<Box<dyn Stream<Item = Result<Entry, MigrateError>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A directory of files: key = path relative to it (with `/`), value = contents.
    Dir(PathBuf),
    /// The export format (`-` = stdin / stdout).
    Jsonl(PathBuf),
    /// A namespace of a FlareDB cluster.
    FlareDb { endpoints: Vec<String>, namespace: String },
    /// An etcd v3 cluster (a source only).
    Etcd { endpoints: Vec<String> },
    /// A PostgreSQL table (a source only): `--prefix` + key column → the row as JSON.
    Postgres(PgTable),
}

impl std::str::FromStr for Endpoint {
    type Err = MigrateError;

    fn from_str(s: &str) -> Result<Self, MigrateError> {
        let bad = |why: &str| MigrateError::Usage(format!("{s:?}: {why}"));
        if let Some(p) = s.strip_prefix("dir:") {
            return Ok(Endpoint::Dir(p.into()));
        }
        if let Some(p) = s.strip_prefix("jsonl:") {
            return Ok(Endpoint::Jsonl(p.into()));
        }
        if let Some(rest) = s.strip_prefix("flaredb://") {
            let (hosts, ns) = rest.split_once('/').unwrap_or((rest, ""));
            let endpoints: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
            if endpoints.is_empty() {
                return Err(bad("no HOST:PORT"));
            }
            return Ok(Endpoint::FlareDb { endpoints, namespace: ns.into() });
        }
        if let Some(rest) = s.strip_prefix("etcd://") {
            let endpoints: Vec<String> =
                rest.trim_end_matches('/').split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
            if endpoints.is_empty() {
                return Err(bad("no HOST:PORT"));
            }
            return Ok(Endpoint::Etcd { endpoints });
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Endpoint::Postgres(PgTable::parse(s)?));
        }
        Err(bad("expected dir:PATH, jsonl:FILE, etcd://HOST:PORT[,HOST:PORT], \
             postgres://USER@HOST:PORT/DB?table=T[&key=COLUMN] or flaredb://HOST:PORT[,HOST:PORT]/NAMESPACE"))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Dir(p) => write!(f, "dir:{}", p.display()),
            Endpoint::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
            Endpoint::FlareDb { endpoints, namespace } => write!(f, "flaredb://{}/{namespace}", endpoints.join(",")),
            Endpoint::Etcd { endpoints } => write!(f, "etcd://{}", endpoints.join(",")),
            Endpoint::Postgres(t) => t.fmt(f),
        }
    }
}

impl Endpoint {
    /// A client for a FlareDB endpoint, on its namespace; a usage error for the others.
    pub fn flaredb_client(&self, config: &ClientConfig) -> Result<RdbClient, MigrateError> {
        match self {
            Endpoint::FlareDb { endpoints, namespace } => {
                Ok(RdbClient::with_config(endpoints.clone(), config.clone())?.namespace(namespace.clone()))
            }
            other => Err(MigrateError::Usage(format!("{other} is not a flaredb:// endpoint"))),
        }
    }

    /// The entries under `prefix`, streamed. Entries that do not parse are
    /// errors in the stream (with where they are), so `validate` can count them.
    pub fn read(&self, prefix: &str, config: &ClientConfig) -> Result<Entries, MigrateError> {
        let prefix = Bytes::copy_from_slice(prefix.as_bytes());
        match self {
            Endpoint::FlareDb { .. } => {
                let client = self.flaredb_client(config)?;
                let s = client.scan_prefix_stream(prefix).map(|r| {
                    r.map(|kv| Entry { key: kv.key, value: kv.value, version: kv.version }).map_err(MigrateError::from)
                });
                Ok(Box::pin(s))
            }
            Endpoint::Jsonl(path) => {
                let reader: Box<dyn BufRead + Send> = if path.as_os_str() == "-" {
                    Box::new(std::io::BufReader::new(std::io::stdin()))
                } else {
                    let f =
                        std::fs::File::open(path).map_err(|e| MigrateError::Io(format!("{}: {e}", path.display())))?;
                    Box::new(std::io::BufReader::new(f))
                };
                let name = path.display().to_string();
                let lines = reader.lines().enumerate().filter_map(move |(n, line)| {
                    let entry = match line {
                        Err(e) => Err(MigrateError::Io(format!("{name}: {e}"))),
                        Ok(l) if l.trim().is_empty() => return None,
                        Ok(l) => {
                            jsonl::decode(&l).map_err(|why| MigrateError::Parse(format!("{name}:{}: {why}", n + 1)))
                        }
                    };
                    match entry {
                        Ok(e) if !e.key.starts_with(&prefix) => None,
                        other => Some(other),
                    }
                });
                Ok(Box::pin(stream::iter(lines)))
            }
            Endpoint::Etcd { endpoints } => super::etcd::read(endpoints, &prefix),
            Endpoint::Postgres(t) => super::postgres::read(t, &prefix),
            Endpoint::Dir(root) => {
                let files = walk(root).map_err(|e| MigrateError::Io(format!("{}: {e}", root.display())))?;
                let root = root.clone();
                let entries = files.into_iter().filter_map(move |path| {
                    let key = relative_key(&root, &path)?;
                    if !key.as_bytes().starts_with(&prefix) {
                        return None;
                    }
                    Some(match std::fs::read(&path) {
                        Ok(v) => Ok(Entry { key: Bytes::from(key), value: Bytes::from(v), version: 0 }),
                        Err(e) => Err(MigrateError::Io(format!("{}: {e}", path.display()))),
                    })
                });
                Ok(Box::pin(stream::iter(entries)))
            }
        }
    }
}

/// Every file under `root`, in path order (the names only: contents are read one at a time).
pub(super) fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let t = entry.file_type()?;
            if t.is_dir() {
                dirs.push(entry.path());
            } else if t.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print() {
        for s in ["dir:/var/lib/x", "jsonl:-", "flaredb://a:1,b:2/ns"] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
        assert_eq!(
            "flaredb://a:1".parse::<Endpoint>().unwrap(),
            Endpoint::FlareDb { endpoints: vec!["a:1".into()], namespace: String::new() }
        );
        assert_eq!(
            "etcd://a:1,b:2".parse::<Endpoint>().unwrap(),
            Endpoint::Etcd { endpoints: vec!["a:1".into(), "b:2".into()] }
        );
        assert!("consul://a:1".parse::<Endpoint>().is_err());
        assert!("flaredb:///ns".parse::<Endpoint>().is_err());
    }
}
