//! The real resolver of the good-bot check: hickory-resolver, on the system's configuration
//! (/etc/resolv.conf) or on configured servers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::bots::{BoxFuture, DnsError, Resolve};

/// A hickory resolver.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryResolver")
    }
}

impl HickoryResolver {
    /// On `servers` (UDP, then TCP for truncated answers), or on the system's configuration
    /// when there are none; each query gives up after `timeout`. Its own cache is off: ours
    /// keeps results per address with bounded TTLs.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<HickoryResolver, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| DnsError(format!("system resolver configuration: {e}")))?
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), provider)
        };
        let options = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        options.cache_size = 0;
        let inner = builder.build().map_err(|e| DnsError(e.to_string()))?;
        Ok(HickoryResolver { inner })
    }
}

impl Resolve for HickoryResolver {
    fn reverse(&self, address: IpAddr) -> BoxFuture<Result<Vec<String>, DnsError>> {
        let resolver = self.inner.clone();
        Box::pin(async move {
            let lookup = resolver.reverse_lookup(address).await.map_err(|e| DnsError(e.to_string()))?;
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::PTR(ptr) => Some(ptr.0.to_string()),
                    _ => None,
                })
                .collect())
        })
    }

    fn forward(&self, name: String) -> BoxFuture<Result<Vec<IpAddr>, DnsError>> {
        let resolver = self.inner.clone();
        Box::pin(async move {
            // A trailing dot: the name is absolute, no search domains are tried.
            let lookup = resolver.lookup_ip(format!("{name}.")).await.map_err(|e| DnsError(e.to_string()))?;
            Ok(lookup.iter().collect())
        })
    }
}
