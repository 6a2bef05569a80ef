//! The `flaredb` command-line client against a real node.

use std::{
    io::Write,
    process::{Command, ExitStatus, Output, Stdio},
    time::Duration,
};

use flaredb_tests::{wait_until, Cluster, ClusterOpts};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines},
    process::{Child, ChildStdout},
    time::{timeout_at, Instant},
};

/// How long a watch may take to show what a test waits for.
const WATCH_DEADLINE: Duration = Duration::from_secs(30);

fn flaredb_output(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(flaredb_tests::cli_bin())
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
    // --expect 0: only if absent, and it is not.
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v2", "--expect", "0"]);
    assert!(!ok && out.contains(&format!("conflict: current version {version}")), "{out}");
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

/// A running `flaredb watch`, its stdout read line by line. Killed on drop
/// (a failed assertion included).
struct WatchProc {
    child: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
}

impl WatchProc {
    fn spawn(addr: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(flaredb_tests::cli_bin())
            .args(["--endpoints", addr])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run flaredb watch");
        let stdout = child.stdout.take().expect("piped stdout");
        WatchProc { child, lines: Some(BufReader::new(stdout).lines()) }
    }

    /// The next line, parsed; fails at `deadline` or if the watch ends.
    async fn next_line(&mut self, deadline: Instant) -> Value {
        let lines = self.lines.as_mut().expect("stdout still open");
        match timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
            Ok(Ok(None)) => panic!("flaredb watch ended: {}", self.stderr().await),
            Ok(Err(e)) => panic!("reading flaredb watch: {e}"),
            Err(_) => panic!("no line from flaredb watch within {WATCH_DEADLINE:?}"),
        }
    }

    /// The next line that is not a progress event.
    async fn next_event(&mut self, deadline: Instant) -> Value {
        loop {
            let v = self.next_line(deadline).await;
            if v["type"] != "PROGRESS" {
                return v;
            }
        }
    }

    /// Closes our end of its stdout, as `| head -n 1` does once it has its line.
    fn close_stdout(&mut self) {
        self.lines = None;
    }

    /// Its exit status and stderr, once it exits by itself.
    async fn exited(&mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(WATCH_DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("flaredb watch still running after {WATCH_DEADLINE:?}"))
            .expect("wait for flaredb watch");
        (status, self.stderr().await)
    }

    /// What it wrote to stderr (after it exited: reads to the end).
    async fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut s) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut err)).await;
        }
        err
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill flaredb watch");
    }
}

#[tokio::test]
async fn the_cli_watches_a_prefix_as_json_lines() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client().namespace("cli");
    // From revision 1: whenever it attaches, it replays what it missed.
    let mut replay = WatchProc::spawn(&addr, &["-n", "cli", "watch", "svc/", "--prefix", "--from", "1"]);
    // From now, with progress events: its first line names where it starts,
    // so once that is read the watch is attached and sees every later write.
    let mut live = WatchProc::spawn(&addr, &["-n", "cli", "watch", "svc/", "--prefix", "--progress"]);
    let first = live.next_line(Instant::now() + WATCH_DEADLINE).await;
    assert_eq!(first["type"], "PROGRESS", "{first}");
    let start = first["version"].as_u64().unwrap_or_else(|| panic!("a version: {first}"));

    let other = client.cas_put("other", "x", 0).await.unwrap().new_version;
    let v1 = client.cas_put("svc/a", "1", 0).await.unwrap().new_version;
    let v2 = client.cas_put("svc/a", "2", v1).await.unwrap().new_version;
    assert!(client.cas_delete("svc/a", v2).await.unwrap().success);
    // A delete's answer carries no revision: it lies between the update's and the next write's.
    let after = client.cas_put("other", "y", other).await.unwrap().new_version;
    assert!(start < v1, "the watch from now started at {start}, after the write at {v1}");

    let deadline = Instant::now() + WATCH_DEADLINE;
    let (mut replayed, mut followed) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        // Without --progress every line is an event.
        replayed.push(replay.next_line(deadline).await);
        followed.push(live.next_event(deadline).await);
    }
    let deleted = replayed[2]["version"].as_u64().unwrap_or(0);
    assert!(v2 < deleted && deleted < after, "the delete at {deleted}, not between {v2} and {after}");
    let expected = [
        json!({"type": "PUT", "key": "svc/a", "value": "1", "version": v1, "prev_version": 0}),
        json!({"type": "PUT", "key": "svc/a", "value": "2", "version": v2, "prev_version": v1}),
        json!({"type": "DELETE", "key": "svc/a", "version": deleted, "prev_version": v2}),
    ];
    assert_eq!(replayed, expected);
    assert_eq!(followed, expected);

    // The reader goes away (`| head -n 3`): the next event ends the watch quietly.
    replay.close_stdout();
    client.cas_put("svc/b", "1", 0).await.unwrap();
    let (status, stderr) = replay.exited().await;
    assert!(status.success() && stderr.is_empty(), "{status}: {stderr}");
    live.kill().await;
}

#[tokio::test]
async fn a_cli_watch_that_cannot_run_says_why() {
    let opts = ClusterOpts {
        extra_toml: "watch_history_revisions = 5\nwatch_history_secs = 0\nwatch_history_check_ms = 50\n".into(),
        ..Default::default()
    };
    let c = Cluster::start_with(1, opts).await;
    let addr = c.addr(1);
    let fails = |args: &'static [&'static str]| {
        let addr = addr.clone();
        async move {
            let mut w = WatchProc::spawn(&addr, args);
            let (status, stderr) = w.exited().await;
            assert!(!status.success(), "{args:?} succeeded: {stderr}");
            stderr
        }
    };
    let err = fails(&["-n", "Bad!", "watch", "k"]).await;
    assert!(err.starts_with("flaredb: invalid argument:") && err.contains("namespace"), "{err}");
    let err = fails(&["-n", "cli", "watch", ""]).await;
    assert!(err.starts_with("flaredb: invalid argument:") && err.contains("key"), "{err}");

    // A start older than every node's history: where it starts now, and what to do.
    let client = c.client().namespace("cli");
    let mut last = 0;
    for i in 0..20 {
        last = client.cas_put(format!("p/{i}"), "v", 0).await.unwrap().new_version;
    }
    let oldest = wait_until("the history is pruned", WATCH_DEADLINE, || async {
        let s = client.status().await.ok()?;
        (s.oldest_watch_revision > last - 5).then_some(s.oldest_watch_revision)
    })
    .await;
    let err = fails(&["-n", "cli", "watch", "p/", "--prefix", "--from", "2"]).await;
    assert!(
        err.starts_with(&format!("flaredb: watch history compacted (oldest revision {oldest})"))
            && err.contains("watch again with a later --from"),
        "{err}"
    );
}
