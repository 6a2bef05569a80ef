//! Compiles the .proto files with protox (pure Rust, no system `protoc`) and
//! writes the file-descriptor sets that the server's reflection service serves
//! (public API always; the testing API only with fault injection).

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/kvrpc.proto",
    "proto/admin.proto",
    "proto/auth.proto",
    "proto/raft.proto",
    "proto/testing.proto",
    "proto/etcd_kv.proto",
];
/// What reflection on the public port describes: the client-facing API only.
const PUBLIC: &[&str] = &["proto/kvrpc.proto", "proto/admin.proto", "proto/auth.proto"];
/// Described on the public port only when fault injection is on.
const TESTING: &[&str] = &["proto/testing.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("flaredb_public_descriptor.bin"), protox::compile(PUBLIC, ["proto"])?.encode_to_vec())?;
    fs::write(out.join("flaredb_testing_descriptor.bin"), protox::compile(TESTING, ["proto"])?.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".")
        // Deterministic encoding: replicas must write byte-identical state.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
