//! Setting up users before AuthEnable, as most auth tests begin.

use flaredb_client::{PermissionType, RdbClient};

/// Adds `user` (password `password`) and a new `role` holding `kind` on
/// `namespace` (a name or a `prefix*`), and gives the user that role.
pub async fn add_user_with_role(
    c: &RdbClient,
    user: &str,
    password: &str,
    role: &str,
    namespace: &str,
    kind: PermissionType,
) {
    c.user_add(user, password).await.unwrap();
    c.role_add(role).await.unwrap();
    c.role_grant_permission(role, namespace, kind).await.unwrap();
    c.user_grant_role(user, role).await.unwrap();
}
