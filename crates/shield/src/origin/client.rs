//! The client the shield asks origins with: plain HTTP/1.1 for `http://` upstreams, TLS
//! through rustls for `https://` ones (the same library and ring provider as the listeners),
//! verified against the upstream's `ca_file` or else the system's trust store, with the
//! server's host as SNI and as the name checked; HTTP/2 by ALPN when the upstream asks for it.
//! One client per upstream: each pool has its own trust and its own connections.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::body::GuardedBody;
use crate::config::{Upstream, UpstreamTls};

/// The connector of every upstream client: HTTP, or HTTPS when the URI says so.
pub type OriginConnector = HttpsConnector<HttpConnector>;

/// The client requests go to an upstream with.
pub type OriginClient = super::pool::OriginClient<GuardedBody>;

/// The system's trust store, read once (it is a few hundred files).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            eprintln!(
                "rampart shield: no system CA certificate found ({} errors); https:// upstreams without ca_file will fail verification",
                found.errors.len()
            );
        }
        Arc::new(roots)
    }))
}

/// A rustls client configuration trusting `roots`, on ring (like the listeners).
fn with_roots(roots: Arc<RootCertStore>) -> ClientConfig {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        // Unreachable with ring, which has every default version; rustls' defaults otherwise.
        Err(_) => ClientConfig::builder().with_root_certificates(roots).with_no_client_auth(),
    }
}

/// The rustls configuration for `tls`: its CA file's certificates alone, or the system's.
pub fn tls_config(tls: &UpstreamTls) -> ClientConfig {
    if tls.ca_certs.is_empty() {
        return with_roots(system_roots());
    }
    let mut roots = RootCertStore::empty();
    // Parsed when the configuration was read; a certificate rustls cannot use is left out.
    roots.add_parsable_certificates(tls.ca_certs.iter().cloned());
    with_roots(Arc::new(roots))
}

/// The connector for `upstream`; it speaks TLS to `https://` URIs only (a plain upstream's
/// trusts nothing, it never needs to).
pub fn connector(upstream: &Upstream) -> OriginConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Requests and answers are whole messages written at once; Nagle would only delay them.
    http.set_nodelay(true);
    let tls = upstream.tls.as_ref();
    let config = tls.map_or_else(|| with_roots(Arc::new(RootCertStore::empty())), tls_config);
    let builder = HttpsConnectorBuilder::new().with_tls_config(config).https_or_http();
    if tls.is_some_and(|t| t.http2) {
        builder.enable_http1().enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    }
}

/// The client of `upstream`, pooling kept-alive connections (`B`: [`GuardedBody`] in the
/// proxy).
pub fn client<B>(upstream: &Upstream) -> super::pool::OriginClient<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    super::pool::OriginClient::new(connector(upstream))
}

/// Every message in `error`'s chain, outermost first (hyper's own says only "client error
/// (Connect)"; the reason, such as an untrusted certificate, is deeper).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let message = inner.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = inner.source();
    }
    text
}

/// Say on stderr why a request to `server` of `upstream` failed, at most once a second (a
/// failing origin under load would otherwise flood the log).
pub fn report_failure(upstream: &str, server: &str, error: &(dyn std::error::Error + 'static)) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return;
    }
    *last = Some(Instant::now());
    eprintln!("rampart shield: upstream {upstream} server {server}: {}", describe(error));
}
