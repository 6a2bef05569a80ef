//! Assembles a node and its gRPC servers: the public listener (client API,
//! health, reflection, and the Raft transport unless `--peer-listen` gives it
//! its own listener); stops on a signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use flaredb_raft::node::{FlareNode, NodeConfig};
use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::server::{Connected, TcpIncoming},
};

use crate::{
    config::Config,
    forward::Forwarder,
    metrics::{self, Metrics, RpcMetricsLayer},
    rate_limit::RateLimitLayer,
    routes,
    service::ctx::Ctx,
    size_limit,
    tls::{self, Reloading, TlsError},
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open node: {0}")]
    Open(#[from] flaredb_raft::OpenError),
    #[error(
        "auth is enabled but the Raft transport on {0} is reachable off loopback without peer TLS: anyone who \
         reaches it could bypass auth. Serve Raft with --peer-listen, --peer-cert, --peer-key and \
         --peer-trusted-ca, or set allow_auth_without_peer_tls = true in the config file to accept the risk"
    )]
    RaftExposed(SocketAddr),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
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
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    // Certificates are read before anything else: a bad file stops the start.
    let public_tls = cfg.tls.public.clone().map(|f| Reloading::new(f, "public")).transpose()?;
    let peer_tls = cfg.tls.peer.clone().map(|f| Reloading::new(f, "peer")).transpose()?;
    let peer_client_tls = peer_tls.as_ref().map(|t| tls::client_config(t.files())).transpose()?;
    let forward_tls = public_tls.as_ref().map(|t| tls::client_config(t.files())).transpose()?;
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
        peer_tls: peer_client_tls,
    })
    .await?;
    if cfg.log_json {
        record_term(&node);
    }
    warn_if_exposed(&cfg);
    let fwd = Forwarder::new(forward_tls);
    let corruption =
        crate::corruption::start(node.clone(), fwd.clone(), Duration::from_millis(cfg.corruption_check_ms));
    let ctx = Arc::new(Ctx {
        node: node.clone(),
        limits: cfg.limits,
        auto_create: cfg.auto_create_namespaces,
        timeout: Duration::from_millis(cfg.request_timeout_ms),
        // Detection (~2.25 timeouts), a second round if the first is refused,
        // and room for a loaded machine.
        leader_wait: Duration::from_millis(cfg.election_timeout_ms * 10)
            .min(Duration::from_millis(cfg.request_timeout_ms)),
        fwd,
        corruption,
        watch_progress_ms: cfg.watch.progress_ms,
        disk: crate::disk_guard::DiskGuard::start(cfg.data_dir.clone(), cfg.min_free_disk_bytes),
        // Certificates name users only where the operator asked for client
        // certificates (--client-cert-auth): --trusted-ca alone is also what
        // forwarding needs, and must not make every certificate of that CA a login.
        gate: crate::auth::gate::Gate::new(
            node.clone(),
            cfg.tls.public.as_ref().is_some_and(|t| t.require_client_cert),
        ),
        token_ttl: Duration::from_secs(cfg.auth_token_ttl_secs),
        raft_exposed: cfg.raft_exposed().filter(|_| !cfg.allow_auth_without_peer_tls),
    });
    if let (Some(addr), true, false) = (cfg.raft_exposed(), node.auth().enabled, cfg.allow_auth_without_peer_tls) {
        // Serving would let anyone who reaches the Raft port bypass auth.
        node.shutdown().await;
        return Err(ServeError::RaftExposed(addr));
    }
    tracing::info!(addr = %cfg.listen, peer_addr = ?cfg.peer_listen, data_dir = %cfg.data_dir.display(), "serving");
    // A leader hands over before the listeners close, so its peers and
    // clients can still reach it while the next leader takes over.
    let leaving = node.clone();
    let shutdown = async move {
        shutdown.await;
        hand_over(&leaving).await;
        // Open watch and replication streams would hold the graceful shutdown open.
        leaving.end_streams();
    }
    .boxed()
    .shared();
    let (renew_node, renew_fwd) = (node.clone(), ctx.fwd.clone());
    tls::watch(public_tls.iter().chain(&peer_tls).cloned().collect(), move |l| {
        // What this node shows when it dials is renewed with what it serves.
        match tls::client_config(l.files()) {
            Ok(c) if l.is_peer() => renew_node.set_peer_tls(c),
            Ok(c) => renew_fwd.set_tls(c),
            Err(e) => tracing::error!(error = %e, "renewed certificate not usable for dialing"),
        }
    });
    let metrics = Metrics::new(cfg.id);
    metrics.follow_raft(node.clone());
    metrics.watch_alarm(ctx.corruption.clone());
    if let Some(listener) = metrics_listener {
        let (m, n, stop) = (metrics.clone(), node.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, m, n, stop).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    let layer = RpcMetricsLayer(metrics);
    let clients = Limits {
        metrics: layer.clone(),
        requests: Some(cfg.max_requests_per_connection),
        streams: Some(cfg.max_streams_per_connection),
        rate: RateLimitLayer::new(cfg.max_requests_per_sec_per_connection),
    };
    let public = routes::public(ctx, peer_listener.is_none()).await?;
    let served = match peer_listener {
        None => serve(&node, public, public_listener, public_tls, clients, shutdown).await,
        Some(peer_listener) => {
            let peer = routes::peer(node.clone());
            // Raft between peers is not a client: one connection carries every replication stream.
            let peers = Limits { metrics: layer, requests: None, streams: None, rate: RateLimitLayer::default() };
            tokio::try_join!(
                serve(&node, public, public_listener, public_tls, clients, shutdown.clone()),
                serve(&node, peer, peer_listener, peer_tls, peers, shutdown),
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

/// Keeps the node span's `term` at the current term, so that every JSON
/// line, Raft's own included, names the term it was logged in. JSON only:
/// a JSON span's fields are replaced when recorded, a text span's would
/// pile up (`term=1 term=2 ...`).
fn record_term(node: &Arc<FlareNode>) {
    use openraft::async_runtime::WatchReceiver;
    let span = tracing::Span::current();
    let mut metrics = node.raft().metrics();
    // Recorded before this returns: the lines that follow have it.
    let mut recorded = metrics.borrow_watched().current_term;
    span.record("term", recorded);
    tokio::spawn(async move {
        loop {
            let term = metrics.borrow_watched().current_term;
            if recorded != term {
                span.record("term", term);
                recorded = term;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Anyone who can reach an address without TLS can use it; for the Raft
/// transport that means deposing the leader or writing into a replica.
fn warn_if_exposed(cfg: &Config) {
    if let Some(raft_addr) = cfg.raft_exposed() {
        tracing::warn!(
            addr = %raft_addr,
            "INSECURE: the Raft transport listens on a non-loopback address without peer TLS: anyone who can \
             reach it can depose the leader or write into this replica; use --peer-listen with --peer-cert, \
             --peer-key and --peer-trusted-ca"
        );
    }
    if !cfg.listen.ip().is_loopback() && cfg.tls.public.is_none() {
        tracing::warn!(addr = %cfg.listen, "the public address is not loopback and has no TLS (--cert, --key): traffic is in clear text");
    }
}

/// What one listener counts and limits, per client connection.
struct Limits {
    metrics: RpcMetricsLayer,
    /// Requests in progress (more wait their turn).
    requests: Option<usize>,
    /// Open HTTP/2 streams (watches and keep-alives included).
    streams: Option<u32>,
    rate: RateLimitLayer,
}

/// Serves `routes` on `listener` (over TLS with `tls`) until `shutdown`.
async fn serve(
    node: &Arc<FlareNode>,
    routes: Routes,
    listener: TcpListener,
    tls: Option<Reloading>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    match tls {
        Some(tls) => serve_on(node.clone(), routes, tls::incoming(listener, tls), limits, shutdown).await,
        None => {
            let incoming =
                TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(30)));
            serve_on(node.clone(), routes, incoming, limits, shutdown).await
        }
    }
}

async fn serve_on<I, IO, IE>(
    node: Arc<FlareNode>,
    routes: Routes,
    incoming: I,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut server = tonic::transport::Server::builder();
    // No limit at all rather than a huge one: tokio's semaphore refuses more
    // than usize::MAX >> 3 permits (by panicking, per connection).
    if let Some(n) = limits.requests {
        server = server.concurrency_limit_per_connection(n);
    }
    server
        // A client that vanished without closing (power loss, a cut network)
        // would hold its watch and keep-alive streams open forever; HTTP/2
        // pings find it within a minute.
        .http2_keepalive_interval(Some(HTTP2_PING_EVERY))
        .http2_keepalive_timeout(Some(HTTP2_PING_TIMEOUT))
        // Error level so that the span exists under the default `warn`
        // filter: a warning inside a request then names its node and RPC.
        // The term the request arrived in, so a log line names the leadership it happened under.
        .trace_fn(move |req| {
            let term = node.current_term();
            tracing::error_span!("rpc", node = node.id(), term, path = %req.uri().path())
        })
        .layer(size_limit::layer())
        .max_concurrent_streams(limits.streams)
        .layer(limits.metrics)
        .layer(limits.rate)
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
