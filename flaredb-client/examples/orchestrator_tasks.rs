//! An orchestrator's tasks on `TaskQueue`: what a file-based task store
//! (`data/queue.rkvs/{tasks,queue}/<uuid>.json`) becomes. Two workers race
//! for tasks; each is handed to exactly one; a worker that dies gives its
//! task back to the queue when its heartbeat lease runs out.
//!
//! ```sh
//! FLAREDB_ENDPOINTS=127.0.0.1:2479 cargo run --release --example orchestrator_tasks
//! ```

use std::error::Error;

use flaredb_client::{adapters::TaskQueue, RdbClient};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let endpoints = std::env::var("FLAREDB_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:2479".into());
    let client = RdbClient::connect(endpoints.split(','))?;
    let queue = TaskQueue::new(client.namespace("orchestrator"), "/tasks/");

    // The old store's directory moves in first (what `flaredb migrate --as
    // task-queue` does): here a stand-in with two queued tasks.
    let old = std::env::temp_dir().join(format!("queue.rkvs-{}", std::process::id()));
    for dir in ["tasks", "queue"] {
        std::fs::create_dir_all(old.join(dir))?;
    }
    for id in ["0b9e2f44", "7c1d0a53"] {
        std::fs::write(old.join("tasks").join(format!("{id}.json")), r#"{"image":"redis","priority":2}"#)?;
        std::fs::write(old.join("queue").join(format!("{id}.json")), "{}")?;
    }
    let imported = flaredb_client::migrate::task_dir::import(&old, &queue, Default::default(), false).await?;
    std::fs::remove_dir_all(&old)?;
    println!("{} tasks imported from the old store", imported.written);

    for i in 0..6 {
        queue
            .enqueue(&format!("task-{i}"), json!({"image": "nginx", "replica": i}), if i == 5 { 9 } else { 1 })
            .await?;
    }

    // Two workers drain the queue concurrently; each task goes to one of them.
    let mut handles = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let queue = queue.clone();
        let worker = queue.worker(name, 10).await?;
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while let Some(task) = queue.claim_next(&worker).await? {
                queue.finish(&worker, &task.id, true, "exit 0").await?;
                done.push(task.id);
            }
            Ok::<_, flaredb_client::adapters::TaskError>(done)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await??.len();
    }
    println!("{total} tasks done, each by one worker");
    if total != 8 {
        return Err(format!("expected 8 tasks done, got {total}").into());
    }

    // A worker that dies holding a task: the task comes back after its TTL (2 s).
    queue.enqueue("task-crash", json!({"image": "flaky"}), 0).await?;
    let doomed = queue.worker("worker-c", 2).await?;
    let task = queue.claim_next(&doomed).await?.ok_or("no task")?;
    drop(doomed);
    let survivor = queue.worker("worker-d", 10).await?;
    let again = loop {
        if let Some(t) = queue.claim_next(&survivor).await? {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    println!("{} back from a dead worker, attempt {}", again.id, again.attempts);
    queue.finish(&survivor, &task.id, true, "exit 0").await?;
    for t in queue.history(&task.id).await? {
        println!("  {:?} -> {:?} ({})", t.from, t.to, t.note);
    }
    Ok(())
}
