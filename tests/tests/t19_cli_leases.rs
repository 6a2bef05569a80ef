//! The `flaredb` CLI's lease, lock and election commands against a real node.

use std::{
    path::Path,
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use flaredb_client::RdbClient;
use flaredb_tests::{wait_until, Cluster};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdout},
    time::timeout,
};

/// How long a command may take to do what a test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

struct Ran {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `flaredb --endpoints ADDR ARGS` to completion.
fn flaredb(addr: &str, args: &[&str]) -> Ran {
    let out = std::process::Command::new(flaredb_tests::cli_bin())
        .args(["--endpoints", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run flaredb");
    Ran {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a flaredb command that must succeed; its stdout.
#[track_caller]
fn flaredb_ok(addr: &str, args: &[&str]) -> String {
    let r = flaredb(addr, args);
    assert!(r.ok, "flaredb {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// Runs a flaredb command that must fail with nothing on stdout; its stderr.
#[track_caller]
fn flaredb_fails(addr: &str, args: &[&str]) -> String {
    let r = flaredb(addr, args);
    assert!(!r.ok, "flaredb {args:?} succeeded: {}", r.stdout);
    assert!(r.stdout.is_empty(), "flaredb {args:?} printed {}", r.stdout);
    r.stderr
}

/// Runs `flaredb get` on a key that must be absent: `(absent)`, exit 2.
#[track_caller]
fn flaredb_absent(addr: &str, args: &[&str]) {
    let r = flaredb(addr, args);
    assert_eq!((r.code, r.stdout.as_str()), (Some(2), "(absent)\n"), "flaredb {args:?}: {}", r.stderr);
}

/// A flaredb process that runs until told to stop, its stdout and stderr
/// read line by line. Killed on drop (a failed assertion included); the
/// commands the tests have it run stop once it is gone.
struct Proc {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
    err: Lines<BufReader<ChildStderr>>,
    args: Vec<String>,
}

impl Proc {
    fn spawn(addr: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(flaredb_tests::cli_bin())
            .args(args)
            // Also for the `flaredb` a locked command runs.
            .env("FLAREDB_ENDPOINTS", addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run flaredb");
        let out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        Proc { child, out, err, args: args.iter().map(|a| a.to_string()).collect() }
    }

    /// The next line on stdout.
    async fn line(&mut self) -> String {
        let args = self.args.clone();
        match timeout(DEADLINE, self.out.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("flaredb {args:?} closed stdout: {:?}", self.exited().await),
            Ok(Err(e)) => panic!("reading flaredb {args:?}: {e}"),
            Err(_) => panic!("no line from flaredb {args:?} within {DEADLINE:?}"),
        }
    }

    /// The next line on stderr.
    async fn err_line(&mut self) -> String {
        match timeout(DEADLINE, self.err.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("no line on stderr from flaredb {:?}: {other:?}", self.args),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([sig, &self.pid().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill {sig} flaredb {:?}", self.args);
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("poll flaredb").is_none()
    }

    /// Its exit status and the rest of its stderr, once it exits by itself.
    async fn exited(&mut self) -> (ExitStatus, String) {
        let status = timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("flaredb {:?} still running after {DEADLINE:?}", self.args))
            .expect("wait for flaredb");
        let mut rest = String::new();
        let _ = timeout(Duration::from_secs(5), self.err.get_mut().read_to_string(&mut rest)).await;
        (status, rest)
    }

    /// SIGKILL, and reaped.
    async fn kill9(mut self) {
        self.child.kill().await.expect("kill flaredb");
    }
}

/// `s` without `prefix` and `suffix`, or a failure naming what was expected.
#[track_caller]
fn between<'a>(s: &'a str, prefix: &str, suffix: &str) -> &'a str {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{s:?} is not {prefix:?}…{suffix:?}"))
}

/// The token and lease of `lock NAME acquired (token T, lease L)`.
#[track_caller]
fn acquired(line: &str, name: &str) -> (u64, u64) {
    let rest = between(line, &format!("lock {name} acquired (token "), ")");
    let (token, lease) = rest.split_once(", lease ").unwrap_or_else(|| panic!("{line:?}"));
    (token.parse().expect("token"), lease.parse().expect("lease"))
}

/// The number file `path` holds once it has been written (a locked command writes it).
async fn number_in(path: &Path) -> u64 {
    wait_until(&format!("{} written", path.display()), DEADLINE, || async {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
    .await
}

/// Waits until the node has at least `n` watch streams open (a lock waiter
/// opens one once it found the lock held).
async fn watchers(client: &RdbClient, n: u64) {
    wait_until(&format!("{n} watchers"), DEADLINE, || async {
        (client.status().await.ok()?.watchers >= n).then_some(())
    })
    .await
}

/// A shell command for a lock: writes the token to `file`, then runs until
/// `go` exists or its parent (the flaredb holding the lock) is gone.
fn hold_until(file: &Path, go: &Path) -> String {
    format!(
        "echo \"$FLAREDB_LOCK_TOKEN\" > {}; while [ ! -e {} ] && kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        file.display(),
        go.display()
    )
}

#[tokio::test]
async fn lease_commands_grant_attach_list_and_revoke() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let out = flaredb_ok(&addr, &["lease", "grant", "60"]);
    let id: u64 = between(out.trim_end(), "lease ", " granted with TTL 60s").parse().expect("lease id");
    let ids = id.to_string();
    // --id-only: just the id; a TTL under the minimum is raised to it.
    let short: u64 = flaredb_ok(&addr, &["lease", "grant", "1", "--id-only"]).trim().parse().expect("an id alone");
    assert_ne!(short, id);
    let out = flaredb_ok(&addr, &["lease", "ttl", &short.to_string()]);
    let left: i64 = between(out.trim_end(), &format!("lease {short}: remaining "), "s of 2s").parse().unwrap();
    assert!((0..=2).contains(&left), "{out}");

    let out = flaredb_ok(&addr, &["lease", "ttl", &ids]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let left: i64 = between(out.trim_end(), &format!("lease {id}: remaining "), "s of 60s").parse().unwrap();
    assert!((50..=60).contains(&left), "{out}");

    assert!(flaredb_ok(&addr, &["-n", "cli", "put", "a", "1", "--lease", &ids]).starts_with("ok version "));
    assert!(flaredb_ok(&addr, &["-n", "cli", "put", "b", "2"]).starts_with("ok version "));
    assert!(flaredb_ok(&addr, &["put", "c", "3", "--lease", &ids]).starts_with("ok version "));
    let out = flaredb_ok(&addr, &["lease", "ttl", &ids, "--keys"]);
    let mut lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("lease {id}: remaining ")), "{out}");
    lines[1..].sort();
    assert_eq!(lines[1..], ["cli\ta", "default\tc"], "{out}");
    // The same for scripts.
    let out = flaredb_ok(&addr, &["-o", "json", "lease", "ttl", &ids, "--keys"]);
    let mut j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((j["id"].as_u64(), j["granted_ttl"].as_i64()), (Some(id), Some(60)), "{out}");
    assert!((50..=60).contains(&j["ttl"].as_i64().unwrap_or(-1)), "{out}");
    j["keys"].as_array_mut().expect("keys").sort_by_key(|k| k["namespace"].to_string());
    assert_eq!(
        j["keys"],
        serde_json::json!([{"namespace": "cli", "key": "a"}, {"namespace": "default", "key": "c"}]),
        "{out}"
    );

    assert_eq!(flaredb_ok(&addr, &["lease", "revoke", &ids]), format!("lease {id} revoked (2 keys deleted)\n"));
    flaredb_absent(&addr, &["-n", "cli", "get", "a"]);
    flaredb_absent(&addr, &["get", "c"]);
    assert!(flaredb_ok(&addr, &["-n", "cli", "get", "b"]).ends_with("\t2\n"), "a key without a lease stays");

    // A lease that is gone: every command says so and exits 2 (not found).
    for args in [&["lease", "revoke", &ids][..], &["lease", "ttl", &ids, "--keys"], &["lease", "keepalive", &ids]] {
        let err = flaredb_fails(&addr, args);
        assert!(err.starts_with(&format!("flaredb: not found: lease {id} does not exist")), "{args:?}: {err}");
        assert_eq!(flaredb(&addr, args).code, Some(2), "{args:?}");
    }
    let err = flaredb_fails(&addr, &["-n", "cli", "put", "d", "4", "--lease", &ids]);
    assert!(err.contains(&format!("lease {id} not found")), "{err}");
    flaredb_absent(&addr, &["-n", "cli", "get", "d"]);
    let err = flaredb_fails(&addr, &["lease", "grant", "0"]);
    assert!(err.contains("a TTL is at least 1 second"), "{err}");
}

#[tokio::test]
async fn lease_keepalive_runs_until_interrupted_and_fails_when_the_lease_is_lost() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client();
    let id: u64 = flaredb_ok(&addr, &["lease", "grant", "2", "--id-only"]).trim().parse().unwrap();
    let mut keeper = Proc::spawn(&addr, &["lease", "keepalive", &id.to_string()]);
    assert_eq!(keeper.line().await, format!("lease {id} kept alive (TTL 2s) until interrupted"));
    client.cas_put_with_lease("kept", "v", 0, id).await.unwrap();
    // Twice its TTL later it is still there.
    let start = Instant::now();
    wait_until("twice the TTL", DEADLINE, || async {
        let info = client.lease_time_to_live(id, false).await.unwrap();
        assert!(info.is_some(), "lease {id} expired {:?} after keepalive started", start.elapsed());
        (start.elapsed() > Duration::from_secs(4)).then_some(())
    })
    .await;
    assert!(client.cas_get("kept").await.unwrap().is_some());

    // Ctrl-C: exits 0 without revoking; the lease then runs out.
    keeper.signal("-INT");
    let (status, err) = keeper.exited().await;
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    assert!(client.lease_time_to_live(id, false).await.unwrap().is_some(), "not revoked");
    wait_until("the lease to expire", DEADLINE, || async {
        client.cas_get("kept").await.ok()?.is_none().then_some(())
    })
    .await;

    // A lease revoked under it: keepalive fails, saying so (at its next
    // renewal, a third of the TTL later).
    let (id, _) = client.lease_grant(3).await.unwrap();
    let mut keeper = Proc::spawn(&addr, &["lease", "keepalive", &id.to_string()]);
    assert_eq!(keeper.line().await, format!("lease {id} kept alive (TTL 3s) until interrupted"));
    assert_eq!(client.lease_revoke(id).await.unwrap(), Some(0));
    let (status, err) = keeper.exited().await;
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.starts_with("flaredb: lease lost:") && err.contains(&format!("lease {id}")), "{err}");
}

#[tokio::test]
async fn lock_runs_a_command_with_its_fencing_token_and_frees_the_lock() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client().namespace("cli");
    let file = c.dir.path().join("token");
    // The command sees the token, and the lock key at that version holding flaredb's pid.
    let script = format!(
        "echo \"$FLAREDB_LOCK_TOKEN\" > {f}; {bin} -n cli get job >> {f}; exit 7",
        f = file.display(),
        bin = flaredb_tests::cli_bin().display()
    );
    let mut lock = Proc::spawn(&addr, &["-n", "cli", "lock", "job", "--", "sh", "-c", &script]);
    let pid = lock.pid();
    let line = lock.err_line().await;
    let (token, lease) = acquired(between(&line, "flaredb: ", ""), "job");
    let (status, err) = lock.exited().await;
    assert_eq!(status.code(), Some(7), "the command's exit code: {err}");
    assert!(err.is_empty(), "{err}");
    let written = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines[0], token.to_string(), "{written}");
    let (version, holder) = lines[1].split_once('\t').unwrap_or_else(|| panic!("{written}"));
    assert_eq!(version, token.to_string(), "the token is the key's version: {written}");
    assert!(holder.ends_with(&format!("/{pid}")), "{written}");
    // Released when the command exited: the key and its lease are gone.
    assert!(client.cas_get("job").await.unwrap().is_none());
    assert!(client.lease_time_to_live(lease, false).await.unwrap().is_none());

    // Without a command: holds it until interrupted, then releases it.
    let mut lock = Proc::spawn(&addr, &["-n", "cli", "lock", "job"]);
    let (second, _) = acquired(&lock.line().await, "job");
    assert!(second > token, "{second} after {token}");
    assert_eq!(client.cas_get("job").await.unwrap().map(|v| v.version), Some(second));
    lock.signal("-TERM");
    let (status, err) = lock.exited().await;
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    assert!(client.cas_get("job").await.unwrap().is_none());

    // A command that cannot run: an error, and the lock is not kept.
    let err = flaredb_fails(&addr, &["-n", "cli", "lock", "job", "--", "/nonexistent/cmd"]);
    assert!(err.contains("/nonexistent/cmd"), "{err}");
    assert!(client.cas_get("job").await.unwrap().is_none());
}

#[tokio::test]
async fn a_lock_lost_while_its_command_runs_stops_the_command() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client();
    let stopped = c.dir.path().join("stopped");
    let script = format!(
        "trap 'echo TERM > {}; exit 0' TERM; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        stopped.display()
    );
    let mut lock = Proc::spawn(&addr, &["lock", "--ttl", "2", "job", "--", "sh", "-c", &script]);
    let line = lock.err_line().await;
    let (_, lease) = acquired(between(&line, "flaredb: ", ""), "job");
    assert_eq!(client.lease_revoke(lease).await.unwrap(), Some(1), "the lock key goes with its lease");
    let (status, err) = lock.exited().await;
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("flaredb: lock lost: lock job was lost while the command ran"), "{err}");
    assert_eq!(std::fs::read_to_string(&stopped).unwrap_or_default(), "TERM\n", "the command got SIGTERM");
}

#[tokio::test]
async fn a_second_lock_waits_for_the_first_command_to_finish() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client();
    let d = c.dir.path();
    let (t1, t2, go) = (d.join("t1"), d.join("t2"), d.join("go"));
    let mut first = Proc::spawn(&addr, &["lock", "job", "--", "sh", "-c", &hold_until(&t1, &go)]);
    let token1 = number_in(&t1).await;
    let second_cmd = format!("echo \"$FLAREDB_LOCK_TOKEN\" > {}", t2.display());
    let mut second = Proc::spawn(&addr, &["lock", "job", "--", "sh", "-c", &second_cmd]);
    // The second found the lock held and watches for its release.
    watchers(&client, 1).await;
    assert!(second.running() && !t2.exists(), "the second ran while the first held the lock");
    assert!(first.running());

    std::fs::write(&go, "").unwrap();
    let (status, err) = first.exited().await;
    assert!(status.success(), "{status}: {err}");
    let (status, err) = second.exited().await;
    assert!(status.success(), "{status}: {err}");
    let token2 = number_in(&t2).await;
    assert!(token2 > token1, "token {token2} after {token1}");
    assert!(client.cas_get("job").await.unwrap().is_none(), "both released it");
}

#[tokio::test]
async fn a_waiter_takes_over_from_a_killed_holder_after_the_ttl() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client();
    let d = c.dir.path();
    let (t1, t2) = (d.join("t1"), d.join("t2"));
    let holder =
        Proc::spawn(&addr, &["lock", "--ttl", "2", "job", "--", "sh", "-c", &hold_until(&t1, &d.join("never"))]);
    let token1 = number_in(&t1).await;
    let waiter_cmd = format!("echo \"$FLAREDB_LOCK_TOKEN\" > {}", t2.display());
    let mut waiter = Proc::spawn(&addr, &["lock", "--ttl", "2", "job", "--", "sh", "-c", &waiter_cmd]);
    watchers(&client, 1).await;
    assert!(waiter.running() && !t2.exists());

    // kill -9: nothing releases the lock, its lease runs out.
    holder.kill9().await;
    let killed = Instant::now();
    let (status, err) = waiter.exited().await;
    assert!(status.success(), "{status}: {err}");
    let token2 = number_in(&t2).await;
    assert!(token2 > token1, "token {token2} after {token1}");
    // The lease was renewed every TTL/3 until the kill, so about 2/3 of it
    // was left (the bound leaves room for a late renewal on a loaded machine).
    assert!(killed.elapsed() >= Duration::from_millis(500), "taken over {:?} after the kill", killed.elapsed());
    assert!(client.cas_get("job").await.unwrap().is_none());
}

#[tokio::test]
async fn elect_prints_the_leader_and_listen_follows_it() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let client = c.client().namespace("cli");
    let err = flaredb(&addr, &["elect", "svc"]);
    assert!(!err.ok && err.stderr.contains("<PROPOSAL>"), "{}", err.stderr);

    let mut listener = Proc::spawn(&addr, &["-n", "cli", "elect", "svc", "--listen"]);
    assert_eq!(listener.line().await, "no leader");
    let mut alpha = Proc::spawn(&addr, &["-n", "cli", "elect", "--ttl", "2", "svc", "alpha"]);
    let ta: u64 = between(&alpha.line().await, "elected: alpha (token ", ")").parse().unwrap();
    assert_eq!(listener.line().await, format!("leader: alpha (token {ta})"));
    let got = client.election_leader("svc").await.unwrap().expect("a leader");
    assert_eq!((&got.value[..], got.version), (&b"alpha"[..], ta));

    // Beta campaigns (waiting, with the listener: two watches); alpha resigns on Ctrl-C.
    let mut beta = Proc::spawn(&addr, &["-n", "cli", "elect", "svc", "beta"]);
    watchers(&c.client(), 2).await;
    assert!(beta.running());
    alpha.signal("-INT");
    let (status, err) = alpha.exited().await;
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    let tb: u64 = between(&beta.line().await, "elected: beta (token ", ")").parse().unwrap();
    assert!(tb > ta, "{tb} after {ta}");
    assert_eq!(listener.line().await, "no leader");
    assert_eq!(listener.line().await, format!("leader: beta (token {tb})"));

    beta.signal("-TERM");
    let (status, err) = beta.exited().await;
    assert!(status.success() && err.is_empty(), "{status}: {err}");
    assert_eq!(listener.line().await, "no leader");
    assert!(client.election_leader("svc").await.unwrap().is_none());
    listener.signal("-TERM");
    let (status, err) = listener.exited().await;
    assert!(status.success() && err.is_empty(), "{status}: {err}");
}
