//! Users, roles and the auth switch through `flaredb.v1.Auth` (etcd's model:
//! off until enabled; enabling needs a `root` user). Each change returns the
//! auth revision it applied at. Sign in with [`ClientConfig::with_user`].
//!
//! [`ClientConfig::with_user`]: crate::ClientConfig::with_user

use flaredb_proto::v1::{self as pb, auth_client::AuthClient};

use crate::{client::RdbClient, conn::Retry, ClientError};

pub use pb::PermissionType;

/// A user as `user_list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// False for a user that signs in only with a client certificate.
    pub has_password: bool,
}

/// Calls one Auth RPC with `msg` through the retry loop.
macro_rules! auth_call {
    ($self:expr, $method:ident, $msg:expr) => {
        $self.conn.call(Retry::Always, $msg, |ch, q| async move { AuthClient::new(ch).$method(q).await })
    };
}

fn permission(namespace: &str, kind: PermissionType) -> Option<pb::Permission> {
    Some(pb::Permission { namespace: namespace.into(), r#type: kind as i32 })
}

impl RdbClient {
    /// Adds a user; an empty password makes a certificate-only user.
    pub async fn user_add(&self, name: &str, password: &str) -> Result<u64, ClientError> {
        let msg = pb::UserAddRequest { name: name.into(), password: password.into() };
        Ok(auth_call!(self, user_add, msg).await?.revision)
    }

    pub async fn user_delete(&self, name: &str) -> Result<u64, ClientError> {
        Ok(auth_call!(self, user_delete, pb::UserDeleteRequest { name: name.into() }).await?.revision)
    }

    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<u64, ClientError> {
        let msg = pb::UserGrantRoleRequest { user: user.into(), role: role.into() };
        Ok(auth_call!(self, user_grant_role, msg).await?.revision)
    }

    pub async fn user_revoke_role(&self, user: &str, role: &str) -> Result<u64, ClientError> {
        let msg = pb::UserRevokeRoleRequest { user: user.into(), role: role.into() };
        Ok(auth_call!(self, user_revoke_role, msg).await?.revision)
    }

    pub async fn user_list(&self) -> Result<Vec<UserInfo>, ClientError> {
        let r = auth_call!(self, user_list, pb::UserListRequest {}).await?;
        Ok(r.users
            .into_iter()
            .map(|u| UserInfo { name: u.name, roles: u.roles, has_password: u.has_password })
            .collect())
    }

    pub async fn role_add(&self, name: &str) -> Result<u64, ClientError> {
        Ok(auth_call!(self, role_add, pb::RoleAddRequest { name: name.into() }).await?.revision)
    }

    pub async fn role_delete(&self, name: &str) -> Result<u64, ClientError> {
        Ok(auth_call!(self, role_delete, pb::RoleDeleteRequest { name: name.into() }).await?.revision)
    }

    /// Grants `kind` on `namespace` (a name, a prefix ending in `*`, or `*`).
    pub async fn role_grant_permission(
        &self,
        role: &str,
        namespace: &str,
        kind: PermissionType,
    ) -> Result<u64, ClientError> {
        let msg = pb::RoleGrantPermissionRequest { role: role.into(), perm: permission(namespace, kind) };
        Ok(auth_call!(self, role_grant_permission, msg).await?.revision)
    }

    pub async fn role_revoke_permission(
        &self,
        role: &str,
        namespace: &str,
        kind: PermissionType,
    ) -> Result<u64, ClientError> {
        let msg = pb::RoleRevokePermissionRequest { role: role.into(), perm: permission(namespace, kind) };
        Ok(auth_call!(self, role_revoke_permission, msg).await?.revision)
    }

    /// Every role with its permissions (namespace pattern, type).
    pub async fn role_list(&self) -> Result<Vec<(String, Vec<(String, PermissionType)>)>, ClientError> {
        let r = auth_call!(self, role_list, pb::RoleListRequest {}).await?;
        Ok(r.roles
            .into_iter()
            .map(|role| {
                let perms = role
                    .perms
                    .into_iter()
                    .map(|p| (p.namespace, PermissionType::try_from(p.r#type).unwrap_or(PermissionType::Read)))
                    .collect();
                (role.name, perms)
            })
            .collect())
    }

    /// Turns auth on; fails (FailedPrecondition) without a `root` user.
    pub async fn auth_enable(&self) -> Result<u64, ClientError> {
        Ok(auth_call!(self, auth_enable, pb::AuthEnableRequest {}).await?.revision)
    }

    pub async fn auth_disable(&self) -> Result<u64, ClientError> {
        Ok(auth_call!(self, auth_disable, pb::AuthDisableRequest {}).await?.revision)
    }

    /// Whether auth is on, and the auth revision.
    pub async fn auth_status(&self) -> Result<(bool, u64), ClientError> {
        let r = auth_call!(self, auth_status, pb::AuthStatusRequest {}).await?;
        Ok((r.enabled, r.revision))
    }
}
