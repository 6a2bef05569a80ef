//! Known-good and known-bad histories.

use super::*;

const MS: u64 = 1_000_000;

fn op(client: usize, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
    Op { client, key: b"k".to_vec(), kind, invoke: invoke * MS, complete: complete * MS, outcome }
}

fn cas(expected: u64, value: &str) -> OpKind {
    OpKind::Cas { expected, value: value.as_bytes().to_vec() }
}

fn ok_cas(current: u64, new_version: u64) -> Outcome {
    Outcome::Cas { success: true, current, new_version }
}

fn get(value: &str, version: u64) -> Outcome {
    Outcome::Get { found: true, value: value.as_bytes().to_vec(), version }
}

fn unknown() -> Outcome {
    Outcome::Unknown("timed out".into())
}

fn failed_cas(current: u64) -> Outcome {
    Outcome::Cas { success: false, current, new_version: 0 }
}

fn on(key: &str, mut o: Op) -> Op {
    o.key = key.as_bytes().to_vec();
    o
}

fn absent() -> Outcome {
    Outcome::Get { found: false, value: vec![], version: 0 }
}

#[test]
fn sequential_put_get_delete_is_linearizable() {
    let h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(0, OpKind::Get, 2, 3, get("a", 5)),
        op(0, cas(5, "b"), 4, 5, ok_cas(5, 9)),
        op(0, OpKind::Delete { expected: 9 }, 6, 7, Outcome::Delete { success: true, current: 9 }),
        op(0, OpKind::Get, 8, 9, absent()),
    ];
    assert!(check(&h).is_ok());
}

#[test]
fn two_winners_of_the_same_cas_are_caught() {
    let h = vec![op(0, cas(0, "a"), 0, 10, ok_cas(0, 5)), op(1, cas(0, "b"), 0, 10, ok_cas(0, 6))];
    assert!(check(&h).is_err());
}

#[test]
fn a_stale_read_after_a_completed_write_is_caught() {
    let h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(0, cas(5, "b"), 2, 3, ok_cas(5, 7)),
        op(1, OpKind::Get, 4, 5, get("a", 5)),
    ];
    let v = check(&h).unwrap_err();
    assert_eq!(v.key, b"k");
    assert!(v.excerpt.contains("get"), "{v}");
}

#[test]
fn an_overlapping_read_may_see_old_or_new() {
    for seen in [get("a", 5), get("b", 7)] {
        let h = vec![
            op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
            op(0, cas(5, "b"), 2, 6, ok_cas(5, 7)),
            op(1, OpKind::Get, 3, 5, seen),
        ];
        assert!(check(&h).is_ok());
    }
}

#[test]
fn unknown_writes_may_or_may_not_apply() {
    // Read later: it applied.
    let applied = vec![op(0, cas(0, "a"), 0, 1, unknown()), op(1, OpKind::Get, 5, 6, get("a", 3))];
    assert!(check(&applied).is_ok());
    // Never observed: dropped.
    let vanished = vec![op(0, cas(0, "a"), 0, 1, unknown()), op(1, OpKind::Get, 5, 6, absent())];
    assert!(check(&vanished).is_ok());
}

#[test]
fn an_unread_unknown_write_may_be_named_by_a_later_cas() {
    // c0's write timed out but applied at version 7; nobody read it, yet c1
    // learnt 7 from a failed CAS and then replaced it.
    let h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(0, cas(5, "b"), 2, 3, unknown()),
        op(1, cas(5, "c"), 4, 5, Outcome::Cas { success: false, current: 7, new_version: 0 }),
        op(1, cas(7, "d"), 6, 7, ok_cas(7, 9)),
        op(1, OpKind::Get, 8, 9, get("d", 9)),
    ];
    assert!(check(&h).is_ok());
    // Without any write that could have produced version 7, the same CAS is impossible.
    let h = vec![op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)), op(1, cas(7, "d"), 6, 7, ok_cas(7, 9))];
    assert!(check(&h).is_err());
}

#[test]
fn a_value_nobody_wrote_is_caught() {
    let h = vec![op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)), op(1, OpKind::Get, 2, 3, get("zzz", 5))];
    assert!(check(&h).is_err());
}

#[test]
fn a_failed_cas_may_report_an_overlapping_write() {
    let h = vec![
        op(0, cas(0, "a"), 0, 5, ok_cas(0, 5)),
        op(1, cas(0, "b"), 1, 4, Outcome::Cas { success: false, current: 5, new_version: 0 }),
    ];
    assert!(check(&h).is_ok());
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let h = vec![op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)), op(1, OpKind::Get, 10, 11, absent())];
    assert!(check(&h).is_err());
}

#[test]
fn re_creation_needs_a_larger_version() {
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(0, OpKind::Delete { expected: 5 }, 2, 3, Outcome::Delete { success: true, current: 5 }),
        op(0, cas(0, "b"), 4, 5, ok_cas(0, 8)),
    ];
    assert!(check(&h).is_ok());
    h[2].outcome = ok_cas(0, 4);
    assert!(check(&h).is_err(), "a version went backwards");
    h[2].outcome = ok_cas(0, 5);
    assert!(check(&h).is_err(), "a version was reused");
}

#[test]
fn a_version_only_an_unknown_write_explains_binds_it_for_good() {
    // The history: 17 can only be the timed-out write's version, and
    // after it the key can never read back "a" at version 5.
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(1, cas(5, "b"), 2, 3, unknown()),
        op(2, cas(3, "c"), 4, 5, failed_cas(17)),
        op(0, OpKind::Get, 6, 7, get("a", 5)),
    ];
    assert!(check(&h).is_err());
    // Reading the unknown write's value at 17 is fine.
    h[3].outcome = get("b", 17);
    assert!(check(&h).is_ok());
}

#[test]
fn a_failed_cas_must_report_a_version_some_write_can_have() {
    let h = vec![op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)), op(1, cas(3, "c"), 2, 3, failed_cas(7))];
    assert!(check(&h).is_err());
}

#[test]
fn an_unknown_write_exceeds_the_version_it_replaced() {
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(1, cas(5, "b"), 2, 3, unknown()),
        op(2, cas(1, "c"), 4, 5, failed_cas(4)),
    ];
    assert!(check(&h).is_err());
    h[2].outcome = failed_cas(6);
    assert!(check(&h).is_ok());
}

#[test]
fn an_unknown_write_cannot_take_a_version_another_key_owns() {
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(1, cas(5, "b"), 2, 3, unknown()),
        op(2, cas(1, "c"), 4, 5, failed_cas(8)),
        on("j", op(3, cas(0, "x"), 0, 9, ok_cas(0, 8))),
    ];
    assert!(check(&h).is_err());
    h[2].outcome = failed_cas(9);
    assert!(check(&h).is_ok());
}

#[test]
fn two_unknown_writes_cannot_take_the_same_version() {
    // The first unknown write is bound to 9, deleted, and the second unknown
    // write (re-creating the key) is named with 9 again.
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(1, cas(5, "b"), 2, 3, unknown()),
        op(2, cas(1, "c"), 4, 5, failed_cas(9)),
        op(2, OpKind::Delete { expected: 9 }, 6, 7, Outcome::Delete { success: true, current: 9 }),
        op(1, cas(0, "d"), 8, 9, unknown()),
        op(2, cas(1, "e"), 10, 11, failed_cas(9)),
    ];
    assert!(check(&h).is_err());
    h[5].outcome = failed_cas(11);
    assert!(check(&h).is_ok());
}

#[test]
fn an_unknown_write_exceeds_every_version_seen_before_it_began() {
    // Version 20 was seen (on another key) before the unknown write began: it
    // cannot have been given 10.
    let mut h = vec![
        on("j", op(3, cas(0, "x"), 0, 1, ok_cas(0, 20))),
        op(1, cas(0, "b"), 2, 3, unknown()),
        op(2, cas(1, "c"), 4, 5, failed_cas(10)),
    ];
    assert!(check(&h).is_err());
    h[2].outcome = failed_cas(25);
    assert!(check(&h).is_ok());
    // The same holds for an unknown write whose value a read showed.
    h[2] = op(2, OpKind::Get, 4, 5, get("b", 10));
    assert!(check(&h).is_err());
    h[2].outcome = get("b", 21);
    assert!(check(&h).is_ok());
}

#[test]
fn a_known_write_exceeds_every_version_seen_before_it_began() {
    let mut h = vec![on("j", op(3, cas(0, "x"), 0, 1, ok_cas(0, 20))), op(1, cas(0, "b"), 2, 3, ok_cas(0, 10))];
    assert!(check(&h).is_err());
    // Overlapping, either order is possible.
    h[1].invoke = 0;
    assert!(check(&h).is_ok());
}

#[test]
fn a_read_unknown_write_exceeds_every_earlier_version_of_its_key() {
    let mut h = vec![
        op(0, cas(0, "a"), 0, 1, ok_cas(0, 5)),
        op(0, OpKind::Delete { expected: 5 }, 2, 3, Outcome::Delete { success: true, current: 5 }),
        op(1, cas(0, "b"), 2, 3, unknown()),
        op(0, OpKind::Get, 6, 7, get("b", 3)),
    ];
    assert!(check(&h).is_err());
    h[3].outcome = get("b", 8);
    assert!(check(&h).is_ok());
}

/// xorshift, to build a large valid history deterministically.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_large_valid_history_passes_and_a_corrupted_read_fails() {
    let mut rng = Rng(0x5eed);
    let mut states: [(u64, String); 3] = Default::default();
    let mut version = 0;
    let mut h = Vec::new();
    for t in 0..300u64 {
        // The op takes effect at 10t; its interval stretches around it.
        let k = rng.below(3) as usize;
        let (invoke, complete) = (10 * t - rng.below(25).min(10 * t), 10 * t + rng.below(25));
        let client = rng.below(5) as usize;
        let (cur, val) = states[k].clone();
        let (kind, outcome) = match rng.below(3) {
            0 => (OpKind::Get, if cur == 0 { absent() } else { get(&val, cur) }),
            1 => {
                version += 1;
                let expected = if rng.below(4) == 0 { cur + 1 } else { cur };
                let value = format!("v{t}");
                if expected == cur {
                    states[k] = (version, value.clone());
                    (cas(expected, &value), ok_cas(cur, version))
                } else {
                    (cas(expected, &value), Outcome::Cas { success: false, current: cur, new_version: 0 })
                }
            }
            _ => {
                if cur != 0 {
                    states[k] = (0, String::new());
                    (OpKind::Delete { expected: cur }, Outcome::Delete { success: true, current: cur })
                } else {
                    (OpKind::Delete { expected: 1 }, Outcome::Delete { success: false, current: 0 })
                }
            }
        };
        h.push(Op {
            client,
            key: format!("k{k}").into_bytes(),
            kind,
            invoke: invoke * MS,
            complete: complete * MS,
            outcome,
        });
    }
    let stats = check(&h).expect("valid history");
    assert_eq!(stats.keys, 3);
    let idx = h.iter().rposition(|o| matches!(o.outcome, Outcome::Get { found: true, .. })).unwrap();
    let key = h[idx].key.clone();
    h[idx].outcome = get("never written", 1);
    let v = check(&h).unwrap_err();
    assert_eq!(v.key, key);
}
