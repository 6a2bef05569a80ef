//! Leases applied to a real RocksDB: attaching, detaching, revoking (with
//! DELETE events), unknown leases, and a grant and revoke inside one batch.

use std::sync::Arc;

use flaredb_proto::raft::{self as pb, command::Cmd, txn_op::Op};
use rocksdb::DB;

use super::{apply::ApplyBatch, db, lease, read};
use crate::{
    lease::LeaseChange,
    namespace::Registry,
    types::FlareResponse,
    watch::{ChangeEvent, EventKind},
};

struct Sm {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    registry: Registry,
}

struct Applied {
    answers: Vec<FlareResponse>,
    events: Vec<ChangeEvent>,
    changes: Vec<LeaseChange>,
}

impl Sm {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("db")).unwrap();
        Self { _dir: dir, db, registry: Registry::new() }
    }

    /// Applies `cmds` as one batch at indexes `first..` and writes it.
    fn apply(&mut self, first: u64, cmds: Vec<Cmd>) -> Applied {
        self.apply_as(first, cmds.into_iter().map(|c| ("", c)).collect())
    }

    /// `apply`, each command from its user (empty: auth off).
    fn apply_as(&mut self, first: u64, cmds: Vec<(&str, Cmd)>) -> Applied {
        let mut b = ApplyBatch::new(&self.db, self.registry.clone());
        let answers = (first..)
            .zip(cmds)
            .map(|(i, (user, c))| {
                b.command(i, &pb::Command { cmd: Some(c), user: user.into(), ..Default::default() }).unwrap()
            })
            .collect();
        self.registry = b.registry;
        let (events, changes) = (b.events, b.leases.changes);
        self.db.write(b.batch).unwrap();
        Applied { answers, events, changes }
    }

    fn get(&self, key: &str) -> Option<u64> {
        read::cas_get(&self.db, 1, key.as_bytes()).unwrap().map(|(v, _)| v)
    }

    fn keys_of(&self, id: u64) -> Vec<String> {
        lease::lease_keys(&self.db, id).unwrap().into_iter().map(|(_, k)| String::from_utf8(k).unwrap()).collect()
    }
}

fn grant(ttl: i64) -> Cmd {
    Cmd::LeaseGrant(pb::LeaseGrant { ttl_seconds: ttl })
}

fn revoke(ids: &[u64]) -> Cmd {
    Cmd::LeaseRevoke(pb::LeaseRevoke { ids: ids.to_vec(), expired: false })
}

fn put(key: &str, expected: u64, lease: u64) -> Cmd {
    Cmd::CasPut(pb::CasPut {
        target: Some(pb::Target { namespace: "default".into(), auto_create: true }),
        key: key.to_owned().into(),
        value: "v".into(),
        expected_version: expected,
        lease_id: lease,
    })
}

fn txn_put(key: &str, lease: u64) -> pb::TxnOp {
    pb::TxnOp { op: Some(Op::Put(pb::TxnPut { key: key.to_owned().into(), value: "t".into(), lease_id: lease })) }
}

#[test]
fn revoking_deletes_the_attached_keys_with_delete_events() {
    let mut sm = Sm::new();
    let a = sm.apply(10, vec![grant(5), put("a", 0, 10), put("b", 0, 10), put("c", 0, 0)]);
    assert_eq!(a.answers[0], FlareResponse::LeaseGranted { id: 10, ttl_secs: 5 });
    assert_eq!(a.changes, [LeaseChange::Granted { id: 10, ttl_secs: 5, owner: "".into() }]);
    assert_eq!(sm.keys_of(10), ["a", "b"]);
    assert_eq!(lease::load_leases(&sm.db).unwrap(), [(10, 5, String::new())]);

    let r = sm.apply(20, vec![revoke(&[10, 99])]);
    assert_eq!(r.answers, [FlareResponse::LeaseRevoked { revoked: 1, deleted: 2 }]);
    assert_eq!(r.changes, [LeaseChange::Revoked { id: 10 }]);
    let deleted: Vec<(EventKind, &[u8], u64, u64)> =
        r.events.iter().map(|e| (e.kind, e.key.as_ref(), e.revision, e.prev_version)).collect();
    assert_eq!(deleted, [(EventKind::Delete, &b"a"[..], 20, 11), (EventKind::Delete, &b"b"[..], 20, 12)]);
    assert_eq!((sm.get("a"), sm.get("b"), sm.get("c")), (None, None, Some(13)));
    assert!(sm.keys_of(10).is_empty());
    assert!(lease::load_leases(&sm.db).unwrap().is_empty());
    // Gone: a second revoke finds nothing.
    assert_eq!(sm.apply(21, vec![revoke(&[10])]).answers, [FlareResponse::LeaseRevoked { revoked: 0, deleted: 0 }]);
}

#[test]
fn a_put_moves_or_detaches_a_key_and_a_delete_detaches_it() {
    let mut sm = Sm::new();
    sm.apply(1, vec![grant(5), grant(5), put("k", 0, 1), put("gone", 0, 1)]);
    assert_eq!(sm.keys_of(1), ["gone", "k"]);
    // Moved to lease 2; then put without a lease: no lease holds it.
    sm.apply(5, vec![put("k", 3, 2)]);
    assert_eq!((sm.keys_of(1), sm.keys_of(2)), (vec!["gone".to_string()], vec!["k".to_string()]));
    sm.apply(6, vec![put("k", 5, 0)]);
    assert!(sm.keys_of(2).is_empty());
    let del = Cmd::CasDelete(pb::CasDelete {
        target: Some(pb::Target { namespace: "default".into(), auto_create: true }),
        key: "gone".into(),
        expected_version: 4,
    });
    sm.apply(7, vec![del]);
    assert!(sm.keys_of(1).is_empty());
    // Revoking both deletes nothing: their keys left them.
    let r = sm.apply(8, vec![revoke(&[1, 2])]);
    assert_eq!(r.answers, [FlareResponse::LeaseRevoked { revoked: 2, deleted: 0 }]);
    assert_eq!(sm.get("k"), Some(6));
}

#[test]
fn an_unknown_lease_refuses_the_write_and_the_whole_txn() {
    let mut sm = Sm::new();
    let a = sm.apply(1, vec![put("k", 0, 77)]);
    assert_eq!(a.answers, [FlareResponse::LeaseNotFound { id: 77 }]);
    assert_eq!(sm.get("k"), None);
    let t = Cmd::Txn(pb::Txn {
        target: Some(pb::Target { namespace: "default".into(), auto_create: true }),
        compares: vec![],
        success: vec![txn_put("x", 0), txn_put("y", 77)],
        failure: vec![],
    });
    let a = sm.apply(2, vec![grant(5), t.clone()]);
    assert_eq!(a.answers[1], FlareResponse::LeaseNotFound { id: 77 });
    assert!(a.events.is_empty());
    assert_eq!((sm.get("x"), sm.get("y")), (None, None));
    // A txn put with a lease that exists attaches it.
    let ok = Cmd::Txn(pb::Txn {
        target: Some(pb::Target { namespace: "default".into(), auto_create: true }),
        compares: vec![],
        success: vec![txn_put("x", 2)],
        failure: vec![],
    });
    sm.apply(4, vec![ok]);
    assert_eq!(sm.keys_of(2), ["x"]);
}

#[test]
fn grant_attach_and_revoke_within_one_batch() {
    let mut sm = Sm::new();
    let a = sm.apply(1, vec![grant(5), put("k", 0, 1), revoke(&[1]), put("k", 0, 1)]);
    assert_eq!(a.answers[2], FlareResponse::LeaseRevoked { revoked: 1, deleted: 1 });
    assert_eq!(a.answers[3], FlareResponse::LeaseNotFound { id: 1 });
    assert_eq!(sm.get("k"), None);
    assert!(sm.keys_of(1).is_empty());
    assert!(lease::load_leases(&sm.db).unwrap().is_empty());
}

#[test]
fn a_batch_told_there_are_no_leases_skips_the_lookups() {
    let mut sm = Sm::new();
    sm.apply(1, vec![grant(5), put("k", 0, 1)]);
    // Told (wrongly, on purpose) that no lease exists, a put does not look
    // up the key's lease: the attachment stays. Normally it is detached.
    let mut b = ApplyBatch::new(&sm.db, sm.registry.clone()).without_leases();
    let c = pb::Command { cmd: Some(put("k", 2, 0)), ..Default::default() };
    assert!(matches!(b.command(3, &c).unwrap(), FlareResponse::Cas { success: true, .. }));
    sm.db.write(b.batch).unwrap();
    assert_eq!(sm.get("k"), Some(3));
    assert_eq!(sm.keys_of(1), ["k"], "the lookup was skipped");
    // Nor does it find a lease to put under.
    let mut b = ApplyBatch::new(&sm.db, sm.registry.clone()).without_leases();
    let c = pb::Command { cmd: Some(put("j", 0, 1)), ..Default::default() };
    assert_eq!(b.command(4, &c).unwrap(), FlareResponse::LeaseNotFound { id: 1 });
    // The same put in a normal batch detaches.
    sm.apply(5, vec![put("k", 3, 0)]);
    assert!(sm.keys_of(1).is_empty());
}

#[test]
fn only_its_owner_or_an_admin_attaches_keys_to_a_lease_or_revokes_it() {
    let mut sm = Sm::new();
    let bobs_txn = Cmd::Txn(pb::Txn {
        target: Some(pb::Target { namespace: "default".into(), auto_create: true }),
        compares: vec![],
        success: vec![txn_put("t", 2)],
        failure: vec![],
    });
    let a = sm.apply_as(
        2,
        vec![
            ("alice", grant(5)),
            ("alice", put("a", 0, 2)),
            ("bob", put("b", 0, 2)),
            ("bob", bobs_txn),
            ("bob", revoke(&[2])),
        ],
    );
    // The owner is the user with the revision it was added at (0: not a user here).
    assert_eq!(a.changes, [LeaseChange::Granted { id: 2, ttl_secs: 5, owner: "alice@0".into() }]);
    assert!(matches!(a.answers[1], FlareResponse::Cas { success: true, .. }), "{:?}", a.answers[1]);
    for refused in &a.answers[2..] {
        assert_eq!(*refused, FlareResponse::LeaseNotOwned { id: 2 });
    }
    assert_eq!((sm.get("b"), sm.get("t"), sm.keys_of(2)), (None, None, vec!["a".to_string()]));
    assert_eq!(lease::load_leases(&sm.db).unwrap(), [(2, 5, "alice@0".to_string())]);
    // A cluster admin (root, added in the same batch) may revoke it.
    let r = sm.apply_as(10, vec![("", root_add()), ("root", revoke(&[2]))]);
    assert_eq!(r.answers[1], FlareResponse::LeaseRevoked { revoked: 1, deleted: 1 });
    // So may the leader's expiry (no user).
    sm.apply_as(20, vec![("alice", grant(5))]);
    let expire = Cmd::LeaseRevoke(pb::LeaseRevoke { ids: vec![20], expired: true });
    assert_eq!(sm.apply_as(21, vec![("", expire)]).answers, [FlareResponse::LeaseRevoked { revoked: 1, deleted: 0 }]);
}

fn root_add() -> Cmd {
    Cmd::Auth(pb::AuthCommand {
        op: Some(pb::auth_command::Op::UserAdd(pb::AuthUserRecord {
            name: "root".into(),
            password_hash: "h".into(),
            ..Default::default()
        })),
    })
}
