//! FlareDB wire protocol: the generated messages and services of the public
//! API (`flaredb.v1`: KvCas, KvRaw, Admin) and of the internal Raft transport
//! (`flaredb.raft.v1`), plus the descriptor sets served by gRPC reflection,
//! and the channel cache every caller dials through.

pub mod channel;
pub mod leader_hint;

/// Public API, package `flaredb.v1`.
pub mod v1 {
    tonic::include_proto!("flaredb.v1");
}

/// Internal Raft transport and on-disk encodings, package `flaredb.raft.v1`.
pub mod raft {
    tonic::include_proto!("flaredb.raft.v1");
}

/// Test-only fault injection, package `flaredb.testing.v1`.
pub mod testing {
    tonic::include_proto!("flaredb.testing.v1");
}

/// The subset of etcd v3's KV API that migration reads etcd with.
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

/// The public API only (`flaredb.v1`): what reflection on the public port
/// describes. The Raft transport is for peers, not clients.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flaredb_public_descriptor.bin"));

/// `flaredb.testing.v1`, described only by nodes started with fault injection.
pub const TESTING_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flaredb_testing_descriptor.bin"));
