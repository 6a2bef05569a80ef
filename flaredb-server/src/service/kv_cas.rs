//! `flaredb.v1.KvCas`: linearizable, versioned operations.

use std::sync::Arc;

use flaredb_proto::{
    raft as pb,
    v1::{kv_cas_client::KvCasClient, kv_cas_server::KvCas, *},
};
use flaredb_raft::{namespace::Mode, FlareResponse};
use tonic::{Request, Response, Status};

use super::{
    ctx::{fatal, unexpected, Ctx},
    lease, txn, watch,
};
use crate::{auth::gate::Scope, validate, validate_txn};
use flaredb_raft::auth::Need;

pub struct KvCasService {
    pub ctx: Arc<Ctx>,
}

#[tonic::async_trait]
impl KvCas for KvCasService {
    type WatchStream = watch::WatchStream;
    type LeaseKeepAliveStream = lease::KeepAliveStream;

    async fn lease_grant(&self, req: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        lease::grant(&self.ctx, req).await
    }

    async fn lease_keep_alive(
        &self,
        req: Request<tonic::Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        lease::keep_alive(&self.ctx, req).await
    }

    async fn lease_revoke(&self, req: Request<LeaseRevokeRequest>) -> Result<Response<LeaseRevokeResponse>, Status> {
        lease::revoke(&self.ctx, req).await
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        lease::time_to_live(&self.ctx, req).await
    }

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let cred = self.ctx.gate.credential(&req);
        self.ctx.gate.check_credential(&cred, Scope::Namespace(&req.get_ref().namespace), &[Need::Read])?;
        watch::start(&self.ctx, req.into_inner(), cred).await.map(Response::new)
    }

    async fn compare_and_swap(&self, req: Request<CasRequest>) -> Result<Response<CasResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        validate::key(&ctx.limits, &r.key)?;
        validate::value(&ctx.limits, &r.value)?;
        validate::namespace(&r.namespace)?;
        validate::write_id(&r.write_id)?;
        let user = ctx.gate.check(&req, Scope::Namespace(&r.namespace), &[Need::Write])?;
        ctx.precheck(&r.namespace, Mode::Strong)?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).compare_and_swap(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        let cmd = pb::command::Cmd::CasPut(pb::CasPut {
            target: ctx.target(&r.namespace, &user),
            key: r.key,
            value: r.value,
            expected_version: r.expected_version,
            lease_id: r.lease_id,
        });
        let hide = !ctx.may_read(&user, &r.namespace);
        match ctx.propose_once(cmd, r.write_id, user).await? {
            FlareResponse::Cas { success, current_version, new_version } => {
                // A failed compare names the key's version: not for a writer who may not read.
                let current_version = if hide && !success { 0 } else { current_version };
                Ok(Response::new(CasResponse { success, current_version, new_version }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let ctx = &self.ctx;
        validate::key(&ctx.limits, &req.get_ref().key)?;
        validate::namespace(&req.get_ref().namespace)?;
        ctx.gate.check(&req, Scope::Namespace(&req.get_ref().namespace), &[Need::Read])?;
        let req = match ctx.forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).get(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        ctx.linearize().await?;
        let Some(ns) = ctx.read_namespace(&r.namespace, Mode::Strong)? else {
            return Ok(Response::new(GetResponse::default()));
        };
        Ok(Response::new(match ctx.node.cas_get(&ns, &r.key).map_err(fatal)? {
            Some((version, value)) => GetResponse { found: true, value: value.into(), version },
            None => GetResponse::default(),
        }))
    }

    async fn scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        let limit = validate::scan(&ctx.limits, &r.start_key, &r.end_key, r.limit)?;
        validate::namespace(&r.namespace)?;
        ctx.gate.check(&req, Scope::Namespace(&r.namespace), &[Need::Read])?;
        let req = match ctx.forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).scan(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        ctx.linearize().await?;
        let Some(ns) = ctx.read_namespace(&r.namespace, Mode::Strong)? else {
            return Ok(Response::new(ScanResponse::default()));
        };
        let page = ctx.node.scan(&ns, r.start_key.to_vec(), r.end_key.to_vec(), limit).await.map_err(fatal)?;
        Ok(Response::new(ScanResponse {
            entries: page
                .entries
                .into_iter()
                .map(|(key, version, value)| VersionedKv { key: key.into(), value: value.into(), version })
                .collect(),
            has_more: page.next_key.is_some(),
            next_key: page.next_key.unwrap_or_default().into(),
        }))
    }

    async fn compare_and_delete(&self, req: Request<CasDeleteRequest>) -> Result<Response<CasDeleteResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        validate::key(&ctx.limits, &r.key)?;
        validate::namespace(&r.namespace)?;
        validate::write_id(&r.write_id)?;
        let user = ctx.gate.check(&req, Scope::Namespace(&r.namespace), &[Need::Write])?;
        ctx.precheck(&r.namespace, Mode::Strong)?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).compare_and_delete(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        let cmd = pb::command::Cmd::CasDelete(pb::CasDelete {
            target: ctx.target(&r.namespace, &user),
            key: r.key,
            expected_version: r.expected_version,
        });
        let hide = !ctx.may_read(&user, &r.namespace);
        match ctx.propose_once(cmd, r.write_id, user).await? {
            FlareResponse::CasDelete { success, current_version } => {
                let current_version = if hide && !success { 0 } else { current_version };
                Ok(Response::new(CasDeleteResponse { success, current_version }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let ctx = &self.ctx;
        validate_txn::txn(&ctx.limits, req.get_ref())?;
        validate::write_id(&req.get_ref().write_id)?;
        let user = ctx.gate.check(&req, Scope::Namespace(&req.get_ref().namespace), &txn::needs(req.get_ref()))?;
        ctx.precheck(&req.get_ref().namespace, Mode::Strong)?;
        let req = match ctx.forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).txn(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let mut r = req.into_inner();
        let write_id = r.write_id.take();
        let cmd = txn::command(ctx.target(&r.namespace, &user), r);
        match ctx.propose_once(cmd, write_id, user).await? {
            FlareResponse::Txn { succeeded, revision, results } => {
                Ok(Response::new(txn::response(succeeded, revision, results, ctx.limits.max_message_bytes)?))
            }
            other => Err(unexpected(other)),
        }
    }
}
