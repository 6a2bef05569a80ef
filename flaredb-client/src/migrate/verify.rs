//! `--verify`: after a copy, every source entry is looked up in the target
//! (batched gets) and both sides are summarised by a count and a content
//! hash over the source's keys, so a lost or altered key shows.

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{Endpoint, Entry, MigrateError, Options};
use crate::{TxnOp, TxnOpResult};

const GETS_PER_TXN: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub source_count: u64,
    pub target_count: u64,
    /// XOR of sha256(key, 0, value) over the entries (order-free), hex.
    pub source_hash: String,
    pub target_hash: String,
    /// The first keys that differ (absent or another value), at most 10.
    pub differing: Vec<String>,
}

impl Verification {
    pub fn matches(&self) -> bool {
        self.source_count == self.target_count && self.source_hash == self.target_hash && self.differing.is_empty()
    }
}

fn digest(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update([0]);
    h.update(value);
    h.finalize().into()
}

fn fold(acc: &mut [u8; 32], d: [u8; 32]) {
    for (a, b) in acc.iter_mut().zip(d) {
        *a ^= b;
    }
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares `from` (re-read) with what `to` holds for the same keys.
pub async fn verify(from: &Endpoint, to: &Endpoint, opts: &Options) -> Result<Verification, MigrateError> {
    let target = to.flaredb_client(&opts.client)?;
    let mut source = super::source(from, opts)?.chunks(GETS_PER_TXN);
    let (mut sh, mut th) = ([0u8; 32], [0u8; 32]);
    let mut v = Verification::default();
    while let Some(chunk) = source.next().await {
        let entries: Vec<Entry> = chunk.into_iter().collect::<Result<_, _>>()?;
        let got = target.txn().and_then(entries.iter().map(|e| TxnOp::get(e.key.clone()))).commit().await?;
        for (e, r) in entries.iter().zip(got.results) {
            v.source_count += 1;
            fold(&mut sh, digest(&e.key, &e.value));
            let found = match r {
                TxnOpResult::Get(kv) => kv,
                _ => None,
            };
            match found {
                Some(kv) => {
                    v.target_count += 1;
                    fold(&mut th, digest(&kv.key, &kv.value));
                    if kv.value != e.value && v.differing.len() < 10 {
                        v.differing.push(String::from_utf8_lossy(&e.key).into_owned());
                    }
                }
                None if v.differing.len() < 10 => v.differing.push(String::from_utf8_lossy(&e.key).into_owned()),
                None => {}
            }
        }
    }
    v.source_hash = hex(&sh);
    v.target_hash = hex(&th);
    Ok(v)
}
