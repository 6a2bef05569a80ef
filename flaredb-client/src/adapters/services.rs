//! The registry of services that keep their metadata in FlareDB: each one's
//! namespace and the root prefix under which its keys keep their
//! hierarchical paths (`/fiberlb/pools/web`, ...).

/// Where one service keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceProfile {
    pub name: &'static str,
    /// Its own STRONG namespace.
    pub namespace: &'static str,
    /// Every key of the service starts with this.
    pub root: &'static str,
}

/// The services the client knows.
pub const SERVICES: &[ServiceProfile] = &[
    ServiceProfile { name: "fiberlb", namespace: "fiberlb", root: "/fiberlb/" },
    ServiceProfile { name: "flashdns", namespace: "flashdns", root: "/flashdns/" },
    ServiceProfile { name: "lightningstor", namespace: "lightningstor", root: "/lightningstor/" },
    ServiceProfile { name: "novanet", namespace: "novanet", root: "/novanet/" },
    ServiceProfile { name: "plasmavmc", namespace: "plasmavmc", root: "/plasmavmc/" },
];

/// The profile of service `name`.
pub fn profile(name: &str) -> Option<&'static ServiceProfile> {
    SERVICES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_its_own_namespace_and_root() {
        for s in SERVICES {
            assert_eq!(profile(s.name), Some(s));
            assert_eq!(s.root, format!("/{}/", s.name));
            assert_eq!(SERVICES.iter().filter(|o| o.namespace == s.namespace).count(), 1);
        }
        assert_eq!(profile("nope"), None);
    }
}
