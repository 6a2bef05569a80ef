//! Multi-key transactions (KvCas/Txn): compares, then the ops of one branch,
//! applied atomically in one Raft log entry, built on a namespaced client.

use bytes::Bytes;
use flaredb_proto::v1::{self as pb, kv_cas_client::KvCasClient, op::Op, op_result::Result as OpResultKind};
use tonic::Code;

use crate::IntoBytes;
use crate::{conn::Retry, ClientError, RdbClient, VersionedKv};

pub use pb::CompareOp;

/// A condition on one key. Version 0 means absent; an absent key's value
/// satisfies only [`CompareOp::NotEqual`]. Values compare byte-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    Version { key: Bytes, op: CompareOp, version: u64 },
    Value { key: Bytes, op: CompareOp, value: Bytes },
}

impl Compare {
    /// `version(key) <op> version`.
    pub fn version(key: impl IntoBytes, op: CompareOp, version: u64) -> Self {
        Compare::Version { key: key.into_bytes(), op, version }
    }

    /// `value(key) <op> value`.
    pub fn value(key: impl IntoBytes, op: CompareOp, value: impl IntoBytes) -> Self {
        Compare::Value { key: key.into_bytes(), op, value: value.into_bytes() }
    }
}

/// One op of a branch. A branch writes each key at most once (a put or
/// delete under a `delete_prefix` of the same branch counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put {
        key: Bytes,
        value: Bytes,
        /// Attaches the key to this lease (0 = none).
        lease: u64,
    },
    Delete {
        key: Bytes,
    },
    /// Reads the key as of this point of the transaction.
    Get {
        key: Bytes,
    },
    /// Deletes every key starting with `prefix` (not empty).
    DeletePrefix {
        prefix: Bytes,
    },
}

impl TxnOp {
    pub fn put(key: impl IntoBytes, value: impl IntoBytes) -> Self {
        TxnOp::Put { key: key.into_bytes(), value: value.into_bytes(), lease: 0 }
    }

    /// A put attaching the key to lease `lease` (an unknown lease fails the
    /// whole transaction with `NotFound`).
    pub fn put_with_lease(key: impl IntoBytes, value: impl IntoBytes, lease: u64) -> Self {
        TxnOp::Put { key: key.into_bytes(), value: value.into_bytes(), lease }
    }

    pub fn delete(key: impl IntoBytes) -> Self {
        TxnOp::Delete { key: key.into_bytes() }
    }

    pub fn get(key: impl IntoBytes) -> Self {
        TxnOp::Get { key: key.into_bytes() }
    }

    pub fn delete_prefix(prefix: impl IntoBytes) -> Self {
        TxnOp::DeletePrefix { prefix: prefix.into_bytes() }
    }

    fn writes(&self) -> bool {
        !matches!(self, TxnOp::Get { .. })
    }
}

/// The result of one op, in the order of the branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    /// The key's new version (the transaction's revision).
    Put {
        version: u64,
    },
    /// Keys deleted: 0 or 1 for a delete, any number for a delete-prefix.
    Delete {
        deleted: u64,
    },
    Get(Option<VersionedKv>),
}

/// What a committed transaction answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (the `and_then` ops ran, else `or_else`'s).
    pub succeeded: bool,
    /// The log index of the transaction: the version of every key it put.
    pub revision: u64,
    pub results: Vec<TxnOpResult>,
}

/// A transaction being built; nothing is sent before [`Txn::commit`].
///
/// ```no_run
/// # async fn demo() -> Result<(), flaredb_client::ClientError> {
/// use flaredb_client::{Compare, CompareOp, RdbClient, TxnOp, TxnOpResult};
///
/// let bank = RdbClient::connect(["127.0.0.1:2479"])?.namespace("bank");
/// let a = bank.cas_get("a").await?.expect("account a exists");
/// let b = bank.cas_get("b").await?.expect("account b exists");
/// let moved = bank
///     .txn()
///     .when([Compare::version("a", CompareOp::Equal, a.version), Compare::version("b", CompareOp::Equal, b.version)])
///     .and_then([TxnOp::put("a", "90"), TxnOp::put("b", "110")])
///     .or_else([TxnOp::get("a"), TxnOp::get("b")])
///     .commit()
///     .await?;
/// if !moved.succeeded {
///     // Someone wrote first: the failure branch read the current values.
///     if let TxnOpResult::Get(Some(now)) = &moved.results[0] {
///         println!("a is now {:?} @ {}", now.value, now.version);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a transaction does nothing until commit().await"]
pub struct Txn {
    client: RdbClient,
    compares: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl RdbClient {
    /// A transaction on this client's namespace (see [`Txn`]).
    pub fn txn(&self) -> Txn {
        Txn { client: self.clone(), compares: Vec::new(), success: Vec::new(), failure: Vec::new() }
    }
}

impl Txn {
    /// Adds compares; the success branch runs when all of them hold (also when there are none).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds ops to the branch that runs when every compare holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds ops to the branch that runs when a compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Sends the transaction. One that may write carries a write id, so its
    /// retries apply it at most once (see the crate docs); one that only
    /// reads is retried freely.
    pub async fn commit(self) -> Result<TxnResult, ClientError> {
        let writes = self.success.iter().chain(&self.failure).any(TxnOp::writes);
        // Only a writing transaction needs (and is worth storing) an answer to replay.
        let (write_id, retry) = if writes { self.client.conn.write_id() } else { (None, Retry::Always) };
        let msg = pb::TxnRequest {
            namespace: self.client.namespace.clone(),
            compares: self.compares.into_iter().map(compare_to_pb).collect(),
            success: self.success.into_iter().map(op_to_pb).collect(),
            failure: self.failure.into_iter().map(op_to_pb).collect(),
            write_id,
        };
        let r = self.client.conn.call(retry, msg, |ch, q| async move { KvCasClient::new(ch).txn(q).await }).await?;
        Ok(TxnResult {
            succeeded: r.succeeded,
            revision: r.revision,
            results: r.results.into_iter().map(result_from_pb).collect::<Result<_, _>>()?,
        })
    }
}

fn compare_to_pb(c: Compare) -> pb::Compare {
    match c {
        Compare::Version { key, op, version } => {
            pb::Compare { key, target: pb::CompareTarget::Version as i32, op: op as i32, version, value: Bytes::new() }
        }
        Compare::Value { key, op, value } => {
            pb::Compare { key, target: pb::CompareTarget::Value as i32, op: op as i32, version: 0, value }
        }
    }
}

fn op_to_pb(o: TxnOp) -> pb::Op {
    let op = match o {
        TxnOp::Put { key, value, lease } => Op::Put(pb::PutOp { key, value, lease_id: lease }),
        TxnOp::Delete { key } => Op::Delete(pb::DeleteOp { key }),
        TxnOp::Get { key } => Op::Get(pb::GetOp { key }),
        TxnOp::DeletePrefix { prefix } => Op::DeletePrefix(pb::DeletePrefixOp { prefix }),
    };
    pb::Op { op: Some(op) }
}

fn result_from_pb(r: pb::OpResult) -> Result<TxnOpResult, ClientError> {
    Ok(match r.result {
        Some(OpResultKind::Put(p)) => TxnOpResult::Put { version: p.version },
        Some(OpResultKind::Delete(d)) => TxnOpResult::Delete { deleted: d.deleted },
        Some(OpResultKind::Get(g)) => TxnOpResult::Get(g.kv.filter(|_| g.found).map(VersionedKv::from)),
        // The client sends only ops with a kind, so each result has one.
        None => {
            return Err(ClientError::Server {
                code: Code::Internal,
                message: "the server answered a transaction op with an empty result".into(),
            })
        }
    })
}
