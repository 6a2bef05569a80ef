//! Compiles the .proto files with protox (pure Rust, no system `protoc`) and
//! writes the file-descriptor set that the server's reflection service serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &["proto/kvrpc.proto", "proto/admin.proto", "proto/raft.proto", "proto/testing.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("flaredb_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".")
        // Deterministic encoding: replicas must write byte-identical state.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
