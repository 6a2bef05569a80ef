//! Which certificate files secure which address, checked for consistency
//! (the files themselves are read by `crate::tls` when serving).

use std::path::PathBuf;

use super::{flags::FileConfig, ConfigError, Flags};

/// A certificate chain, its key and the CA its callers' certificates must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    /// Refuse callers without a certificate chaining to `ca`.
    pub require_client_cert: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// The public address (clients, leader forwarding).
    pub public: Option<TlsFiles>,
    /// The peer address (Raft): always mutual.
    pub peer: Option<TlsFiles>,
}

impl TlsConfig {
    pub(super) fn from(flags: &Flags, file: &FileConfig, peer_listen: bool) -> Result<Self, ConfigError> {
        let pick = |f: &Option<PathBuf>, t: &Option<PathBuf>| f.clone().or_else(|| t.clone());
        let (cert, key, ca) =
            (pick(&flags.cert, &file.cert), pick(&flags.key, &file.key), pick(&flags.trusted_ca, &file.trusted_ca));
        let client_cert_auth = flags.client_cert_auth.or(file.client_cert_auth).unwrap_or(false);
        let public = match (cert, key) {
            (Some(cert), Some(key)) => {
                if client_cert_auth && ca.is_none() {
                    return Err(ConfigError::Invalid("--client-cert-auth needs --trusted-ca".into()));
                }
                Some(TlsFiles { cert, key, ca, require_client_cert: client_cert_auth })
            }
            (None, None) if client_cert_auth || ca.is_some() => {
                return Err(ConfigError::Invalid("--trusted-ca and --client-cert-auth need --cert and --key".into()))
            }
            (None, None) => None,
            _ => return Err(ConfigError::Invalid("--cert and --key go together".into())),
        };
        let peer = match (
            pick(&flags.peer_cert, &file.peer_cert),
            pick(&flags.peer_key, &file.peer_key),
            pick(&flags.peer_trusted_ca, &file.peer_trusted_ca),
        ) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => {
                if !peer_listen {
                    return Err(ConfigError::Invalid(
                        "peer TLS needs --peer-listen: Raft then has its own address, and the public one stops serving it"
                            .into(),
                    ));
                }
                Some(TlsFiles { cert, key, ca: Some(ca), require_client_cert: true })
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "--peer-cert, --peer-key and --peer-trusted-ca go together (peer TLS is always mutual)".into(),
                ))
            }
        };
        Ok(Self { public, peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn flags(args: &[&str]) -> Result<Config, ConfigError> {
        use clap::Parser;
        Config::from_flags(Flags::parse_from([&["flaredb-server"], args].concat()))
    }

    #[test]
    fn tls_settings_must_be_complete_and_peer_tls_needs_its_own_address() {
        let peer = ["--peer-cert", "p.pem", "--peer-key", "p.key", "--peer-trusted-ca", "ca.pem"];
        let e = flags(&peer).unwrap_err().to_string();
        assert!(e.contains("needs --peer-listen"), "{e}");
        let c = flags(&[&peer[..], &["--peer-listen", "127.0.0.1:2580"]].concat()).unwrap();
        assert!(c.tls.peer.is_some_and(|p| p.require_client_cert) && c.tls.public.is_none());
        let e = flags(&["--peer-listen", "127.0.0.1:2580", "--peer-cert", "p.pem"]).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        assert!(flags(&["--cert", "c.pem"]).unwrap_err().to_string().contains("go together"));
        let e = flags(&["--cert", "c.pem", "--key", "k.pem", "--client-cert-auth", "true"]).unwrap_err().to_string();
        assert!(e.contains("needs --trusted-ca"), "{e}");
        let c = flags(&["--cert", "c.pem", "--key", "k.pem"]).unwrap();
        assert!(c.tls.public.is_some_and(|p| !p.require_client_cert && p.ca.is_none()));
        assert_eq!(flags(&[]).unwrap().tls, TlsConfig::default(), "plaintext by default");
    }
}
