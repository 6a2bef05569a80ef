//! The `flaredb` command-line client against a real node.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use flaredb_tests::{server_bin, Cluster};
use serde_json::Value;

fn flaredb_output(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let bin = server_bin().with_file_name("flaredb");
    let mut child = Command::new(bin)
        .args(["--endpoints", addr])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run flaredb");
    if let Some(input) = stdin {
        child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for flaredb")
}

fn flaredb(addr: &str, args: &[&str]) -> (bool, String) {
    let out = flaredb_output(addr, args, None);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Runs `flaredb -n cli txn ARGS` with `stdin`; the printed result, parsed.
#[track_caller]
fn txn_ok(addr: &str, args: &[&str], stdin: Option<&str>) -> Value {
    let out = flaredb_output(addr, &[&["-n", "cli", "txn"], args].concat(), stdin);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "flaredb txn failed: {stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs `flaredb -n cli txn` on a document that must be refused; its stderr.
#[track_caller]
fn txn_refused(addr: &str, doc: &str) -> String {
    let out = flaredb_output(addr, &["-n", "cli", "txn", "-"], Some(doc));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{doc} was accepted: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    stderr
}

#[tokio::test]
async fn the_cli_round_trips() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v1"]);
    assert!(ok && out.starts_with("ok version"), "{out}");
    let version: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v2"]);
    assert!(!ok && out.contains("conflict"), "{out}");
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v2", "--expect", &version.to_string()]);
    assert!(ok, "{out}");
    let (_, out) = flaredb(&addr, &["-n", "cli", "scan", ""]);
    assert!(out.contains("k\t") && out.contains("v2"), "{out}");
    let (ok, out) = flaredb(&addr, &["hash"]);
    assert!(ok && out.contains("applied"), "{out}");
    let (ok, out) = flaredb(&addr, &["-n", "Bad!", "get", "k"]);
    assert!(!ok && out.contains("invalid argument"), "{out}");
}

#[tokio::test]
async fn the_cli_runs_transactions_from_json() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "a", "old"]);
    assert!(ok, "{out}");
    let a_version: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();

    // From stdin, every compare holds: the success branch runs.
    let doc = format!(
        r#"{{"compares": [{{"key": "a", "target": "version", "op": "=", "version": {a_version}}},
                          {{"key": "b", "target": "version", "op": "equal"}},
                          {{"key": "a", "target": "value", "op": "!=", "value": "new"}}],
            "success": [{{"put": {{"key": "a", "value": "new"}}}}, {{"put": {{"key": "b", "value": "B"}}}},
                        {{"get": {{"key": "a"}}}}, {{"get": {{"key": "missing"}}}}],
            "failure": [{{"get": {{"key": "a"}}}}]}}"#
    );
    let r = txn_ok(&addr, &[], Some(&doc));
    assert_eq!(r["succeeded"], true, "{r}");
    let revision = r["revision"].as_u64().expect("revision");
    assert!(revision > a_version, "{r}");
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{r}");
    assert_eq!(results[0]["put"]["version"], revision, "{r}");
    assert_eq!(results[1]["put"]["version"], revision, "{r}");
    assert_eq!(results[2]["get"], serde_json::json!({"found": true, "key": "a", "value": "new", "version": revision}));
    assert_eq!(results[3]["get"], serde_json::json!({"found": false, "key": "missing"}));
    let (_, out) = flaredb(&addr, &["-n", "cli", "get", "b"]);
    assert_eq!(out.trim(), format!("{revision}\tB"));

    // From a file, a compare fails: only the failure branch runs, and exit is still 0.
    let file = c.dir.path().join("txn.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"compares": [{{"key": "a", "target": "version", "op": "=", "version": {a_version}}}],
                "success": [{{"put": {{"key": "a", "value": "lost"}}}}, {{"put": {{"key": "c", "value": "lost"}}}},
                            {{"delete_prefix": {{"prefix": "b"}}}}],
                "failure": [{{"get": {{"key": "a"}}}}]}}"#
        ),
    )
    .unwrap();
    let r = txn_ok(&addr, &[file.to_str().unwrap()], None);
    assert_eq!(r["succeeded"], false, "{r}");
    assert_eq!(
        r["results"],
        serde_json::json!([{"get": {"found": true, "key": "a", "value": "new", "version": revision}}])
    );
    let (_, out) = flaredb(&addr, &["-n", "cli", "scan", ""]);
    assert_eq!(out, format!("a\t{revision}\tnew\nb\t{revision}\tB\n"), "nothing of the success branch was written");

    // Malformed documents: an error naming the problem, nothing sent.
    let err = txn_refused(&addr, r#"{"compares": [{"key": "a", "target": "version", "op": "=", "version": 1}"#);
    assert!(err.starts_with("flaredb: invalid argument: txn document (stdin): EOF while parsing"), "{err}");
    let err = txn_refused(&addr, r#"{"compares": [{"key": "a", "target": "version", "op": "~"}], "success": []}"#);
    assert!(err.contains("unknown variant `~`, expected one of `=`"), "{err}");
    let err = txn_refused(&addr, r#"{"success": [{"put": {"key": "c", "value": "x", "ttl": 3}}]}"#);
    assert!(err.contains("unknown field `ttl`"), "{err}");
    let err = txn_refused(&addr, r#"{"success": [{"put": {"key": "c", "value": "x"}}], "when": []}"#);
    assert!(err.contains("unknown field `when`"), "{err}");
    let (ok, out) = flaredb(&addr, &["-n", "cli", "txn", "/nonexistent/txn.json"]);
    assert!(!ok && out.contains("/nonexistent/txn.json"), "{out}");
    let (_, out) = flaredb(&addr, &["-n", "cli", "get", "c"]);
    assert_eq!(out.trim(), "(absent)");
}
