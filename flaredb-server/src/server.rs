//! Assembles a node and its gRPC servers: the public listener (client API,
//! health, reflection, and the Raft transport unless `--peer-listen` gives it
//! its own listener); stops on a signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use flaredb_raft::node::{FlareNode, NodeConfig};
use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::server::TcpIncoming};

use crate::{config::Config, forward::Forwarder, routes, service::ctx::Ctx, size_limit};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open node: {0}")]
    Open(#[from] flaredb_raft::OpenError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr, source })
}

/// Runs the node until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    // Bind first: a port in use fails before the data dir is touched.
    let public_listener = bind(cfg.listen).await?;
    let peer_listener = match cfg.peer_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let node = FlareNode::open(NodeConfig {
        id: cfg.id,
        addr: cfg.listen.to_string(),
        data_dir: cfg.data_dir.clone(),
        initial_cluster: cfg.initial_cluster.clone(),
        initial_cluster_explicit: cfg.initial_cluster_explicit,
        heartbeat_ms: cfg.heartbeat_ms,
        election_timeout_ms: cfg.election_timeout_ms,
        snapshot_logs_since_last: cfg.snapshot_logs_since_last,
        snapshot_log_bytes_since_last: cfg.snapshot_log_bytes_since_last,
        max_logs_to_keep: cfg.max_logs_to_keep,
        join: cfg.join.is_some(),
        fault_injection: cfg.fault_injection,
        history: cfg.watch.history,
        watch_limits: cfg.watch.limits,
    })
    .await?;
    let ctx = Arc::new(Ctx {
        node: node.clone(),
        limits: cfg.limits,
        auto_create: cfg.auto_create_namespaces,
        timeout: Duration::from_millis(cfg.request_timeout_ms),
        // Detection (~2.25 timeouts), a second round if the first is refused,
        // and room for a loaded machine.
        leader_wait: Duration::from_millis(cfg.election_timeout_ms * 10)
            .min(Duration::from_millis(cfg.request_timeout_ms)),
        fwd: Forwarder::default(),
        watch_progress_ms: cfg.watch.progress_ms,
    });
    tracing::info!(addr = %cfg.listen, peer_addr = ?cfg.peer_listen, data_dir = %cfg.data_dir.display(), "serving");
    // A leader hands over before the listeners close, so its peers and
    // clients can still reach it while the next leader takes over.
    let leaving = node.clone();
    let shutdown = async move {
        shutdown.await;
        hand_over(&leaving).await;
        // Open watch streams would hold the graceful shutdown open.
        leaving.end_watches();
    }
    .boxed()
    .shared();
    let public = routes::public(ctx, peer_listener.is_none()).await?;
    let served = match peer_listener {
        None => serve(cfg.id, public, public_listener, shutdown).await,
        Some(peer_listener) => {
            let peer = routes::peer(node.clone());
            tokio::try_join!(
                serve(cfg.id, public, public_listener, shutdown.clone()),
                serve(cfg.id, peer, peer_listener, shutdown),
            )
            .map(|_| ())
        }
    };
    node.shutdown().await;
    served?;
    Ok(())
}

/// How long a leader on its way out waits for a voter to take over.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(2);

/// On a planned stop (SIGTERM), a leader hands leadership to its most
/// caught-up voter and waits, bounded, until it has taken over: clients see
/// one leader change without an election timeout. Then it waits until the
/// writes it accepted as leader are committed by the next one and applied
/// here, so their callers get answers before the listeners close (a peer
/// cannot open new streams to a server that is shutting down, so this node
/// would never learn they committed). A follower just stops.
async fn hand_over(node: &FlareNode) {
    if !node.raft().is_leader() {
        return;
    }
    let start = std::time::Instant::now();
    match node.step_down(HAND_OVER_TIMEOUT).await {
        Ok(()) => {
            let answered = node.wait_own_log_applied(HAND_OVER_TIMEOUT).await;
            tracing::info!(to = ?node.leader(), answered, elapsed = ?start.elapsed(), "handed leadership over before stopping")
        }
        Err(flaredb_raft::NodeError::Precondition(why)) => tracing::info!(%why, "no hand-over before stopping"),
        Err(e) => {
            tracing::warn!(error = %e, elapsed = ?start.elapsed(), "hand-over before stopping failed; stopping anyway")
        }
    }
}

/// Serves `routes` on `listener` until `shutdown`.
async fn serve(
    id: u64,
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(30)));
    tonic::transport::Server::builder()
        // A client that vanished without closing (power loss, a cut network)
        // would hold its watch and keep-alive streams open forever; HTTP/2
        // pings find it within a minute.
        .http2_keepalive_interval(Some(HTTP2_PING_EVERY))
        .http2_keepalive_timeout(Some(HTTP2_PING_TIMEOUT))
        .trace_fn(move |req| tracing::info_span!("rpc", node = id, path = %req.uri().path()))
        .layer(size_limit::layer())
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

const HTTP2_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
const HTTP2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
