//! The check at the edge: who sends a request (a bearer token, or the CN of
//! a verified client certificate) and whether that user may do it. Every
//! node checks every request against its own applied auth state, forwarded
//! ones included: a forward marker proves nothing, so a follower passes the
//! caller's token on (or signs one for a certificate user).

use std::{sync::Arc, time::Duration};

use flaredb_proto::leader_hint::{mark_not_applied, FORWARDED_KEY};
use flaredb_raft::{
    auth::{AuthState, Need},
    namespace::canonical_name,
    node::FlareNode,
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    Request, Status,
};

use super::token;

pub const AUTHORIZATION: &str = "authorization";
/// A token a follower signs for a certificate user when it forwards.
const FORWARD_TOKEN_TTL: Duration = Duration::from_secs(60);

/// What a request touches.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One namespace (`""` is `default`).
    Namespace(&'a str),
    /// The cluster: only ADMIN on `*` (or root).
    Cluster,
    /// No namespace in particular (leases): the right on any namespace.
    Anywhere,
}

pub struct Gate {
    node: Arc<FlareNode>,
    /// The public listener verifies client certificates: their CN names a user.
    cert_users: bool,
}

fn unauthenticated(why: impl std::fmt::Display) -> Status {
    Status::unauthenticated(format!("{why}"))
}

impl Gate {
    pub fn new(node: Arc<FlareNode>, cert_users: bool) -> Self {
        Self { node, cert_users }
    }

    /// Refuses `req` unless auth is off or its user has every right in
    /// `needs` on `scope`. UNAUTHENTICATED: no usable identity;
    /// PERMISSION_DENIED: a right is missing. The user's name, empty when
    /// auth is off (what a command records as its user).
    pub fn check<T>(&self, req: &Request<T>, scope: Scope<'_>, needs: &[Need]) -> Result<String, Status> {
        self.check_credential(&self.credential(req), scope, needs)
    }

    /// `check` for a credential already taken from its request (a stream
    /// keeps it to check again later).
    pub fn check_credential(&self, cred: &Credential, scope: Scope<'_>, needs: &[Need]) -> Result<String, Status> {
        self.decide(cred, token::now_ms(), scope, needs)
    }

    /// What a request presents as its identity, kept by a stream to check again.
    pub fn credential<T>(&self, req: &Request<T>) -> Credential {
        match req.metadata().get(AUTHORIZATION) {
            Some(v) => Credential::Header(v.clone()),
            // The certificate of a forwarded request is the forwarding node's,
            // never the caller's.
            None if req.metadata().contains_key(FORWARDED_KEY) => Credential::ForwardedBare,
            None if self.cert_users => cert_common_name(req).map_or(Credential::None, Credential::Cert),
            None => Credential::None,
        }
    }

    /// `check` again for an open stream (a watch, a keep-alive): the user
    /// must still exist, the signing key be the same and the rights still be
    /// there. The token's expiry counted when the stream opened, as in etcd:
    /// a stream outlives its token, not its user's rights.
    pub fn recheck(&self, cred: &Credential, scope: Scope<'_>, needs: &[Need]) -> Result<String, Status> {
        self.decide(cred, 0, scope, needs)
    }

    /// Checks `cred` as of `now_ms` (0: whatever the token's expiry).
    fn decide(&self, cred: &Credential, now_ms: u64, scope: Scope<'_>, needs: &[Need]) -> Result<String, Status> {
        let state = self.node.auth();
        if !state.enabled {
            return Ok(String::new());
        }
        self.allow(&state, cred, now_ms, scope, needs)
    }

    fn allow(
        &self,
        state: &AuthState,
        cred: &Credential,
        now_ms: u64,
        scope: Scope<'_>,
        needs: &[Need],
    ) -> Result<String, Status> {
        let user = identify(state, cred, now_ms)?;
        for &need in needs {
            let ok = match scope {
                Scope::Namespace(ns) => state.permits(&user, Some(canonical_name(ns)), need),
                Scope::Cluster => state.permits(&user, None, need),
                Scope::Anywhere => state.permits_somewhere(&user, need),
            };
            if !ok {
                return Err(denied(&user, scope, need));
            }
        }
        Ok(user)
    }

    /// The user `req` comes from; `None` when auth is off.
    pub fn user<T>(&self, req: &Request<T>) -> Result<Option<(String, Arc<AuthState>)>, Status> {
        let state = self.node.auth();
        if !state.enabled {
            return Ok(None);
        }
        Ok(Some((identify(&state, &self.credential(req), token::now_ms())?, state)))
    }

    /// The authorization a request forwarded to the leader carries: the
    /// caller's own header, or for a certificate user a short token signed here.
    pub fn forward_header<T>(&self, req: &Request<T>) -> Option<MetadataValue<Ascii>> {
        if let Some(v) = req.metadata().get(AUTHORIZATION) {
            return Some(v.clone());
        }
        let state = self.node.auth();
        if !state.enabled || !self.cert_users {
            return None;
        }
        let user = cert_common_name(req)?;
        let incarnation = state.users.get(&user)?.added_at;
        let expires = token::now_ms() + FORWARD_TOKEN_TTL.as_millis() as u64;
        let claims = token::Claims { user, incarnation };
        format!("Bearer {}", token::sign(&state.signing_key, &claims, expires)).parse().ok()
    }
}

/// What a request presents as its identity.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The `authorization` header as sent.
    Header(MetadataValue<Ascii>),
    /// The CN of a verified client certificate (with --client-cert-auth).
    Cert(String),
    /// Forwarded by a node that sent no credential: it had not applied
    /// AuthEnable yet (with auth on there, it would have sent the caller's).
    ForwardedBare,
    None,
}

/// The user `cred` names, if it holds up against `state` at `now_ms`.
fn identify(state: &AuthState, cred: &Credential, now_ms: u64) -> Result<String, Status> {
    match cred {
        Credential::Header(v) => {
            let v = v.to_str().map_err(|_| unauthenticated("the authorization header is not ASCII"))?;
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| unauthenticated("the authorization header must be `Bearer <token>`"))?;
            let claims = token::verify(&state.signing_key, token.trim(), now_ms).map_err(unauthenticated)?;
            match state.users.get(&claims.user) {
                None => Err(unauthenticated(format!("user {:?} no longer exists", claims.user))),
                Some(u) if u.added_at != claims.incarnation => Err(unauthenticated(format!(
                    "user {:?} was deleted and added again since this token was issued; authenticate again",
                    claims.user
                ))),
                Some(_) => Ok(claims.user),
            }
        }
        Credential::Cert(cn) => {
            if !state.users.contains_key(cn) {
                return Err(unauthenticated(format!(
                    "the client certificate names user {cn:?}, who does not exist (add it with Auth/UserAdd)"
                )));
            }
            Ok(cn.clone())
        }
        Credential::ForwardedBare => {
            // Transient, and nothing was done: the client retries and the
            // forwarding node has caught up by then.
            let mut s = Status::unavailable(
                "forwarded without the caller's credentials by a node that has not applied AuthEnable yet; retry",
            );
            mark_not_applied(s.metadata_mut());
            Err(s)
        }
        Credential::None => Err(unauthenticated(
            "auth is enabled: send `authorization: Bearer <token>` with a token from Auth/Authenticate",
        )),
    }
}

fn denied(user: &str, scope: Scope<'_>, need: Need) -> Status {
    let what = need.name();
    Status::permission_denied(match scope {
        Scope::Namespace(ns) => format!(
            "user {user:?} has no {what} permission on namespace {:?}: grant one of its roles {} on it",
            canonical_name(ns),
            match need {
                Need::Read => "READ, READWRITE or ADMIN",
                Need::Write => "WRITE, READWRITE or ADMIN",
                Need::Admin => "ADMIN",
            }
        ),
        Scope::Cluster => format!("user {user:?} may not do this: it needs ADMIN on namespace \"*\" (or to be root)"),
        Scope::Anywhere => format!("user {user:?} has no {what} permission on any namespace"),
    })
}

/// The CN of the client certificate the TLS handshake verified, if any.
fn cert_common_name<T>(req: &Request<T>) -> Option<String> {
    let certs = req.peer_certs()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}
