//! Keys of the `sm_meta` column family: last applied log id, membership and
//! the namespace registry. Written only inside apply / snapshot-install batches.

use flaredb_proto::raft as pb;
use prost::Message;
use rocksdb::{WriteBatch, DB};

use super::db::{cf, CF_SM_META};
use std::collections::BTreeMap;

use crate::{
    auth::AuthState,
    codec,
    error::StoreError,
    keys::NamespaceId,
    namespace::{Mode, NamespaceInfo, Registry},
    quota::NsUsage,
    types::{LogId, StoredMembership},
};

pub const LAST_APPLIED_KEY: &[u8] = b"last_applied";
pub const MEMBERSHIP_KEY: &[u8] = b"membership";
/// Present while a snapshot install is under way (crash recovery redoes it).
pub const INSTALLING_KEY: &[u8] = b"installing";
/// Users, roles and the auth switch, one record (`auth.rs`).
pub const AUTH_KEY: &[u8] = b"auth";
const NS_PREFIX: &[u8] = b"ns/";
/// Per namespace id: its usage and quota (`quota.rs`).
const USAGE_PREFIX: &[u8] = b"usage/";
const RETIRED_PREFIX: &[u8] = b"retired/";

pub fn put_retired(db: &DB, batch: &mut WriteBatch, id: u64) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SM_META)?, [RETIRED_PREFIX, &id.to_be_bytes()].concat(), []);
    Ok(())
}

/// Node ids removed from the cluster; never to be reused.
pub fn load_retired(db: &DB) -> Result<std::collections::BTreeSet<u64>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    for item in db.prefix_iterator_cf(cf(db, CF_SM_META)?, RETIRED_PREFIX) {
        let (k, _) = item?;
        let Some(id) = k.strip_prefix(RETIRED_PREFIX) else { break };
        let id: [u8; 8] = id.try_into().map_err(|_| StoreError::corrupt("retired node id", "not 8 bytes"))?;
        out.insert(u64::from_be_bytes(id));
    }
    Ok(out)
}

pub fn namespace_key(name: &str) -> Vec<u8> {
    [NS_PREFIX, name.as_bytes()].concat()
}

pub fn put_namespace(db: &DB, batch: &mut WriteBatch, info: &NamespaceInfo) -> Result<(), StoreError> {
    let mut v = info.id.to_be_bytes().to_vec();
    v.push(info.mode.to_byte());
    batch.put_cf(cf(db, CF_SM_META)?, namespace_key(&info.name), v);
    Ok(())
}

pub fn load_registry(db: &DB) -> Result<Registry, StoreError> {
    let mut reg = Registry::new();
    for item in db.prefix_iterator_cf(cf(db, CF_SM_META)?, NS_PREFIX) {
        let (k, v) = item?;
        let Some(name) = k.strip_prefix(NS_PREFIX) else { break };
        let name = String::from_utf8(name.to_vec()).map_err(|_| StoreError::corrupt("namespace name", "not utf-8"))?;
        if v.len() != 5 {
            return Err(StoreError::corrupt("namespace record", name));
        }
        let id = NamespaceId::from_be_bytes([v[0], v[1], v[2], v[3]]);
        let mode = Mode::from_byte(v[4]).ok_or_else(|| StoreError::corrupt("namespace mode", v[4]))?;
        reg.insert(NamespaceInfo { name, id, mode });
    }
    Ok(reg)
}

pub fn put_auth(db: &DB, batch: &mut WriteBatch, auth: &AuthState) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SM_META)?, AUTH_KEY, auth.to_pb().encode_to_vec());
    Ok(())
}

pub fn load_auth(db: &DB) -> Result<AuthState, StoreError> {
    let Some(raw) = db.get_cf(cf(db, CF_SM_META)?, AUTH_KEY)? else { return Ok(AuthState::default()) };
    AuthState::from_pb(&codec::decode_pb::<pb::AuthStateRecord>("auth state", &raw)?)
}

pub fn put_usage(db: &DB, batch: &mut WriteBatch, id: NamespaceId, u: &NsUsage) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SM_META)?, [USAGE_PREFIX, &id.to_be_bytes()].concat(), u.encode());
    Ok(())
}

pub fn load_usage(db: &DB) -> Result<BTreeMap<NamespaceId, NsUsage>, StoreError> {
    let mut out = BTreeMap::new();
    for item in db.prefix_iterator_cf(cf(db, CF_SM_META)?, USAGE_PREFIX) {
        let (k, v) = item?;
        let Some(id) = k.strip_prefix(USAGE_PREFIX) else { break };
        let id: [u8; 4] = id.try_into().map_err(|_| StoreError::corrupt("usage namespace id", "not 4 bytes"))?;
        out.insert(NamespaceId::from_be_bytes(id), NsUsage::decode(&v)?);
    }
    Ok(out)
}

pub fn put_last_applied(db: &DB, batch: &mut WriteBatch, id: &LogId) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SM_META)?, LAST_APPLIED_KEY, codec::log_id_to_pb(id).encode_to_vec());
    Ok(())
}

pub fn put_membership(db: &DB, batch: &mut WriteBatch, m: &StoredMembership) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SM_META)?, MEMBERSHIP_KEY, codec::stored_membership_to_pb(m).encode_to_vec());
    Ok(())
}

pub fn read_last_applied(db: &DB) -> Result<Option<LogId>, StoreError> {
    let Some(raw) = db.get_cf(cf(db, CF_SM_META)?, LAST_APPLIED_KEY)? else { return Ok(None) };
    Ok(Some(codec::log_id_from_pb(&codec::decode_pb::<pb::LogId>("last applied", &raw)?)))
}

pub fn read_membership(db: &DB) -> Result<StoredMembership, StoreError> {
    let Some(raw) = db.get_cf(cf(db, CF_SM_META)?, MEMBERSHIP_KEY)? else { return Ok(StoredMembership::default()) };
    Ok(codec::stored_membership_from_pb(&codec::decode_pb("membership", &raw)?)?)
}
