//! Group commit for log appends: `append` writes its entries without fsync
//! (readable at once, so replication starts from them) and queues openraft's
//! callback here; one thread fsyncs the WAL and completes every callback that
//! was queued before that fsync began. The leader's own fsync then runs in
//! parallel with replication (Raft thesis §10.2.1) and one fsync covers many
//! appends.

use std::{
    sync::{mpsc, Arc},
    thread::JoinHandle,
};

use openraft::storage::IOFlushed;
use rocksdb::DB;

use crate::types::TypeConfig;

pub struct WalFlusher {
    tx: mpsc::Sender<IOFlushed<TypeConfig>>,
    thread: Option<JoinHandle<()>>,
}

impl WalFlusher {
    pub fn start(db: Arc<DB>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let thread = std::thread::Builder::new().name("wal-flusher".into()).spawn(move || {
            // Ends when the sender is dropped (the log store is gone).
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                // Every append whose callback is in `batch` wrote before it
                // queued the callback, so this fsync covers all of them.
                let res = db.flush_wal(true);
                for cb in batch {
                    cb.io_completed(res.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
                }
            }
        })?;
        Ok(Self { tx, thread: Some(thread) })
    }

    /// Completes `cb` once the WAL holding every earlier write is on disk;
    /// hands it back if the thread is gone.
    pub fn after_next_flush(&self, cb: IOFlushed<TypeConfig>) -> Result<(), IOFlushed<TypeConfig>> {
        self.tx.send(cb).map_err(|e| e.0)
    }
}

impl Drop for WalFlusher {
    /// Waits for the last fsync, so the DB can be reopened right after.
    fn drop(&mut self) {
        // Dropping the only sender ends the thread's loop.
        drop(std::mem::replace(&mut self.tx, mpsc::channel().0));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
