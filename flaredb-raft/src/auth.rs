//! Users, roles and permissions, replicated as one `sm_meta` record, and the
//! pure rules that change them and answer "may this user do that". Applying
//! a change is total and deterministic: the proposing node already checked
//! the request, and every replica checks it again against its own state.

use std::collections::{BTreeMap, BTreeSet};

use flaredb_proto::raft as pb;

use crate::error::StoreError;

/// The user that has every right, and without whom auth cannot be enabled.
pub const ROOT: &str = "root";
/// Names of users and roles: 1 to this many bytes, no control characters.
pub const MAX_NAME_BYTES: usize = 128;
/// The token-signing key drawn at each AuthEnable.
pub const SIGNING_KEY_BYTES: usize = 32;

/// What a permission grants (`flaredb.v1.PermissionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PermType {
    Read,
    Write,
    ReadWrite,
    Admin,
}

impl PermType {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Read,
            1 => Self::Write,
            2 => Self::ReadWrite,
            3 => Self::Admin,
            _ => return None,
        })
    }

    pub fn to_i32(self) -> i32 {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::ReadWrite => 2,
            Self::Admin => 3,
        }
    }

    fn grants(self, need: Need) -> bool {
        match need {
            Need::Read => matches!(self, Self::Read | Self::ReadWrite | Self::Admin),
            Need::Write => matches!(self, Self::Write | Self::ReadWrite | Self::Admin),
            Need::Admin => self == Self::Admin,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadWrite => "READWRITE",
            Self::Admin => "ADMIN",
        }
    }
}

/// A right a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// A permission on a namespace, a namespace prefix (`team-*`) or all (`*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub namespace: String,
    pub kind: PermType,
}

impl Permission {
    /// Whether this permission's pattern covers namespace `ns`.
    pub fn covers(&self, ns: &str) -> bool {
        match self.namespace.strip_suffix('*') {
            Some(prefix) => ns.starts_with(prefix),
            None => ns == self.namespace,
        }
    }

    /// Checks the pattern: `*`, or a namespace name optionally ending in `*`.
    pub fn validate(&self) -> Result<(), AuthRejection> {
        let name = self.namespace.strip_suffix('*').unwrap_or(&self.namespace);
        if name.is_empty() && self.namespace == "*" {
            return Ok(());
        }
        // A prefix need not be a whole name, but it uses a name's characters.
        let check = if self.namespace.ends_with('*') { format!("{name}x") } else { name.to_string() };
        crate::namespace::validate_name(&check)
            .map_err(|e| AuthRejection::Invalid(format!("permission namespace {:?}: {e}", self.namespace)))
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {:?}", self.kind.name(), self.namespace)
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct User {
    /// Argon2id PHC string; empty: the user signs in only by certificate.
    pub password_hash: String,
    pub roles: BTreeSet<String>,
    /// The revision it was added at (its tokens carry it).
    pub added_at: u64,
}

/// Without the hash: a Debug print must not leak what a password check needs.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("password", &if self.password_hash.is_empty() { "none" } else { "<redacted>" })
            .field("roles", &self.roles)
            .field("added_at", &self.added_at)
            .finish()
    }
}

/// Everything auth keeps.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthState {
    pub enabled: bool,
    /// Signs tokens; drawn by the node that proposed the last AuthEnable.
    pub signing_key: Vec<u8>,
    /// Changes applied so far.
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, BTreeSet<Permission>>,
}

/// Without the signing key (whoever has it can sign any user's token).
impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("enabled", &self.enabled)
            .field("signing_key", &"<redacted>")
            .field("revision", &self.revision)
            .field("users", &self.users)
            .field("roles", &self.roles)
            .finish()
    }
}

/// Why an auth change was refused. Deterministic on every replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejection {
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("user {0:?} does not exist")]
    UserNotFound(String),
    #[error("role {0:?} already exists")]
    RoleExists(String),
    #[error("role {0:?} does not exist")]
    RoleNotFound(String),
    #[error("user {user:?} does not have role {role:?}")]
    RoleNotGranted { user: String, role: String },
    #[error("role {role:?} does not have the permission {perm}")]
    PermissionNotGranted { role: String, perm: Permission },
    #[error("auth cannot be enabled without a user named \"root\": add it first (Auth/UserAdd)")]
    NoRoot,
    #[error("the root user cannot be removed while auth is enabled: disable auth first")]
    RootInUse,
    #[error("{0}")]
    Invalid(String),
}

/// Checks a user or role name.
pub fn validate_name(what: &str, name: &str) -> Result<(), AuthRejection> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(AuthRejection::Invalid(format!(
            "{what} name must be 1-{MAX_NAME_BYTES} bytes, got {}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AuthRejection::Invalid(format!("{what} name {name:?} has a control character")));
    }
    Ok(())
}

fn perm_from_pb(p: Option<&pb::AuthPermissionRecord>) -> Result<Permission, AuthRejection> {
    let p = p.ok_or_else(|| AuthRejection::Invalid("a permission is required".into()))?;
    let kind = PermType::from_i32(p.r#type).ok_or_else(|| {
        AuthRejection::Invalid(format!("permission type {} is not READ, WRITE, READWRITE or ADMIN", p.r#type))
    })?;
    let perm = Permission { namespace: p.namespace.clone(), kind };
    perm.validate()?;
    Ok(perm)
}

impl AuthState {
    /// Applies one change; on success the revision advances.
    pub fn apply(&mut self, cmd: &pb::AuthCommand) -> Result<u64, AuthRejection> {
        use pb::auth_command::Op;
        let op = cmd.op.as_ref().ok_or_else(|| AuthRejection::Invalid("empty auth command".into()))?;
        match op {
            Op::UserAdd(u) => {
                validate_name("user", &u.name)?;
                if self.users.contains_key(&u.name) {
                    return Err(AuthRejection::UserExists(u.name.clone()));
                }
                // The revision this change applies at.
                let added_at = self.revision + 1;
                let user = User { password_hash: u.password_hash.clone(), roles: BTreeSet::new(), added_at };
                self.users.insert(u.name.clone(), user);
            }
            Op::UserDelete(name) => {
                if name == ROOT && self.enabled {
                    return Err(AuthRejection::RootInUse);
                }
                self.users.remove(name).ok_or_else(|| AuthRejection::UserNotFound(name.clone()))?;
            }
            Op::UserGrantRole(ur) => {
                if !self.roles.contains_key(&ur.role) {
                    return Err(AuthRejection::RoleNotFound(ur.role.clone()));
                }
                let user = self.users.get_mut(&ur.user).ok_or_else(|| AuthRejection::UserNotFound(ur.user.clone()))?;
                user.roles.insert(ur.role.clone());
            }
            Op::UserRevokeRole(ur) => {
                let user = self.users.get_mut(&ur.user).ok_or_else(|| AuthRejection::UserNotFound(ur.user.clone()))?;
                if !user.roles.remove(&ur.role) {
                    return Err(AuthRejection::RoleNotGranted { user: ur.user.clone(), role: ur.role.clone() });
                }
            }
            Op::RoleAdd(name) => {
                validate_name("role", name)?;
                if self.roles.contains_key(name) {
                    return Err(AuthRejection::RoleExists(name.clone()));
                }
                self.roles.insert(name.clone(), BTreeSet::new());
            }
            Op::RoleDelete(name) => {
                self.roles.remove(name).ok_or_else(|| AuthRejection::RoleNotFound(name.clone()))?;
                for u in self.users.values_mut() {
                    u.roles.remove(name);
                }
            }
            Op::RoleGrantPermission(rp) => {
                let perm = perm_from_pb(rp.perm.as_ref())?;
                let perms = self.roles.get_mut(&rp.role).ok_or_else(|| AuthRejection::RoleNotFound(rp.role.clone()))?;
                perms.insert(perm);
            }
            Op::RoleRevokePermission(rp) => {
                let perm = perm_from_pb(rp.perm.as_ref())?;
                let perms = self.roles.get_mut(&rp.role).ok_or_else(|| AuthRejection::RoleNotFound(rp.role.clone()))?;
                if !perms.remove(&perm) {
                    return Err(AuthRejection::PermissionNotGranted { role: rp.role.clone(), perm });
                }
            }
            Op::AuthEnable(key) => {
                if !self.users.contains_key(ROOT) {
                    return Err(AuthRejection::NoRoot);
                }
                if key.len() != SIGNING_KEY_BYTES {
                    return Err(AuthRejection::Invalid(format!("signing key must be {SIGNING_KEY_BYTES} bytes")));
                }
                // Enabling twice keeps the key, so tokens already handed out stay good.
                if !self.enabled {
                    self.enabled = true;
                    self.signing_key = key.to_vec();
                }
            }
            Op::AuthDisable(_) => {
                self.enabled = false;
                self.signing_key.clear();
            }
        }
        self.revision += 1;
        Ok(self.revision)
    }

    /// Whether `user` may do what `need` says on namespace `ns`; `ns = None`
    /// asks for a cluster-wide right (only ADMIN on `*` gives it).
    pub fn permits(&self, user: &str, ns: Option<&str>, need: Need) -> bool {
        if user == ROOT {
            return self.users.contains_key(ROOT);
        }
        let Some(u) = self.users.get(user) else { return false };
        u.roles.iter().filter_map(|r| self.roles.get(r)).flatten().any(|p| {
            p.kind.grants(need)
                && match ns {
                    Some(ns) => p.covers(ns),
                    None => p.namespace == "*",
                }
        })
    }

    /// Whether `user` has `need` on at least one namespace (leases, which
    /// belong to no namespace).
    pub fn permits_somewhere(&self, user: &str, need: Need) -> bool {
        if user == ROOT {
            return self.users.contains_key(ROOT);
        }
        let Some(u) = self.users.get(user) else { return false };
        u.roles.iter().filter_map(|r| self.roles.get(r)).flatten().any(|p| p.kind.grants(need))
    }

    /// What a lease or session records as its owner: the user's name and
    /// the revision it was added at, so that a user deleted and added again
    /// is not the owner of the old one's leases and sessions. Empty when
    /// `user` is (auth off).
    pub fn identity(&self, user: &str) -> String {
        if user.is_empty() {
            return String::new();
        }
        format!("{user}@{}", self.users.get(user).map_or(0, |u| u.added_at))
    }

    /// Whether `user` (a name) may act on something whose owner is `owner`
    /// (an `identity`): that very user or a cluster admin. Empty on either
    /// side means auth was off when it was made or asked, and passes.
    pub fn may_act_for(&self, owner: &str, user: &str) -> bool {
        owner.is_empty() || user.is_empty() || owner == self.identity(user) || self.permits(user, None, Need::Admin)
    }

    /// Whether `user` has any right on namespace `ns` (what ListNamespaces shows).
    pub fn sees(&self, user: &str, ns: &str) -> bool {
        self.permits(user, Some(ns), Need::Read) || self.permits(user, Some(ns), Need::Write)
    }

    pub fn to_pb(&self) -> pb::AuthStateRecord {
        pb::AuthStateRecord {
            enabled: self.enabled,
            signing_key: self.signing_key.clone().into(),
            revision: self.revision,
            users: self
                .users
                .iter()
                .map(|(name, u)| pb::AuthUserRecord {
                    name: name.clone(),
                    password_hash: u.password_hash.clone(),
                    roles: u.roles.iter().cloned().collect(),
                    added_at: u.added_at,
                })
                .collect(),
            roles: self
                .roles
                .iter()
                .map(|(name, perms)| pb::AuthRoleRecord {
                    name: name.clone(),
                    perms: perms.iter().map(perm_to_pb).collect(),
                })
                .collect(),
        }
    }

    pub fn from_pb(r: &pb::AuthStateRecord) -> Result<Self, StoreError> {
        let mut roles = BTreeMap::new();
        for role in &r.roles {
            let mut perms = BTreeSet::new();
            for p in &role.perms {
                let kind =
                    PermType::from_i32(p.r#type).ok_or_else(|| StoreError::corrupt("permission type", p.r#type))?;
                perms.insert(Permission { namespace: p.namespace.clone(), kind });
            }
            roles.insert(role.name.clone(), perms);
        }
        let users = r
            .users
            .iter()
            .map(|u| {
                let user = User {
                    password_hash: u.password_hash.clone(),
                    roles: u.roles.iter().cloned().collect(),
                    added_at: u.added_at,
                };
                (u.name.clone(), user)
            })
            .collect();
        Ok(Self { enabled: r.enabled, signing_key: r.signing_key.to_vec(), revision: r.revision, users, roles })
    }
}

pub fn perm_to_pb(p: &Permission) -> pb::AuthPermissionRecord {
    pb::AuthPermissionRecord { namespace: p.namespace.clone(), r#type: p.kind.to_i32() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::auth_command::Op;

    fn run(s: &mut AuthState, op: Op) -> Result<u64, AuthRejection> {
        s.apply(&pb::AuthCommand { op: Some(op) })
    }

    fn user(name: &str) -> Op {
        Op::UserAdd(pb::AuthUserRecord { name: name.into(), password_hash: "h".into(), ..Default::default() })
    }

    fn grant(role: &str, ns: &str, t: PermType) -> Op {
        Op::RoleGrantPermission(pb::AuthRolePermission {
            role: role.into(),
            perm: Some(pb::AuthPermissionRecord { namespace: ns.into(), r#type: t.to_i32() }),
        })
    }

    fn give(u: &str, r: &str) -> Op {
        Op::UserGrantRole(pb::AuthUserRole { user: u.into(), role: r.into() })
    }

    #[test]
    fn enabling_needs_root_and_root_cannot_be_removed_while_enabled() {
        let mut s = AuthState::default();
        assert_eq!(run(&mut s, Op::AuthEnable(vec![7; 32].into())), Err(AuthRejection::NoRoot));
        assert!(!s.enabled);
        run(&mut s, user(ROOT)).unwrap();
        assert!(matches!(run(&mut s, Op::AuthEnable(vec![7; 31].into())), Err(AuthRejection::Invalid(_))));
        run(&mut s, Op::AuthEnable(vec![7; 32].into())).unwrap();
        // A second enable keeps the key (tokens out there stay good).
        run(&mut s, Op::AuthEnable(vec![9; 32].into())).unwrap();
        assert_eq!(s.signing_key, vec![7; 32]);
        assert_eq!(run(&mut s, Op::UserDelete(ROOT.into())), Err(AuthRejection::RootInUse));
        run(&mut s, Op::AuthDisable(pb::Blank {})).unwrap();
        assert!(s.signing_key.is_empty());
        run(&mut s, Op::UserDelete(ROOT.into())).unwrap();
        assert_eq!(s.revision, 5, "only successful changes count");
    }

    #[test]
    fn permissions_follow_type_pattern_and_role_membership() {
        let mut s = AuthState::default();
        for u in ["alice", "bob", ROOT] {
            run(&mut s, user(u)).unwrap();
        }
        run(&mut s, Op::RoleAdd("team".into())).unwrap();
        run(&mut s, grant("team", "team-*", PermType::Read)).unwrap();
        run(&mut s, grant("team", "app", PermType::Write)).unwrap();
        run(&mut s, give("alice", "team")).unwrap();
        assert!(s.permits("alice", Some("team-a"), Need::Read));
        assert!(!s.permits("alice", Some("team-a"), Need::Write));
        assert!(!s.permits("alice", Some("teamx"), Need::Read), "the prefix is 'team-'");
        assert!(s.permits("alice", Some("app"), Need::Write));
        assert!(!s.permits("alice", Some("app"), Need::Read), "WRITE does not give READ");
        assert!(!s.permits("alice", Some("app2"), Need::Write), "an exact name is not a prefix");
        assert!(!s.permits("alice", None, Need::Admin));
        assert!(!s.permits("bob", Some("app"), Need::Write));
        assert!(!s.permits("nobody", Some("app"), Need::Read));
        assert!(s.permits(ROOT, None, Need::Admin));
        // ADMIN on one namespace is not cluster admin; on "*" it is.
        run(&mut s, Op::RoleAdd("ops".into())).unwrap();
        run(&mut s, grant("ops", "app", PermType::Admin)).unwrap();
        run(&mut s, give("bob", "ops")).unwrap();
        assert!(s.permits("bob", Some("app"), Need::Read) && s.permits("bob", Some("app"), Need::Admin));
        assert!(!s.permits("bob", None, Need::Admin));
        run(&mut s, grant("ops", "*", PermType::Admin)).unwrap();
        assert!(s.permits("bob", None, Need::Admin));
        // Deleting a role takes it from its users.
        run(&mut s, Op::RoleDelete("team".into())).unwrap();
        assert!(!s.permits("alice", Some("app"), Need::Write));
        assert!(s.users["alice"].roles.is_empty());
    }

    #[test]
    fn refusals_change_nothing_and_name_what_is_wrong() {
        let mut s = AuthState::default();
        run(&mut s, user("alice")).unwrap();
        let before = s.clone();
        assert_eq!(run(&mut s, user("alice")), Err(AuthRejection::UserExists("alice".into())));
        assert_eq!(run(&mut s, give("alice", "nope")), Err(AuthRejection::RoleNotFound("nope".into())));
        assert_eq!(run(&mut s, give("carol", "nope")), Err(AuthRejection::RoleNotFound("nope".into())));
        assert!(matches!(run(&mut s, user("")), Err(AuthRejection::Invalid(_))));
        assert!(matches!(run(&mut s, user("a\nb")), Err(AuthRejection::Invalid(_))));
        run(&mut s, Op::RoleAdd("r".into())).unwrap();
        let before_r = s.clone();
        assert!(matches!(run(&mut s, grant("r", "Bad Name", PermType::Read)), Err(AuthRejection::Invalid(_))));
        assert!(matches!(run(&mut s, grant("r", "**", PermType::Read)), Err(AuthRejection::Invalid(_))));
        let bad_type = Op::RoleGrantPermission(pb::AuthRolePermission {
            role: "r".into(),
            perm: Some(pb::AuthPermissionRecord { namespace: "a".into(), r#type: 9 }),
        });
        assert!(matches!(run(&mut s, bad_type), Err(AuthRejection::Invalid(_))));
        let revoke = Op::RoleRevokePermission(pb::AuthRolePermission {
            role: "r".into(),
            perm: Some(perm_to_pb(&Permission { namespace: "a".into(), kind: PermType::Read })),
        });
        assert!(matches!(run(&mut s, revoke), Err(AuthRejection::PermissionNotGranted { .. })));
        let revoke_role = Op::UserRevokeRole(pb::AuthUserRole { user: "alice".into(), role: "r".into() });
        assert!(matches!(run(&mut s, revoke_role), Err(AuthRejection::RoleNotGranted { .. })));
        assert_eq!(s, before_r);
        assert_eq!(before.revision + 1, s.revision);
    }

    #[test]
    fn the_record_round_trips() {
        let mut s = AuthState::default();
        run(&mut s, user(ROOT)).unwrap();
        run(&mut s, user("alice")).unwrap();
        run(&mut s, Op::RoleAdd("r".into())).unwrap();
        run(&mut s, grant("r", "*", PermType::ReadWrite)).unwrap();
        run(&mut s, give("alice", "r")).unwrap();
        run(&mut s, Op::AuthEnable(vec![1; 32].into())).unwrap();
        assert_eq!(AuthState::from_pb(&s.to_pb()).unwrap(), s);
        let mut bad = s.to_pb();
        bad.roles[0].perms[0].r#type = 42;
        assert!(AuthState::from_pb(&bad).is_err());
    }

    #[test]
    fn a_user_added_again_is_a_new_incarnation_and_debug_shows_no_secrets() {
        let mut s = AuthState::default();
        run(&mut s, user("alice")).unwrap();
        let first = s.users["alice"].added_at;
        run(&mut s, Op::UserDelete("alice".into())).unwrap();
        run(&mut s, user("alice")).unwrap();
        assert!(s.users["alice"].added_at > first);
        assert_eq!(AuthState::from_pb(&s.to_pb()).unwrap(), s);
        s.signing_key = b"very-secret-key".to_vec();
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("\"h\""), "{shown}");
    }
}
