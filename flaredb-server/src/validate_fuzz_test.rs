//! Property-based fuzzing (proptest, stable Rust) of request validation:
//! arbitrary keys, values, namespaces, scans, write ids and transactions,
//! against the default limits and small random ones (so the boundaries are
//! reached without megabyte inputs).
//!
//! Validation must never panic, must accept exactly what the limits allow
//! (checked against an independent model), and its refusals must not echo
//! an unbounded part of the request.
//!
//! Failing cases are written to `proptest-regressions/validate_fuzz_test.txt`
//! and replayed first on every run (keep that file in the repo); hand-picked
//! inputs are the `regression_*` tests. `PROPTEST_CASES=N` runs longer.

use std::collections::BTreeSet;

use bytes::Bytes;
use flaredb_proto::v1::{op::Op as OpKind, Compare, DeleteOp, DeletePrefixOp, GetOp, Op, PutOp, TxnRequest, WriteId};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    test_runner::{Config, FileFailurePersistence},
};
use prost::Message;
use tonic::Status;

use crate::{config::Limits, forward, service::txn, validate, validate_txn};

/// A refusal names sizes and at most a 64-byte excerpt of a key or name.
const MAX_MESSAGE: usize = 2048;

/// `cases` per property unless `PROPTEST_CASES` asks for a longer run;
/// failures persist next to the source (`proptest-regressions/`).
fn config(cases: u32) -> Config {
    let base = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { cases };
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        ..base
    }
}

// --- Strategies ---

/// The defaults, or small limits (0 included) so that boundaries are cheap to reach.
fn limits() -> impl Strategy<Value = Limits> {
    let small = (0usize..12, 0usize..24, 0usize..10, 0usize..400, 0u32..20, 0u32..20).prop_map(
        |(max_key_bytes, max_value_bytes, max_txn_ops, max_txn_bytes, default_scan_limit, max_scan_limit)| Limits {
            max_key_bytes,
            max_value_bytes,
            max_txn_ops,
            max_txn_bytes,
            default_scan_limit,
            max_scan_limit,
            ..Limits::default()
        },
    );
    prop_oneof![1 => Just(Limits::default()), 3 => small]
}

/// Bytes of a length near `limit` (up to a few KiB over), or short ones over
/// a three-letter alphabet so keys repeat and prefix one another.
fn sized(limit: usize) -> impl Strategy<Value = Bytes> {
    let near = (limit.saturating_sub(2)..=limit + 2, any::<u8>());
    let over = (0..=limit + 4096, any::<u8>());
    prop_oneof![
        4 => vec(prop::sample::select(&b"ab\xff"[..]), 0..4).prop_map(Bytes::from),
        1 => vec(any::<u8>(), 0..16).prop_map(Bytes::from),
        1 => near.prop_map(|(n, b)| Bytes::from(vec![b; n])),
        1 => over.prop_map(|(n, b)| Bytes::from(vec![b; n])),
    ]
}

/// Valid names, names just too long, weird unicode, uppercase and punctuation.
fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9_.-]{1,64}",
        "[a-z0-9_.-]{64,70}",
        ".{0,8}",
        "[a-zA-Z!/ \u{0}\u{e9}\u{212a}\u{1f600}\u{200b}]{1,8}",
        // 64 characters but more bytes, and 64 bytes of multi-byte characters.
        "[a-z\u{e9}]{64}",
    ]
}

fn compare(
    key: BoxedStrategy<Bytes>,
    value: BoxedStrategy<Bytes>,
    e: BoxedStrategy<i32>,
) -> impl Strategy<Value = Compare> {
    (key, e.clone(), e, any::<u64>(), value).prop_map(|(key, target, op, version, value)| Compare {
        key,
        target,
        op,
        version,
        value,
    })
}

fn op(key: BoxedStrategy<Bytes>, value: BoxedStrategy<Bytes>, none: u32) -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        (key.clone(), value, any::<u64>()).prop_map(|(key, value, lease_id)| OpKind::Put(PutOp {
            key,
            value,
            lease_id
        })),
        key.clone().prop_map(|key| OpKind::Delete(DeleteOp { key })),
        key.clone().prop_map(|key| OpKind::Get(GetOp { key })),
        key.prop_map(|prefix| OpKind::DeletePrefix(DeletePrefixOp { prefix })),
    ];
    prop_oneof![none => Just(None), 12 => kind.prop_map(Some)].prop_map(|op| Op { op })
}

fn write_id() -> impl Strategy<Value = Option<WriteId>> {
    option::of(
        (prop_oneof![".{0,8}", "[a-z]{126,130}", "[\u{e9}]{63,65}"], any::<u64>())
            .prop_map(|(client_id, sequence)| WriteId { client_id, sequence }),
    )
}

/// Any parts: mostly refused somewhere.
fn random_txn(l: Limits) -> impl Strategy<Value = TxnRequest> {
    let (k, v) = (sized(l.max_key_bytes).boxed(), sized(l.max_value_bytes).boxed());
    // Branch lengths up to a few past the op limit (capped for the defaults).
    let n = l.max_txn_ops.min(12) + 3;
    let e = prop_oneof![4 => 0i32..4, 1 => any::<i32>()].boxed();
    (
        namespace(),
        vec(compare(k.clone(), v.clone(), e), 0..4),
        vec(op(k.clone(), v.clone(), 1), 0..n),
        vec(op(k, v, 1), 0..n),
        write_id(),
    )
        .prop_map(|(namespace, compares, success, failure, write_id)| TxnRequest {
            namespace,
            compares,
            success,
            failure,
            write_id,
        })
}

/// Valid parts (short or limit-length keys, values near the limit, known
/// enum values), with conflicting writes, excess ops and excess bytes
/// dropped: mostly accepted, values at the limit refused.
fn plausible_txn(l: Limits) -> impl Strategy<Value = TxnRequest> {
    let max = l.max_key_bytes.max(1);
    let k = prop_oneof![
        6 => vec(prop::sample::select(&b"ab\xff"[..]), 1..=max.min(3)).prop_map(Bytes::from),
        1 => (max.saturating_sub(2).max(1)..=max, any::<u8>()).prop_map(|(n, b)| Bytes::from(vec![b; n])),
    ]
    .boxed();
    let v = prop_oneof![
        6 => vec(any::<u8>(), 0..=l.max_value_bytes.min(8)).prop_map(Bytes::from),
        1 => (l.max_value_bytes.saturating_sub(1)..=l.max_value_bytes + 1).prop_map(|n| Bytes::from(vec![0; n])),
    ]
    .boxed();
    let n = l.max_txn_ops.min(12) + 1;
    let e = (0i32..2).boxed();
    let ns = prop_oneof![Just(String::new()), "[a-z0-9_.-]{1,64}"];
    (ns, vec(compare(k.clone(), v.clone(), e), 0..3), vec(op(k.clone(), v.clone(), 0), 0..n), vec(op(k, v, 0), 0..n))
        .prop_map(move |(namespace, compares, success, failure)| {
            let mut r = TxnRequest { namespace, compares, success, failure, write_id: None };
            r.compares.truncate(l.max_txn_ops);
            let room = l.max_txn_ops - r.compares.len();
            for ops in [&mut r.success, &mut r.failure] {
                ops.truncate(room);
                let prefixes: Vec<Bytes> = ops
                    .iter()
                    .filter_map(|o| match &o.op {
                        Some(OpKind::DeletePrefix(d)) => Some(d.prefix.clone()),
                        _ => None,
                    })
                    .collect();
                let mut written = BTreeSet::new();
                ops.retain(|o| match &o.op {
                    Some(OpKind::Put(PutOp { key, .. }) | OpKind::Delete(DeleteOp { key })) => {
                        !prefixes.iter().any(|p| key.starts_with(p)) && written.insert(key.clone())
                    }
                    _ => true,
                });
            }
            while r.encoded_len() > l.max_txn_bytes {
                if r.success.pop().is_none() && r.failure.pop().is_none() && r.compares.pop().is_none() {
                    break;
                }
            }
            r
        })
}

fn txn_request() -> impl Strategy<Value = (Limits, TxnRequest)> {
    limits().prop_flat_map(|l| (Just(l), prop_oneof![random_txn(l), plausible_txn(l)]))
}

// --- An independent model of what the limits allow ---

fn key_ok(l: &Limits, k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= l.max_key_bytes
}

fn namespace_ok(name: &str) -> bool {
    name.is_empty()
        || (name.len() <= 64 && name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-')))
}

fn branch_ok(l: &Limits, ops: &[Op]) -> bool {
    let mut written = BTreeSet::new();
    let mut prefixes = Vec::new();
    for op in ops {
        match &op.op {
            None => return false,
            Some(OpKind::Get(g)) if !key_ok(l, &g.key) => return false,
            Some(OpKind::Get(_)) => {}
            Some(OpKind::DeletePrefix(d)) if !key_ok(l, &d.prefix) => return false,
            Some(OpKind::DeletePrefix(d)) => prefixes.push(d.prefix.clone()),
            Some(OpKind::Put(p)) if p.value.len() > l.max_value_bytes => return false,
            Some(OpKind::Put(PutOp { key, .. }) | OpKind::Delete(DeleteOp { key })) => {
                if !key_ok(l, key) || !written.insert(key.clone()) {
                    return false;
                }
            }
        }
    }
    !written.iter().any(|k| prefixes.iter().any(|p| k.starts_with(p)))
}

fn txn_ok(l: &Limits, r: &TxnRequest) -> bool {
    namespace_ok(&r.namespace)
        && r.compares.len() + r.success.len().max(r.failure.len()) <= l.max_txn_ops
        && r.compares.iter().all(|c| {
            key_ok(l, &c.key)
                && (0..=1).contains(&c.target)
                && (0..=3).contains(&c.op)
                && (c.target == 0 || c.value.len() <= l.max_value_bytes)
        })
        && branch_ok(l, &r.success)
        && branch_ok(l, &r.failure)
        && r.encoded_len() <= l.max_txn_bytes
}

fn refused_briefly(r: Result<(), Status>) -> Result<bool, TestCaseError> {
    match r {
        Ok(()) => Ok(true),
        Err(s) => {
            prop_assert_eq!(s.code(), tonic::Code::InvalidArgument);
            prop_assert!(s.message().len() <= MAX_MESSAGE, "a {}-byte refusal", s.message().len());
            Ok(false)
        }
    }
}

// --- Properties ---

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn single_key_requests(
        (l, key, value) in limits().prop_flat_map(|l| (Just(l), sized(l.max_key_bytes), sized(l.max_value_bytes))),
    ) {
        prop_assert_eq!(refused_briefly(validate::key(&l, &key))?, key_ok(&l, &key));
        prop_assert_eq!(refused_briefly(validate::value(&l, &value))?, value.len() <= l.max_value_bytes);
        // A value is also tried as a key: every length against both limits.
        prop_assert_eq!(refused_briefly(validate::key(&l, &value))?, key_ok(&l, &value));
    }

    #[test]
    fn namespaces_and_write_ids(name in namespace(), id in write_id()) {
        prop_assert_eq!(refused_briefly(validate::namespace(&name))?, namespace_ok(&name));
        let id_ok = id.as_ref().is_none_or(|w| w.client_id.len() <= 128);
        prop_assert_eq!(refused_briefly(validate::write_id(&id))?, id_ok);
    }

    #[test]
    fn scans((l, start, end, limit) in limits().prop_flat_map(|l| (
        Just(l),
        sized(l.max_key_bytes),
        sized(l.max_key_bytes),
        prop_oneof![Just(0u32), Just(u32::MAX), 0u32..30, any::<u32>()],
    ))) {
        let ok = start.len() <= l.max_key_bytes && end.len() <= l.max_key_bytes && (end.is_empty() || end >= start);
        let r = validate::scan(&l, &start, &end, limit);
        prop_assert_eq!(refused_briefly(r.as_ref().map(|_| ()).map_err(Clone::clone))?, ok);
        if let Ok(page) = r {
            let asked = if limit == 0 { l.default_scan_limit } else { limit };
            prop_assert_eq!(page.entries, asked.min(l.max_scan_limit) as usize);
            prop_assert!(page.entries <= l.max_scan_limit as usize);
            prop_assert_eq!(page.bytes, l.max_scan_bytes);
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// Accepts exactly what the model allows; what it accepts becomes a log
    /// command no larger than the request, so the limits hold in the log too.
    #[test]
    fn transactions((l, r) in txn_request()) {
        let accepted = refused_briefly(validate_txn::txn(&l, &r))?;
        prop_assert_eq!(accepted, txn_ok(&l, &r));
        if accepted {
            prop_assert!(r.encoded_len() <= l.max_txn_bytes);
            let (compares, success, failure) = (r.compares.len(), r.success.len(), r.failure.len());
            let request_bytes = r.encoded_len();
            let flaredb_proto::raft::command::Cmd::Txn(t) = txn::command(None, r) else {
                return Err(TestCaseError::fail("not a txn command"));
            };
            prop_assert_eq!((t.compares.len(), t.success.len(), t.failure.len()), (compares, success, failure));
            prop_assert!(t.encoded_len() <= request_bytes, "{} > {request_bytes}", t.encoded_len());
        }
    }

    /// A request's `grpc-timeout` header, as the forwarder reads it.
    #[test]
    fn caller_timeouts(header in prop_oneof![
        "[0-9]{0,24}[HMSmunx]?",
        ".{0,12}",
        vec(any::<u8>(), 0..12).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        let mut req = tonic::Request::new(());
        if let Ok(v) = header.parse() {
            req.metadata_mut().insert("grpc-timeout", v);
        }
        let _ = forward::caller_timeout(&req);
    }
}

// --- Hand-picked regressions ---

#[test]
fn regression_limits_at_their_boundaries() {
    let l = Limits::default();
    let k = |n: usize| vec![b'k'; n];
    assert!(validate::key(&l, &k(l.max_key_bytes)).is_ok());
    assert!(validate::key(&l, &k(l.max_key_bytes + 1)).is_err());
    assert!(validate::key(&l, &[]).is_err());
    assert!(validate::value(&l, &k(l.max_value_bytes)).is_ok());
    assert!(validate::value(&l, &k(l.max_value_bytes + 1)).is_err());
    let zero = Limits { max_key_bytes: 0, max_value_bytes: 0, max_txn_ops: 0, max_txn_bytes: 0, ..l };
    assert!(validate::key(&zero, b"k").is_err());
    assert!(validate::value(&zero, b"").is_ok());
    assert!(validate_txn::txn(&zero, &TxnRequest::default()).is_ok(), "the empty transaction fits any limit");
    assert!(validate::scan(&l, &k(l.max_key_bytes + 1), b"", 0).is_err());
    assert!(validate::scan(&l, b"b", b"a", 0).is_err());
    assert_eq!(validate::scan(&l, b"a", b"", u32::MAX).unwrap().entries, l.max_scan_limit as usize);
}

#[test]
fn regression_refusals_do_not_echo_large_input() {
    let l = Limits::default();
    let huge = vec![0xFFu8; l.max_key_bytes + 4096];
    let put =
        |key: &[u8]| Op { op: Some(OpKind::Put(PutOp { key: Bytes::copy_from_slice(key), ..Default::default() })) };
    let del_prefix =
        |p: &[u8]| Op { op: Some(OpKind::DeletePrefix(DeletePrefixOp { prefix: Bytes::copy_from_slice(p) })) };
    let long = vec![0xFFu8; l.max_key_bytes];
    let requests = [
        TxnRequest { success: vec![put(&huge)], ..Default::default() },
        TxnRequest { success: vec![put(&long), put(&long)], ..Default::default() },
        TxnRequest { success: vec![put(&long), del_prefix(&long[..100])], ..Default::default() },
        TxnRequest { namespace: "\u{1f600}".repeat(200), ..Default::default() },
        TxnRequest { namespace: "\u{0}".repeat(64), ..Default::default() },
        TxnRequest {
            compares: vec![Compare { key: Bytes::from(long.clone()), target: i32::MIN, ..Default::default() }],
            ..Default::default()
        },
    ];
    for r in &requests {
        let e = validate_txn::txn(&l, r).unwrap_err();
        assert!(e.message().len() <= MAX_MESSAGE, "{}", e.message().len());
    }
    let id = Some(WriteId { client_id: "x".repeat(1 << 16), sequence: 1 });
    assert!(validate::write_id(&id).unwrap_err().message().len() <= MAX_MESSAGE);
}

#[test]
fn regression_namespaces() {
    for ok in ["", "a", "default", "a.b-c_9", "z".repeat(64).as_str()] {
        assert!(validate::namespace(ok).is_ok(), "{ok:?}");
    }
    // U+212A KELVIN SIGN lowercases to 'k'; U+0131 is a dotless i; U+FF41 a fullwidth 'a'.
    for bad in
        [&"z".repeat(65)[..], "A", "a b", "\u{212a}", "\u{131}", "\u{ff41}", "a\u{0}", "\u{e9}", "a/b", "\u{200b}"]
    {
        assert!(validate::namespace(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn regression_caller_timeouts() {
    for (header, want) in [
        ("", None),
        ("S", None),
        ("1", None),
        ("99999999999999999999S", None),
        ("18446744073709551615H", Some(std::time::Duration::from_secs(u64::MAX))),
        ("5m", Some(std::time::Duration::from_millis(5))),
    ] {
        let mut req = tonic::Request::new(());
        if let Ok(v) = header.parse() {
            req.metadata_mut().insert("grpc-timeout", v);
        }
        assert_eq!(forward::caller_timeout(&req), want, "{header:?}");
    }
}
