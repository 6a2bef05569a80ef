//! The `flaredb` CLI as an etcdctl-like tool against real nodes: unconditional
//! put/del and `--expect`, exit codes, `-o json`, binary keys and values,
//! namespaces, members and the status table.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
};

use flaredb_tests::{wait_until, Cluster, ClusterOpts, DEADLINE};
use serde_json::{json, Value};

#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn command(endpoints: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(flaredb_tests::cli_bin());
    cmd.args(["--endpoints", endpoints]).args(args).stdin(Stdio::null());
    cmd
}

fn ran(out: std::process::Output) -> Ran {
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `flaredb --endpoints ENDPOINTS ARGS` to completion.
fn flaredb(endpoints: &str, args: &[&str]) -> Ran {
    ran(command(endpoints, args).output().expect("run flaredb"))
}

/// Runs a command that must exit with `code`; its stdout.
#[track_caller]
fn exits(code: i32, endpoints: &str, args: &[&str]) -> String {
    let r = flaredb(endpoints, args);
    assert_eq!(r.code, Some(code), "flaredb {args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

#[track_caller]
fn ok(endpoints: &str, args: &[&str]) -> String {
    exits(0, endpoints, args)
}

#[track_caller]
fn parse(out: &str) -> Value {
    assert_eq!(out.lines().count(), 1, "one line of JSON: {out}");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The version in `ok version V`.
#[track_caller]
fn put_version(out: &str) -> u64 {
    out.trim().strip_prefix("ok version ").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{out}"))
}

#[tokio::test]
async fn put_is_unconditional_and_expect_makes_it_a_compare_and_swap() {
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let v1 = put_version(&ok(&a, &["-n", "cli", "put", "k", "v1"]));
    let v2 = put_version(&ok(&a, &["-n", "cli", "put", "k", "v2"]));
    assert!(v2 > v1, "{v1} then {v2}");
    assert_eq!(ok(&a, &["-n", "cli", "get", "k"]), format!("{v2}\tv2\n"));

    // --expect on a stale version: nothing written, exit 3, the current version named.
    let out = exits(3, &a, &["-n", "cli", "put", "k", "v3", "--expect", &v1.to_string()]);
    assert_eq!(out, format!("conflict: current version {v2}\n"));
    let out = exits(3, &a, &["-n", "cli", "-o", "json", "put", "k", "v3", "--expected-version", "0"]);
    assert_eq!(parse(&out), json!({"key": "k", "succeeded": false, "current_version": v2}));
    assert_eq!(ok(&a, &["-n", "cli", "get", "k"]), format!("{v2}\tv2\n"), "a failed CAS wrote nothing");
    let out = ok(&a, &["-n", "cli", "put", "k", "v3", "--expect", &v2.to_string(), "-o", "json"]);
    let v3 = parse(&out)["version"].as_u64().unwrap_or_else(|| panic!("{out}"));
    assert!(v3 > v2);
    assert_eq!(parse(&out), json!({"key": "k", "succeeded": true, "version": v3}));
    let out = ok(&a, &["-n", "cli", "-o", "json", "get", "k"]);
    assert_eq!(parse(&out), json!({"found": true, "key": "k", "value": "v3", "version": v3}));

    // Racing unconditional puts: every one succeeds, each at its own version.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            command(&a, &["-n", "cli", "put", "race", &format!("w{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run flaredb")
        })
        .collect();
    let versions: BTreeSet<u64> = racers
        .into_iter()
        .map(|child| {
            let r = ran(child.wait_with_output().expect("wait for flaredb"));
            assert_eq!(r.code, Some(0), "{r:?}");
            put_version(&r.stdout)
        })
        .collect();
    assert_eq!(versions.len(), 8, "{versions:?}");
    let last = c.client().namespace("cli").cas_get("race").await.unwrap().expect("race written");
    assert_eq!(Some(&last.version), versions.last(), "the last put's version is the key's");
}

#[tokio::test]
async fn del_get_and_scan_with_exit_codes_and_json() {
    let opts = ClusterOpts { extra_toml: "auto_create_namespaces = false\n".into(), ..Default::default() };
    let c = Cluster::start_with(1, opts).await;
    let a = c.addr(1);
    ok(&a, &["ns", "create", "cli"]);
    let mut versions = Vec::new();
    for (k, v) in [("p/a", "1"), ("p/b", "2"), ("q/c", "3")] {
        versions.push(put_version(&ok(&a, &["-n", "cli", "put", k, v])));
    }

    // scan: --prefix and the positional form agree; JSON is an array.
    let expected = format!("p/a\t{}\t1\np/b\t{}\t2\n", versions[0], versions[1]);
    assert_eq!(ok(&a, &["-n", "cli", "scan", "--prefix", "p/"]), expected);
    assert_eq!(ok(&a, &["-n", "cli", "scan", "p/"]), expected);
    assert_eq!(ok(&a, &["-n", "cli", "scan"]).lines().count(), 3, "no prefix: every key");
    let out = ok(&a, &["-n", "cli", "scan", "--prefix", "p/", "-o", "json"]);
    assert_eq!(
        parse(&out),
        json!([{"key": "p/a", "value": "1", "version": versions[0]}, {"key": "p/b", "value": "2", "version": versions[1]}])
    );
    assert_eq!(parse(&ok(&a, &["-n", "cli", "-o", "json", "scan", "zzz"])), json!([]));

    // Not found: exit 2, for get and del, in text and JSON.
    assert_eq!(exits(2, &a, &["-n", "cli", "get", "missing"]), "(absent)\n");
    assert_eq!(
        parse(&exits(2, &a, &["-n", "cli", "-o", "json", "get", "missing"])),
        json!({"found": false, "key": "missing"})
    );
    assert_eq!(exits(2, &a, &["-n", "cli", "del", "missing"]), "(absent)\n");
    let out = exits(2, &a, &["-n", "cli", "-o", "json", "del", "missing"]);
    assert_eq!(parse(&out), json!({"key": "missing", "deleted": false, "current_version": 0}));
    // So is a namespace that does not exist (auto-creation is off here).
    let r = flaredb(&a, &["-n", "nosuchns", "get", "k"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.starts_with("flaredb: not found:") && r.stderr.contains("nosuchns"), "{r:?}");

    // del --expect: a conflict is exit 3 and deletes nothing; the right version deletes.
    let out = exits(3, &a, &["-n", "cli", "del", "p/a", "--expect", &(versions[0] + 100).to_string()]);
    assert_eq!(out, format!("conflict (version was {})\n", versions[0]));
    assert_eq!(ok(&a, &["-n", "cli", "get", "p/a"]), format!("{}\t1\n", versions[0]));
    let out = ok(&a, &["-n", "cli", "del", "p/a", "--expect", &versions[0].to_string()]);
    assert_eq!(out, format!("deleted (version was {})\n", versions[0]));
    // Unconditional del, and `delete` as its alias.
    let out = ok(&a, &["-n", "cli", "-o", "json", "del", "p/b"]);
    assert_eq!(parse(&out), json!({"key": "p/b", "deleted": true, "prev_version": versions[1]}));
    assert_eq!(ok(&a, &["-n", "cli", "delete", "q/c"]), format!("deleted (version was {})\n", versions[2]));
    assert_eq!(ok(&a, &["-n", "cli", "scan"]), "", "every key is gone");

    // Other errors exit 1, usage errors included (clap's own 2 would read as "not found").
    let r = flaredb(&a, &["-n", "cli", "put", "k"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let r = flaredb(&a, &["-n", "Bad!", "get", "k"]);
    assert!(r.code == Some(1) && r.stderr.contains("invalid argument"), "{r:?}");
    let out = command("127.0.0.1:1", &["get", "k"]).env("FLAREDB_RETRY_BUDGET_MS", "300").output();
    let r = ran(out.expect("run flaredb"));
    assert!(r.code == Some(1) && r.stderr.starts_with("flaredb: unavailable"), "{r:?}");
    let help = ok(&a, &["--help"]);
    assert!(help.contains("Exit codes:") && help.contains("2  not found") && help.contains("3  conflict"), "{help}");
}

#[tokio::test]
async fn binary_keys_and_values_as_hex_and_base64() {
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let (key, value) = ([0x00u8, 0xff, 0x01], [0x00u8, 0x01, 0x02, 0xfe]);
    let v = put_version(&ok(&a, &["-n", "bin", "put", "0x00ff01", "base64:AAEC/g=="]));
    let got = c.client().namespace("bin").cas_get(&key[..]).await.unwrap().expect("written");
    assert_eq!((&got.value[..], got.version), (&value[..], v), "the bytes themselves were stored");

    // The same key in base64 (padding optional); text output shows hex.
    assert_eq!(ok(&a, &["-n", "bin", "get", "base64:AP8B"]), format!("{v}\t0x000102fe\n"));
    let out = ok(&a, &["-n", "bin", "-o", "json", "get", "0x00FF01"]);
    assert_eq!(parse(&out), json!({"found": true, "key_base64": "AP8B", "value_base64": "AAEC/g==", "version": v}));
    assert_eq!(ok(&a, &["-n", "bin", "scan", "--prefix", "0x00"]), format!("0x00ff01\t{v}\t0x000102fe\n"));
    let out = ok(&a, &["-n", "bin", "-o", "json", "scan", "--prefix", "base64:AA=="]);
    assert_eq!(parse(&out), json!([{"key_base64": "AP8B", "value_base64": "AAEC/g==", "version": v}]));

    // UTF-8 prints as text; text: escapes a literal 0x.
    let w = put_version(&ok(&a, &["-n", "bin", "put", "text:0xkey", "0x68c3a9"]));
    assert_eq!(ok(&a, &["-n", "bin", "get", "text:0xkey"]), format!("{w}\thé\n"));
    assert!(c.client().namespace("bin").cas_get("0xkey").await.unwrap().is_some());

    // Malformed binary: refused before anything is sent, with the escape named.
    for bad in ["0x0", "0xgg", "base64:A", "base64:*AAA"] {
        let r = flaredb(&a, &["-n", "bin", "put", bad, "x"]);
        assert!(r.code == Some(1) && r.stderr.contains(&format!("text:{bad}")), "{bad}: {r:?}");
    }
    assert_eq!(ok(&a, &["-n", "bin", "del", "0x00ff01"]), format!("deleted (version was {v})\n"));
    exits(2, &a, &["-n", "bin", "get", "0x00ff01"]);
}

#[tokio::test]
async fn namespaces_are_created_and_listed() {
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let out = ok(&a, &["ns", "create", "lb"]);
    let lb: u64 = out.trim().strip_prefix("lb id ").and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    let out = ok(&a, &["-o", "json", "ns", "create", "cache", "--mode", "eventual"]);
    let cache = parse(&out)["id"].as_u64().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(parse(&out), json!({"name": "cache", "id": cache, "mode": "eventual"}));
    // Idempotent for the same mode; refused for another.
    assert_eq!(ok(&a, &["ns", "create", "lb", "--mode", "strong"]), format!("lb id {lb}\n"));
    let r = flaredb(&a, &["ns", "create", "lb", "--mode", "eventual"]);
    assert_eq!(r.code, Some(1), "{r:?}");

    let list = ok(&a, &["ns", "list"]);
    for line in [format!("lb\t{lb}\tStrong"), format!("cache\t{cache}\tEventual")] {
        assert!(list.lines().any(|l| l == line), "{line:?} in {list}");
    }
    assert_eq!(ok(&a, &["namespaces"]), list, "the old name lists the same");
    let all = parse(&ok(&a, &["ns", "list", "-o", "json"]));
    let all = all.as_array().unwrap_or_else(|| panic!("{all}"));
    assert!(all.contains(&json!({"name": "lb", "id": lb, "mode": "strong"})), "{all:?}");
    assert!(all.contains(&json!({"name": "cache", "id": cache, "mode": "eventual"})), "{all:?}");
    assert_eq!(all.len(), list.lines().count());
}

/// `member list -o json` on `endpoints`.
#[track_caller]
fn members(endpoints: &str) -> Vec<Value> {
    let out = ok(endpoints, &["-o", "json", "member", "list"]);
    parse(&out).as_array().cloned().unwrap_or_else(|| panic!("{out}"))
}

#[tokio::test]
async fn member_list_and_the_status_table_cover_every_member() {
    let mut c = Cluster::start(3).await;
    let eps = c.endpoints().join(",");
    let leader = c.wait_leader().await;
    ok(&eps, &["put", "k", "v"]);

    let list = members(&eps);
    let expected: Vec<Value> = (1..=3)
        .map(|id| json!({"id": id, "addr": c.addr(id), "peer_addr": "", "voter": true, "leader": id == leader}))
        .collect();
    assert_eq!(list, expected);
    let table = ok(&eps, &["member", "list"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "ADDRESS", "PEER_ADDRESS", "ROLE", "LEADER"], "{table}");
    for id in 1..=3u64 {
        let addr = c.addr(id);
        let is_leader = if id == leader { "yes" } else { "no" };
        assert_eq!(rows[id as usize], [id.to_string().as_str(), addr.as_str(), "-", "voter", is_leader], "{table}");
    }

    // Every member answers for itself; once the write has applied everywhere, no lag.
    let status = wait_until("every member applied the write", DEADLINE, || async {
        let v = parse(&ok(&eps, &["status", "-o", "json"]));
        let rows = v.as_array()?.clone();
        rows.iter().all(|r| r["lag"] == 0).then_some(rows)
    })
    .await;
    assert_eq!(status.len(), 3, "{status:?}");
    let term = &status[0]["term"];
    for (row, id) in status.iter().zip(1..=3u64) {
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!((&row["id"], &row["addr"], &row["role"]), (&json!(id), &json!(c.addr(id)), &json!(role)), "{row}");
        assert_eq!((&row["term"], &row["leader_id"]), (term, &json!(leader)), "{row}");
        assert!(row["applied_index"].as_u64() > Some(0), "{row}");
        assert_eq!(row["applied_index"], status[0]["applied_index"], "{row}");
    }
    let table = ok(&eps, &["status"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "ADDRESS", "ROLE", "TERM", "APPLIED", "LAG"], "{table}");
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!(rows.iter().filter(|r| r[2] == "leader").count(), 1, "{table}");
    assert_eq!(rows[leader as usize][..3], [leader.to_string().as_str(), c.addr(leader).as_str(), "leader"], "{table}");

    // A member that does not answer: its row says so and the command fails.
    let down = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(down);
    let r = flaredb(&eps, &["status"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("1 of 3 members did not answer"), "{r:?}");
    let row = r.stdout.lines().find(|l| l.starts_with(&format!("{down} "))).unwrap_or_else(|| panic!("{r:?}"));
    assert!(row.contains("unreachable"), "{row}");
    let r = flaredb(&eps, &["-o", "json", "status"]);
    let v = parse(&r.stdout);
    let rows = v.as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(rows.iter().any(|r| r["id"] == down && r["error"].is_string()), "{v}");
    assert_eq!(rows.iter().filter(|r| r["role"].is_string()).count(), 2, "{v}");
}

#[tokio::test]
async fn a_joining_node_is_added_promoted_and_removed() {
    let mut c = Cluster::start(1).await;
    let a = c.addr(1);
    let addr2 = c.start_joining(2);

    let out = ok(&a, &["member", "add", "2", &addr2, "--wait"]);
    let row = out.lines().find(|l| l.starts_with("2 ")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["2", addr2.as_str(), "-", "learner", "no"], "{out}");
    let m2 = json!({"id": 2, "addr": addr2, "peer_addr": "", "voter": false, "leader": false});
    assert!(members(&a).contains(&m2), "{:?}", members(&a));

    let out = ok(&a, &["-o", "json", "member", "promote", "2"]);
    let list = parse(&out);
    assert!(list.as_array().is_some_and(|l| l.len() == 2 && l.iter().all(|m| m["voter"] == true)), "{list}");
    // Promoting a voter changes nothing; an unknown node is not found.
    assert_eq!(parse(&ok(&a, &["-o", "json", "member", "promote", "2"])), list);
    let r = flaredb(&a, &["member", "promote", "9"]);
    assert!(r.code == Some(2) && r.stderr.contains("node 9 is not a member"), "{r:?}");

    // The new voter has the cluster's data and shows in the status table.
    ok(&a, &["put", "k", "v"]);
    let rows = wait_until("node 2 applied the write", DEADLINE, || async {
        let v = parse(&ok(&a, &["status", "-o", "json"]));
        let rows = v.as_array()?.clone();
        (rows.len() == 2 && rows.iter().all(|r| r["lag"] == 0)).then_some(rows)
    })
    .await;
    assert_eq!(rows[1]["role"], "follower", "{rows:?}");
    assert!(ok(&addr2, &["get", "k"]).ends_with("\tv\n"));

    let out = ok(&a, &["member", "remove", "2"]);
    assert!(!out.lines().any(|l| l.starts_with("2 ")), "{out}");
    assert_eq!(members(&a).len(), 1);
    let r = flaredb(&a, &["member", "remove", "9"]);
    assert!(r.code == Some(1) && r.stderr.contains("not a member"), "{r:?}");
}
