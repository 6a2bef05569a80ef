//! Turns a snapshot file into a stream of `SnapshotChunk`s: the first carries
//! the vote and meta, every chunk up to `SNAPSHOT_CHUNK_BYTES` of data.

use std::io::{self, Read};

use flaredb_proto::raft as pb;
use futures::{stream, Stream};

use crate::{
    codec,
    storage::SnapshotFile,
    types::{TypeConfig, Vote},
};

pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

pub async fn chunks(
    vote: Vote,
    snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>,
) -> io::Result<impl Stream<Item = pb::SnapshotChunk> + Send + 'static> {
    let first = Some((codec::vote_to_pb(&vote), codec::snapshot_meta_to_pb(&snapshot.meta)));
    let data = snapshot.snapshot;
    // A checkpoint is exported to a file on its first send: blocking work.
    let file = tokio::task::spawn_blocking(move || data.reader()).await.map_err(io::Error::other)??;
    Ok(stream::unfold((file, first, false), |(mut file, mut first, done)| async move {
        if done {
            return None;
        }
        // Reads are small and sequential from the page cache; a blocking task per chunk
        // would cost more than it saves.
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        let n = match read_full(&mut file, &mut buf) {
            Ok(n) => n,
            // Ends the stream short: the receiver's checksum check refuses it.
            Err(e) => {
                tracing::warn!(error = %e, "reading snapshot to send failed");
                return None;
            }
        };
        buf.truncate(n);
        let (vote, meta) = first.take().map_or((None, None), |(v, m)| (Some(v), Some(m)));
        let last = n < SNAPSHOT_CHUNK_BYTES;
        Some((pb::SnapshotChunk { vote, meta, data: buf.into() }, (file, None, last)))
    }))
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
