//! KvCas/Txn between the wire and the log: a validated request becomes a
//! `raft.v1.Txn` command, the state machine's answer a `TxnResponse`.
//! The log keeps its own messages so the public API can grow without
//! changing what replicas apply.

use flaredb_proto::{
    raft as pb,
    v1::{self, op::Op as OpKind, op_result::Result as OpResultKind},
};
use flaredb_raft::TxnOpResult;
use prost::Message;
use tonic::Status;

/// The rights a transaction needs: READ when it compares or gets (a compare
/// tells what a key holds), WRITE when either branch puts or deletes.
pub fn needs(r: &v1::TxnRequest) -> Vec<flaredb_raft::auth::Need> {
    use flaredb_raft::auth::Need;
    let ops = || r.success.iter().chain(&r.failure).filter_map(|o| o.op.as_ref());
    let mut needs = Vec::with_capacity(2);
    // An empty transaction still tells whether the namespace exists: READ.
    let empty = r.compares.is_empty() && ops().next().is_none();
    if empty || !r.compares.is_empty() || ops().any(|o| matches!(o, OpKind::Get(_))) {
        needs.push(Need::Read);
    }
    if ops().any(|o| !matches!(o, OpKind::Get(_))) {
        needs.push(Need::Write);
    }
    needs
}

/// The log command of a request that passed `validate_txn::txn` (which
/// refuses unknown enum values, so none is carried).
pub fn command(target: Option<pb::Target>, r: v1::TxnRequest) -> pb::command::Cmd {
    pb::command::Cmd::Txn(pb::Txn {
        target,
        compares: r.compares.into_iter().map(compare).collect(),
        success: r.success.into_iter().map(op).collect(),
        failure: r.failure.into_iter().map(op).collect(),
    })
}

fn compare(c: v1::Compare) -> pb::TxnCompare {
    use v1::{CompareOp as Op, CompareTarget as Target};
    let (Ok(target), Ok(op)) = (Target::try_from(c.target), Op::try_from(c.op)) else {
        // Refused by validation; were it not, a raw copy would compare false.
        return pb::TxnCompare { key: c.key, target: c.target, op: c.op, version: c.version, value: c.value };
    };
    let op = match op {
        Op::Equal => pb::TxnCompareOp::Equal,
        Op::NotEqual => pb::TxnCompareOp::NotEqual,
        Op::Greater => pb::TxnCompareOp::Greater,
        Op::Less => pb::TxnCompareOp::Less,
    };
    // Only the field the target reads travels in the log.
    let (target, version, value) = match target {
        Target::Version => (pb::TxnCompareTarget::Version, c.version, Default::default()),
        Target::Value => (pb::TxnCompareTarget::Value, 0, c.value),
    };
    pb::TxnCompare { key: c.key, target: target as i32, op: op as i32, version, value }
}

fn op(o: v1::Op) -> pb::TxnOp {
    use pb::txn_op::Op;
    pb::TxnOp {
        op: o.op.map(|o| match o {
            OpKind::Put(p) => Op::Put(pb::TxnPut { key: p.key, value: p.value, lease_id: p.lease_id }),
            OpKind::Delete(d) => Op::Delete(d.key),
            OpKind::Get(g) => Op::Get(g.key),
            OpKind::DeletePrefix(d) => Op::DeletePrefix(d.prefix),
        }),
    }
}

/// The answer to the caller. A response over the message limit would fail
/// in tonic's encoder after the transaction applied; it is answered here
/// instead, saying that it applied.
pub fn response(
    succeeded: bool,
    revision: u64,
    results: Vec<TxnOpResult>,
    max_message_bytes: usize,
) -> Result<v1::TxnResponse, Status> {
    let resp = v1::TxnResponse { succeeded, revision, results: results.into_iter().map(op_result).collect() };
    let bytes = resp.encoded_len();
    if bytes > max_message_bytes {
        return Err(Status::resource_exhausted(format!(
            "the transaction applied at revision {revision} (succeeded: {succeeded}), but its results are {bytes} \
             bytes, over max_message_bytes ({max_message_bytes}); read large values with fewer gets per transaction"
        )));
    }
    Ok(resp)
}

fn op_result(r: TxnOpResult) -> v1::OpResult {
    let result = match r {
        TxnOpResult::Put { version } => Some(OpResultKind::Put(v1::PutResult { version })),
        TxnOpResult::Delete { deleted } => Some(OpResultKind::Delete(v1::DeleteResult { deleted })),
        TxnOpResult::Get { key, found } => Some(OpResultKind::Get(match found {
            Some((version, value)) => v1::GetResult { found: true, kv: Some(v1::VersionedKv { key, value, version }) },
            None => v1::GetResult { found: false, kv: None },
        })),
        TxnOpResult::Empty => None,
    };
    v1::OpResult { result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_carry_only_what_their_target_reads() {
        let c = v1::Compare {
            key: "k".into(),
            target: v1::CompareTarget::Value as i32,
            op: v1::CompareOp::Less as i32,
            version: 9,
            value: "v".into(),
        };
        let got = compare(c);
        assert_eq!(
            (got.target, got.op, got.version, &got.value[..]),
            (pb::TxnCompareTarget::Value as i32, pb::TxnCompareOp::Less as i32, 0, &b"v"[..])
        );
    }

    #[test]
    fn every_result_kind_maps() {
        let results = vec![
            TxnOpResult::Put { version: 3 },
            TxnOpResult::Delete { deleted: 2 },
            TxnOpResult::Get { key: "k".into(), found: Some((3, "v".into())) },
            TxnOpResult::Get { key: "x".into(), found: None },
        ];
        let r = response(true, 3, results, 1 << 20).unwrap();
        assert_eq!(r.results.len(), 4);
        assert!(
            matches!(&r.results[2].result, Some(OpResultKind::Get(g)) if g.found && g.kv.as_ref().unwrap().version == 3)
        );
        assert!(matches!(&r.results[3].result, Some(OpResultKind::Get(g)) if !g.found && g.kv.is_none()));
        let big = vec![TxnOpResult::Get { key: "k".into(), found: Some((3, vec![0u8; 200].into())) }];
        let e = response(true, 3, big, 100).unwrap_err();
        assert!(e.message().contains("applied at revision 3"), "{}", e.message());
    }
}
