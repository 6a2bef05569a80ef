//! Transactions applied to a real RocksDB: compares, branches, ordered ops,
//! delete-prefix counts, revisions, and which transactions create a namespace.

use std::sync::Arc;

use bytes::Bytes;
use flaredb_proto::raft::{self as pb, command::Cmd, txn_op::Op, TxnCompareOp as CmpOp, TxnCompareTarget as On};
use rocksdb::DB;

use super::{apply::ApplyBatch, db, read};
use crate::{
    namespace::{Mode, NamespaceRejection, Registry},
    types::{FlareResponse, TxnOpResult},
};

struct Sm {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    registry: Registry,
}

impl Sm {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        Self { _dir: dir, db, registry: Registry::new() }
    }

    /// Applies `cmds` as one batch at indexes `first..` and writes it.
    fn apply(&mut self, first: u64, cmds: Vec<Cmd>) -> Vec<FlareResponse> {
        let mut b = ApplyBatch::new(&self.db, self.registry.clone());
        let answers = (first..)
            .zip(cmds)
            .map(|(i, c)| b.command(i, &pb::Command { cmd: Some(c), ..Default::default() }).unwrap())
            .collect();
        self.registry = b.registry;
        self.db.write(b.batch).unwrap();
        answers
    }

    fn one(&mut self, index: u64, cmd: Cmd) -> FlareResponse {
        self.apply(index, vec![cmd]).remove(0)
    }

    fn get(&self, ns: &str, key: &str) -> Option<(u64, Vec<u8>)> {
        let id = self.registry.get(ns)?.id;
        read::cas_get(&self.db, id, key.as_bytes()).unwrap()
    }
}

fn target(ns: &str) -> Option<pb::Target> {
    Some(pb::Target { namespace: ns.into(), auto_create: true })
}

fn txn(ns: &str, compares: Vec<pb::TxnCompare>, success: Vec<pb::TxnOp>, failure: Vec<pb::TxnOp>) -> Cmd {
    Cmd::Txn(pb::Txn { target: target(ns), compares, success, failure })
}

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

fn cmp_version(key: &str, op: CmpOp, version: u64) -> pb::TxnCompare {
    pb::TxnCompare { key: b(key), target: On::Version as i32, op: op as i32, version, value: Bytes::new() }
}

fn cmp_value(key: &str, op: CmpOp, value: &str) -> pb::TxnCompare {
    pb::TxnCompare { key: b(key), target: On::Value as i32, op: op as i32, version: 0, value: b(value) }
}

fn op(o: Op) -> pb::TxnOp {
    pb::TxnOp { op: Some(o) }
}

fn put(key: impl AsRef<[u8]>, value: &str) -> pb::TxnOp {
    op(Op::Put(pb::TxnPut { key: b(key), value: b(value), lease_id: 0 }))
}

fn get(key: &str) -> pb::TxnOp {
    op(Op::Get(b(key)))
}

fn del(key: &str) -> pb::TxnOp {
    op(Op::Delete(b(key)))
}

fn del_prefix(prefix: impl AsRef<[u8]>) -> pb::TxnOp {
    op(Op::DeletePrefix(b(prefix)))
}

fn cas_put(ns: &str, key: impl AsRef<[u8]>, value: &str) -> Cmd {
    Cmd::CasPut(pb::CasPut { target: target(ns), key: b(key), value: b(value), expected_version: 0, lease_id: 0 })
}

fn succeeded(resp: &FlareResponse) -> bool {
    match resp {
        FlareResponse::Txn { succeeded, .. } => *succeeded,
        other => panic!("not a txn answer: {other:?}"),
    }
}

fn results(resp: FlareResponse) -> Vec<TxnOpResult> {
    match resp {
        FlareResponse::Txn { results, .. } => results,
        other => panic!("not a txn answer: {other:?}"),
    }
}

fn found(key: &str, version: u64, value: &str) -> TxnOpResult {
    TxnOpResult::Get { key: b(key), found: Some((version, b(value))) }
}

fn absent(key: &str) -> TxnOpResult {
    TxnOpResult::Get { key: b(key), found: None }
}

fn keys_in(sm: &Sm, ns: &str) -> Vec<Vec<u8>> {
    let id = sm.registry.get(ns).unwrap().id;
    let limit = read::PageLimit { entries: 100, bytes: 1 << 20 };
    read::scan(&sm.db, Mode::Strong, id, b"", b"", limit).unwrap().entries.into_iter().map(|(k, _, _)| k).collect()
}

#[test]
fn every_compare_target_and_operator() {
    let mut sm = Sm::new();
    sm.one(5, cas_put("", "k", "m"));
    use CmpOp::*;
    let cases = [
        (cmp_version("k", Equal, 5), true),
        (cmp_version("k", Equal, 4), false),
        (cmp_version("k", NotEqual, 4), true),
        (cmp_version("k", NotEqual, 5), false),
        (cmp_version("k", Greater, 4), true),
        (cmp_version("k", Greater, 5), false),
        (cmp_version("k", Less, 6), true),
        (cmp_version("k", Less, 5), false),
        // Version 0 = absent.
        (cmp_version("x", Equal, 0), true),
        (cmp_version("x", Less, 1), true),
        (cmp_version("x", Greater, 0), false),
        (cmp_value("k", Equal, "m"), true),
        (cmp_value("k", Equal, "n"), false),
        (cmp_value("k", NotEqual, "n"), true),
        (cmp_value("k", NotEqual, "m"), false),
        (cmp_value("k", Greater, "a"), true),
        (cmp_value("k", Greater, "m"), false),
        (cmp_value("k", Less, "z"), true),
        (cmp_value("k", Less, "m"), false),
        (cmp_value("k", Greater, "lzzz"), true),
        (cmp_value("k", Less, "m\0"), true),
        // An absent key has no value: only NOT_EQUAL holds.
        (cmp_value("x", Equal, ""), false),
        (cmp_value("x", NotEqual, ""), true),
        (cmp_value("x", Greater, ""), false),
        (cmp_value("x", Less, "z"), false),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        let resp = sm.one(10 + i as u64, txn("", vec![c.clone()], vec![], vec![]));
        assert_eq!(succeeded(&resp), want, "{c:?}");
    }
    // Unknown enum values (never proposed by a server) do not hold.
    let mut bad = cmp_version("k", Equal, 5);
    bad.target = 9;
    assert!(!succeeded(&sm.one(50, txn("", vec![bad], vec![], vec![]))));
    let mut bad = cmp_version("k", Equal, 5);
    bad.op = 9;
    assert!(!succeeded(&sm.one(51, txn("", vec![bad], vec![], vec![]))));
    // No compares: the success branch runs.
    assert!(succeeded(&sm.one(52, txn("", vec![], vec![], vec![]))));
}

#[test]
fn all_compares_must_hold_and_only_the_chosen_branch_runs() {
    let mut sm = Sm::new();
    sm.one(3, cas_put("", "a", "1"));
    let both = || vec![cmp_version("a", CmpOp::Equal, 3), cmp_value("a", CmpOp::Equal, "1")];
    let one_fails = vec![cmp_version("a", CmpOp::Equal, 3), cmp_value("a", CmpOp::Equal, "2")];

    let resp = sm.one(4, txn("", one_fails, vec![put("s", "x")], vec![put("f", "y"), get("a")]));
    assert_eq!(
        resp,
        FlareResponse::Txn {
            succeeded: false,
            revision: 4,
            results: vec![TxnOpResult::Put { version: 4 }, found("a", 3, "1")],
        }
    );
    assert_eq!((sm.get("", "s"), sm.get("", "f")), (None, Some((4, b"y".to_vec()))));

    let resp = sm.one(5, txn("", both(), vec![put("s", "x")], vec![put("f", "z")]));
    assert!(succeeded(&resp));
    assert_eq!((sm.get("", "s"), sm.get("", "f")), (Some((5, b"x".to_vec())), Some((4, b"y".to_vec()))));
}

#[test]
fn ops_run_in_order_and_gets_see_earlier_ops() {
    let mut sm = Sm::new();
    sm.one(2, cas_put("", "c", "committed"));
    let ops = vec![
        get("a"),
        put("a", "1"),
        get("a"),
        put("a", "2"),
        get("a"),
        get("c"),
        del("c"),
        get("c"),
        del("c"),
        put("c", "back"),
        get("c"),
    ];
    let got = results(sm.one(7, txn("", vec![], ops, vec![])));
    use TxnOpResult::*;
    assert_eq!(
        got,
        vec![
            absent("a"),
            Put { version: 7 },
            found("a", 7, "1"),
            Put { version: 7 },
            found("a", 7, "2"),
            found("c", 2, "committed"),
            Delete { deleted: 1 },
            absent("c"),
            Delete { deleted: 0 },
            Put { version: 7 },
            found("c", 7, "back"),
        ]
    );
    assert_eq!((sm.get("", "a"), sm.get("", "c")), (Some((7, b"2".to_vec())), Some((7, b"back".to_vec()))));
}

#[test]
fn the_revision_is_the_index_and_every_put_takes_it() {
    let mut sm = Sm::new();
    let resp = sm.one(42, txn("", vec![], vec![put("a", "1"), put("b", "2")], vec![]));
    assert_eq!(
        resp,
        FlareResponse::Txn {
            succeeded: true,
            revision: 42,
            results: vec![TxnOpResult::Put { version: 42 }, TxnOpResult::Put { version: 42 }],
        }
    );
    assert_eq!((sm.get("", "a"), sm.get("", "b")), (Some((42, b"1".to_vec())), Some((42, b"2".to_vec()))));
    // A read-only transaction has a revision too (its entry).
    let resp = sm.one(43, txn("", vec![], vec![get("a")], vec![]));
    assert_eq!(resp, FlareResponse::Txn { succeeded: true, revision: 43, results: vec![found("a", 42, "1")] });
}

#[test]
fn delete_prefix_counts_stored_and_staged_keys_once() {
    let mut sm = Sm::new();
    for (i, k) in ["p/1", "p/2", "p0", "q"].into_iter().enumerate() {
        sm.one(1 + i as u64, cas_put("", k, "v"));
    }
    // One batch: earlier entries stage a put and a delete, the txn adds a put,
    // then deletes the prefix: p/2 (stored), p/3 (staged), p/4 (this txn).
    let answers = sm.apply(
        10,
        vec![
            cas_put("", "p/3", "v"),
            Cmd::CasDelete(pb::CasDelete { target: target(""), key: b("p/1"), expected_version: 1 }),
            txn("", vec![], vec![put("p/4", "v"), del_prefix("p/"), get("p/2"), del_prefix("p/")], vec![]),
        ],
    );
    let got = results(answers[2].clone());
    assert_eq!(got[1..], [TxnOpResult::Delete { deleted: 3 }, absent("p/2"), TxnOpResult::Delete { deleted: 0 }]);
    assert_eq!(keys_in(&sm, ""), [&b"p0"[..], b"q"]);
}

#[test]
fn an_ff_prefix_reaches_the_end_of_its_namespace_and_no_further() {
    let mut sm = Sm::new();
    sm.one(1, cas_put("", b"\xff", "v"));
    sm.one(2, cas_put("", b"\xff\xff\x00", "v"));
    sm.one(3, cas_put("", b"\xfe\xff", "v"));
    sm.one(4, cas_put("next", b"\xff", "v"));
    let got = results(sm.one(5, txn("", vec![], vec![del_prefix(b"\xff"), del_prefix(b"\xfe")], vec![])));
    assert_eq!(got, [TxnOpResult::Delete { deleted: 2 }, TxnOpResult::Delete { deleted: 1 }]);
    assert!(keys_in(&sm, "").is_empty());
    assert_eq!(keys_in(&sm, "next"), [b"\xff"]);
    // An empty prefix (refused at the edge) is the whole namespace.
    sm.one(6, cas_put("next", "a", "v"));
    assert_eq!(
        results(sm.one(7, txn("next", vec![], vec![del_prefix("")], vec![]))),
        [TxnOpResult::Delete { deleted: 2 }]
    );
}

#[test]
fn only_a_transaction_that_puts_creates_its_namespace() {
    let sm = Sm::new();
    let mut batch = ApplyBatch::new(&sm.db, sm.registry.clone());
    let no_create = [
        // The compare fails, so the put in the success branch never runs.
        txn("a", vec![cmp_version("k", CmpOp::Equal, 9)], vec![put("k", "v")], vec![get("k")]),
        txn("b", vec![], vec![get("k"), get("j")], vec![]),
        txn("c", vec![], vec![del("k"), del_prefix(b"k")], vec![]),
    ];
    for (i, c) in no_create.into_iter().enumerate() {
        let resp = batch.command(1 + i as u64, &pb::Command { cmd: Some(c), ..Default::default() }).unwrap();
        assert!(matches!(resp, FlareResponse::Txn { .. }), "{resp:?}");
    }
    assert_eq!(batch.registry.list().count(), 1, "a transaction that did not put created a namespace");
    assert!(batch.batch.is_empty(), "a transaction that did not write staged a change");

    // Ops before the first put see an empty namespace; the put creates it.
    let cmd = txn("d", vec![], vec![get("k"), del("k"), put("k", "v"), get("k")], vec![]);
    let got = results(batch.command(5, &pb::Command { cmd: Some(cmd), ..Default::default() }).unwrap());
    assert_eq!(
        got,
        [absent("k"), TxnOpResult::Delete { deleted: 0 }, TxnOpResult::Put { version: 5 }, found("k", 5, "v")]
    );
    let names: Vec<&str> = batch.registry.list().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["d", "default"]);
}

#[test]
fn namespace_rejections_and_malformed_ops_change_nothing() {
    let mut sm = Sm::new();
    sm.one(1, Cmd::RawPut(pb::RawPut { target: target("ev"), key: "k".into(), value: "v".into() }));
    let resp = sm.one(2, txn("ev", vec![], vec![put("k", "v")], vec![]));
    assert_eq!(
        resp,
        FlareResponse::Rejected(NamespaceRejection::WrongMode { name: "ev".into(), mode: Mode::Eventual })
    );
    let no_auto =
        pb::Txn { target: Some(pb::Target { namespace: "n".into(), auto_create: false }), ..Default::default() };
    assert_eq!(sm.one(3, Cmd::Txn(no_auto)), FlareResponse::Rejected(NamespaceRejection::NotFound("n".into())));
    let bad_name = pb::Txn { target: target("Bad"), success: vec![put("k", "v")], ..Default::default() };
    assert!(matches!(sm.one(4, Cmd::Txn(bad_name)), FlareResponse::Rejected(NamespaceRejection::Invalid(_))));
    // An op with nothing set (a server refuses it) answers Empty and writes nothing.
    let resp = sm.one(5, txn("", vec![], vec![pb::TxnOp { op: None }, get("k")], vec![]));
    assert_eq!(results(resp), [TxnOpResult::Empty, absent("k")]);
    assert_eq!(sm.registry.list().count(), 2);
}

#[test]
fn gets_that_would_read_past_the_limit_refuse_the_whole_transaction() {
    use super::apply_txn::MAX_TXN_READ_BYTES;
    let mut sm = Sm::new();
    let big = "x".repeat(1 << 20);
    sm.one(1, txn("ns", vec![], vec![put("big", &big)], vec![]));
    // Four reads of 1 MiB fit; a fifth (or a put that grows a read key) does not.
    let four = txn("ns", vec![], (0..4).map(|_| get("big")).collect(), vec![]);
    assert!(matches!(sm.one(2, four), FlareResponse::Txn { succeeded: true, .. }));
    let mut five: Vec<pb::TxnOp> = (0..5).map(|_| get("big")).collect();
    five.insert(0, put("side", "effect"));
    let refused = sm.one(3, txn("ns", vec![], five, vec![]));
    assert_eq!(refused, FlareResponse::TxnReadTooLarge { bytes: 5 << 20, limit: MAX_TXN_READ_BYTES });
    assert_eq!(sm.get("ns", "side"), None, "a refused transaction applied a put");
    let grows = vec![put("small", &"y".repeat(MAX_TXN_READ_BYTES + 1)), get("small")];
    assert!(matches!(sm.one(4, txn("ns", vec![], grows, vec![])), FlareResponse::TxnReadTooLarge { .. }));
}
