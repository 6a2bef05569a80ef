//! A throwaway PostgreSQL cluster (Debian's `postgresql`): `initdb` into a
//! temp dir and a `postgres` child on a free loopback port, TCP only, trust
//! auth, stopped and removed on drop. PostgreSQL refuses to run as root, so
//! under root both run as the `postgres` user (or `nobody`).

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    /// `postgres://flaredb@127.0.0.1:PORT/postgres` with `query` appended.
    pub fn url(&self, query: &str) -> String {
        format!("postgres://flaredb@127.0.0.1:{}/postgres{query}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pg.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: backends end with the postmaster.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// The directory holding initdb and postgres: Debian keeps them per version.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop()
}

/// The uid and gid to run as: ours, or the `postgres` (else `nobody`) user's under root.
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let user = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
    };
    user("postgres").or_else(|| user("nobody"))
}

fn command(bin: &Path, as_user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = as_user {
        c.uid(uid).gid(gid);
    }
    c
}

/// Starts one, or `None` when PostgreSQL is not installed.
pub fn start_postgres() -> Option<Postgres> {
    let bin = bin_dir()?;
    let as_user = run_as();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    if let Some((uid, gid)) = as_user {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown");
    }
    let out = command(&bin.join("initdb"), as_user)
        .args(["-U", "flaredb", "-A", "trust", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .current_dir(dir.path())
        .output()
        .expect("run initdb");
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let port = crate::free_port();
    let log = std::fs::File::create(dir.path().join("pg.log")).expect("log");
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(dir.path().join("pg.log"), Some(uid), Some(gid)).expect("chown");
    }
    let child = command(&bin.join("postgres"), as_user)
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
        .args(["-c", "fsync=off", "-c", "max_connections=20"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start postgres");
    Some(Postgres { child, dir, port })
}
