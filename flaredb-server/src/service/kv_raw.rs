//! `flaredb.v1.KvRaw`: eventually consistent operations. Writes go through
//! the log (forwarded to the leader); reads are served locally at once.

use std::sync::Arc;

use flaredb_proto::{
    raft as pb,
    v1::{kv_raw_client::KvRawClient, kv_raw_server::KvRaw, *},
};
use flaredb_raft::{namespace::Mode, FlareResponse};
use tonic::{Request, Response, Status};

use super::ctx::{fatal, unexpected, Ctx};
use crate::{auth::gate::Scope, validate};
use flaredb_raft::auth::Need;

pub struct KvRawService {
    pub ctx: Arc<Ctx>,
}

#[tonic::async_trait]
impl KvRaw for KvRawService {
    async fn raw_put(&self, req: Request<RawPutRequest>) -> Result<Response<RawPutResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        validate::key(&ctx.limits, &r.key)?;
        validate::value(&ctx.limits, &r.value)?;
        validate::namespace(&r.namespace)?;
        let user = ctx.gate.check(&req, Scope::Namespace(&r.namespace), &[Need::Write])?;
        ctx.precheck(&r.namespace, Mode::Eventual)?;
        let req =
            match ctx.forward(req, ctx.timeout, |ch, q| async move { KvRawClient::new(ch).raw_put(q).await }).await {
                Ok(forwarded) => return forwarded,
                Err(req) => req,
            };
        let r = req.into_inner();
        let cmd = pb::command::Cmd::RawPut(pb::RawPut {
            target: ctx.target(&r.namespace, &user),
            key: r.key,
            value: r.value,
        });
        match ctx.propose(cmd).await? {
            FlareResponse::RawPut => Ok(Response::new(RawPutResponse { success: true })),
            other => Err(unexpected(other)),
        }
    }

    async fn raw_get(&self, req: Request<RawGetRequest>) -> Result<Response<RawGetResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Namespace(&req.get_ref().namespace), &[Need::Read])?;
        let r = req.into_inner();
        validate::key(&ctx.limits, &r.key)?;
        validate::namespace(&r.namespace)?;
        let Some(ns) = ctx.read_namespace(&r.namespace, Mode::Eventual)? else {
            return Ok(Response::new(RawGetResponse::default()));
        };
        Ok(Response::new(match ctx.node.raw_get(&ns, &r.key).map_err(fatal)? {
            Some(value) => RawGetResponse { found: true, value: value.into() },
            None => RawGetResponse::default(),
        }))
    }

    async fn raw_scan(&self, req: Request<RawScanRequest>) -> Result<Response<RawScanResponse>, Status> {
        let ctx = &self.ctx;
        ctx.gate.check(&req, Scope::Namespace(&req.get_ref().namespace), &[Need::Read])?;
        let r = req.into_inner();
        let limit = validate::scan(&ctx.limits, &r.start_key, &r.end_key, r.limit)?;
        validate::namespace(&r.namespace)?;
        let Some(ns) = ctx.read_namespace(&r.namespace, Mode::Eventual)? else {
            return Ok(Response::new(RawScanResponse::default()));
        };
        let page = ctx.node.scan(&ns, r.start_key.to_vec(), r.end_key.to_vec(), limit).await.map_err(fatal)?;
        Ok(Response::new(RawScanResponse {
            entries: page
                .entries
                .into_iter()
                .map(|(key, _, value)| KvPair { key: key.into(), value: value.into() })
                .collect(),
            has_more: page.next_key.is_some(),
            next_key: page.next_key.unwrap_or_default().into(),
        }))
    }

    async fn raw_delete(&self, req: Request<RawDeleteRequest>) -> Result<Response<RawDeleteResponse>, Status> {
        let ctx = &self.ctx;
        let r = req.get_ref();
        validate::key(&ctx.limits, &r.key)?;
        validate::namespace(&r.namespace)?;
        let user = ctx.gate.check(&req, Scope::Namespace(&r.namespace), &[Need::Write])?;
        ctx.precheck(&r.namespace, Mode::Eventual)?;
        let req = match ctx
            .forward(req, ctx.timeout, |ch, q| async move { KvRawClient::new(ch).raw_delete(q).await })
            .await
        {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
        let r = req.into_inner();
        let cmd = pb::command::Cmd::RawDelete(pb::RawDelete { target: ctx.target(&r.namespace, &user), key: r.key });
        match ctx.propose(cmd).await? {
            FlareResponse::RawDelete { existed } => Ok(Response::new(RawDeleteResponse { success: existed })),
            other => Err(unexpected(other)),
        }
    }
}
