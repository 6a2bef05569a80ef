//! The namespace registry: name → (id, mode), replicated through the log and
//! kept in memory by the state machine (loaded at open, updated on apply).

use std::collections::BTreeMap;

use crate::keys::NamespaceId;

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_NAMESPACE_ID: NamespaceId = 1;
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strong,
    Eventual,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strong => "STRONG",
            Mode::Eventual => "EVENTUAL",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Mode::Strong => 1,
            Mode::Eventual => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Mode::Strong),
            2 => Some(Mode::Eventual),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub id: NamespaceId,
    pub mode: Mode,
}

/// `""` is the default namespace.
pub fn canonical_name(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        name
    }
}

/// Names are 1–64 characters of `[a-z0-9_.-]`. Returns why a name is invalid.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("namespace name must be 1-{MAX_NAME_LEN} characters, got {}", name.len()));
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("namespace name {name:?} has {c:?}; allowed characters are [a-z0-9_.-]"));
    }
    Ok(())
}

/// Why a command could not use a namespace. Deterministic on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceRejection {
    NotFound(String),
    WrongMode { name: String, mode: Mode },
    Invalid(String),
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_name: BTreeMap<String, NamespaceInfo>,
    next_id: NamespaceId,
}

impl Registry {
    /// A registry holding only `default` (STRONG), which exists from the start.
    pub fn new() -> Self {
        let mut r = Self { by_name: BTreeMap::new(), next_id: DEFAULT_NAMESPACE_ID + 1 };
        r.insert(NamespaceInfo { name: DEFAULT_NAMESPACE.into(), id: DEFAULT_NAMESPACE_ID, mode: Mode::Strong });
        r
    }

    pub fn get(&self, name: &str) -> Option<&NamespaceInfo> {
        self.by_name.get(canonical_name(name))
    }

    /// The namespace with id `id` (a scan: there are few).
    pub fn by_id(&self, id: NamespaceId) -> Option<&NamespaceInfo> {
        self.by_name.values().find(|n| n.id == id)
    }

    pub fn list(&self) -> impl Iterator<Item = &NamespaceInfo> {
        self.by_name.values()
    }

    pub fn insert(&mut self, info: NamespaceInfo) {
        self.next_id = self.next_id.max(info.id.saturating_add(1));
        self.by_name.insert(info.name.clone(), info);
    }

    /// Looks `name` up for a command of `mode` without creating it.
    /// `Ok(None)`: absent, and `create` allows making it (the name is valid).
    /// A write creates the namespace only once it knows it will succeed
    /// ([`Registry::create`]): a failed CAS must leave no trace.
    pub fn lookup(&self, name: &str, mode: Mode, create: bool) -> Result<Option<NamespaceInfo>, NamespaceRejection> {
        let name = canonical_name(name);
        match self.by_name.get(name) {
            Some(info) if info.mode == mode => Ok(Some(info.clone())),
            Some(info) => Err(NamespaceRejection::WrongMode { name: name.into(), mode: info.mode }),
            None if !create => Err(NamespaceRejection::NotFound(name.into())),
            None => validate_name(name).map(|()| None).map_err(NamespaceRejection::Invalid),
        }
    }

    /// Registers `name` with the next id. The caller checked with `lookup`
    /// that it is absent and valid.
    pub fn create(&mut self, name: &str, mode: Mode) -> NamespaceInfo {
        let info = NamespaceInfo { name: canonical_name(name).into(), id: self.next_id, mode };
        self.insert(info.clone());
        info
    }

    /// Read-side lookup: like `resolve` without creating.
    pub fn check(&self, name: &str, mode: Mode) -> Result<&NamespaceInfo, NamespaceRejection> {
        let name = canonical_name(name);
        match self.by_name.get(name) {
            Some(info) if info.mode == mode => Ok(info),
            Some(info) => Err(NamespaceRejection::WrongMode { name: name.into(), mode: info.mode }),
            None => Err(NamespaceRejection::NotFound(name.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Registry {
        /// `lookup`, then `create` when absent: (namespace, created now).
        fn resolve(
            &mut self,
            name: &str,
            mode: Mode,
            create: bool,
        ) -> Result<(NamespaceInfo, bool), NamespaceRejection> {
            match self.lookup(name, mode, create)? {
                Some(info) => Ok((info, false)),
                None => Ok((self.create(name, mode), true)),
            }
        }
    }

    #[test]
    fn default_exists_and_is_strong() {
        let r = Registry::new();
        assert_eq!(r.get("").map(|i| (i.id, i.mode)), Some((DEFAULT_NAMESPACE_ID, Mode::Strong)));
    }

    #[test]
    fn creates_once_with_increasing_ids_and_checks_mode() {
        let mut r = Registry::new();
        let (a, created) = r.resolve("a", Mode::Eventual, true).unwrap();
        assert!(created);
        let (a2, created) = r.resolve("a", Mode::Eventual, true).unwrap();
        assert!(!created);
        assert_eq!(a, a2);
        let (b, _) = r.resolve("b", Mode::Strong, true).unwrap();
        assert!(b.id > a.id && a.id > DEFAULT_NAMESPACE_ID);
        assert_eq!(
            r.resolve("a", Mode::Strong, true),
            Err(NamespaceRejection::WrongMode { name: "a".into(), mode: Mode::Eventual })
        );
        assert_eq!(r.resolve("c", Mode::Strong, false), Err(NamespaceRejection::NotFound("c".into())));
    }

    #[test]
    fn lookup_never_creates() {
        let mut r = Registry::new();
        assert_eq!(r.lookup("a", Mode::Strong, true), Ok(None));
        assert_eq!(r.lookup("a", Mode::Strong, false), Err(NamespaceRejection::NotFound("a".into())));
        assert!(matches!(r.lookup("Bad", Mode::Strong, true), Err(NamespaceRejection::Invalid(_))));
        assert!(r.get("a").is_none(), "lookup created the namespace");
        let a = r.create("a", Mode::Strong);
        assert_eq!(r.lookup("a", Mode::Strong, false), Ok(Some(a)));
    }

    #[test]
    fn validates_names() {
        assert!(validate_name("svc.lb-1_x").is_ok());
        for bad in ["", "Upper", "a/b", "space x", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let mut r = Registry::new();
        assert!(matches!(r.resolve("Bad", Mode::Strong, true), Err(NamespaceRejection::Invalid(_))));
    }
}
