//! Fingerprints of the client's software taken from its connection: JA4 from the TLS
//! ClientHello ([`tls`]) and Akamai's HTTP/2 fingerprint from the preface and first frames
//! ([`http2`]), both read by a transparent [`tap`] on the connection. The proxy passes them to
//! the flood defenses (`ConnectionInfo::fingerprints`) and to the origin as headers.

pub mod http2;
pub mod tap;
pub mod tls;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::defense::ClientFingerprints;

pub use tap::{Tap, TapKind, TapResult};

/// The header carrying the JA4 fingerprint to the origin.
pub const JA4_HEADER: HeaderName = HeaderName::from_static("x-rampart-ja4");
/// The header carrying the HTTP/2 fingerprint to the origin.
pub const HTTP2_HEADER: HeaderName = HeaderName::from_static("x-rampart-h2-fingerprint");

/// Replace whatever the client sent under the fingerprint headers with the fingerprints the
/// shield took (a client must not choose its own).
pub fn set_headers(headers: &mut HeaderMap, fingerprints: &ClientFingerprints) {
    for (name, value) in [(JA4_HEADER, &fingerprints.tls), (HTTP2_HEADER, &fingerprints.http2)] {
        headers.remove(&name);
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
}
