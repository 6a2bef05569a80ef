//! Validation of a KvCas/Txn request before anything is proposed: its size
//! limits, each key and value, known enum values, each key written at most
//! once per branch, and no empty prefix. Lease ids are checked when the
//! transaction applies (a lease may end between here and there).
//! Both branches are checked, whichever will run.

use std::collections::BTreeMap;

use flaredb_proto::v1::{op::Op as OpKind, CompareOp, CompareTarget, Op, TxnRequest};
use prost::Message;
use tonic::Status;

use crate::{config::Limits, validate};

pub fn txn(limits: &Limits, r: &TxnRequest) -> Result<(), Status> {
    validate::namespace(&r.namespace)?;
    let ops = r.compares.len() + r.success.len().max(r.failure.len());
    if ops > limits.max_txn_ops {
        return Err(Status::invalid_argument(format!(
            "the transaction has {ops} compares and ops (compares plus the larger branch); the limit is {} \
             (max_txn_ops); split it",
            limits.max_txn_ops
        )));
    }
    for (i, c) in r.compares.iter().enumerate() {
        let at = |s: Status| Status::invalid_argument(format!("compares[{i}]: {}", s.message()));
        validate::key(limits, &c.key).map_err(at)?;
        let target = CompareTarget::try_from(c.target).map_err(|_| {
            Status::invalid_argument(format!("compares[{i}]: unknown target {}; use VERSION or VALUE", c.target))
        })?;
        CompareOp::try_from(c.op).map_err(|_| {
            Status::invalid_argument(format!(
                "compares[{i}]: unknown op {}; use EQUAL, NOT_EQUAL, GREATER or LESS",
                c.op
            ))
        })?;
        if target == CompareTarget::Value {
            validate::value(limits, &c.value).map_err(at)?;
        }
    }
    branch(limits, "success", &r.success)?;
    branch(limits, "failure", &r.failure)?;
    let bytes = r.encoded_len();
    if bytes > limits.max_txn_bytes {
        return Err(Status::invalid_argument(format!(
            "the transaction is {bytes} bytes; the limit is {} bytes (max_txn_bytes); split it",
            limits.max_txn_bytes
        )));
    }
    Ok(())
}

/// Each op well formed, and no key written twice: two puts or deletes of one
/// key, or one under a delete_prefix of the same branch, would make the
/// outcome depend on op order in a way a reader of the request can miss.
/// Overlapping delete_prefixes are allowed: deleting twice changes nothing.
fn branch(limits: &Limits, name: &str, ops: &[Op]) -> Result<(), Status> {
    let mut written: BTreeMap<&[u8], usize> = BTreeMap::new();
    let mut prefixes = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let at = |s: Status| Status::invalid_argument(format!("{name}[{i}]: {}", s.message()));
        let key = match &op.op {
            None => {
                return Err(Status::invalid_argument(format!(
                    "{name}[{i}]: the op sets none of put, delete, get, delete_prefix"
                )))
            }
            Some(OpKind::Get(g)) => {
                validate::key(limits, &g.key).map_err(at)?;
                continue;
            }
            Some(OpKind::DeletePrefix(d)) => {
                if d.prefix.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "{name}[{i}]: delete_prefix needs a non-empty prefix (an empty one would delete the \
                         whole namespace)"
                    )));
                }
                validate::key(limits, &d.prefix).map_err(at)?;
                prefixes.push((i, &d.prefix[..]));
                continue;
            }
            Some(OpKind::Put(p)) => {
                validate::value(limits, &p.value).map_err(at)?;
                &p.key[..]
            }
            Some(OpKind::Delete(d)) => &d.key[..],
        };
        validate::key(limits, key).map_err(at)?;
        if let Some(first) = written.insert(key, i) {
            return Err(Status::invalid_argument(format!(
                "{name}[{first}] and {name}[{i}] both write key {}; write each key at most once per branch",
                show(key)
            )));
        }
    }
    for (j, prefix) in prefixes {
        if let Some((key, i)) = written.range(prefix..).next().filter(|(k, _)| k.starts_with(prefix)) {
            return Err(Status::invalid_argument(format!(
                "{name}[{i}] writes key {} under {name}[{j}]'s delete_prefix {}; write each key at most once \
                 per branch",
                show(key),
                show(prefix)
            )));
        }
    }
    Ok(())
}

/// A key as text for a message: escaped, and cut after 64 bytes.
fn show(key: &[u8]) -> String {
    let cut = &key[..key.len().min(64)];
    let more = if key.len() > cut.len() { "..." } else { "" };
    format!("\"{}{more}\"", cut.escape_ascii())
}

#[cfg(test)]
mod tests {
    use flaredb_proto::v1::{Compare, DeleteOp, DeletePrefixOp, GetOp, PutOp};

    use super::*;

    fn put(k: &str) -> Op {
        Op { op: Some(OpKind::Put(PutOp { key: k.to_owned().into(), value: "v".into(), lease_id: 0 })) }
    }
    fn del(k: &str) -> Op {
        Op { op: Some(OpKind::Delete(DeleteOp { key: k.to_owned().into() })) }
    }
    fn get(k: &str) -> Op {
        Op { op: Some(OpKind::Get(GetOp { key: k.to_owned().into() })) }
    }
    fn del_prefix(p: &str) -> Op {
        Op { op: Some(OpKind::DeletePrefix(DeletePrefixOp { prefix: p.to_owned().into() })) }
    }
    fn cmp(k: &str) -> Compare {
        Compare { key: k.to_owned().into(), ..Default::default() }
    }
    fn check(success: Vec<Op>) -> Result<(), Status> {
        txn(&Limits::default(), &TxnRequest { success, ..Default::default() })
    }
    fn refused(r: Result<(), Status>, needle: &str) {
        let e = r.expect_err(needle);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains(needle), "{needle:?} not in {:?}", e.message());
    }

    #[test]
    fn a_branch_writes_each_key_once() {
        assert!(
            check(vec![put("a"), put("b"), get("a"), get("a"), del("c"), del_prefix("d"), del_prefix("d/")]).is_ok()
        );
        refused(check(vec![put("a"), put("a")]), "success[0] and success[1] both write key \"a\"");
        refused(check(vec![put("a"), get("x"), del("a")]), "success[0] and success[2]");
        refused(check(vec![del("a"), del("a")]), "both write");
        refused(check(vec![put("p/1"), del_prefix("p/")]), "success[0] writes key \"p/1\" under success[1]'s");
        refused(check(vec![del_prefix("p"), del("p")]), "under");
        // Different branches never both run.
        let r = TxnRequest { success: vec![put("a")], failure: vec![put("a"), del_prefix("b")], ..Default::default() };
        assert!(txn(&Limits::default(), &r).is_ok());
    }

    #[test]
    fn empty_keys_prefixes_and_ops_are_refused() {
        refused(check(vec![put("")]), "success[0]: key must not be empty");
        refused(check(vec![get("")]), "key must not be empty");
        refused(check(vec![del_prefix("")]), "non-empty prefix");
        refused(check(vec![Op { op: None }]), "sets none of");
        let r = TxnRequest { compares: vec![cmp("")], ..Default::default() };
        refused(txn(&Limits::default(), &r), "compares[0]: key must not be empty");
        let r = TxnRequest { compares: vec![Compare { op: 7, ..cmp("k") }], ..Default::default() };
        refused(txn(&Limits::default(), &r), "unknown op 7");
        let r = TxnRequest { compares: vec![Compare { target: 7, ..cmp("k") }], ..Default::default() };
        refused(txn(&Limits::default(), &r), "unknown target 7");
    }

    #[test]
    fn limits_count_compares_and_the_larger_branch() {
        let l = Limits { max_txn_ops: 4, max_txn_bytes: 200, ..Limits::default() };
        let r = TxnRequest {
            compares: vec![cmp("a"), cmp("b")],
            success: vec![get("a"), get("b")],
            failure: vec![get("a"), get("b")],
            ..Default::default()
        };
        assert!(txn(&l, &r).is_ok());
        let r = TxnRequest { failure: vec![get("a"), get("b"), get("c")], ..r };
        refused(txn(&l, &r), "max_txn_ops");
        let r = TxnRequest { success: vec![get(&"k".repeat(300))], ..Default::default() };
        refused(txn(&l, &r), "max_txn_bytes");
    }
}
