//! TLS for the listeners. A listener's certificate, key and CA are re-read
//! when their files change (checked every 2 s) or on SIGHUP, without a
//! restart: new connections use the new files; a file that does not load
//! keeps the old configuration and the log says why.

use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    rustls::{
        crypto::{ring, CryptoProvider},
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
        server::WebPkiClientVerifier,
        RootCertStore, ServerConfig,
    },
    server::TlsStream,
    TlsAcceptor,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::TlsFiles;

/// A handshake not finished by then is dropped (a silent caller holds nothing).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("TLS settings: {0}")]
    Config(String),
}

fn file_err(path: &Path) -> impl Fn(String) -> TlsError + '_ {
    move |why| TlsError::File { path: path.display().to_string(), why }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = file_err(path);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path)(format!("no usable PEM private key: {e}")))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| file_err(path)(format!("not a CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The server side of `files`, read now.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.ca {
        Some(ca) => {
            let v = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let v = if files.require_client_cert { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().map_err(|e| file_err(ca)(e.to_string()))?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| file_err(&files.key)(format!("does not match {}: {e}", files.cert.display())))?;
    // gRPC is HTTP/2: clients (grpcurl among them) negotiate it by ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The client side of `files`: what this node trusts and shows when it dials
/// (peers for Raft; the leader's public address when forwarding).
pub fn client_config(files: &TlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| file_err(p)(e.to_string()));
    let mut tls = ClientTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// A listener's TLS settings, replaced when its files change.
#[derive(Clone)]
pub struct Reloading {
    files: TlsFiles,
    what: &'static str,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    stamp: Arc<RwLock<Stamp>>,
}

/// Modification time and length of each file (absent: unreadable).
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// What "the files changed" compares.
fn stamp(files: &TlsFiles) -> Stamp {
    [Some(&files.cert), Some(&files.key), files.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

impl Reloading {
    /// Reads the files; an error here stops the start (there is no old config to keep).
    pub fn new(files: TlsFiles, what: &'static str) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        let stamp = stamp(&files);
        Ok(Self { files, what, current: Arc::new(RwLock::new(Arc::new(config))), stamp: Arc::new(RwLock::new(stamp)) })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Whether this is the peer (Raft) listener's.
    pub fn is_peer(&self) -> bool {
        self.what == "peer"
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Re-reads the files if they changed (or `force`); whether the settings were replaced.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamp(&self.files);
        if !force && *self.stamp.read().unwrap_or_else(|p| p.into_inner()) == now {
            return false;
        }
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = now;
        match server_config(&self.files) {
            Ok(c) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                tracing::info!(listener = self.what, "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(listener = self.what, error = %e, "new TLS files do not load: keeping the previous certificate");
                false
            }
        }
    }
}

/// Checks the files every 2 s and on SIGHUP; `changed` runs after a
/// successful reload (to renew what this node shows when it dials).
pub fn watch(listeners: Vec<Reloading>, changed: impl Fn(&Reloading) + Send + 'static) {
    if listeners.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { hup.as_mut()?.recv().await } => true,
            };
            for l in &listeners {
                if l.reload(force) {
                    changed(l);
                }
            }
        }
    });
}

/// Connections accepted on `listener` after a TLS handshake (done off the
/// accept loop, bounded in time). A failed handshake (no certificate, one
/// not signed by the CA, not TLS at all) is logged and the caller dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Reloading,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(listener = tls.what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, what) = (tls.acceptor(), tx.clone(), tls.what);
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!(listener = what, %peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(listener = what, %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}
