//! How many entries a source will yield, for a progress bar's ETA: counted
//! cheaply where the source allows (files in a directory, lines of a file,
//! `count(*)` of a table), `None` where it would cost a second full read.

use std::io::Read;

use super::{endpoint, Endpoint, Options};

/// The number of entries `migrate` will read from `from`, if cheaply known.
pub async fn estimate(from: &Endpoint, opts: &Options) -> Option<u64> {
    let records = match from {
        Endpoint::Dir(root) => {
            let (root, prefix) = (root.clone(), opts.prefix.clone());
            tokio::task::spawn_blocking(move || {
                let files = endpoint::walk(&root).ok()?;
                let under =
                    |p: &std::path::PathBuf| endpoint::relative_key(&root, p).is_some_and(|k| k.starts_with(&prefix));
                Some(files.iter().filter(|p| under(p)).count() as u64)
            })
            .await
            .ok()??
        }
        // Lines, not entries under the prefix: an upper bound, exact for a whole export.
        Endpoint::Jsonl(path) if path.as_os_str() != "-" => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || count_lines(&path)).await.ok()??
        }
        Endpoint::Postgres(t) => super::postgres::count(t).await.ok()?,
        Endpoint::Jsonl(_) | Endpoint::Etcd { .. } | Endpoint::FlareDb { .. } => return None,
    };
    let per_record = opts.collection.as_ref().map_or(1, |c| c.keys_per_record());
    Some(records * per_record)
}

fn count_lines(path: &std::path::Path) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Some(lines + u64::from(last != b'\n'))
}
