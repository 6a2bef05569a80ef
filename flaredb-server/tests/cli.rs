//! The binary's command line: bad flags and configs fail fast with a clear
//! message and exit code 2, before any data dir is touched.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flaredb-server")).args(args).output().expect("run flaredb-server");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_flags_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d").display().to_string();
    for (args, needle) in [
        (vec!["--listen", "nonsense", "--data-dir", &data], "--listen"),
        (vec!["--id", "4", "--initial-cluster", "1=127.0.0.1:1", "--data-dir", &data], "not in --initial-cluster"),
        (vec!["--initial-cluster", "1=nohost", "--data-dir", &data], "HOST:PORT"),
        (vec!["--id", "0", "--data-dir", &data], "at least 1"),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!dir.path().join("d").exists(), "a refused start must not create the data dir");
}

#[test]
fn a_port_in_use_is_reported() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run(&["--listen", &addr, "--data-dir", &dir.path().join("d").display().to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot listen"), "{err}");
}
