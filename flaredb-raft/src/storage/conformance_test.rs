//! openraft's storage conformance suite, run against the real RocksDB log
//! store and state machine.

use openraft::{
    testing::log::{StoreBuilder, Suite},
    ErrorSubject, ErrorVerb, StorageError,
};
use tempfile::TempDir;

use super::{db, LogStore, SnapshotDir, StateMachine};
use crate::types::TypeConfig;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let fail = |e: std::io::Error| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e);
        let dir = tempfile::tempdir().map_err(fail)?;
        let open = async {
            let db = db::open(&dir.path().join("db"))?;
            let snaps = SnapshotDir::new(dir.path().join("snapshots"))?;
            let sm = StateMachine::open(db.clone(), snaps).await?;
            Ok::<_, crate::StoreError>((LogStore::new(db)?, sm))
        };
        let (log, sm) = open.await.map_err(|e| fail(e.into()))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
