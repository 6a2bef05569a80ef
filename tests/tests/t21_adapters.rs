//! The service adapters against a real server: the `MetadataStore`
//! contract on FlareDB and, identically, on the in-memory store.

use std::sync::Arc;

use flaredb_client::adapters::{
    services::SERVICES, FlareDbMetadataStore, InMemoryMetadataStore, MetadataError, MetadataStore,
};
use flaredb_client::adapters::{
    Change, Collection, CollectionError, Index, Ledger, LedgerError, NodeRegistry, Presence, TaskError, TaskQueue,
    TaskStatus,
};
use flaredb_tests::{metadata_contract::contract, Cluster};
use futures::{StreamExt, TryStreamExt};

#[tokio::test]
async fn the_flaredb_store_keeps_the_contract_for_each_service() {
    let c = Cluster::start(1).await;
    for s in SERVICES {
        let store = FlareDbMetadataStore::for_service(c.client(), s.name).unwrap();
        contract(Arc::new(store), s.root).await;
    }
    // Each service's keys live in its own namespace.
    let names: Vec<String> = c.client().list_namespaces().await.unwrap().into_iter().map(|n| n.name).collect();
    for s in SERVICES {
        assert!(names.iter().any(|n| n == s.namespace), "{names:?}");
    }
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_same_contract() {
    contract(Arc::new(InMemoryMetadataStore::new()), "/fiberlb/").await;
}

#[tokio::test]
async fn keys_outside_the_root_and_unknown_services_are_refused() {
    let c = Cluster::start(1).await;
    let store = FlareDbMetadataStore::for_service(c.client(), "flashdns").unwrap();
    let e = store.put("/fiberlb/pools/web", b"{}").await.unwrap_err();
    assert!(matches!(&e, MetadataError::OutsideRoot { root, .. } if root == "/flashdns/"), "{e}");
    assert!(c.client().namespace("flashdns").scan_prefix("").await.unwrap().is_empty(), "nothing written");
    // A prefix above the root lists the service's keys.
    store.put("/flashdns/zones/a", b"{}").await.unwrap();
    assert_eq!(store.get_prefix("/").await.unwrap().len(), 1);
    let e = FlareDbMetadataStore::for_service(c.client(), "nope").err().unwrap();
    assert!(matches!(e, MetadataError::UnknownService(_)), "{e}");
}

/// An example program of `flaredb-client`, built by `cargo test --workspace`.
fn example(name: &str) -> std::path::PathBuf {
    let bin = flaredb_tests::server_bin().with_file_name("examples").join(name);
    assert!(bin.exists(), "{} not found: `cargo test --release --workspace` builds the examples", bin.display());
    bin
}

/// Runs example `name` against the node at `addr`; its stdout.
fn run_example(name: &str, addr: &str) -> String {
    let out =
        std::process::Command::new(example(name)).env("FLAREDB_ENDPOINTS", addr).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test]
async fn the_load_balancer_example_runs_against_a_real_server() {
    let c = Cluster::start(1).await;
    let stdout = run_example("lb_metadata", &c.addr(1));
    let lines: Vec<&str> = stdout.lines().map(|l| l.split(" version=").next().unwrap()).collect();
    assert_eq!(
        lines,
        ["/fiberlb/backends/web/10.0.0.1:80 weight=10", "/fiberlb/backends/web/10.0.0.2:80 weight=0"],
        "{stdout}"
    );
    // Its keys, in the service's namespace.
    let keys = c.client().namespace("fiberlb").scan_prefix("/fiberlb/").await.unwrap();
    assert_eq!(keys.len(), 3);
}

#[tokio::test]
async fn the_scheduler_orchestrator_and_ledger_examples_run_against_a_real_server() {
    let c = Cluster::start(1).await;
    let out = run_example("scheduler_collection", &c.addr(1));
    for line in [
        "web-1 is taken by c1",
        "db-1 is c3 on n3",
        "web: c1 web-1 on n3",
        "web: c2 web-2 on n2",
        "n1 runs 0 containers",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    let out = run_example("orchestrator_tasks", &c.addr(1));
    for line in [
        "2 tasks imported from the old store",
        "8 tasks done, each by one worker",
        "task-crash back from a dead worker, attempt 2",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("Some(Running) -> Queued (worker lost; requeued)"), "{out}");
    let out = run_example("graph_ledger", &c.addr(1));
    assert!(out.contains("compaction lock held by writer-a"), "{out}");
    // Both commits are in HEAD's history: HEAD -> (parent + x), parent -> (root + y).
    let graph = c.client().namespace("graph");
    let read = |key: bytes::Bytes| {
        let graph = graph.clone();
        async move { String::from_utf8_lossy(&graph.cas_get(key).await.unwrap().unwrap().value).into_owned() }
    };
    let head = read("/graph/HEAD".into()).await;
    let last = read(head.into()).await;
    let (parent, x) = last.rsplit_once('+').unwrap();
    let first = read(parent.to_owned().into()).await;
    let (root, y) = first.rsplit_once('+').unwrap();
    let mut changes = [x, y];
    changes.sort();
    assert_eq!((root, changes), ("root", ["a", "b"]), "{last} / {first}");
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Container {
    name: String,
    service: String,
    node: String,
}

fn container(name: &str, service: &str, node: &str) -> Container {
    Container { name: name.into(), service: service.into(), node: node.into() }
}

fn containers(client: flaredb_client::RdbClient) -> Collection<Container> {
    Collection::new(client.namespace("scheduler"), "/containers/")
        .index(Index::unique("name", |c: &Container| Some(c.name.clone())))
        .index(Index::non_unique("service", |c: &Container| Some(c.service.clone())))
        .index(Index::non_unique("node", |c: &Container| Some(c.node.clone())))
}

fn ids(found: Vec<(String, Container, u64)>) -> Vec<String> {
    found.into_iter().map(|(id, _, _)| id).collect()
}

#[tokio::test]
async fn a_collection_keeps_its_indexes_with_its_records() {
    let c = Cluster::start(1).await;
    let col = containers(c.client());
    let mut changes = Box::pin(col.watch(1));
    let v1 = col.create("c1", &container("web-1", "web", "n1")).await.unwrap();
    col.create("c2", &container("web-2", "web", "n2")).await.unwrap();
    col.create("c3", &container("db-1", "db", "n1")).await.unwrap();
    col.create("c4", &container("x", "web/extra", "n3")).await.unwrap();

    // Creates: only if absent, and a unique value only once.
    let e = col.create("c1", &container("other", "web", "n1")).await.unwrap_err();
    assert!(matches!(e, CollectionError::AlreadyExists(ref id) if id == "c1"), "{e}");
    let e = col.create("c9", &container("web-1", "web", "n9")).await.unwrap_err();
    assert!(
        matches!(&e, CollectionError::Duplicate { index, value, holder } if index == "name" && value == "web-1" && holder == "c1"),
        "{e}"
    );
    assert!(col.get("c9").await.unwrap().is_none(), "a refused create wrote nothing");

    // Lookups by index; "web/extra" is not under "web".
    let (id, rec, v) = col.get_by("name", "web-1").await.unwrap().unwrap();
    assert_eq!((id.as_str(), rec.node.as_str(), v), ("c1", "n1", v1));
    assert_eq!(ids(col.list_by("service", "web").await.unwrap()), ["c1", "c2"]);
    assert_eq!(ids(col.list_by("node", "n1").await.unwrap()), ["c1", "c3"]);
    assert_eq!(ids(col.list_by("service", "web/extra").await.unwrap()), ["c4"]);
    assert!(matches!(col.list_by("colour", "red").await, Err(CollectionError::UnknownIndex(_))));

    // An update moves the record's index entries, and frees its old unique value.
    let v2 = col.update("c1", &container("web-1b", "web", "n2"), v1).await.unwrap();
    assert_eq!(ids(col.list_by("node", "n1").await.unwrap()), ["c3"]);
    assert_eq!(ids(col.list_by("node", "n2").await.unwrap()), ["c1", "c2"]);
    assert!(col.get_by("name", "web-1").await.unwrap().is_none());
    let e = col.update("c1", &container("web-1c", "web", "n2"), v1).await.unwrap_err();
    assert!(matches!(e, CollectionError::Conflict { expected, current, .. } if expected == v1 && current == v2), "{e}");
    let e = col.update("c2", &container("db-1", "web", "n2"), col.get("c2").await.unwrap().unwrap().1).await;
    assert!(matches!(e, Err(CollectionError::Duplicate { .. })), "{e:?}");
    col.create("c5", &container("web-1", "web", "n5")).await.expect("the old name is free again");

    // Delete takes the index entries with it; upsert creates or replaces.
    col.delete("c3", col.get("c3").await.unwrap().unwrap().1).await.unwrap();
    assert!(col.get_by("name", "db-1").await.unwrap().is_none());
    assert_eq!(ids(col.list_by("service", "db").await.unwrap()), Vec::<String>::new());
    col.upsert("c3", &container("db-2", "db", "n1")).await.unwrap();
    col.upsert("c3", &container("db-3", "db", "n1")).await.unwrap();
    assert_eq!(col.get_by("name", "db-3").await.unwrap().unwrap().0, "c3");
    assert!(col.get_by("name", "db-2").await.unwrap().is_none());

    let all: Vec<String> = col.list().map_ok(|(id, _, _)| id).try_collect().await.unwrap();
    assert_eq!(all, ["c1", "c2", "c3", "c4", "c5"]);
    // Index entries are not records: the raw namespace holds exactly one
    // entry per index value in use.
    let raw = c.client().namespace("scheduler").scan_prefix("/containers/u/").await.unwrap();
    assert_eq!(raw.len(), 5);

    // The watch saw the records' changes, not the index keys'.
    let mut seen = Vec::new();
    while seen.len() < 9 {
        match changes.next().await.unwrap().unwrap() {
            Change::Put { id, .. } => seen.push(format!("put {id}")),
            Change::Delete { id, .. } => seen.push(format!("delete {id}")),
        }
    }
    assert_eq!(seen, ["put c1", "put c2", "put c3", "put c4", "put c1", "put c5", "delete c3", "put c3", "put c3"]);
}

#[tokio::test]
async fn concurrent_creates_of_one_unique_value_leave_exactly_one() {
    let c = Cluster::start(1).await;
    let col = containers(c.client());
    let racers = (0..8).map(|i| {
        let col = col.clone();
        tokio::spawn(async move { col.create(&format!("r{i}"), &container("only", "svc", "n")).await })
    });
    let (mut won, mut duplicate) = (0, 0);
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(CollectionError::Duplicate { .. }) => duplicate += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((won, duplicate), (1, 7));
    assert_eq!(col.list_by("service", "svc").await.unwrap().len(), 1, "no index entry of a loser");
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_shows_offline_and_its_keys_vanish() {
    let c = Cluster::start(1).await;
    let reg = NodeRegistry::new(c.client().namespace("orchestrator"), "/nodes/");
    let mut presence = Box::pin(reg.watch(1));
    let n1 = reg.register("n1", &serde_json::json!({"addr": "10.0.0.1"}), 2).await.unwrap();
    let n2 = reg.register("n2", &serde_json::json!({"addr": "10.0.0.2"}), 2).await.unwrap();
    // A key the node attaches to its heartbeat lease vanishes with it.
    let ns = c.client().namespace("orchestrator");
    ns.cas_put_with_lease("/claims/n1", "task-7", 0, n1.lease().id()).await.unwrap();
    let online =
        |l: Vec<flaredb_client::adapters::NodeEntry>| l.into_iter().map(|n| (n.id, n.online)).collect::<Vec<_>>();
    assert_eq!(online(reg.list().await.unwrap()), [("n1".into(), true), ("n2".into(), true)]);

    drop(n1); // the process dies: no more heartbeats, and nobody sweeps
    flaredb_tests::wait_until("n1 offline", flaredb_tests::DEADLINE, || async {
        (online(reg.list().await.ok()?) == [("n1".to_string(), false), ("n2".to_string(), true)]).then_some(())
    })
    .await;
    assert!(ns.cas_get("/claims/n1").await.unwrap().is_none());
    let n1_info = reg.list().await.unwrap().remove(0).info;
    assert_eq!(&n1_info[..], br#"{"addr":"10.0.0.1"}"#, "its description is kept");

    n2.deregister().await.unwrap();
    assert_eq!(online(reg.list().await.unwrap()), [("n1".into(), false), ("n2".into(), false)]);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(
            match tokio::time::timeout(flaredb_tests::DEADLINE, presence.next()).await.unwrap().unwrap().unwrap() {
                Presence::Online { id, .. } => format!("{id} online"),
                Presence::Offline { id, .. } => format!("{id} offline"),
            },
        );
    }
    assert_eq!(seen, ["n1 online", "n2 online", "n1 offline", "n2 offline"]);
    reg.forget("n1").await.unwrap();
    assert_eq!(online(reg.list().await.unwrap()), [("n2".into(), false)]);
}

#[tokio::test]
async fn two_ledger_writers_race_and_exactly_one_wins() {
    let c = Cluster::start(1).await;
    let ledger = Ledger::new(c.client().namespace("graph"));
    let v0 = ledger.put_if_absent("/graph/HEAD", "commit-0").await.unwrap();
    let e = ledger.put_if_absent("/graph/HEAD", "again").await.unwrap_err();
    assert!(matches!(e, LedgerError::Conflict { current, .. } if current == v0), "{e}");
    // Both read HEAD at v0 and try to move it: one wins, the other learns the new version.
    let (a, b) = (ledger.clone(), Ledger::new(c.client().namespace("graph")));
    let (ra, rb) =
        tokio::join!(a.put_if_version("/graph/HEAD", "commit-a", v0), b.put_if_version("/graph/HEAD", "commit-b", v0));
    let (won, lost) = match (ra, rb) {
        (Ok(v), Err(e)) | (Err(e), Ok(v)) => (v, e),
        other => panic!("expected exactly one winner: {other:?}"),
    };
    assert!(matches!(lost, LedgerError::Conflict { expected, current, .. } if expected == v0 && current == won));
    assert_eq!(ledger.get("/graph/HEAD").await.unwrap().unwrap().version, won);

    // Content-addressed puts are idempotent.
    let (k1, v1) = ledger.put_content("/graph/objects/", "tree 1").await.unwrap();
    assert_eq!(ledger.put_content("/graph/objects/", "tree 1").await.unwrap(), (k1.clone(), v1));
    let (k2, _) = ledger.put_content("/graph/objects/", "tree 2").await.unwrap();
    assert!(k1.starts_with("/graph/objects/") && k1.len() == "/graph/objects/".len() + 64 && k1 != k2);
    assert_eq!(ledger.list("/graph/objects/").await.unwrap().len(), 2);
    assert_eq!(ledger.delete_prefix("/graph/objects/").await.unwrap(), 2);
    assert!(ledger.list("/graph/objects/").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_ledger_lock_has_a_holder_breaks_after_its_ttl_and_can_be_forced() {
    let c = Cluster::start(1).await;
    let (a, b) = (Ledger::new(c.client().namespace("graph")), Ledger::new(c.client().namespace("graph")));
    let held = a.try_lock("write", "writer-a", 2).await.unwrap();
    let e = b.try_lock("write", "writer-b", 2).await.err().unwrap();
    assert!(matches!(&e, LedgerError::Locked { holder, .. } if holder == "writer-a"), "{e}");
    let e = b.force_unlock("write", "writer-b").await.unwrap_err();
    assert!(matches!(e, LedgerError::NotHolder { .. }), "{e}");
    // An operator breaks a stuck holder's lock.
    b.force_unlock("write", "writer-a").await.unwrap();
    assert_eq!(a.lock_holder("write").await.unwrap(), None);
    let b_lock = b.try_lock("write", "writer-b", 2).await.unwrap();
    assert_eq!(a.lock_holder("write").await.unwrap().as_deref(), Some("writer-b"));
    drop(held);
    // writer-b dies holding it: the TTL breaks it.
    drop(b_lock);
    let a2 = flaredb_tests::wait_until("the dead holder's lock broke", flaredb_tests::DEADLINE, || async {
        a.try_lock("write", "writer-a", 2).await.ok()
    })
    .await;
    assert_eq!(a2.holder(), "writer-a");
    a2.unlock().await.unwrap();
    assert_eq!(a.lock_holder("write").await.unwrap(), None);
}

#[tokio::test]
async fn the_task_queue_hands_each_task_to_one_worker_in_priority_order() {
    let c = Cluster::start(1).await;
    let q = TaskQueue::new(c.client().namespace("orchestrator"), "/tasks/");
    for (id, prio) in [("a", 1), ("b", 5), ("c", 5), ("d", 1)] {
        q.enqueue(id, serde_json::json!({"job": id}), prio).await.unwrap();
    }
    assert!(matches!(q.enqueue("a", serde_json::json!({}), 1).await, Err(TaskError::AlreadyExists(_))));
    let w = q.worker("w0", 10).await.unwrap();
    let mut order = Vec::new();
    while let Some(t) = q.claim_next(&w).await.unwrap() {
        assert_eq!((t.status, t.worker.as_deref(), t.attempts), (TaskStatus::Running, Some("w0"), 1));
        order.push(t.id);
    }
    assert_eq!(order, ["b", "c", "a", "d"], "higher priority first, then first in");

    // Racing workers: every task claimed exactly once.
    for i in 0..24 {
        q.enqueue(&format!("r{i:02}"), serde_json::json!(i), 0).await.unwrap();
    }
    let mut racers = Vec::new();
    for n in 0..4 {
        let (q, w) = (q.clone(), q.worker(&format!("racer{n}"), 10).await.unwrap());
        racers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = q.claim_next(&w).await.unwrap() {
                got.push(t.id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for r in racers {
        claimed.extend(r.await.unwrap());
    }
    claimed.sort();
    let expected: Vec<String> = (0..24).map(|i| format!("r{i:02}")).collect();
    assert_eq!(claimed, expected, "each task once, none lost");
}

#[tokio::test]
async fn a_dead_workers_task_returns_to_the_queue_and_transitions_are_audited() {
    let c = Cluster::start(1).await;
    let q = TaskQueue::new(c.client().namespace("orchestrator"), "/tasks/");
    let mut events = Box::pin(q.watch(1));
    q.enqueue("t1", serde_json::json!({"image": "nginx"}), 0).await.unwrap();
    let w1 = q.worker("w1", 2).await.unwrap();
    let w2 = q.worker("w2", 10).await.unwrap();
    assert_eq!(q.claim_next(&w1).await.unwrap().unwrap().id, "t1");
    assert!(q.claim_next(&w2).await.unwrap().is_none(), "claimed tasks are not handed out twice");
    let e = q.finish(&w2, "t1", true, "not mine").await.unwrap_err();
    assert!(matches!(e, TaskError::NotClaimed { .. }), "{e}");

    drop(w1); // dies: its heartbeat lease runs out, and w2's next claim picks the task up
    let t = flaredb_tests::wait_until("t1 back to a live worker", flaredb_tests::DEADLINE, || async {
        q.claim_next(&w2).await.ok()?
    })
    .await;
    assert_eq!((t.id.as_str(), t.worker.as_deref(), t.attempts), ("t1", Some("w2"), 2));
    let e = q.cancel("t1").await.unwrap_err();
    assert!(
        matches!(e, TaskError::InvalidTransition { from: TaskStatus::Running, to: TaskStatus::Cancelled, .. }),
        "{e}"
    );
    q.finish(&w2, "t1", false, "exit 1").await.unwrap();
    q.retry("t1").await.unwrap();
    q.cancel("t1").await.unwrap();
    assert_eq!(q.get("t1").await.unwrap().unwrap().0.status, TaskStatus::Cancelled);

    let steps: Vec<(Option<TaskStatus>, TaskStatus, String)> =
        q.history("t1").await.unwrap().into_iter().map(|t| (t.from, t.to, t.note)).collect();
    use TaskStatus::*;
    assert_eq!(
        steps,
        [
            (None, Queued, "enqueued".to_string()),
            (Some(Queued), Running, "claimed".into()),
            (Some(Running), Queued, "worker lost; requeued".into()),
            (Some(Queued), Running, "claimed".into()),
            (Some(Running), Failed, "exit 1".into()),
            (Some(Failed), Queued, "retried".into()),
            (Some(Queued), Cancelled, "cancelled".into()),
        ]
    );
    let mut seen = Vec::new();
    while seen.len() < 7 {
        seen.push(events.next().await.unwrap().unwrap().0.status);
    }
    assert_eq!(seen, [Queued, Running, Queued, Running, Failed, Queued, Cancelled]);
    assert_eq!(q.list().await.unwrap().len(), 1);
}
