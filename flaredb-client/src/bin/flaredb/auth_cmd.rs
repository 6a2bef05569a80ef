//! `flaredb user …`, `flaredb role …` and `flaredb auth …`: users, roles,
//! permissions and the auth switch, through the Auth RPCs (etcdctl's names).

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use flaredb_client::{ClientError, PermissionType, RdbClient};
use serde_json::json;

use crate::output::{print_json, print_table, Output};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Adds user NAME with --new-password P (or FLAREDB_NEW_PASSWORD); with
    /// --no-password it signs in only by a client certificate whose CN is NAME.
    Add {
        name: String,
        #[arg(long, env = "FLAREDB_NEW_PASSWORD", hide_env_values = true, required_unless_present = "no_password")]
        new_password: Option<String>,
        #[arg(long, conflicts_with = "new_password")]
        no_password: bool,
    },
    /// Removes user NAME.
    #[command(alias = "del")]
    Delete { name: String },
    /// Gives USER the role ROLE.
    GrantRole { user: String, role: String },
    /// Takes the role ROLE from USER.
    RevokeRole { user: String, role: String },
    /// Lists the users: NAME, ROLES, PASSWORD (yes, or no for certificate-only).
    List,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PermArg {
    Read,
    Write,
    Readwrite,
    Admin,
}

impl From<PermArg> for PermissionType {
    fn from(p: PermArg) -> Self {
        match p {
            PermArg::Read => PermissionType::Read,
            PermArg::Write => PermissionType::Write,
            PermArg::Readwrite => PermissionType::Readwrite,
            PermArg::Admin => PermissionType::Admin,
        }
    }
}

#[derive(Subcommand)]
pub enum RoleCmd {
    /// Adds role NAME (with no permissions).
    Add { name: String },
    /// Removes role NAME, and takes it from every user.
    #[command(alias = "del")]
    Delete { name: String },
    /// Grants ROLE a permission on NAMESPACE: a name, a prefix ending in `*`
    /// (`team-*`), or `*` for all. ADMIN on `*` is cluster admin.
    GrantPermission {
        role: String,
        #[arg(value_enum)]
        perm: PermArg,
        namespace: String,
    },
    /// Takes that exact permission from ROLE.
    RevokePermission {
        role: String,
        #[arg(value_enum)]
        perm: PermArg,
        namespace: String,
    },
    /// Lists the roles and their permissions: ROLE, TYPE, NAMESPACE.
    List,
}

#[derive(Subcommand)]
pub enum AuthCmd {
    /// Turns auth on: every request then needs a user (--user, or a client
    /// certificate). Needs a `root` user; exits 1 without one.
    Enable,
    /// Turns auth off.
    Disable,
    /// Prints `enabled` or `disabled` and the auth revision.
    Status,
}

fn done(out: Output, what: &str, revision: u64) {
    if out.json() {
        print_json(&json!({"ok": what, "revision": revision}));
    } else {
        println!("{what} (auth revision {revision})");
    }
}

fn perm_name(p: PermissionType) -> &'static str {
    p.as_str_name()
}

pub async fn user(client: &RdbClient, out: Output, cmd: UserCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        UserCmd::Add { name, new_password, no_password: _ } => {
            let rev = client.user_add(&name, new_password.as_deref().unwrap_or("")).await?;
            done(out, &format!("user {name} added"), rev);
        }
        UserCmd::Delete { name } => done(out, &format!("user {name} deleted"), client.user_delete(&name).await?),
        UserCmd::GrantRole { user, role } => {
            done(out, &format!("role {role} granted to {user}"), client.user_grant_role(&user, &role).await?)
        }
        UserCmd::RevokeRole { user, role } => {
            done(out, &format!("role {role} revoked from {user}"), client.user_revoke_role(&user, &role).await?)
        }
        UserCmd::List => {
            let users = client.user_list().await?;
            if out.json() {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| json!({"name": u.name, "roles": u.roles, "has_password": u.has_password}))
                    .collect();
                print_json(&json!(v));
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| vec![u.name.clone(), u.roles.join(","), if u.has_password { "yes" } else { "no" }.into()])
                    .collect();
                print_table(&["NAME", "ROLES", "PASSWORD"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn role(client: &RdbClient, out: Output, cmd: RoleCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        RoleCmd::Add { name } => done(out, &format!("role {name} added"), client.role_add(&name).await?),
        RoleCmd::Delete { name } => done(out, &format!("role {name} deleted"), client.role_delete(&name).await?),
        RoleCmd::GrantPermission { role, perm, namespace } => {
            let rev = client.role_grant_permission(&role, &namespace, perm.into()).await?;
            done(out, &format!("role {role} may {perm:?} on {namespace:?}").to_lowercase(), rev);
        }
        RoleCmd::RevokePermission { role, perm, namespace } => {
            let rev = client.role_revoke_permission(&role, &namespace, perm.into()).await?;
            done(out, &format!("role {role} no longer may {perm:?} on {namespace:?}").to_lowercase(), rev);
        }
        RoleCmd::List => {
            let roles = client.role_list().await?;
            if out.json() {
                let v: Vec<_> = roles
                    .iter()
                    .map(|(name, perms)| {
                        let perms: Vec<_> =
                            perms.iter().map(|(ns, t)| json!({"namespace": ns, "type": perm_name(*t)})).collect();
                        json!({"name": name, "perms": perms})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                let mut rows = Vec::new();
                for (name, perms) in &roles {
                    if perms.is_empty() {
                        rows.push(vec![name.clone(), "-".into(), "-".into()]);
                    }
                    for (ns, t) in perms {
                        rows.push(vec![name.clone(), perm_name(*t).into(), ns.clone()]);
                    }
                }
                print_table(&["ROLE", "TYPE", "NAMESPACE"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn auth(client: &RdbClient, out: Output, cmd: AuthCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        AuthCmd::Enable => done(out, "auth enabled", client.auth_enable().await?),
        AuthCmd::Disable => done(out, "auth disabled", client.auth_disable().await?),
        AuthCmd::Status => {
            let (enabled, revision) = client.auth_status().await?;
            if out.json() {
                print_json(&json!({"enabled": enabled, "revision": revision}));
            } else {
                println!("{} (auth revision {revision})", if enabled { "enabled" } else { "disabled" });
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
