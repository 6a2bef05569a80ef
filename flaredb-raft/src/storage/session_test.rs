//! Exactly-once writes applied to a real RocksDB: a retried write answers
//! what it answered and applies nothing; a retry below the window is
//! refused; idle sessions expire by the replicated clock alone.

use std::sync::Arc;

use flaredb_proto::raft::{self as pb, command::Cmd};
use rocksdb::DB;

use super::{apply::ApplyBatch, db, read, session};
use crate::{namespace::Registry, types::FlareResponse};

struct Sm {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    registry: Registry,
    index: u64,
    /// The user every command comes from (empty: auth off).
    user: String,
}

fn put(key: &str, value: &str, expected: u64) -> Cmd {
    let target = Some(pb::Target { namespace: String::new(), auto_create: true });
    Cmd::CasPut(pb::CasPut {
        target,
        key: key.to_owned().into(),
        value: value.to_owned().into(),
        expected_version: expected,
        lease_id: 0,
    })
}

fn id(client: &str, sequence: u64) -> Option<pb::WriteId> {
    Some(pb::WriteId { client_id: client.into(), sequence })
}

impl Sm {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        Self { _dir: dir, db, registry: Registry::new(), index: 0, user: String::new() }
    }

    /// Applies commands (write id, clock) as one batch at the next indexes.
    fn apply(&mut self, cmds: Vec<(Cmd, Option<pb::WriteId>, u64)>) -> Vec<FlareResponse> {
        let mut b = ApplyBatch::new(&self.db, self.registry.clone());
        let mut out = Vec::new();
        for (c, write_id, at) in cmds {
            self.index += 1;
            if self.index.is_multiple_of(session::EXPIRE_EVERY) {
                b.expire_sessions().unwrap();
            }
            let cmd = pb::Command { cmd: Some(c), write_id, proposed_at_ms: at, user: self.user.clone() };
            out.push(b.command(self.index, &cmd).unwrap());
        }
        b.finish_sessions().unwrap();
        self.registry = b.registry;
        self.db.write(b.batch).unwrap();
        out
    }

    fn one(&mut self, c: Cmd, write_id: Option<pb::WriteId>, at: u64) -> FlareResponse {
        self.apply(vec![(c, write_id, at)]).remove(0)
    }

    fn version(&self, key: &str) -> u64 {
        read::cas_get(&self.db, 1, key.as_bytes()).unwrap().map_or(0, |(v, _)| v)
    }
}

#[test]
fn a_retried_write_answers_as_first_and_applies_nothing() {
    let mut sm = Sm::new();
    let first = sm.one(put("k", "a", 0), id("c1", 1), 1_000);
    assert_eq!(first, FlareResponse::Cas { success: true, current_version: 0, new_version: 1 });
    // The retry would fail its compare if applied again; it answers success.
    assert_eq!(sm.one(put("k", "a", 0), id("c1", 1), 1_001), first);
    assert_eq!(sm.version("k"), 1, "the retry applied");
    // The same sequence in one batch twice, and another client's own numbering.
    let both = sm.apply(vec![(put("k", "b", 1), id("c1", 2), 1_002), (put("k", "b", 1), id("c1", 2), 1_002)]);
    assert_eq!(both[0], both[1]);
    assert_eq!(sm.version("k"), 3);
    let other = sm.one(put("k", "c", 3), id("c2", 1), 1_003);
    assert!(matches!(other, FlareResponse::Cas { success: true, new_version: 5, .. }), "{other:?}");
    // Without a write id nothing is remembered: a resend applies (and here fails its compare).
    assert!(matches!(sm.one(put("k", "c", 3), None, 1_004), FlareResponse::Cas { success: false, .. }));
}

#[test]
fn a_transaction_retry_gets_its_results_and_revision() {
    let mut sm = Sm::new();
    let target = Some(pb::Target { namespace: String::new(), auto_create: true });
    let op = |o| pb::TxnOp { op: Some(o) };
    let txn = Cmd::Txn(pb::Txn {
        target,
        compares: vec![],
        success: vec![
            op(pb::txn_op::Op::Put(pb::TxnPut { key: "a".into(), value: "1".into(), lease_id: 0 })),
            op(pb::txn_op::Op::Get("a".into())),
            op(pb::txn_op::Op::Delete("zz".into())),
        ],
        failure: vec![],
    });
    let first = sm.one(txn.clone(), id("c", 7), 5);
    assert_eq!(sm.one(txn, id("c", 7), 6), first);
    assert_eq!(sm.version("a"), 1);
}

#[test]
fn a_retry_below_the_window_is_refused_and_not_applied() {
    let mut sm = Sm::new();
    let n = session::WINDOW + 300;
    for seq in 1..=n {
        sm.one(put(&format!("k{seq}"), "v", 0), id("c", seq), 10);
    }
    let stale = sm.one(put("k1", "v", 0), id("c", 1), 11);
    let FlareResponse::StaleWrite { sequence: 1, oldest } = stale else { panic!("{stale:?}") };
    assert!(oldest > 1 && oldest <= n - session::WINDOW, "{oldest}");
    // Inside the window: still the stored answer.
    let recent = sm.one(put("k-other", "v", 0), id("c", n - 5), 12);
    assert!(matches!(recent, FlareResponse::Cas { success: true, new_version, .. } if new_version == n - 5));
}

#[test]
fn idle_sessions_expire_by_the_replicated_clock() {
    let mut sm = Sm::new();
    let t0 = 1_000_000;
    sm.one(put("k", "a", 0), id("old", 1), t0);
    // Entries up to the next expiry point, later than the TTL by the clock.
    let late = t0 + session::SESSION_TTL_MS + 1;
    while !(sm.index + 1).is_multiple_of(session::EXPIRE_EVERY) {
        sm.one(put("x", "v", sm.version("x")), None, late);
    }
    sm.one(put("x", "v", sm.version("x")), None, late);
    // Expiry and a retry in one batch decide as in two: forgotten either way.
    let mut one_batch = Sm::new();
    one_batch.one(put("k", "a", 0), id("old", 1), t0);
    let mut cmds = Vec::new();
    while !(one_batch.index + cmds.len() as u64 + 1).is_multiple_of(session::EXPIRE_EVERY) {
        cmds.push((put(&format!("x{}", cmds.len()), "v", 0), None, late));
    }
    cmds.push((put("k", "a", 0), id("old", 1), late));
    let answers = one_batch.apply(cmds);
    assert!(matches!(answers.last(), Some(FlareResponse::Cas { success: false, .. })), "{:?}", answers.last());
    // Forgotten: the same id applies as new (and fails its compare now).
    assert!(matches!(sm.one(put("k", "a", 0), id("old", 1), late), FlareResponse::Cas { success: false, .. }));
    // The clock never goes back: an older proposal time does not revive it.
    sm.one(put("y", "v", 0), id("young", 1), t0);
    assert_eq!(
        sm.one(put("y", "v", 0), id("young", 1), t0),
        FlareResponse::Cas { success: true, current_version: 0, new_version: sm.index - 1 }
    );
}

#[test]
fn a_session_is_its_users_alone_and_an_unowned_one_is_adopted() {
    let mut sm = Sm::new();
    // Made with auth off: unowned; alice's next write adopts it.
    sm.one(put("k", "a", 0), id("c1", 1), 1_000);
    sm.user = "alice".into();
    let alices = sm.one(put("k", "b", 1), id("c1", 2), 1_001);
    assert!(matches!(alices, FlareResponse::Cas { success: true, .. }), "{alices:?}");
    // Bob may neither replay alice's answers nor write under her client id.
    sm.user = "bob".into();
    for seq in [2, 3] {
        let refused = sm.one(put("k", "c", 2), id("c1", seq), 1_002);
        assert_eq!(refused, FlareResponse::SessionNotOwned { client_id: "c1".into() });
    }
    assert_eq!(sm.version("k"), 2, "bob's write applied");
    // Bob's own client id works; alice's retry still answers as first.
    assert!(matches!(sm.one(put("k", "c", 2), id("c2", 1), 1_003), FlareResponse::Cas { success: true, .. }));
    sm.user = "alice".into();
    assert_eq!(sm.one(put("k", "b", 1), id("c1", 2), 1_004), alices);
}
