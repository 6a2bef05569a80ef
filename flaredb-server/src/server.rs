//! Assembles a node and its gRPC server: public services, the internal Raft
//! service, health and reflection, on one listener; stops on a signal.

use std::{future::Future, sync::Arc, time::Duration};

use flaredb_proto::{
    raft::raft_server::RaftServer,
    testing::faults_server::FaultsServer,
    v1::{admin_server::AdminServer, kv_cas_server::KvCasServer, kv_raw_server::KvRawServer},
    FILE_DESCRIPTOR_SET,
};
use flaredb_raft::{
    network::MAX_RAFT_MESSAGE_BYTES,
    node::{FlareNode, NodeConfig},
};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::{
    config::Config,
    forward::Forwarder,
    service::{
        admin::AdminService, ctx::Ctx, faults::FaultsService, kv_cas::KvCasService, kv_raw::KvRawService,
        raft::RaftService,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot open node: {0}")]
    Open(#[from] flaredb_raft::OpenError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Runs the node until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
    // Bind first: a port in use fails before the data dir is touched.
    let listener =
        TcpListener::bind(cfg.listen).await.map_err(|source| ServeError::Listen { addr: cfg.listen, source })?;
    let node = FlareNode::open(NodeConfig {
        id: cfg.id,
        addr: cfg.listen.to_string(),
        data_dir: cfg.data_dir.clone(),
        initial_cluster: cfg.initial_cluster.clone(),
        initial_cluster_explicit: cfg.initial_cluster_explicit,
        heartbeat_ms: cfg.heartbeat_ms,
        election_timeout_ms: cfg.election_timeout_ms,
        snapshot_logs_since_last: cfg.snapshot_logs_since_last,
        max_logs_to_keep: cfg.max_logs_to_keep,
        join: cfg.join.is_some(),
        fault_injection: cfg.fault_injection,
    })
    .await?;
    let ctx = Arc::new(Ctx {
        node: node.clone(),
        limits: cfg.limits,
        auto_create: cfg.auto_create_namespaces,
        timeout: Duration::from_millis(cfg.request_timeout_ms),
        fwd: Forwarder::default(),
    });
    let max_msg = cfg.limits.max_message_bytes;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<KvCasServer<KvCasService>>().await;
    health.set_serving::<KvRawServer<KvRawService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let id = cfg.id;
    tracing::info!(addr = %cfg.listen, data_dir = %cfg.data_dir.display(), "serving");
    let faults = node.faults().cloned().map(|f| FaultsServer::new(FaultsService { faults: f }));
    if faults.is_some() {
        tracing::warn!("fault injection is enabled: Raft links can be cut over gRPC (tests only)");
    }
    let served = tonic::transport::Server::builder()
        .trace_fn(move |req| tracing::info_span!("rpc", node = id, path = %req.uri().path()))
        .add_service(health_service)
        .add_optional_service(faults)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            KvCasServer::new(KvCasService { ctx: ctx.clone() })
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        )
        .add_service(
            KvRawServer::new(KvRawService { ctx: ctx.clone() })
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        )
        .add_service(
            AdminServer::new(AdminService { ctx: ctx.clone() })
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        )
        .add_service(
            RaftServer::new(RaftService { node: node.clone() })
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(30))),
            shutdown,
        )
        .await;
    node.shutdown().await;
    served?;
    Ok(())
}

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
