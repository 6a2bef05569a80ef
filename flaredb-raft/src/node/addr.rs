//! A member's addresses as membership records them: one string per node,
//! `PUBLIC` or `PUBLIC@PEER`.
//!
//! `PUBLIC` is where clients (and followers forwarding to the leader) reach
//! the node; `PEER`, when given, is where other nodes send Raft messages
//! (`--peer-listen`). One string keeps openraft's `BasicNode`, the log and
//! snapshot encodings unchanged, and the same text works in
//! `--initial-cluster` (`1=PUBLIC@PEER`) and in `Admin/AddLearner`.

use std::{fmt, net::SocketAddr};

/// The addresses of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddr {
    pub public: String,
    /// `None`: Raft messages go to `public`.
    pub peer: Option<String>,
}

impl MemberAddr {
    /// Parses and checks `PUBLIC` or `PUBLIC@PEER` (each HOST:PORT).
    pub fn parse(text: &str) -> Result<Self, String> {
        let check = |a: &str| match a.parse::<SocketAddr>() {
            Ok(_) => Ok(a.to_string()),
            Err(_) => Err(format!("{a:?} is not HOST:PORT (expected PUBLIC or PUBLIC@PEER)")),
        };
        match text.trim().split_once('@') {
            Some((public, peer)) => Ok(Self { public: check(public.trim())?, peer: Some(check(peer.trim())?) }),
            None => Ok(Self { public: check(text.trim())?, peer: None }),
        }
    }

    /// Reads an address from membership. It was checked when it was added,
    /// so a string that does not parse (never expected) is taken as it is.
    pub fn from_membership(text: &str) -> Self {
        Self::parse(text).unwrap_or_else(|_| Self { public: text.to_string(), peer: None })
    }

    /// Where Raft messages for this member go.
    pub fn raft(&self) -> &str {
        self.peer.as_deref().unwrap_or(&self.public)
    }
}

impl fmt::Display for MemberAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.peer {
            Some(peer) => write!(f, "{}@{peer}", self.public),
            None => f.write_str(&self.public),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_or_two_addresses_and_round_trips() {
        let one = MemberAddr::parse("127.0.0.1:1").unwrap();
        assert_eq!((one.raft(), one.to_string().as_str()), ("127.0.0.1:1", "127.0.0.1:1"));
        let two = MemberAddr::parse(" 127.0.0.1:1@127.0.0.1:2 ").unwrap();
        assert_eq!((two.public.as_str(), two.raft()), ("127.0.0.1:1", "127.0.0.1:2"));
        assert_eq!(MemberAddr::parse(&two.to_string()), Ok(two));
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in ["", "nohost", "127.0.0.1:1@", "@127.0.0.1:1", "127.0.0.1:1@x@y"] {
            assert!(MemberAddr::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(MemberAddr::from_membership("junk").raft(), "junk");
    }
}
