//! `--initial-cluster`: "1=ADDR,2=ADDR", each ADDR `PUBLIC` or `PUBLIC@PEER`.

use std::{collections::BTreeMap, net::SocketAddr};

use flaredb_raft::node::addr::MemberAddr;

use super::ConfigError;

/// Parses "1=ADDR,2=ADDR" into id → canonical address text.
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let err = |why: String| ConfigError::InitialCluster { spec: spec.into(), why };
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| err(format!("{part:?} has no '='")))?;
        let id: u64 = id.trim().parse().map_err(|_| err(format!("{id:?} is not a node id")))?;
        if id == 0 {
            return Err(err("node ids start at 1".into()));
        }
        let addr = MemberAddr::parse(addr).map_err(err)?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(err(format!("node {id} appears twice")));
        }
    }
    if out.is_empty() {
        return Err(err("no members".into()));
    }
    Ok(out)
}

/// Checks this node's own entry against its flags: with --peer-listen the
/// entry must name a peer address (else peers would send Raft to the public
/// address, which then does not serve it), and without it must not (peers
/// would send Raft to an address nobody listens on).
pub fn check_own_entry(id: u64, entry: &str, peer_listen: Option<SocketAddr>) -> Result<(), ConfigError> {
    let addr = MemberAddr::from_membership(entry);
    match (peer_listen, &addr.peer) {
        (Some(p), None) => Err(ConfigError::Invalid(format!(
            "--peer-listen {p} is set, so node {id}'s --initial-cluster entry must name it: {id}={}@{p}",
            addr.public
        ))),
        (None, Some(peer)) => Err(ConfigError::Invalid(format!(
            "node {id}'s --initial-cluster entry names peer address {peer}; start the node with --peer-listen {peer}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_initial_cluster_and_rejects_bad_specs() {
        let m = parse_initial_cluster("1=127.0.0.1:1, 2=127.0.0.1:2@127.0.0.1:3").unwrap();
        assert_eq!(m[&2], "127.0.0.1:2@127.0.0.1:3");
        for bad in
            ["", "1", "x=127.0.0.1:1", "0=127.0.0.1:1", "1=nohost", "1=127.0.0.1:1,1=127.0.0.1:2", "1=127.0.0.1:1@"]
        {
            assert!(parse_initial_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_entry_must_match_peer_listen() {
        let p: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(check_own_entry(1, "127.0.0.1:1@127.0.0.1:9", Some(p)).is_ok());
        assert!(check_own_entry(1, "127.0.0.1:1", None).is_ok());
        let e = check_own_entry(1, "127.0.0.1:1", Some(p)).unwrap_err().to_string();
        assert!(e.contains("1=127.0.0.1:1@127.0.0.1:9"), "{e}");
        assert!(check_own_entry(1, "127.0.0.1:1@127.0.0.1:9", None).is_err());
    }
}
