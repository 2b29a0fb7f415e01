//! The seam between the proxy and its adaptive defenses: what the proxy knows about a client
//! beyond its address (fingerprints of its TLS and HTTP/2 stacks), what an automatic flood rule
//! decides for a request, and the challenge that a rule (or a route) can put in front of it.
//!
//! The proxy calls these at fixed points of `proxy::route_request`; each defense lives in its
//! own module and only meets the others here.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body_util::Full;

/// Fingerprints of the client's software, taken from its connection before any request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientFingerprints {
    /// A JA4-style fingerprint of the TLS ClientHello; `None` on plaintext listeners.
    pub tls: Option<Arc<str>>,
    /// A fingerprint of the client's HTTP/2 SETTINGS, WINDOW_UPDATE and priority frames;
    /// `None` on HTTP/1.
    pub http2: Option<Arc<str>>,
}

/// What an automatic flood rule decides for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodVerdict {
    /// No rule matches: the request goes on.
    Pass,
    /// A rate-limiting rule refuses it: `429` with `Retry-After`.
    Throttle {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// A challenging rule matches: the client must show a clearance or earn one.
    Challenge,
    /// A blocking rule matches: `403`.
    Block,
}

/// The challenge ladder, as the proxy sees it.
pub trait Challenger: Send + Sync + Debug {
    /// Whether the request carries a valid clearance for `client` at `now`.
    fn is_cleared(&self, request: &Parts, client: IpAddr, now: SystemTime) -> bool;

    /// The answer instead of the request: a challenge page, or the check of a solved challenge
    /// that sets the clearance and sends the client back where it was going.
    fn challenge(&self, request: &Parts, client: IpAddr, now: SystemTime) -> Response<Full<Bytes>>;

    /// The load the challenge's cost follows: 0 (calm) to 3 (under attack), set by the flood
    /// defense or the detection layer's threat level. Ignored by default.
    fn set_pressure(&self, _level: u8) {}
}
