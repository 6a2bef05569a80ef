//! Applying committed commands: pure decisions over a read view of the state
//! machine, collected into one `WriteBatch` per batch of entries.
//!
//! Later entries of a batch must see earlier ones before the batch is written,
//! so strong-key writes are staged in an overlay consulted before RocksDB.

use std::collections::HashMap;

use flaredb_proto::raft as pb;
use rocksdb::{WriteBatch, DB};

use super::db::{cf, CF_CAS, CF_RAW};
use super::sm_meta;
use crate::{
    error::StoreError,
    keys,
    namespace::{Mode, NamespaceInfo, Registry},
    types::FlareResponse,
};

/// One batch being applied.
pub struct ApplyBatch<'a> {
    db: &'a DB,
    pub batch: WriteBatch,
    pub registry: Registry,
    /// Encoded cas key → staged version (None = deleted in this batch).
    cas_overlay: HashMap<Vec<u8>, Option<u64>>,
    /// Encoded raw key → staged presence.
    raw_overlay: HashMap<Vec<u8>, bool>,
    /// Node ids retired by this batch.
    pub retired: Vec<u64>,
}

impl<'a> ApplyBatch<'a> {
    pub fn new(db: &'a DB, registry: Registry) -> Self {
        Self {
            db,
            batch: WriteBatch::default(),
            registry,
            cas_overlay: HashMap::new(),
            raw_overlay: HashMap::new(),
            retired: Vec::new(),
        }
    }

    fn cas_version(&self, key: &[u8]) -> Result<u64, StoreError> {
        if let Some(staged) = self.cas_overlay.get(key) {
            return Ok(staged.unwrap_or(0));
        }
        match self.db.get_pinned_cf(cf(self.db, CF_CAS)?, key)? {
            Some(raw) => Ok(keys::decode_versioned(&raw).ok_or_else(|| StoreError::corrupt("cas record", "short"))?.0),
            None => Ok(0),
        }
    }

    fn raw_exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        if let Some(&staged) = self.raw_overlay.get(key) {
            return Ok(staged);
        }
        Ok(self.db.get_pinned_cf(cf(self.db, CF_RAW)?, key)?.is_some())
    }

    /// Resolves (and maybe creates) the target namespace of a data command.
    fn namespace(
        &mut self,
        target: &Option<pb::Target>,
        mode: Mode,
    ) -> Result<Result<(NamespaceInfo, bool), FlareResponse>, StoreError> {
        let (name, auto) = target.as_ref().map_or(("", false), |t| (t.namespace.as_str(), t.auto_create));
        match self.registry.resolve(name, mode, auto) {
            Ok((info, created)) => {
                if created {
                    sm_meta::put_namespace(self.db, &mut self.batch, &info)?;
                }
                Ok(Ok((info, created)))
            }
            Err(rejection) => Ok(Err(FlareResponse::Rejected(rejection))),
        }
    }

    /// Applies one command written at log `index`.
    pub fn command(&mut self, index: u64, cmd: &pb::Command) -> Result<FlareResponse, StoreError> {
        use pb::command::Cmd;
        let Some(cmd) = &cmd.cmd else { return Ok(FlareResponse::None) };
        match cmd {
            Cmd::CasPut(c) => {
                let ns = match self.namespace(&c.target, Mode::Strong)? {
                    Ok((ns, _)) => ns,
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                let current = self.cas_version(&key)?;
                if current != c.expected_version {
                    return Ok(FlareResponse::Cas { success: false, current_version: current, new_version: 0 });
                }
                // The version is the log index: unique and increasing, never reused.
                self.batch.put_cf(cf(self.db, CF_CAS)?, &key, keys::encode_versioned(index, &c.value));
                self.cas_overlay.insert(key, Some(index));
                Ok(FlareResponse::Cas { success: true, current_version: current, new_version: index })
            }
            Cmd::CasDelete(c) => {
                let ns = match self.namespace(&c.target, Mode::Strong)? {
                    Ok((ns, _)) => ns,
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                let current = self.cas_version(&key)?;
                if current == 0 || current != c.expected_version {
                    return Ok(FlareResponse::CasDelete { success: false, current_version: current });
                }
                self.batch.delete_cf(cf(self.db, CF_CAS)?, &key);
                self.cas_overlay.insert(key, None);
                Ok(FlareResponse::CasDelete { success: true, current_version: current })
            }
            Cmd::RawPut(c) => {
                let ns = match self.namespace(&c.target, Mode::Eventual)? {
                    Ok((ns, _)) => ns,
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                self.batch.put_cf(cf(self.db, CF_RAW)?, &key, &c.value);
                self.raw_overlay.insert(key, true);
                Ok(FlareResponse::RawPut)
            }
            Cmd::RawDelete(c) => {
                let ns = match self.namespace(&c.target, Mode::Eventual)? {
                    Ok((ns, _)) => ns,
                    Err(resp) => return Ok(resp),
                };
                let key = keys::encode(ns.id, &c.key);
                let existed = self.raw_exists(&key)?;
                if existed {
                    self.batch.delete_cf(cf(self.db, CF_RAW)?, &key);
                    self.raw_overlay.insert(key, false);
                }
                Ok(FlareResponse::RawDelete { existed })
            }
            Cmd::RetireNode(r) => {
                sm_meta::put_retired(self.db, &mut self.batch, r.node_id)?;
                self.retired.push(r.node_id);
                Ok(FlareResponse::None)
            }
            Cmd::CreateNamespace(c) => {
                let mode = match pb::Mode::try_from(c.mode) {
                    Ok(pb::Mode::Eventual) => Mode::Eventual,
                    _ => Mode::Strong,
                };
                let target = Some(pb::Target { namespace: c.name.clone(), auto_create: true });
                Ok(match self.namespace(&target, mode)? {
                    Ok((info, created)) => FlareResponse::Namespace { info, created },
                    Err(resp) => resp,
                })
            }
        }
    }
}
