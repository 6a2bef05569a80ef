//! Reading a PostgreSQL table (`postgres://USER@HOST:PORT/DB?table=T&key=COLUMN`):
//! each row becomes one JSON record (`row_to_json`, so numbers, booleans,
//! arrays and json columns keep their JSON types) keyed by `--prefix` +
//! its key column (the primary key when `key=` is not given). Timestamps
//! come out as RFC 3339 in UTC (a `timestamp` without time zone is taken
//! as UTC). Rows are fetched through a cursor in one repeatable-read
//! transaction: one consistent snapshot of the table, a page at a time.

use bytes::Bytes;
use futures::{stream, StreamExt};
use tokio_postgres::{Client, NoTls};

use super::{endpoint::Entries, Entry, MigrateError};

const PAGE: usize = 1000;

/// A table of a PostgreSQL database, as written after `--from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTable {
    /// The connection URL without FlareDB's own parameters.
    pub url: String,
    pub table: String,
    pub key: Option<String>,
}

impl PgTable {
    /// Parses `postgres://…?table=T[&key=C]` (or `postgresql://`).
    pub fn parse(s: &str) -> Result<Self, MigrateError> {
        let bad = |why: &str| MigrateError::Usage(format!("{}: {why}", redact(s)));
        let (base, query) = s.split_once('?').unwrap_or((s, ""));
        let (mut table, mut key, mut rest) = (None, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("table", t)) if !t.is_empty() => table = Some(t.to_string()),
                Some(("key", k)) if !k.is_empty() => key = Some(k.to_string()),
                _ => rest.push(pair),
            }
        }
        let table =
            table.ok_or_else(|| bad("no table: add ?table=NAME (and &key=COLUMN unless it has a primary key)"))?;
        let url = match rest.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", rest.join("&")),
        };
        url.parse::<tokio_postgres::Config>().map_err(|e| bad(&e.to_string()))?;
        Ok(Self { url, table, key })
    }
}

impl std::fmt::Display for PgTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        write!(f, "{}{sep}table={}", redact(&self.url), self.table)?;
        match &self.key {
            Some(k) => write!(f, "&key={k}"),
            None => Ok(()),
        }
    }
}

/// The URL with its password (if any) replaced by `***`: runs are recorded and printed.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.into() };
    let (auth, host) = match rest.split_once('@') {
        Some(p) => p,
        None => return url.into(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.into(),
    }
}

fn pg_err(what: &str) -> impl Fn(tokio_postgres::Error) -> MigrateError + '_ {
    move |e| MigrateError::Io(format!("postgres {what}: {e}"))
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Connects, opens one snapshot and declares the cursor over the table.
async fn open(t: &PgTable) -> Result<Client, MigrateError> {
    let (client, conn) = tokio_postgres::connect(&t.url, NoTls).await.map_err(pg_err("connect"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!("postgres connection: {e}");
        }
    });
    client
        .batch_execute("SET TimeZone = 'UTC'; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(pg_err("begin"))?;
    let rel = client
        .query_one("SELECT $1::text::regclass::oid, $1::text::regclass::text", &[&t.table])
        .await
        .map_err(pg_err(&format!("table {:?}", t.table)))?;
    let (oid, table): (u32, String) = (rel.get(0), rel.get(1));
    let key = match &t.key {
        Some(k) => k.clone(),
        None => {
            let pk = client
                .query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                     ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1 AND i.indisprimary",
                    &[&oid],
                )
                .await
                .map_err(pg_err("primary key"))?;
            match &pk[..] {
                [one] => one.get(0),
                [] => return Err(MigrateError::Usage(format!("table {table} has no primary key: add &key=COLUMN"))),
                _ => {
                    return Err(MigrateError::Usage(format!(
                        "table {table} has a primary key of {} columns: add &key=COLUMN naming a unique one",
                        pk.len()
                    )))
                }
            }
        }
    };
    let cols = client
        .query(
            "SELECT attname::text, atttypid = 'timestamp'::regtype FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )
        .await
        .map_err(pg_err("columns"))?;
    if !cols.iter().any(|c| c.get::<_, String>(0) == key) {
        return Err(MigrateError::Usage(format!("table {table} has no column {key:?}")));
    }
    // Each column taken from `o` by name: the lateral row has exactly the table's columns.
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            let (name, naive_ts): (String, bool) = (c.get(0), c.get(1));
            let q = quote(&name);
            match naive_ts {
                true => format!("(o.{q} AT TIME ZONE 'UTC') AS {q}"),
                false => format!("o.{q} AS {q}"),
            }
        })
        .collect();
    let k = quote(&key);
    let declare = format!(
        "DECLARE flaredb_migrate NO SCROLL CURSOR FOR \
         SELECT o.{k}::text, row_to_json(x)::text FROM {table} o, LATERAL (SELECT {}) x ORDER BY o.{k}",
        select.join(", ")
    );
    client.batch_execute(&declare).await.map_err(pg_err("cursor"))?;
    Ok(client)
}

/// The table's row count (for a progress bar).
pub async fn count(t: &PgTable) -> Result<u64, MigrateError> {
    let client = open(t).await?;
    let table = client
        .query_one("SELECT $1::text::regclass::text", &[&t.table])
        .await
        .map_err(pg_err("table"))?
        .get::<_, String>(0);
    let n: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.map_err(pg_err("count"))?.get(0);
    Ok(n.max(0) as u64)
}

/// The table's rows as entries, `prefix` + key → the row's JSON.
pub fn read(t: &PgTable, prefix: &[u8]) -> Result<Entries, MigrateError> {
    let prefix = Bytes::copy_from_slice(prefix);
    let t = t.clone();
    let pages = stream::try_unfold(None::<Client>, move |client| {
        let (t, prefix) = (t.clone(), prefix.clone());
        async move {
            let client = match client {
                Some(c) => c,
                None => open(&t).await?,
            };
            let rows =
                client.query(&format!("FETCH {PAGE} FROM flaredb_migrate"), &[]).await.map_err(pg_err("fetch"))?;
            if rows.is_empty() {
                return Ok(None);
            }
            let entries: Vec<Result<Entry, MigrateError>> = rows
                .iter()
                .map(|row| {
                    let key: Option<String> = row.get(0);
                    let value: String = row.get(1);
                    let key = key.ok_or_else(|| MigrateError::Parse(format!("a row whose key is NULL: {value}")))?;
                    Ok(Entry {
                        key: Bytes::from([&prefix[..], key.as_bytes()].concat()),
                        value: value.into(),
                        version: 0,
                    })
                })
                .collect();
            Ok(Some((stream::iter(entries), Some(client))))
        }
    });
    Ok(Box::pin(pages.flat_map(|page: Result<_, MigrateError>| match page {
        Ok(s) => s.left_stream(),
        Err(e) => stream::iter(vec![Err(e)]).right_stream(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_keep_their_own_parameters_and_hide_the_password() {
        let t = PgTable::parse("postgres://sched:secret@127.0.0.1:5432/sched?table=tasks&key=id&connect_timeout=5")
            .unwrap();
        assert_eq!(t.table, "tasks");
        assert_eq!(t.key.as_deref(), Some("id"));
        assert_eq!(t.url, "postgres://sched:secret@127.0.0.1:5432/sched?connect_timeout=5");
        assert_eq!(t.to_string(), "postgres://sched:***@127.0.0.1:5432/sched?connect_timeout=5&table=tasks&key=id");
        let t = PgTable::parse("postgresql://u@h:1/db?table=public.nodes").unwrap();
        assert_eq!((t.key.clone(), t.to_string()), (None, "postgresql://u@h:1/db?table=public.nodes".to_string()));
        let e = PgTable::parse("postgres://u@h:1/db").unwrap_err().to_string();
        assert!(e.contains("no table"), "{e}");
    }
}
