//! The systems under test, behind one small interface.

use anyhow::Context;
use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use flaredb_client::{self as fdb, RdbClient};

use crate::workload::Workload;

pub enum Target {
    Flare { name: String, cas: RdbClient, raw: RdbClient },
    Etcd { client: Box<etcd_client::Client> },
}

/// Keys preloaded for reads and scans: 10 prefixes of 100 keys.
pub const PRELOAD: usize = 1000;

pub fn preload_key(i: usize) -> String {
    format!("pre/{:02}/{:04}", i / 100, i % 100)
}

impl Target {
    pub fn flaredb(endpoints: &[String], name: &str) -> anyhow::Result<Self> {
        let client = RdbClient::connect(endpoints.to_vec())?;
        Ok(Target::Flare { name: name.to_string(), cas: client.namespace("bench"), raw: client.namespace("bench-raw") })
    }

    pub async fn etcd(endpoint: &str) -> anyhow::Result<Self> {
        let client = etcd_client::Client::connect([endpoint], None).await.context("connect to etcd")?;
        Ok(Target::Etcd { client: Box::new(client) })
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Flare { name, .. } => name,
            Target::Etcd { .. } => "etcd",
        }
    }

    /// Loads the keys a read workload needs.
    pub async fn prepare(&self, w: Workload, value_size: usize) -> anyhow::Result<()> {
        let value = Bytes::from(vec![b'x'; value_size]);
        if !matches!(w, Workload::StrongGet | Workload::RawGet | Workload::PrefixScan) {
            return Ok(());
        }
        for i in 0..PRELOAD {
            let key = preload_key(i);
            match self {
                Target::Flare { cas, raw, .. } => {
                    if w == Workload::RawGet {
                        raw.raw_put(key, value.clone()).await?;
                    } else {
                        let cur = cas.cas_get(key.clone()).await?.map_or(0, |v| v.version);
                        cas.cas_put(key, value.clone(), cur).await?;
                    }
                }
                Target::Etcd { client } => {
                    client.kv_client().put(key, value.to_vec(), None).await?;
                }
            }
        }
        Ok(())
    }

    /// A plain write of one key: FlareDB raw put / etcd put.
    pub async fn put(&self, key: String, value: Bytes) -> anyhow::Result<()> {
        match self {
            Target::Flare { raw, .. } => raw.raw_put(key, value).await?,
            Target::Etcd { client } => {
                client.kv_client().put(key, value.to_vec(), None).await?;
            }
        }
        Ok(())
    }

    /// One operation of workload `w`; `n` makes keys distinct.
    pub async fn op(&self, w: Workload, worker: usize, n: u64, value: &Bytes) -> anyhow::Result<()> {
        let key = format!("w/{worker}/{n}");
        let pre = preload_key((n as usize * 7919 + worker * 31) % PRELOAD);
        match (self, w) {
            (Target::Flare { cas, .. }, Workload::CasPut) => {
                anyhow::ensure!(cas.cas_put(key, value.clone(), 0).await?.success, "cas failed");
            }
            (Target::Flare { cas, .. }, Workload::StrongGet) => {
                cas.cas_get(pre).await?.context("missing preloaded key")?;
            }
            (Target::Flare { cas, .. }, Workload::Txn) => {
                // Both keys absent → create both, in one transaction.
                let (a, b) = (format!("{key}/a"), format!("{key}/b"));
                let absent = |k: &String| fdb::Compare::version(k.clone(), fdb::CompareOp::Equal, 0);
                let puts = [fdb::TxnOp::put(a.clone(), value.clone()), fdb::TxnOp::put(b.clone(), value.clone())];
                let r = cas.txn().when([absent(&a), absent(&b)]).and_then(puts).commit().await?;
                anyhow::ensure!(r.succeeded, "txn compare failed");
            }
            (Target::Flare { raw, .. }, Workload::RawPut) => raw.raw_put(key, value.clone()).await?,
            (Target::Flare { raw, .. }, Workload::RawGet) => {
                raw.raw_get(pre).await?.context("missing preloaded key")?;
            }
            (Target::Flare { cas, .. }, Workload::PrefixScan) => {
                let prefix = format!("pre/{:02}/", n % 10);
                anyhow::ensure!(cas.scan_prefix(prefix).await?.len() == 100, "short scan");
            }
            (Target::Etcd { client }, w) => {
                let mut kv = client.kv_client();
                match w {
                    Workload::CasPut => {
                        let txn = Txn::new()
                            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                            .and_then([TxnOp::put(key, value.to_vec(), None)]);
                        anyhow::ensure!(kv.txn(txn).await?.succeeded(), "cas failed");
                    }
                    Workload::Txn => {
                        let (a, b) = (format!("{key}/a"), format!("{key}/b"));
                        let txn = Txn::new()
                            .when([
                                Compare::create_revision(a.clone(), CompareOp::Equal, 0),
                                Compare::create_revision(b.clone(), CompareOp::Equal, 0),
                            ])
                            .and_then([TxnOp::put(a, value.to_vec(), None), TxnOp::put(b, value.to_vec(), None)]);
                        anyhow::ensure!(kv.txn(txn).await?.succeeded(), "txn compare failed");
                    }
                    Workload::StrongGet => {
                        anyhow::ensure!(kv.get(pre, None).await?.kvs().len() == 1, "missing");
                    }
                    Workload::RawPut => {
                        kv.put(key, value.to_vec(), None).await?;
                    }
                    Workload::RawGet => {
                        let r = kv.get(pre, Some(GetOptions::new().with_serializable())).await?;
                        anyhow::ensure!(r.kvs().len() == 1, "missing");
                    }
                    Workload::PrefixScan => {
                        let prefix = format!("pre/{:02}/", n % 10);
                        let r = kv.get(prefix, Some(GetOptions::new().with_prefix())).await?;
                        anyhow::ensure!(r.kvs().len() == 100, "short scan");
                    }
                }
            }
        }
        Ok(())
    }
}
