//! Polling a condition with a deadline: the only synchronisation tests use.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Long enough for elections and catch-up on a loaded 2-core CI machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it yields `Some`, panicking with `what` at the deadline.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
