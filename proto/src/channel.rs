//! The one cache of gRPC channels, shared by the client, leader forwarding
//! and the Raft transport so all dial with the same options: a channel per
//! address, created once and cloned (clones share one HTTP/2 connection),
//! connecting lazily and reconnecting by itself after a failure.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Connect timeout of nodes dialing each other; the client sets its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// HTTP/2 pings, also on idle connections, find a dead peer before the
/// next request has to wait for TCP to notice.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An address that does not parse as a URI (e.g. a bad member address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {0:?} is not a usable endpoint")]
pub struct InvalidAddress(pub String);

/// Channels keyed by address (`host:port`, or a URI with its scheme).
/// Cloning the cache shares it.
#[derive(Debug, Clone)]
pub struct ChannelCache {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    /// With it, `host:port` is dialed over TLS (the server's name checked
    /// against the host) and a client certificate is shown if it has one.
    tls: Arc<Mutex<Option<ClientTlsConfig>>>,
}

impl Default for ChannelCache {
    fn default() -> Self {
        Self::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

impl ChannelCache {
    pub fn new(connect_timeout: Duration) -> Self {
        Self { channels: Arc::default(), connect_timeout, tls: Arc::default() }
    }

    /// The same cache dialing over TLS.
    pub fn with_tls(self, tls: Option<ClientTlsConfig>) -> Self {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = tls;
        self
    }

    /// New TLS settings (e.g. a renewed certificate): channels are dialed
    /// again with them; calls already holding a channel finish on the old one.
    pub fn set_tls(&self, tls: Option<ClientTlsConfig>) {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = tls;
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The channel to `addr`, created on first use. Needs a Tokio runtime.
    pub fn get(&self, addr: &str) -> Result<Channel, InvalidAddress> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = self.endpoint(addr)?.connect_lazy();
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn endpoint(&self, addr: &str) -> Result<Endpoint, InvalidAddress> {
        let tls = self.tls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let uri = if addr.contains("://") { addr.to_string() } else { format!("{scheme}://{addr}") };
        let mut ep = Endpoint::from_shared(uri).map_err(|_| InvalidAddress(addr.to_string()))?;
        if let Some(tls) = tls {
            ep = ep.tls_config(tls).map_err(|_| InvalidAddress(addr.to_string()))?;
        }
        Ok(ep
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_entry_per_address_shared_by_clones_of_the_cache() {
        let cache = ChannelCache::default();
        cache.get("127.0.0.1:1").unwrap();
        cache.clone().get("127.0.0.1:1").unwrap();
        assert_eq!(cache.len(), 1, "a second call reuses the cached channel");
        cache.get("http://127.0.0.1:2").unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn a_bad_address_is_an_error_and_is_not_cached() {
        let cache = ChannelCache::default();
        for bad in ["", "no spaces allowed:1", "127.0.0.1:1/x y"] {
            assert_eq!(cache.get(bad).unwrap_err(), InvalidAddress(bad.to_string()));
        }
        assert_eq!(cache.len(), 0);
    }
}
