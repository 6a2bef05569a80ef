//! The `flaredb` binary parses its command line and fails clearly without a
//! server (the round trip against a real node is in tests/t08_cli.rs).

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_flaredb")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["get", "put", "scan", "raw-put", "status", "add-learner", "backup", "txn", "watch"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
}

#[test]
fn an_unreachable_endpoint_is_a_clear_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_flaredb"))
        .args(["--endpoints", &format!("127.0.0.1:{port}"), "raw-get", "k"])
        .env("FLAREDB_RETRY_BUDGET_MS", "300")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unavailable"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_watch_that_cannot_attach_gives_up_within_the_retry_budget() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // From a version: the watch has a position before it ever attached,
    // which once made it retry forever.
    let out = Command::new(env!("CARGO_BIN_EXE_flaredb"))
        .args(["--endpoints", &format!("127.0.0.1:{port}"), "watch", "k", "--from", "5"])
        .env("FLAREDB_RETRY_BUDGET_MS", "300")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not re-attach"), "{err}");
}
