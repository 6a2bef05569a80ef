//! One `flaredb-server` child process, killed on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// The server binary built by this workspace. `FLAREDB_SERVER_BIN` overrides.
pub fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLAREDB_SERVER_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test binary> → target/<profile>/flaredb-server
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("flaredb-server");
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo test --release --workspace` does) or set FLAREDB_SERVER_BIN",
        bin.display()
    );
    bin
}

/// The `flaredb` command-line tool built next to the server.
pub fn cli_bin() -> PathBuf {
    server_bin().with_file_name("flaredb")
}

pub struct ServerProc {
    pub child: Child,
    pub log: PathBuf,
}

pub fn spawn_server(args: &[String], log: &Path) -> ServerProc {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open server log");
    let err = out.try_clone().expect("clone log handle");
    let child = Command::new(server_bin())
        .args(args)
        .env("RUST_LOG", std::env::var("FLAREDB_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn flaredb-server");
    ServerProc { child, log: log.to_path_buf() }
}

impl ServerProc {
    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}
