//! The `flaredb` command-line client against a real node.

use std::process::Command;

use flaredb_tests::{server_bin, Cluster};

fn flaredb(addr: &str, args: &[&str]) -> (bool, String) {
    let bin = server_bin().with_file_name("flaredb");
    let out = Command::new(bin).args(["--endpoints", addr]).args(args).output().expect("run flaredb");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn the_cli_round_trips() {
    let c = Cluster::start(1).await;
    let addr = c.addr(1);
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v1"]);
    assert!(ok && out.starts_with("ok version"), "{out}");
    let version: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v2"]);
    assert!(!ok && out.contains("conflict"), "{out}");
    let (ok, out) = flaredb(&addr, &["-n", "cli", "put", "k", "v2", "--expect", &version.to_string()]);
    assert!(ok, "{out}");
    let (_, out) = flaredb(&addr, &["-n", "cli", "scan", ""]);
    assert!(out.contains("k\t") && out.contains("v2"), "{out}");
    let (ok, out) = flaredb(&addr, &["hash"]);
    assert!(ok && out.contains("applied"), "{out}");
    let (ok, out) = flaredb(&addr, &["-n", "Bad!", "get", "k"]);
    assert!(!ok && out.contains("invalid argument"), "{out}");
}
