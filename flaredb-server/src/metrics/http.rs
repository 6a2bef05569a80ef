//! `GET /metrics` (Prometheus text format) on the metrics address.

use std::sync::Arc;

use axum::{routing::get, Router};
use flaredb_raft::node::FlareNode;
use futures::Future;

use super::Metrics;

/// Serves until `shutdown`; binding happens before (a port in use fails the start).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    node: Arc<FlareNode>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, node) = (metrics.clone(), node.clone());
            async move { ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render(&node)) }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
