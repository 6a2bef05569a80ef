//! The free-space floor. When the data dir's filesystem has less free space
//! than `min_free_disk_bytes`, this node refuses client writes that add data
//! (RESOURCE_EXHAUSTED, nothing applied) and keeps serving reads, deletes
//! and lease revokes, which free space; writes resume by themselves once
//! space returns. RocksDB failing on a full disk would instead stop the
//! Raft core for good. The floor is per node (unlike etcd's one cluster-wide
//! NOSPACE alarm): a node refuses the writes it is asked for.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flaredb_proto::{leader_hint::mark_not_applied, raft as pb};
use tonic::Status;

/// How often free space is measured (a statvfs call).
const CHECK_EVERY: Duration = Duration::from_millis(200);

pub struct DiskGuard {
    path: PathBuf,
    floor: u64,
    /// Bytes available at the last check (u64::MAX: not measured).
    available: AtomicU64,
}

/// Whether `cmd` can grow the data (a delete cannot; a Txn only by its puts).
fn adds_data(cmd: &pb::command::Cmd) -> bool {
    use pb::{command::Cmd, txn_op::Op};
    match cmd {
        Cmd::CasDelete(_) | Cmd::RawDelete(_) | Cmd::LeaseRevoke(_) => false,
        Cmd::Txn(t) => t.success.iter().chain(&t.failure).any(|o| matches!(o.op, Some(Op::Put(_)))),
        _ => true,
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl DiskGuard {
    /// Measures now and then every 200 ms; `floor` 0 turns the guard off.
    pub fn start(path: PathBuf, floor: u64) -> Arc<Self> {
        let guard = Arc::new(Self { path, floor, available: AtomicU64::new(u64::MAX) });
        if floor == 0 {
            return guard;
        }
        guard.measure();
        let weak = Arc::downgrade(&guard);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            while let Some(g) = weak.upgrade() {
                tick.tick().await;
                g.measure();
            }
        });
        guard
    }

    fn measure(&self) {
        let now = match fs4::available_space(&self.path) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot measure free disk space");
                return;
            }
        };
        let before = self.available.swap(now, Ordering::Relaxed);
        match (before >= self.floor, now >= self.floor) {
            (true, false) => tracing::error!(
                free_mib = now as f64 / MIB,
                floor_mib = self.floor as f64 / MIB,
                "free disk space below the floor: refusing writes that add data until space is freed"
            ),
            (false, true) => tracing::warn!(
                free_mib = now as f64 / MIB,
                "free disk space back above the floor: writes accepted again"
            ),
            _ => {}
        }
    }

    /// RESOURCE_EXHAUSTED (not applied) for a write that adds data while space is below the floor.
    pub fn check(&self, cmd: &pb::command::Cmd) -> Result<(), Status> {
        let available = self.available.load(Ordering::Relaxed);
        if self.floor == 0 || available >= self.floor || !adds_data(cmd) {
            return Ok(());
        }
        let mut s = Status::resource_exhausted(format!(
            "this node's disk is nearly full: {:.1} MiB free under {}, below the floor of {:.1} MiB \
             (min_free_disk_bytes); writes that add data are refused until space is freed (reads, deletes and \
             lease revokes still work)",
            available as f64 / MIB,
            self.path.display(),
            self.floor as f64 / MIB
        ));
        mark_not_applied(s.metadata_mut());
        Err(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::{command::Cmd, txn_op::Op};

    #[test]
    fn only_writes_that_add_data_are_refused() {
        let put = Cmd::CasPut(pb::CasPut::default());
        let del = Cmd::CasDelete(pb::CasDelete::default());
        let txn = |op: Op| Cmd::Txn(pb::Txn { failure: vec![pb::TxnOp { op: Some(op) }], ..Default::default() });
        let guard = DiskGuard { path: "/data".into(), floor: 100, available: AtomicU64::new(99) };
        let e = guard.check(&put).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("min_free_disk_bytes") && e.message().contains("/data"), "{}", e.message());
        assert!(flaredb_proto::leader_hint::is_not_applied(e.metadata()));
        assert!(guard.check(&del).is_ok());
        assert!(guard.check(&txn(Op::Delete("k".into()))).is_ok());
        assert!(guard.check(&txn(Op::Put(pb::TxnPut::default()))).is_err(), "a put in either branch adds data");
        guard.available.store(100, Ordering::Relaxed);
        assert!(guard.check(&put).is_ok());
        let off = DiskGuard { path: "/data".into(), floor: 0, available: AtomicU64::new(0) };
        assert!(off.check(&put).is_ok());
    }
}
