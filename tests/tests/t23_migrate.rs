//! Migration against a real server: each source kind copied with the copy
//! verified, an interrupted run resumed without duplicates, the conflict
//! policies, a dry run, validate, and a rollback that removes exactly what
//! its run wrote.

use std::{path::Path, sync::Arc};

use flaredb_client::migrate::{self, migrate, rollback, verify, Conflict, Endpoint, MigrateError, Options, Progress};
use flaredb_tests::{test_client_config, Cluster};

fn opts() -> Options {
    Options { client: test_client_config(), ..Options::default() }
}

fn target(c: &Cluster, ns: &str) -> Endpoint {
    format!("flaredb://{}/{ns}", c.endpoints().join(",")).parse().unwrap()
}

fn jsonl_line(key: &str, value: &str) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    format!(r#"{{"key":"{}","value":"{}","version":0}}"#, STANDARD.encode(key), STANDARD.encode(value))
}

fn write_jsonl(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

async fn run(from: &Endpoint, to: &Endpoint, o: &Options) -> Result<migrate::Report, MigrateError> {
    migrate(from, to, o, Arc::new(Progress::default())).await
}

/// Stops a run of `from` into `to` part-way (a key the target holds with
/// another value, policy fail), then resumes it: every entry is copied once,
/// what the first run wrote is recognised, and the copy verifies.
async fn interrupt_and_resume(from: &Endpoint, to: &Endpoint, key: &str, total: u64) {
    let o = Options { in_flight: 2, batch_size: 10, ..opts() };
    let ns = to.flaredb_client(&o.client).unwrap();
    ns.cas_put(key, "in the way", 0).await.unwrap();
    let e = run(from, to, &o).await.unwrap_err();
    let MigrateError::Conflict { key: k, state, written, .. } = &e else { panic!("{e}") };
    assert!(k == key && (state.contains("resumable") || *written == 0), "{e}");
    let r = run(from, to, &Options { conflict: Conflict::Overwrite, ..o.clone() }).await.unwrap();
    assert_eq!((r.identical, r.overwritten, r.written + r.identical), (*written, 1, total), "{r:?}");
    let v = verify(from, to, &o).await.unwrap();
    assert!(v.matches() && v.source_count == total, "{v:?}");
}

#[tokio::test]
async fn a_directory_of_json_files_moves_and_verifies() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    for (p, v) in [("tasks/a.json", r#"{"id":"a"}"#), ("tasks/b.json", r#"{"id":"b"}"#), ("queue/a.json", "{}")] {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, v).unwrap();
    }
    let from = Endpoint::Dir(dir.path().into());
    let to = target(&c, "orch");
    let r = run(&from, &to, &opts()).await.unwrap();
    assert_eq!((r.read, r.written), (3, 3));
    let got = c.client().namespace("orch").cas_get("tasks/b.json").await.unwrap().unwrap();
    assert_eq!(&got.value[..], br#"{"id":"b"}"#);
    let v = verify(&from, &to, &opts()).await.unwrap();
    assert!(v.matches(), "{v:?}");
    // Selective: only under a prefix.
    let o = Options { prefix: "queue/".into(), ..opts() };
    assert_eq!(run(&from, &target(&c, "orch2"), &o).await.unwrap().written, 1);
    assert_eq!(migrate::estimate(&from, &opts()).await, Some(3));

    for i in 0..200 {
        std::fs::write(dir.path().join("tasks").join(format!("t{i:03}.json")), format!("{{\"i\":{i}}}")).unwrap();
    }
    interrupt_and_resume(&from, &target(&c, "orch3"), "tasks/t150.json", 203).await;
}

#[tokio::test]
async fn an_interrupted_run_resumes_without_duplicates_and_rolls_back_exactly() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    let mut lines: Vec<String> = (0..500).map(|i| jsonl_line(&format!("k/{i:04}"), &format!("v{i}"))).collect();
    lines.insert(300, "{broken".into());
    write_jsonl(&file, &lines);
    let from = Endpoint::Jsonl(file.clone());
    let to = target(&c, "imp");
    let o = Options { in_flight: 1, batch_size: 50, ..opts() };

    // validate finds the bad line and writes nothing.
    let (good, bad) = migrate::validate(&from, &o).await.unwrap();
    assert_eq!((good, bad.len()), (500, 1));
    assert!(bad[0].contains(":301:"), "{bad:?}");

    // The run stops at it, resumable, saying so.
    let e = run(&from, &to, &o).await.unwrap_err();
    let MigrateError::Interrupted { written, run_id, state, .. } = &e else { panic!("{e}") };
    assert!(*written >= 250 && *written <= 300, "{e}");
    assert!(state.contains("resumable"), "{e}");
    let first_run = run_id.clone();

    // Fixed and run again: continues, never writes a key twice.
    lines.remove(300);
    write_jsonl(&file, &lines);
    let r = run(&from, &to, &o).await.unwrap();
    assert_eq!((r.identical, r.written + r.identical), (*written, 500), "{r:?}");
    assert!(verify(&from, &to, &o).await.unwrap().matches());
    let ns = c.client().namespace("imp");
    assert_eq!(ns.scan_prefix("k/").await.unwrap().len(), 500);

    // A key changed after the second run is kept by its rollback; the first
    // run's keys are not the second's to remove.
    let changed = ns.cas_get("k/0400").await.unwrap().unwrap();
    ns.cas_put("k/0400", "edited", changed.version).await.unwrap();
    let rb = rollback(&to, &r.run_id, &o).await.unwrap();
    assert_eq!((rb.removed, rb.changed_since), (r.written - 1, 1));
    assert_eq!(ns.scan_prefix("k/").await.unwrap().len() as u64, *written + 1);
    let rb = rollback(&to, &first_run, &o).await.unwrap();
    assert_eq!(rb.removed, *written);
    assert_eq!(ns.scan_prefix("k/").await.unwrap().len(), 1, "only the edited key is left");
    assert!(matches!(rollback(&to, &first_run, &o).await, Err(MigrateError::Usage(_))), "a run rolls back once");
}

#[tokio::test]
async fn conflicts_follow_the_policy_and_a_dry_run_writes_nothing() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    write_jsonl(&file, &[jsonl_line("a", "1"), jsonl_line("b", "2"), jsonl_line("c", "3")]);
    let from = Endpoint::Jsonl(file);
    let to = target(&c, "pol");
    let ns = c.client().namespace("pol");
    ns.cas_put("b", "theirs", 0).await.unwrap();

    let dry = run(&from, &to, &Options { dry_run: true, conflict: Conflict::Skip, ..opts() }).await.unwrap();
    assert_eq!((dry.written, dry.skipped), (2, 1));
    assert!(ns.cas_get("a").await.unwrap().is_none(), "a dry run wrote");

    let e = run(&from, &to, &Options { conflict: Conflict::Fail, ..opts() }).await.unwrap_err();
    assert!(
        matches!(&e, MigrateError::Conflict { key, state, .. } if key == "b" && state.contains("unchanged")),
        "{e}"
    );
    assert!(ns.cas_get("a").await.unwrap().is_none(), "the failed batch wrote nothing");

    let r = run(&from, &to, &Options { conflict: Conflict::Skip, ..opts() }).await.unwrap();
    assert_eq!((r.written, r.skipped), (2, 1));
    assert_eq!(&ns.cas_get("b").await.unwrap().unwrap().value[..], b"theirs");
    let r = run(&from, &to, &Options { conflict: Conflict::Overwrite, ..opts() }).await.unwrap();
    assert_eq!((r.written, r.overwritten, r.identical), (1, 1, 2));
    assert_eq!(&ns.cas_get("b").await.unwrap().unwrap().value[..], b"2");
}

#[tokio::test]
async fn export_and_import_between_namespaces_round_trip() {
    let c = Cluster::start(1).await;
    let src = c.client().namespace("orig");
    for i in 0..120 {
        src.cas_put(format!("x/{i:03}"), vec![i as u8; 300], 0).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = Endpoint::Jsonl(dir.path().join("dump.jsonl"));
    let r = run(&target(&c, "orig"), &file, &opts()).await.unwrap();
    assert_eq!(r.written, 120);
    let r = run(&file, &target(&c, "copy"), &opts()).await.unwrap();
    assert_eq!(r.written, 120);
    let v = verify(&target(&c, "orig"), &target(&c, "copy"), &opts()).await.unwrap();
    assert!(v.matches() && v.source_count == 120, "{v:?}");
    // Straight from one cluster's namespace to another's, interrupted and resumed.
    interrupt_and_resume(&target(&c, "orig"), &target(&c, "copy2"), "x/077", 120).await;
}

fn flaredb(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(flaredb_tests::cli_bin()).args(args).output().expect("run flaredb");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn the_cli_exports_migrates_verifies_and_rolls_back() {
    let c = Cluster::start(1).await;
    let src = c.client().namespace("svc");
    for i in 0..30 {
        src.cas_put(format!("/svc/{i:02}"), format!("{{\"n\":{i}}}"), 0).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("svc.jsonl");
    let addr = c.addr(1);
    let (ok, _, err) = flaredb(&["-e", &addr, "-n", "svc", "export", "--to", dump.to_str().unwrap()]);
    assert!(ok && err.contains("exported 30 keys"), "{err}");
    assert_eq!(std::fs::read_to_string(&dump).unwrap().lines().count(), 30);

    let from = format!("jsonl:{}", dump.display());
    let to = format!("flaredb://{addr}/moved");
    let (ok, out, err) = flaredb(&["migrate", "--from", &from, "--to", &to, "--validate"]);
    assert!(ok && out.contains("30 records parse, 0 do not"), "{out}{err}");
    let (ok, out, err) = flaredb(&["migrate", "--from", &from, "--to", &to, "--dry-run"]);
    assert!(ok && out.contains("30 would write"), "{out}{err}");
    let (ok, out, err) = flaredb(&["migrate", "--from", &from, "--to", &to, "--verify"]);
    assert!(ok && out.contains("30 written") && out.contains("verify: match"), "{out}{err}");
    let run_id = out.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string();
    // Again: nothing to do, nothing duplicated.
    let (ok, out, _) = flaredb(&["migrate", "--from", &from, "--to", &to]);
    assert!(ok && out.contains("0 written") && out.contains("30 already identical"), "{out}");
    let (ok, out, err) = flaredb(&["migrate", "--rollback", &run_id, "--to", &to]);
    assert!(ok && out.contains("30 keys removed"), "{out}{err}");
    assert!(c.client().namespace("moved").scan_prefix("/svc/").await.unwrap().is_empty());
    let (ok, _, err) = flaredb(&["migrate", "--from", "consul://x:1", "--to", &to]);
    assert!(!ok && err.contains("expected dir:PATH"), "{err}");
}

#[tokio::test]
async fn a_file_based_task_store_imports_as_the_task_queue() {
    use flaredb_client::adapters::{TaskQueue, TaskStatus};
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("queue.rkvs");
    std::fs::create_dir_all(store.join("tasks")).unwrap();
    std::fs::create_dir_all(store.join("queue")).unwrap();
    let tasks = [
        ("1f0a", r#"{"image":"a","priority":1,"created_at":"2025-01-01T00:00:00+01:00"}"#, true),
        ("2b1c", r#"{"image":"b","priority":9,"createdAt":1767225600}"#, true),
        ("3c2d", r#"{"image":"c","status":"completed"}"#, false),
        ("4d3e", r#"{"image":"d","status":"running"}"#, false),
        ("5e4f", r#"{"image":"e","status":"failed"}"#, false),
    ];
    for (id, body, queued) in tasks {
        std::fs::write(store.join("tasks").join(format!("{id}.json")), body).unwrap();
        if queued {
            std::fs::write(store.join("queue").join(format!("{id}.json")), "{}").unwrap();
        }
    }
    let from = format!("dir:{}", store.display());
    let to = format!("flaredb://{}/orch", c.addr(1));
    let (ok, out, err) =
        flaredb(&["migrate", "--from", &from, "--to", &to, "--as", "task-queue", "--status", "failed"]);
    assert!(ok && out.contains("5 read, 1 imported, 0 already there, 4 not selected"), "{out}{err}");
    let (ok, out, err) = flaredb(&["migrate", "--from", &from, "--to", &to, "--as", "task-queue"]);
    assert!(ok && out.contains("5 read, 4 imported, 1 already there"), "{out}{err}");

    let q = TaskQueue::new(c.client().namespace("orch"), "/tasks/");
    let status = |id: &'static str| {
        let q = q.clone();
        async move { q.get(id).await.unwrap().unwrap().0.status }
    };
    assert_eq!(status("3c2d").await, TaskStatus::Succeeded);
    assert_eq!(status("5e4f").await, TaskStatus::Failed);
    let w = q.worker("w", 10).await.unwrap();
    let mut order = Vec::new();
    while let Some(t) = q.claim_next(&w).await.unwrap() {
        order.push(t.id);
    }
    // Priority first; the running task (its worker gone) is queued again.
    assert_eq!(order, ["2b1c", "1f0a", "4d3e"]);
    assert_eq!(q.history("1f0a").await.unwrap()[0].note, "imported");

    // --since: by the task's creation time (two have one, before the cut), else its file's mtime (now).
    let to = format!("flaredb://{}/orch-since", c.addr(1));
    let since = ["migrate", "--from", &from, "--to", &to, "--as", "task-queue", "--since"];
    let (ok, out, err) = flaredb(&[&since[..], &["36h", "--dry-run"]].concat());
    assert!(ok && out.contains("5 read, 3 would import, 0 already there, 2 not selected"), "{out}{err}");
    let (ok, out, err) = flaredb(&[&since[..], &["2026-01-01T00:00:01Z"]].concat());
    assert!(ok && out.contains("5 read, 3 imported, 0 already there, 2 not selected"), "{out}{err}");
    let q = TaskQueue::new(c.client().namespace("orch-since"), "/tasks/");
    assert!(q.get("2b1c").await.unwrap().is_none() && q.get("3c2d").await.unwrap().is_some());
    let (ok, _, err) = flaredb(&[&since[..], &["last tuesday"]].concat());
    assert!(!ok && err.contains("expected an RFC 3339 time"), "{err}");
}

/// A throwaway single-member etcd on free loopback ports, killed on drop.
struct Etcd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd() -> Option<Etcd> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| Path::new(p).exists())?;
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (flaredb_tests::free_port(), flaredb_tests::free_port());
    let addr = format!("127.0.0.1:{client}");
    let child = std::process::Command::new(bin)
        .args(["--name", "m1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &format!("http://{addr}"), "--advertise-client-urls", &format!("http://{addr}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("m1=http://127.0.0.1:{peer}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start etcd");
    Some(Etcd { child, _dir: dir, addr })
}

#[tokio::test]
async fn an_etcd_cluster_migrates_under_a_prefix_and_verifies() {
    use flaredb_proto::etcd::{kv_client::KvClient, PutRequest};
    let Some(etcd) = start_etcd() else {
        // scripts/setup-debian.sh installs etcd-server; without it there is nothing to read.
        eprintln!("etcd is not installed: skipping the etcd source test");
        return;
    };
    let mut kv = flaredb_tests::wait_until("etcd serving", flaredb_tests::DEADLINE, || async {
        KvClient::connect(format!("http://{}", etcd.addr)).await.ok()
    })
    .await;
    for i in 0..2500 {
        let put = PutRequest {
            key: format!("/registry/pods/p{i:04}").into(),
            value: format!("{{\"i\":{i}}}").into(),
            lease: 0,
        };
        kv.put(put).await.unwrap();
    }
    kv.put(PutRequest { key: "/other/x".into(), value: "no".into(), lease: 0 }).await.unwrap();

    let c = Cluster::start(1).await;
    let from = format!("etcd://{}", etcd.addr);
    let to = format!("flaredb://{}/k8s", c.addr(1));
    let (ok, out, err) = flaredb(&["migrate", "--from", &from, "--to", &to, "--prefix", "/registry/", "--verify"]);
    assert!(ok && out.contains("2500 read, 2500 written") && out.contains("verify: match"), "{out}{err}");
    let ns = c.client().namespace("k8s");
    assert_eq!(ns.scan_prefix("/registry/pods/").await.unwrap().len(), 2500, "three pages of 1,000");
    assert!(ns.cas_get("/other/x").await.unwrap().is_none(), "outside the prefix");
    assert_eq!(&ns.cas_get("/registry/pods/p0042").await.unwrap().unwrap().value[..], br#"{"i":42}"#);

    // kill -9 of a running migration, then the same command again: it continues, nothing twice.
    let to = format!("flaredb://{}/k8s-2", c.addr(1));
    let args =
        ["migrate", "--from", &from, "--to", &to, "--prefix", "/registry/", "--in-flight", "1", "--batch-size", "2"];
    let mut child = std::process::Command::new(flaredb_tests::cli_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ns2 = c.client().namespace("k8s-2");
    let copied = flaredb_tests::wait_until("a part copied", flaredb_tests::DEADLINE, || async {
        let n = ns2.scan_prefix("/registry/").await.ok()?.len();
        (n >= 300).then_some(n)
    })
    .await;
    assert!(child.try_wait().unwrap().is_none() && copied < 2500, "the run finished before it was killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, out, err) = flaredb(&[&args[..7], &["--verify"]].concat());
    let identical: u64 =
        out.split(" already identical").next().and_then(|s| s.rsplit(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(
        ok && out.contains("2500 read") && identical >= copied as u64 && out.contains("verify: match"),
        "{out}{err}"
    );
}

/// A scheduler's `tasks` and `nodes` tables in a throwaway PostgreSQL.
async fn scheduler_tables(pg: &flaredb_tests::Postgres) -> tokio_postgres::Client {
    let conn = format!("host=127.0.0.1 port={} user=flaredb dbname=postgres", pg.port);
    let (client, connection) = flaredb_tests::wait_until("postgres serving", flaredb_tests::DEADLINE, || async {
        tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.ok()
    })
    .await;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE tasks (id uuid PRIMARY KEY, status text NOT NULL, node text, priority int, \
               attempts bigint, done boolean, spec jsonb, tags text[], created_at timestamptz, due timestamp);
             INSERT INTO tasks SELECT md5(i::text)::uuid, (ARRAY['queued','running','done'])[i % 3 + 1], \
               'n' || (i % 4), i % 10, i, i % 2 = 0, jsonb_build_object('image', 'img' || i), ARRAY['a', 'b'], \
               timestamptz '2026-01-01 00:00:00+02' + i * interval '1 minute', timestamp '2026-02-01 12:00:00' \
               FROM generate_series(1, 1500) i;
             CREATE TABLE nodes (id serial PRIMARY KEY, hostname text UNIQUE, zone text, cpus numeric);
             INSERT INTO nodes (hostname, zone, cpus) SELECT 'h' || i, 'z' || (i % 2), 2.5 * i FROM generate_series(1, 6) i;",
        )
        .await
        .expect("create tables");
    client
}

#[tokio::test]
async fn postgres_tables_migrate_as_typed_json_records_and_into_collections() {
    use flaredb_client::adapters::{Collection, Index};
    use serde_json::{json, Value};
    let Some(pg) = flaredb_tests::start_postgres() else {
        // scripts/setup-debian.sh installs postgresql; without it there is nothing to read.
        eprintln!("postgresql is not installed: skipping the postgres source test");
        return;
    };
    let _db = scheduler_tables(&pg).await;
    let c = Cluster::start(1).await;
    let tasks_url = pg.url("?table=tasks");
    let to = format!("flaredb://{}/sched", c.addr(1));

    let (ok, out, err) = flaredb(&["migrate", "--validate", "--from", &tasks_url, "--to", &to]);
    assert!(ok && out.contains("1500 records parse, 0 do not"), "{out}{err}{}", pg.log());
    let from: Endpoint = tasks_url.parse().unwrap();
    assert_eq!(migrate::estimate(&from, &opts()).await, Some(1500));

    // Interrupted: a key the target already holds differently stops the run (policy fail) ...
    let id1 = "c4ca4238-a0b9-2382-0dcc-509a6f75849b"; // md5("1")
    let ns = c.client().namespace("sched");
    ns.cas_put(format!("/tasks/{id1}"), "{}", 0).await.unwrap();
    let (ok, out, err) = flaredb(&["migrate", "--from", &tasks_url, "--to", &to, "--prefix", "/tasks/"]);
    assert!(!ok && err.contains("conflict") && (err.contains("resumable") || err.contains("unchanged")), "{out}{err}");
    // ... and resumed: what the first run copied is recognised, nothing is duplicated.
    let (ok, out, err) = flaredb(&[
        "migrate",
        "--from",
        &tasks_url,
        "--to",
        &to,
        "--prefix",
        "/tasks/",
        "--conflict",
        "overwrite",
        "--verify",
    ]);
    assert!(
        ok && out.contains("1500 read") && out.contains("(1 overwritten)") && out.contains("verify: match"),
        "{out}{err}"
    );
    assert_eq!(ns.scan_prefix("/tasks/").await.unwrap().len(), 1500);

    // One row, typed: numbers stay numbers, json stays an object, timestamps are RFC 3339 in UTC.
    let got = ns.cas_get(format!("/tasks/{id1}")).await.unwrap().unwrap();
    let row: Value = serde_json::from_slice(&got.value).unwrap();
    assert_eq!(
        row,
        json!({"id": id1, "status": "running", "node": "n1", "priority": 1, "attempts": 1, "done": false,
               "spec": {"image": "img1"}, "tags": ["a", "b"], "created_at": "2025-12-31T22:01:00+00:00",
               "due": "2026-02-01T12:00:00+00:00"})
    );

    // Into collections: indexes by status and node, and a unique one by hostname, rebuilt.
    let to2 = format!("flaredb://{}/sched2", c.addr(1));
    let (ok, out, err) = flaredb(&[
        "migrate",
        "--from",
        &tasks_url,
        "--to",
        &to2,
        "--into-collection",
        "/tasks/",
        "--index",
        "status",
        "--index",
        "node",
        "--verify",
    ]);
    assert!(ok && out.contains("4500 read, 4500 written") && out.contains("verify: match"), "{out}{err}");
    let nodes_url = pg.url("?table=nodes");
    let (ok, out, err) = flaredb(&[
        "migrate",
        "--from",
        &nodes_url,
        "--to",
        &to2,
        "--into-collection",
        "/nodes/",
        "--unique-index",
        "hostname",
        "--index",
        "zone",
    ]);
    assert!(ok && out.contains("18 read, 18 written"), "{out}{err}");

    let client = c.client().namespace("sched2");
    let field = |f: &'static str| move |r: &Value| r.get(f).and_then(Value::as_str).map(str::to_owned);
    let tasks = Collection::<Value>::new(client.clone(), "/tasks/")
        .index(Index::non_unique("status", field("status")))
        .index(Index::non_unique("node", field("node")));
    assert_eq!(tasks.list_by("status", "queued").await.unwrap().len(), 500);
    assert_eq!(tasks.list_by("node", "n1").await.unwrap().len(), 375);
    let (rec, _) = tasks.get(id1).await.unwrap().unwrap();
    assert_eq!(rec["priority"], json!(1));
    let nodes = Collection::<Value>::new(client, "/nodes/")
        .index(Index::unique("hostname", field("hostname")))
        .index(Index::non_unique("zone", field("zone")));
    let (id, h3, _) = nodes.get_by("hostname", "h3").await.unwrap().unwrap();
    assert_eq!((id.as_str(), &h3["cpus"]), ("3", &json!(7.5)));
    assert_eq!(nodes.list_by("zone", "z0").await.unwrap().len(), 3);
    // The adapter keeps the migrated unique index: a second "h3" is refused.
    let dup = nodes.create("99", &json!({"hostname": "h3"})).await.unwrap_err();
    assert!(dup.to_string().contains("taken by record \"3\""), "{dup}");

    // Node descriptions keyed by another unique column land where the NodeRegistry reads them.
    let url = pg.url("?table=nodes&key=hostname");
    let (ok, out, err) = flaredb(&["migrate", "--from", &url, "--to", &to2, "--prefix", "/registry/info/"]);
    assert!(ok && out.contains("6 read, 6 written"), "{out}{err}");
    let registry = flaredb_client::adapters::NodeRegistry::new(c.client().namespace("sched2"), "/registry/");
    let listed = registry.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|n| (n.id.as_str(), n.online)).collect::<Vec<_>>()[..2],
        [("h1", false), ("h2", false)]
    );
    assert_eq!(listed.len(), 6);
}
