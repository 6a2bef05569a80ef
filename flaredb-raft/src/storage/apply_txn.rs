//! Applying a transaction (KvCas/Txn): the compares are evaluated on the
//! state as of this entry, then one branch's ops run in order over the same
//! batch overlay, so a get sees the writes of earlier ops.
//!
//! Total over any input, because an entry is applied as it is in the log
//! whatever node proposed it: an unknown compare target or operator does
//! not hold, an op with nothing set does nothing. Every replica computes the
//! same answer from the same entry.

use std::cmp::Ordering;

use flaredb_proto::raft::{self as pb, txn_op::Op, TxnCompareOp, TxnCompareTarget};

use super::apply::ApplyBatch;

/// The most bytes of values one transaction's gets may read. Every replica
/// reads them (and a write id keeps them), so a small request must not make
/// every node copy gigabytes; the same on every replica, whatever each
/// node's `max_message_bytes`.
pub const MAX_TXN_READ_BYTES: usize = 4 << 20;
use crate::{
    error::StoreError,
    keys,
    namespace::{Mode, NamespaceInfo},
    types::{FlareResponse, TxnOpResult},
};

impl ApplyBatch<'_> {
    /// Applies transaction `t` written at log `index` (its revision).
    pub(super) fn txn(&mut self, index: u64, t: &pb::Txn) -> Result<FlareResponse, StoreError> {
        let mut ns = match self.lookup(&t.target, Mode::Strong) {
            Ok(found) => found,
            Err(resp) => return Ok(resp),
        };
        // Compares have no side effects, so stopping at the first that fails
        // answers the same as evaluating them all.
        let mut succeeded = true;
        for c in &t.compares {
            if !self.holds(ns.as_ref(), c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &t.success } else { &t.failure };
        // Checked before any op runs, so an unknown lease applies nothing.
        for op in ops {
            if let Some(Op::Put(p)) = &op.op {
                if p.lease_id != 0 && !self.lease_exists(p.lease_id)? {
                    return Ok(FlareResponse::LeaseNotFound { id: p.lease_id });
                }
                if p.lease_id != 0 && !self.may_use_lease(p.lease_id)? {
                    return Ok(FlareResponse::LeaseNotOwned { id: p.lease_id });
                }
            }
        }
        // A quota is checked against the puts alone, each as if it ran first:
        // a delete in the same transaction does not make room.
        if let Some(info) = ns.as_ref().filter(|ns| self.has_quota(ns.id)) {
            let (mut keys_added, mut bytes_added) = (0i64, 0i64);
            for op in ops {
                if let Some(Op::Put(p)) = &op.op {
                    let (k, b) = self.put_growth(&keys::encode(info.id, &p.key), p.value.len(), true)?;
                    keys_added += k;
                    bytes_added += b.max(0);
                }
            }
            if let Err(refused) = self.admits(info, keys_added, bytes_added) {
                return Ok(refused);
            }
        }
        if let Some(info) = &ns {
            let bytes = self.read_bound(info, ops)?;
            if bytes > MAX_TXN_READ_BYTES {
                return Ok(FlareResponse::TxnReadTooLarge { bytes, limit: MAX_TXN_READ_BYTES });
            }
        }
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(self.txn_op(index, &mut ns, &t.target, op)?);
        }
        Ok(FlareResponse::Txn { succeeded, revision: index, results })
    }

    /// At least as many value bytes as `ops`' gets will read: each get's key
    /// as it is now, or as large as the largest put of it in `ops`.
    fn read_bound(&self, ns: &NamespaceInfo, ops: &[pb::TxnOp]) -> Result<usize, StoreError> {
        let mut total = 0usize;
        for op in ops {
            let Some(Op::Get(key)) = &op.op else { continue };
            let put = ops
                .iter()
                .filter_map(|o| match &o.op {
                    Some(Op::Put(p)) if p.key == *key => Some(p.value.len()),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let now = self.cas_head(&keys::encode(ns.id, key))?.len;
            total = total.saturating_add(now.max(put));
        }
        Ok(total)
    }

    /// Whether compare `c` holds. In an absent namespace every key is absent.
    fn holds(&self, ns: Option<&NamespaceInfo>, c: &pb::TxnCompare) -> Result<bool, StoreError> {
        let (Ok(target), Ok(op)) = (TxnCompareTarget::try_from(c.target), TxnCompareOp::try_from(c.op)) else {
            return Ok(false);
        };
        let key = ns.map(|ns| keys::encode(ns.id, &c.key));
        Ok(match target {
            TxnCompareTarget::Version => {
                let current = match &key {
                    Some(k) => self.cas_version(k)?,
                    None => 0,
                };
                test(op, current.cmp(&c.version))
            }
            TxnCompareTarget::Value => {
                let current = match &key {
                    Some(k) => self.cas_record(k)?,
                    None => None,
                };
                match current {
                    Some((_, value)) => test(op, value.as_ref().cmp(c.value.as_ref())),
                    // An absent key has no value: it differs from every value, and is neither above nor below one.
                    None => op == TxnCompareOp::NotEqual,
                }
            }
        })
    }

    /// Runs one op. `ns` is `None` while the namespace does not exist: the
    /// first put creates it, so a branch that only reads or deletes (nothing,
    /// there) leaves no namespace behind.
    fn txn_op(
        &mut self,
        index: u64,
        ns: &mut Option<NamespaceInfo>,
        target: &Option<pb::Target>,
        op: &pb::TxnOp,
    ) -> Result<TxnOpResult, StoreError> {
        let Some(op) = &op.op else { return Ok(TxnOpResult::Empty) };
        let ns_id = ns.as_ref().map(|info| info.id);
        Ok(match op {
            Op::Put(p) => {
                let info = match ns {
                    Some(info) => info.clone(),
                    None => ns.insert(self.for_write(None, target, Mode::Strong)?).clone(),
                };
                let k = keys::encode(info.id, &p.key);
                let prev = self.cas_head(&k)?;
                self.stage_cas_put(&info, k, index, &p.value, prev, p.lease_id)?;
                TxnOpResult::Put { version: index }
            }
            Op::Get(key) => {
                let found = match ns_id {
                    Some(id) => self.cas_record(&keys::encode(id, key))?,
                    None => None,
                };
                TxnOpResult::Get { key: key.clone(), found }
            }
            Op::Delete(key) => {
                let Some(info) = ns.clone() else { return Ok(TxnOpResult::Delete { deleted: 0 }) };
                let k = keys::encode(info.id, key);
                let prev = self.cas_head(&k)?;
                if prev.version == 0 {
                    return Ok(TxnOpResult::Delete { deleted: 0 });
                }
                self.stage_cas_delete(&info, k, index, prev)?;
                TxnOpResult::Delete { deleted: 1 }
            }
            Op::DeletePrefix(prefix) => {
                let Some(info) = ns.clone() else { return Ok(TxnOpResult::Delete { deleted: 0 }) };
                let doomed =
                    self.cas_keys_in(&keys::encode(info.id, prefix), keys::prefix_end(info.id, prefix).as_deref())?;
                let deleted = doomed.len() as u64;
                for (k, prev) in doomed {
                    self.stage_cas_delete(&info, k, index, prev)?;
                }
                TxnOpResult::Delete { deleted }
            }
        })
    }
}

/// `current.cmp(given)` against the operator.
fn test(op: TxnCompareOp, ord: Ordering) -> bool {
    match op {
        TxnCompareOp::Equal => ord.is_eq(),
        TxnCompareOp::NotEqual => ord.is_ne(),
        TxnCompareOp::Greater => ord.is_gt(),
        TxnCompareOp::Less => ord.is_lt(),
    }
}
