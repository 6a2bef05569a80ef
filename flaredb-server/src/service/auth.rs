//! `flaredb.v1.Auth`: users, roles, permissions, the auth switch, tokens.
//! Changes go through the log (the leader proposes them; a follower
//! forwards); lists are read on the leader after confirming leadership, so
//! a script sees its own changes from any node.

use std::{sync::Arc, time::Instant};

use flaredb_proto::{
    raft as pb,
    v1::{auth_client::AuthClient, auth_server::Auth, *},
};
use flaredb_raft::{
    auth::{self as rules, AuthState, Need, PermType, Permission},
    FlareResponse,
};
use tonic::{Code, Request, Response, Status};

use super::ctx::{unexpected, Ctx};
use crate::{
    auth::{gate::Scope, password, throttle::SignInThrottle, token},
    forward::is_forwarded,
    status,
};

pub struct AuthService {
    pub ctx: Arc<Ctx>,
    /// Slows password guessing per (address, user).
    pub throttle: SignInThrottle,
}

/// Forwards `$req` to the leader with `$method` unless this node serves it.
macro_rules! forward_or_serve {
    ($ctx:expr, $req:expr, $method:ident) => {
        match $ctx.forward($req, $ctx.timeout, |ch, q| async move { AuthClient::new(ch).$method(q).await }).await {
            Ok(forwarded) => return forwarded,
            Err(req) => req.into_inner(),
        }
    };
}

fn name(what: &str, n: &str) -> Result<(), Status> {
    rules::validate_name(what, n).map_err(status::auth_rejection)
}

fn perm_from_request(p: Option<&Permission_>) -> Result<pb::AuthPermissionRecord, Status> {
    let p = p.ok_or_else(|| Status::invalid_argument("perm is required: {namespace, type}"))?;
    let kind = PermType::from_i32(p.r#type)
        .ok_or_else(|| Status::invalid_argument("perm.type must be READ, WRITE, READWRITE or ADMIN"))?;
    let perm = Permission { namespace: p.namespace.clone(), kind };
    perm.validate().map_err(status::auth_rejection)?;
    Ok(rules::perm_to_pb(&perm))
}

type Permission_ = flaredb_proto::v1::Permission;

impl AuthService {
    /// Refuses unless auth is off or the caller is a cluster admin.
    fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        self.ctx.gate.check(req, Scope::Cluster, &[Need::Admin]).map(drop)
    }

    async fn change(&self, op: pb::auth_command::Op) -> Result<Response<AuthChangeResponse>, Status> {
        let cmd = pb::command::Cmd::Auth(pb::AuthCommand { op: Some(op) });
        match self.ctx.propose(cmd).await? {
            FlareResponse::Auth(Ok(revision)) => Ok(Response::new(AuthChangeResponse { revision })),
            FlareResponse::Auth(Err(r)) => Err(status::auth_rejection(r)),
            other => Err(unexpected(other)),
        }
    }

    /// The auth state as of now (leadership confirmed).
    async fn current(&self) -> Result<Arc<AuthState>, Status> {
        self.ctx.linearize().await?;
        Ok(self.ctx.node.auth())
    }
}

fn user_role(user: String, role: String) -> Result<pb::AuthUserRole, Status> {
    name("user", &user)?;
    name("role", &role)?;
    Ok(pb::AuthUserRole { user, role })
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn authenticate(&self, req: Request<AuthenticateRequest>) -> Result<Response<AuthenticateResponse>, Status> {
        let ctx = &self.ctx;
        let mut state = ctx.node.auth();
        let mut req = req;
        if !state.enabled {
            // This node may not have applied an AuthEnable just acknowledged: the leader decides.
            req = match ctx
                .forward(req, ctx.timeout, |ch, q| async move { AuthClient::new(ch).authenticate(q).await })
                .await
            {
                Ok(forwarded) => return forwarded,
                Err(req) => req,
            };
            state = self.current().await?;
            if !state.enabled {
                return Err(Status::failed_precondition("auth is not enabled: requests need no token"));
            }
        }
        let r = req.get_ref();
        name("user", &r.name)?;
        if r.password.len() > password::MAX_PASSWORD_BYTES {
            return Err(Status::invalid_argument(format!(
                "password is limited to {} bytes",
                password::MAX_PASSWORD_BYTES
            )));
        }
        let (ip, user) = (req.remote_addr().map(|a| a.ip()), r.name.clone());
        // Counted as a failure until it succeeds.
        self.throttle.attempt(ip, &user, Instant::now())?;
        let failed = || {
            tracing::info!(%user, "authentication failed");
            Status::unauthenticated("wrong user name or password")
        };
        let hash = password_hash(&state, &r.name);
        if !password::verify(r.password.clone(), hash).await? {
            if ctx.node.raft().is_leader() || is_forwarded(&req) {
                return Err(failed());
            }
            // This node may not have applied a user just added: the leader decides.
            let forwarded =
                ctx.forward(req, ctx.timeout, |ch, q| async move { AuthClient::new(ch).authenticate(q).await });
            let r = match forwarded.await {
                Ok(Ok(answer)) => {
                    self.throttle.succeeded(ip, &user);
                    return Ok(answer);
                }
                Ok(Err(refused)) if refused.code() == Code::Unauthenticated => return Err(failed()),
                Ok(Err(other)) => return Err(other),
                Err(req) => req.into_inner(),
            };
            state = self.current().await?;
            let hash = password_hash(&state, &r.name);
            if !state.enabled || !password::verify(r.password, hash).await? {
                return Err(failed());
            }
        }
        // Signed as of the state the password was checked against.
        self.throttle.succeeded(ip, &user);
        Ok(Response::new(issue(ctx, &state, &user)))
    }

    async fn user_add(&self, req: Request<UserAddRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("user", &req.get_ref().name)?;
        if req.get_ref().password.len() > password::MAX_PASSWORD_BYTES {
            return Err(Status::invalid_argument(format!(
                "password is limited to {} bytes",
                password::MAX_PASSWORD_BYTES
            )));
        }
        let r = forward_or_serve!(self.ctx, req, user_add);
        let password_hash = if r.password.is_empty() { String::new() } else { password::hash(r.password).await? };
        self.change(pb::auth_command::Op::UserAdd(pb::AuthUserRecord {
            name: r.name,
            password_hash,
            ..Default::default()
        }))
        .await
    }

    async fn user_delete(&self, req: Request<UserDeleteRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("user", &req.get_ref().name)?;
        let r = forward_or_serve!(self.ctx, req, user_delete);
        self.change(pb::auth_command::Op::UserDelete(r.name)).await
    }

    async fn user_grant_role(
        &self,
        req: Request<UserGrantRoleRequest>,
    ) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        let r = forward_or_serve!(self.ctx, req, user_grant_role);
        self.change(pb::auth_command::Op::UserGrantRole(user_role(r.user, r.role)?)).await
    }

    async fn user_revoke_role(
        &self,
        req: Request<UserRevokeRoleRequest>,
    ) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        let r = forward_or_serve!(self.ctx, req, user_revoke_role);
        self.change(pb::auth_command::Op::UserRevokeRole(user_role(r.user, r.role)?)).await
    }

    async fn user_list(&self, req: Request<UserListRequest>) -> Result<Response<UserListResponse>, Status> {
        self.admin(&req)?;
        forward_or_serve!(self.ctx, req, user_list);
        let state = self.current().await?;
        let users = state
            .users
            .iter()
            .map(|(name, u)| AuthUser {
                name: name.clone(),
                roles: u.roles.iter().cloned().collect(),
                has_password: !u.password_hash.is_empty(),
            })
            .collect();
        Ok(Response::new(UserListResponse { users }))
    }

    async fn role_add(&self, req: Request<RoleAddRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("role", &req.get_ref().name)?;
        let r = forward_or_serve!(self.ctx, req, role_add);
        self.change(pb::auth_command::Op::RoleAdd(r.name)).await
    }

    async fn role_delete(&self, req: Request<RoleDeleteRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("role", &req.get_ref().name)?;
        let r = forward_or_serve!(self.ctx, req, role_delete);
        self.change(pb::auth_command::Op::RoleDelete(r.name)).await
    }

    async fn role_grant_permission(
        &self,
        req: Request<RoleGrantPermissionRequest>,
    ) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("role", &req.get_ref().role)?;
        perm_from_request(req.get_ref().perm.as_ref())?;
        let r = forward_or_serve!(self.ctx, req, role_grant_permission);
        let perm = Some(perm_from_request(r.perm.as_ref())?);
        self.change(pb::auth_command::Op::RoleGrantPermission(pb::AuthRolePermission { role: r.role, perm })).await
    }

    async fn role_revoke_permission(
        &self,
        req: Request<RoleRevokePermissionRequest>,
    ) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        name("role", &req.get_ref().role)?;
        perm_from_request(req.get_ref().perm.as_ref())?;
        let r = forward_or_serve!(self.ctx, req, role_revoke_permission);
        let perm = Some(perm_from_request(r.perm.as_ref())?);
        self.change(pb::auth_command::Op::RoleRevokePermission(pb::AuthRolePermission { role: r.role, perm })).await
    }

    async fn role_list(&self, req: Request<RoleListRequest>) -> Result<Response<RoleListResponse>, Status> {
        self.admin(&req)?;
        forward_or_serve!(self.ctx, req, role_list);
        let state = self.current().await?;
        let roles = state
            .roles
            .iter()
            .map(|(name, perms)| AuthRole {
                name: name.clone(),
                perms: perms
                    .iter()
                    .map(|p| Permission_ { namespace: p.namespace.clone(), r#type: p.kind.to_i32() })
                    .collect(),
            })
            .collect();
        Ok(Response::new(RoleListResponse { roles }))
    }

    async fn auth_enable(&self, req: Request<AuthEnableRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        // Checked on the node asked and again on the leader.
        if let Some(addr) = self.ctx.raft_exposed {
            return Err(status::raft_exposed(self.ctx.node.id(), addr));
        }
        forward_or_serve!(self.ctx, req, auth_enable);
        every_member_closed(&self.ctx).await?;
        let key: [u8; rules::SIGNING_KEY_BYTES] = rand::random();
        let answer = self.change(pb::auth_command::Op::AuthEnable(key.to_vec().into())).await;
        if answer.is_ok() {
            tracing::warn!("auth enabled: every request now needs a token or a client certificate");
        }
        answer
    }

    async fn auth_disable(&self, req: Request<AuthDisableRequest>) -> Result<Response<AuthChangeResponse>, Status> {
        self.admin(&req)?;
        forward_or_serve!(self.ctx, req, auth_disable);
        let answer = self.change(pb::auth_command::Op::AuthDisable(pb::Blank {})).await;
        if answer.is_ok() {
            tracing::warn!("auth disabled: anyone who reaches this cluster may read and write everything");
        }
        answer
    }

    async fn auth_status(&self, _req: Request<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        let state = self.ctx.node.auth();
        Ok(Response::new(AuthStatusResponse { enabled: state.enabled, revision: state.revision }))
    }
}

/// Refuses unless every other member answers Status saying its Raft
/// transport is closed to strangers: one exposed member is enough to bypass
/// auth through Raft.
async fn every_member_closed(ctx: &Ctx) -> Result<(), Status> {
    let me = ctx.node.id();
    for m in ctx.node.status().members.into_iter().filter(|m| m.id != me) {
        raft_closed(ctx, m.id, &m.addr.public).await?;
    }
    Ok(())
}

/// Refuses unless node `id` (public address `public`) answers Status saying
/// its Raft transport is closed to strangers.
pub(crate) async fn raft_closed(ctx: &Ctx, id: u64, public: &str) -> Result<(), Status> {
    use flaredb_proto::v1::admin_client::AdminClient;
    let ask = async {
        let mut req = Request::new(StatusRequest {});
        req.set_timeout(std::time::Duration::from_secs(2));
        AdminClient::new(ctx.fwd.channel(public)?).status(req).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), ask).await {
        Ok(Ok(s)) if s.get_ref().raft_exposed => Err(Status::failed_precondition(format!(
            "node {id} serves the Raft transport off loopback without peer TLS: anyone who reaches it could \
             bypass auth through Raft. Give it --peer-listen with --peer-cert, --peer-key and \
             --peer-trusted-ca (or set allow_auth_without_peer_tls = true in its config), then retry"
        ))),
        Ok(Ok(_)) => Ok(()),
        _ => Err(Status::unavailable(format!(
            "node {id} did not answer Status at {public}, so its Raft transport cannot be confirmed closed to \
             strangers (auth depends on it); bring it up and retry"
        ))),
    }
}

/// The stored hash of `user` (empty for an unknown or certificate-only user).
fn password_hash(state: &AuthState, user: &str) -> String {
    state.users.get(user).map(|u| u.password_hash.clone()).unwrap_or_default()
}

/// A token for `user`, good for the configured time.
fn issue(ctx: &Ctx, state: &AuthState, user: &str) -> AuthenticateResponse {
    let ttl = ctx.token_ttl;
    // The password was checked against this state: the user is in it.
    let incarnation = state.users.get(user).map_or(0, |u| u.added_at);
    let claims = token::Claims { user: user.to_string(), incarnation };
    let token = token::sign(&state.signing_key, &claims, token::now_ms() + ttl.as_millis() as u64);
    AuthenticateResponse { token, ttl_seconds: ttl.as_secs() as i64 }
}
