//! Which gRPC services each listener serves. The public address serves the
//! client API (KvCas, KvRaw, Admin, Auth), health and reflection, plus the Raft
//! transport when no `--peer-listen` address is given. Reflection describes
//! only what clients may call: never the Raft transport, and the test-only
//! Faults service only on nodes started with fault injection.

use std::sync::Arc;

use flaredb_proto::{
    raft::raft_server::RaftServer,
    testing::faults_server::FaultsServer,
    v1::{admin_server::AdminServer, auth_server::AuthServer, kv_cas_server::KvCasServer, kv_raw_server::KvRawServer},
    PUBLIC_FILE_DESCRIPTOR_SET, TESTING_FILE_DESCRIPTOR_SET,
};
use flaredb_raft::{network::MAX_RAFT_MESSAGE_BYTES, node::FlareNode};
use tonic::service::Routes;

use crate::service::{
    admin::AdminService, auth::AuthService, ctx::Ctx, faults::FaultsService, kv_cas::KvCasService,
    kv_raw::KvRawService, raft::RaftService,
};

/// The public listener's services. `with_raft`: also the Raft transport
/// (when peers use the public address). Health turns NOT_SERVING, for the
/// whole server and each service, when this node's storage fails.
pub async fn public(ctx: Arc<Ctx>, with_raft: bool) -> Result<Routes, tonic_reflection::server::Error> {
    let node = ctx.node.clone();
    let max_msg = ctx.limits.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<KvCasServer<KvCasService>>().await;
    health.set_serving::<KvRawServer<KvRawService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    health.set_serving::<AuthServer<AuthService>>().await;
    report_corruption(ctx.corruption.clone(), health.clone());
    report_storage_failure(node.clone(), health);
    let faults = node.faults().cloned().map(|f| FaultsServer::new(FaultsService { faults: f, node: node.clone() }));
    let with_faults = faults.is_some();
    let reflection = || {
        let b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(PUBLIC_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        if with_faults {
            b.register_encoded_file_descriptor_set(TESTING_FILE_DESCRIPTOR_SET)
        } else {
            b
        }
    };
    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
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
        .add_service(AuthServer::new(AuthService { ctx: ctx.clone(), throttle: Default::default() }))
        .add_service(
            AdminServer::new(AdminService { ctx })
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        );
    if let Some(f) = faults {
        tracing::warn!("fault injection is enabled: Raft links can be cut over gRPC (tests only)");
        routes.add_service(f);
    }
    if with_raft {
        routes.add_service(raft(node));
    }
    Ok(routes.routes())
}

/// Health turns NOT_SERVING when the CORRUPT alarm is raised.
fn report_corruption(alarm: Arc<crate::corruption::CorruptionAlarm>, health: tonic_health::server::HealthReporter) {
    tokio::spawn(async move {
        alarm.raised().await;
        not_serving(&health).await;
    });
}

async fn not_serving(health: &tonic_health::server::HealthReporter) {
    health.set_not_serving::<KvCasServer<KvCasService>>().await;
    health.set_not_serving::<KvRawServer<KvRawService>>().await;
    health.set_not_serving::<AdminServer<AdminService>>().await;
    health.set_not_serving::<AuthServer<AuthService>>().await;
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
}

/// Waits for Raft to stop on a storage failure; then every health status is NOT_SERVING.
fn report_storage_failure(node: Arc<FlareNode>, health: tonic_health::server::HealthReporter) {
    use openraft::async_runtime::WatchReceiver;
    let mut rx = node.raft().metrics();
    tokio::spawn(async move {
        loop {
            if let Some(why) = node.storage_failure() {
                tracing::error!(%why, "storage failed: this node serves nothing until restarted; health is NOT_SERVING");
                not_serving(&health).await;
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The `--peer-listen` listener: the Raft transport only.
pub fn peer(node: Arc<FlareNode>) -> Routes {
    Routes::new(raft(node))
}

fn raft(node: Arc<FlareNode>) -> RaftServer<RaftService> {
    RaftServer::new(RaftService { node })
        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
}
