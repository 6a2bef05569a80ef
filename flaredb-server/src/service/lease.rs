//! KvCas leases: grant and revoke go through the log; keep-alive and
//! time-to-live are answered by the leader from its table (a follower
//! forwards them, a keep-alive stream as a whole).

use std::{pin::Pin, sync::Arc};

use flaredb_proto::{
    leader_hint::{LeaderHint, FORWARDED_KEY},
    raft as pb,
    v1::{kv_cas_client::KvCasClient, *},
};
use flaredb_raft::{
    auth::Need,
    lease::{MAX_TTL_SECS, MIN_TTL_SECS},
    FlareResponse, NodeError,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::{metadata::MetadataValue, Request, Response, Status, Streaming};

use super::ctx::{fatal, unexpected, Ctx};
use crate::{
    auth::gate::Scope,
    forward::{is_forwarded, with_cause},
    status,
};

pub type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

/// Keep-alive answers queued for the client.
const STREAM_BUFFER: usize = 256;

pub async fn grant(ctx: &Arc<Ctx>, req: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
    // A lease belongs to no namespace: granting one needs WRITE somewhere.
    // It belongs to the user who grants it (recorded by apply).
    let user = ctx.gate.check(&req, Scope::Anywhere, &[Need::Write])?;
    let ttl = req.get_ref().ttl_seconds;
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(Status::invalid_argument(format!(
            "ttl_seconds must be between 1 and {MAX_TTL_SECS} (ten years); got {ttl}"
        )));
    }
    let req =
        match ctx.forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).lease_grant(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
    let ttl = req.into_inner().ttl_seconds.max(MIN_TTL_SECS);
    match ctx.propose_once(pb::command::Cmd::LeaseGrant(pb::LeaseGrant { ttl_seconds: ttl }), None, user).await? {
        FlareResponse::LeaseGranted { id, ttl_secs } => {
            Ok(Response::new(LeaseGrantResponse { lease_id: id, ttl_seconds: ttl_secs }))
        }
        other => Err(unexpected(other)),
    }
}

pub async fn revoke(ctx: &Arc<Ctx>, req: Request<LeaseRevokeRequest>) -> Result<Response<LeaseRevokeResponse>, Status> {
    let id = req.get_ref().lease_id;
    if id == 0 {
        return Err(Status::invalid_argument("lease_id must be set (0 is no lease)"));
    }
    // Revoking deletes the lease's keys: WRITE on each of their namespaces;
    // and only the owner (or an admin) may (checked by apply).
    let user = ctx.gate.check(&req, Scope::Anywhere, &[Need::Write])?;
    // Ownership first: another user's lease must not name its namespaces.
    owned(ctx, id, &user)?;
    for ns in lease_namespaces(ctx, id).await? {
        ctx.gate.check(&req, Scope::Namespace(&ns), &[Need::Write])?;
    }
    let req =
        match ctx.forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).lease_revoke(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req,
        };
    let cmd = pb::command::Cmd::LeaseRevoke(pb::LeaseRevoke { ids: vec![req.into_inner().lease_id], expired: false });
    match ctx.propose_once(cmd, None, user).await? {
        FlareResponse::LeaseRevoked { revoked: 0, .. } => Err(status::lease_not_found(id)),
        FlareResponse::LeaseRevoked { deleted, .. } => Ok(Response::new(LeaseRevokeResponse { deleted })),
        other => Err(unexpected(other)),
    }
}

pub async fn time_to_live(
    ctx: &Arc<Ctx>,
    req: Request<LeaseTimeToLiveRequest>,
) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
    let user = ctx.gate.check(&req, Scope::Anywhere, &[Need::Write])?;
    owned(ctx, req.get_ref().lease_id, &user)?;
    if req.get_ref().keys {
        // Listing the keys shows them: READ on each of their namespaces.
        for ns in lease_namespaces(ctx, req.get_ref().lease_id).await? {
            ctx.gate.check(&req, Scope::Namespace(&ns), &[Need::Read])?;
        }
    }
    let req = match ctx
        .forward(req, ctx.timeout, |ch, q| async move { KvCasClient::new(ch).lease_time_to_live(q).await })
        .await
    {
        Ok(forwarded) => return forwarded,
        Err(req) => req,
    };
    let r = req.into_inner();
    let info = match tokio::time::timeout(ctx.timeout, ctx.node.lease_info(r.lease_id)).await {
        Ok(found) => found.map_err(status::node_error)?,
        Err(_) => return Err(status::read_timeout(ctx.timeout)),
    };
    let Some(info) = info else { return Err(status::lease_not_found(r.lease_id)) };
    if !ctx.node.auth().may_act_for(&info.owner, &user) {
        return Err(status::lease_not_owned(r.lease_id));
    }
    let mut resp = LeaseTimeToLiveResponse {
        lease_id: r.lease_id,
        // Rounded up: a lease with 0.2 s left is still alive.
        ttl_seconds: info.remaining.as_millis().div_ceil(1000) as i64,
        granted_ttl_seconds: info.ttl_secs,
        ..Default::default()
    };
    if r.keys {
        for (ns, key) in ctx.node.lease_keys(r.lease_id).await.map_err(fatal)? {
            resp.namespaces.push(ns);
            resp.keys.push(key.into());
        }
    }
    Ok(Response::new(resp))
}

/// Refuses another user's lease, as far as this node knows it (the leader
/// checks again: apply for a revoke, its own table for a TTL).
fn owned(ctx: &Ctx, id: u64, user: &str) -> Result<(), Status> {
    match ctx.node.lease_owner(id) {
        Some(owner) if !ctx.node.auth().may_act_for(&owner, user) => Err(status::lease_not_owned(id)),
        _ => Ok(()),
    }
}

/// The namespaces of the keys attached to lease `id` (as applied here).
async fn lease_namespaces(ctx: &Ctx, id: u64) -> Result<std::collections::BTreeSet<String>, Status> {
    if !ctx.node.auth().enabled {
        return Ok(Default::default());
    }
    Ok(ctx.node.lease_keys(id).await.map_err(fatal)?.into_iter().map(|(ns, _)| ns).collect())
}

/// A keep-alive stream: served by the leader, piped to it by a follower.
pub async fn keep_alive(
    ctx: &Arc<Ctx>,
    req: Request<Streaming<LeaseKeepAliveRequest>>,
) -> Result<Response<KeepAliveStream>, Status> {
    let cred = ctx.gate.credential(&req);
    ctx.gate.check_credential(&cred, Scope::Anywhere, &[Need::Write])?;
    if !is_forwarded(&req) && !ctx.node.raft().is_leader() {
        if ctx.node.leader().is_none() {
            ctx.node.wait_for_new_leader(None, ctx.leader_wait).await;
        }
        // No leader, or this node: served here (answering "not the leader" if so).
        if let Some(leader) = ctx.node.leader().filter(|(id, _)| *id != ctx.node.id()) {
            let auth = ctx.gate.forward_header(&req);
            return pipe_to_leader(ctx, leader, auth, req.into_inner()).await;
        }
    }
    let mut inbound = req.into_inner();
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        // A client error or end of its stream ends ours.
        while let Some(Ok(msg)) = inbound.next().await {
            // The caller is checked again at each message: a deleted user or
            // a revoked right ends the stream.
            let out = match ctx.gate.recheck(&cred, Scope::Anywhere, &[Need::Write]) {
                Ok(user) => renew(&ctx, msg.lease_id, &user).await,
                Err(denied) => Err(denied),
            };
            let end = out.is_err();
            if tx.send(out).await.is_err() || end {
                return;
            }
        }
    });
    Ok(Response::new(Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))))
}

/// Renews lease `id` for `user` (only the leader renews: NotLeader elsewhere
/// ends the stream); another user's lease is refused, an unknown one
/// answers TTL 0.
async fn renew(ctx: &Ctx, id: u64, user: &str) -> Result<LeaseKeepAliveResponse, Status> {
    let auth = ctx.node.auth();
    // Checked and renewed in one step: a lease granted meanwhile is checked too.
    let ttl = match ctx.node.lease_keep_alive(id, |owner| auth.may_act_for(owner, user)).await {
        Ok(ttl) => ttl,
        Err(NodeError::Denied(_)) => return Err(status::lease_not_owned(id)),
        Err(e) => return Err(status::node_error(e)),
    };
    Ok(LeaseKeepAliveResponse { lease_id: id, ttl_seconds: ttl.unwrap_or(0) })
}

/// Opens the same stream on the leader and passes messages both ways; the
/// answer carries the leader hint, so a client can go there directly.
async fn pipe_to_leader(
    ctx: &Arc<Ctx>,
    leader: (u64, String),
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    inbound: Streaming<LeaseKeepAliveRequest>,
) -> Result<Response<KeepAliveStream>, Status> {
    let upstream = inbound.take_while(|m| futures::future::ready(m.is_ok())).filter_map(|m| async move { m.ok() });
    let mut out = Request::new(upstream);
    out.metadata_mut().insert(FORWARDED_KEY, MetadataValue::from_static("1"));
    if let Some(auth) = auth {
        out.metadata_mut().insert(crate::auth::gate::AUTHORIZATION, auth);
    }
    let channel = ctx.fwd.channel(&leader.1)?;
    let answer = KvCasClient::new(channel).lease_keep_alive(out).await.map_err(|s| with_cause(s, &leader))?;
    let mut answers = answer.into_inner();
    // A leader that stopped (paused, cut off) answers nothing and closes
    // nothing: once this node knows another leader, the stream ends so that
    // the client reconnects (to the new leader, named in the hint).
    let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
    let (node, wait) = (ctx.node.clone(), ctx.leader_wait);
    let piped = leader.0;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                next = answers.next() => {
                    let Some(next) = next else { return };
                    if tx.send(next).await.is_err() {
                        return;
                    }
                }
                new = node.wait_for_new_leader(Some(piped), wait) => {
                    if new.is_some() {
                        let s = status::node_error(NodeError::NotLeader { leader: node.leader() });
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                }
            }
        }
    });
    let mut resp = Response::new(Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))) as KeepAliveStream);
    LeaderHint { id: leader.0, addr: leader.1 }.insert_into(resp.metadata_mut());
    Ok(resp)
}
