//! `flaredb get`, `put`, `del` and `scan`: the strong (versioned) keys, in
//! text or JSON (see `output`), with exit codes for "not found" and "conflict".

use std::process::ExitCode;

use bytes::Bytes;
use flaredb_client::{CasOutcome, ClientError, RdbClient, TxnOp, TxnOpResult};
use serde_json::{json, Map, Value};

use crate::{
    cli_bytes::{json_field, show},
    output::{print_json, Output, EXIT_CONFLICT, EXIT_NOT_FOUND},
};

fn obj(key: &[u8]) -> Map<String, Value> {
    let mut o = Map::new();
    json_field(&mut o, "key", key);
    o
}

pub async fn get(client: &RdbClient, out: Output, key: Bytes) -> Result<ExitCode, ClientError> {
    let got = client.cas_get(key.clone()).await?;
    if out.json() {
        let mut o = obj(&key);
        o.insert("found".into(), got.is_some().into());
        if let Some(v) = &got {
            json_field(&mut o, "value", &v.value);
            o.insert("version".into(), v.version.into());
        }
        print_json(&Value::Object(o));
    } else {
        match &got {
            Some(v) => println!("{}\t{}", v.version, show(&v.value)),
            None => println!("(absent)"),
        }
    }
    Ok(if got.is_some() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_FOUND) })
}

pub async fn put(
    client: &RdbClient,
    out: Output,
    key: Bytes,
    value: Bytes,
    expect: Option<u64>,
    lease: Option<u64>,
) -> Result<ExitCode, ClientError> {
    let cas = |expect: u64| {
        let (key, value) = (key.clone(), value.clone());
        async move {
            match lease {
                Some(id) => client.cas_put_with_lease(key, value, expect, id).await,
                None => client.cas_put(key, value, expect).await,
            }
        }
    };
    let o: CasOutcome = match expect {
        Some(expect) => cas(expect).await?,
        // Unconditional: a one-op transaction (one round trip, applied once).
        None => {
            let op = match lease {
                Some(id) => TxnOp::put_with_lease(key.clone(), value.clone(), id),
                None => TxnOp::put(key.clone(), value.clone()),
            };
            let r = client.txn().and_then([op]).commit().await?;
            CasOutcome { success: true, current_version: 0, new_version: r.revision }
        }
    };
    if out.json() {
        let mut j = obj(&key);
        j.insert("succeeded".into(), o.success.into());
        if o.success {
            j.insert("version".into(), o.new_version.into());
        } else {
            j.insert("current_version".into(), o.current_version.into());
        }
        print_json(&Value::Object(j));
    } else if o.success {
        println!("ok version {}", o.new_version);
    } else {
        println!("conflict: current version {}", o.current_version);
    }
    Ok(if o.success { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CONFLICT) })
}

/// What a delete found: the version it deleted, or why it deleted nothing.
enum Deleted {
    Yes { version: u64 },
    Absent,
    Conflict { current: u64 },
}

pub async fn del(client: &RdbClient, out: Output, key: Bytes, expect: Option<u64>) -> Result<ExitCode, ClientError> {
    let d = match expect {
        Some(expect) => {
            let o = client.cas_delete(key.clone(), expect).await?;
            match (o.success, o.current_version) {
                (true, 0) | (false, 0) => Deleted::Absent,
                (true, _) => Deleted::Yes { version: o.current_version },
                (false, current) => Deleted::Conflict { current },
            }
        }
        // Unconditional: one transaction reads the version and deletes.
        None => {
            let r = client.txn().and_then([TxnOp::get(key.clone()), TxnOp::delete(key.clone())]).commit().await?;
            match r.results.as_slice() {
                [TxnOpResult::Get(Some(kv)), TxnOpResult::Delete { deleted: 1 }] => {
                    Deleted::Yes { version: kv.version }
                }
                [TxnOpResult::Get(None), TxnOpResult::Delete { deleted: 0 }] => Deleted::Absent,
                other => {
                    return Err(ClientError::Server {
                        code: tonic::Code::Internal,
                        message: format!("unexpected transaction results {other:?}"),
                    })
                }
            }
        }
    };
    if out.json() {
        let mut j = obj(&key);
        j.insert("deleted".into(), matches!(d, Deleted::Yes { .. }).into());
        match d {
            Deleted::Yes { version } => j.insert("prev_version".into(), version.into()),
            Deleted::Absent => j.insert("current_version".into(), 0.into()),
            Deleted::Conflict { current } => j.insert("current_version".into(), current.into()),
        };
        print_json(&Value::Object(j));
    } else {
        match d {
            Deleted::Yes { version } => println!("deleted (version was {version})"),
            Deleted::Absent => println!("(absent)"),
            Deleted::Conflict { current } => println!("conflict (version was {current})"),
        }
    }
    Ok(match d {
        Deleted::Yes { .. } => ExitCode::SUCCESS,
        Deleted::Absent => ExitCode::from(EXIT_NOT_FOUND),
        Deleted::Conflict { .. } => ExitCode::from(EXIT_CONFLICT),
    })
}

pub async fn scan(client: &RdbClient, out: Output, prefix: Bytes) -> Result<ExitCode, ClientError> {
    let kvs = client.scan_prefix(prefix).await?;
    if out.json() {
        let items: Vec<Value> = kvs
            .iter()
            .map(|kv| {
                let mut o = obj(&kv.key);
                json_field(&mut o, "value", &kv.value);
                o.insert("version".into(), kv.version.into());
                Value::Object(o)
            })
            .collect();
        print_json(&json!(items));
    } else {
        for kv in kvs {
            println!("{}\t{}\t{}", show(&kv.key), kv.version, show(&kv.value));
        }
    }
    Ok(ExitCode::SUCCESS)
}
