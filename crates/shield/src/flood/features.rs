//! What the miner knows about one request: a fixed array of attribute values, each a 64-bit
//! hash, computed cheaply and bounded (every input is truncated before it is hashed).
//!
//! Attributes: method, path template (numbers, UUIDs and long hex runs become placeholders),
//! query key set (sorted), query length bucket, query randomness class, User-Agent, the order
//! and the set of header names, Accept-Language, the connection's TLS and HTTP/2 fingerprints,
//! and the client prefix (IPv4 /24, IPv6 /64).
//!
//! [`UNKNOWN`] (0) marks an attribute the source could not see (an access-log line has no header
//! order); a rule's impact treats it as matching anything, so a rule is never judged safe on
//! what was not seen.

use std::net::IpAddr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::defense::ClientFingerprints;

/// The value of an attribute the source did not see.
pub const UNKNOWN: u64 = 0;

/// Longest piece of any input that is hashed or shown.
const MAX_INPUT: usize = 256;
/// Header names taken into the order and set hashes.
const MAX_HEADERS: usize = 32;

/// One request attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// The request method.
    Method,
    /// The path with numbers, UUIDs and hex runs replaced by placeholders.
    PathTemplate,
    /// The sorted set of query keys.
    QueryKeys,
    /// The query's length, in buckets.
    QueryLength,
    /// How random the query's values look: none, low, high.
    QueryRandomness,
    /// The User-Agent header.
    UserAgent,
    /// The order of the header names.
    HeaderOrder,
    /// The set of the header names.
    HeaderSet,
    /// The Accept-Language header.
    AcceptLanguage,
    /// The TLS ClientHello fingerprint.
    Tls,
    /// The HTTP/2 fingerprint.
    Http2,
    /// The client's IPv4 /24 or IPv6 /64.
    ClientPrefix,
}

impl Attr {
    /// Every attribute, in index order.
    pub const ALL: [Attr; 12] = [
        Attr::Method,
        Attr::PathTemplate,
        Attr::QueryKeys,
        Attr::QueryLength,
        Attr::QueryRandomness,
        Attr::UserAgent,
        Attr::HeaderOrder,
        Attr::HeaderSet,
        Attr::AcceptLanguage,
        Attr::Tls,
        Attr::Http2,
        Attr::ClientPrefix,
    ];
    /// How many there are.
    pub const COUNT: usize = Attr::ALL.len();

    /// Its index in [`Features::values`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in rules and logs.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Method => "method",
            Attr::PathTemplate => "path_template",
            Attr::QueryKeys => "query_keys",
            Attr::QueryLength => "query_length",
            Attr::QueryRandomness => "query_randomness",
            Attr::UserAgent => "user_agent",
            Attr::HeaderOrder => "header_order",
            Attr::HeaderSet => "header_set",
            Attr::AcceptLanguage => "accept_language",
            Attr::Tls => "tls",
            Attr::Http2 => "http2",
            Attr::ClientPrefix => "client_prefix",
        }
    }
}

/// A request's attribute values, indexed by [`Attr::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Features {
    /// The hashes; [`UNKNOWN`] where the source did not see the attribute.
    pub values: [u64; Attr::COUNT],
}

impl Features {
    /// The value of `attr`.
    pub fn get(&self, attr: Attr) -> u64 {
        self.values[attr.index()]
    }
}

/// A stable 64-bit hash (FNV-1a with a final avalanche). Stable on purpose: baseline samples are
/// persisted, and a hash that changed with a dependency update would make them silently match
/// nothing, so rules would look safer than they are. Never [`UNKNOWN`].
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// [`stable_hash`] fed piece by piece: the same bytes in the same order give the same hash,
/// so extraction never builds the strings it hashes.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl StableHasher {
    /// A fresh hasher.
    pub fn new() -> StableHasher {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }

    /// Feed `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash, never [`UNKNOWN`].
    pub fn finish(self) -> u64 {
        // splitmix64 finalizer: spreads FNV's weak low bits.
        let mut hash = self.0;
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        hash.max(1)
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

/// Hash `pieces` joined by `separator`, without joining them.
fn hash_joined<'a>(pieces: impl IntoIterator<Item = &'a str>, separator: u8) -> u64 {
    let mut hasher = StableHasher::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        if i > 0 {
            hasher.write(&[separator]);
        }
        hasher.write(piece.as_bytes());
    }
    hasher.finish()
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_INPUT {
        return text;
    }
    let mut end = MAX_INPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The request line and headers one request brings, as the sources see them.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Method.
    pub method: &'a str,
    /// Path, without the query.
    pub path: &'a str,
    /// The query, without `?`; `None` when there is none.
    pub query: Option<&'a str>,
    /// The headers, in their order on the wire; `None` when the source did not see them.
    pub headers: Option<&'a HeaderMap>,
    /// The User-Agent when `headers` is `None` (an access log has it).
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client: IpAddr,
    /// Fingerprints of the client's connection; `None` when the source did not see it.
    pub fingerprints: Option<&'a ClientFingerprints>,
}

/// Compute the features of `request`: a few hundred nanoseconds, no allocation.
pub fn extract(request: &RequestView<'_>) -> Features {
    let mut values = [UNKNOWN; Attr::COUNT];
    let mut put = |attr: Attr, value: u64| values[attr.index()] = value;
    put(Attr::Method, stable_hash(truncate(request.method).as_bytes()));
    put(Attr::PathTemplate, hash_joined(truncate(request.path).split('/').map(segment_template), b'/'));
    let query = request.query.unwrap_or("");
    let mut keys = [""; MAX_QUERY_KEYS];
    let n = sorted_query_keys(query, &mut keys);
    put(Attr::QueryKeys, hash_joined(keys[..n].iter().copied(), b'&'));
    put(Attr::QueryLength, stable_hash(query_length_class(query).as_bytes()));
    put(Attr::QueryRandomness, stable_hash(query_randomness(query).as_bytes()));
    put(Attr::ClientPrefix, prefix_hash(request.client));
    match request.headers {
        Some(headers) => {
            let user_agent = headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()).unwrap_or(b"");
            put(Attr::UserAgent, stable_hash(&user_agent[..user_agent.len().min(MAX_INPUT)]));
            let language = headers.get(http::header::ACCEPT_LANGUAGE).map(|v| v.as_bytes()).unwrap_or(b"");
            put(Attr::AcceptLanguage, stable_hash(&language[..language.len().min(MAX_INPUT)]));
            put(Attr::HeaderOrder, hash_joined(header_names_in_order(headers), b','));
            let mut names = [""; MAX_HEADERS];
            let n = sorted_header_names(headers, &mut names);
            put(Attr::HeaderSet, hash_joined(names[..n].iter().copied(), b','));
        }
        None => {
            if let Some(user_agent) = request.user_agent {
                put(Attr::UserAgent, stable_hash(truncate(user_agent).as_bytes()));
            }
        }
    }
    if let Some(fingerprints) = request.fingerprints {
        let hash =
            |f: &Option<std::sync::Arc<str>>| stable_hash(truncate(f.as_deref().unwrap_or("")).as_bytes());
        put(Attr::Tls, hash(&fingerprints.tls));
        put(Attr::Http2, hash(&fingerprints.http2));
    }
    Features { values }
}

/// The client's /24 or /64 as hashed bytes (a version tag, then the prefix bits).
fn prefix_hash(client: IpAddr) -> u64 {
    let mut hasher = StableHasher::new();
    match client {
        IpAddr::V4(v4) => {
            hasher.write(b"4");
            hasher.write(&v4.octets()[..3]);
        }
        IpAddr::V6(v6) => {
            hasher.write(b"6");
            hasher.write(&v6.octets()[..8]);
        }
    }
    hasher.finish()
}

/// What a rule shows for each attribute of `request`, for people (bounded strings).
pub fn labels(request: &RequestView<'_>) -> [String; Attr::COUNT] {
    let query = request.query.unwrap_or("");
    let header = |name: http::header::HeaderName| {
        request
            .headers
            .and_then(|h| h.get(&name))
            .map(|v| truncate(&String::from_utf8_lossy(v.as_bytes())).to_owned())
    };
    let user_agent = header(http::header::USER_AGENT)
        .or_else(|| request.user_agent.map(|u| truncate(u).to_owned()))
        .unwrap_or_default();
    let fingerprint = |pick: fn(&ClientFingerprints) -> &Option<std::sync::Arc<str>>| {
        request
            .fingerprints
            .and_then(|f| pick(f).as_deref())
            .map(|s| truncate(s).to_owned())
            .unwrap_or_default()
    };
    [
        truncate(request.method).to_owned(),
        truncate(&path_template(request.path)).to_owned(),
        truncate(&query_keys(query)).to_owned(),
        query_length_class(query).to_owned(),
        query_randomness(query).to_owned(),
        user_agent,
        request.headers.map(|h| truncate(&header_order(h)).to_owned()).unwrap_or_default(),
        request.headers.map(|h| truncate(&header_set(h)).to_owned()).unwrap_or_default(),
        header(http::header::ACCEPT_LANGUAGE).unwrap_or_default(),
        fingerprint(|f| &f.tls),
        fingerprint(|f| &f.http2),
        client_prefix(request.client),
    ]
}

/// The path with variable segments replaced: all-digit segments by `{n}`, UUIDs by `{uuid}`,
/// hex runs of 12 or more by `{hex}`, other long mixed tokens (24+ alphanumerics with digits)
/// by `{token}`. At most [`MAX_INPUT`] bytes of the path are read.
pub fn path_template(path: &str) -> String {
    let path = truncate(path);
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment_template(segment));
    }
    out
}

fn segment_template(segment: &str) -> &str {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return segment;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return "{n}";
    }
    if is_uuid(bytes) {
        return "{uuid}";
    }
    if bytes.len() >= 12 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return "{hex}";
    }
    if bytes.len() >= 24
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && bytes.iter().any(u8::is_ascii_digit)
    {
        return "{token}";
    }
    segment
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { *b == b'-' } else { b.is_ascii_hexdigit() })
}

/// Query keys taken into the key set.
const MAX_QUERY_KEYS: usize = 16;

/// The first [`MAX_QUERY_KEYS`] query keys (each at most 32 bytes) into `keys`, sorted and
/// deduplicated: how many.
fn sorted_query_keys<'a>(query: &'a str, keys: &mut [&'a str; MAX_QUERY_KEYS]) -> usize {
    let mut n = 0;
    for pair in truncate(query).split('&').filter(|p| !p.is_empty()).take(MAX_QUERY_KEYS) {
        let key = pair.split('=').next().unwrap_or("");
        keys[n] = if key.len() > 32 { &key[..key.floor_char_boundary(32)] } else { key };
        n += 1;
    }
    let keys = &mut keys[..n];
    keys.sort_unstable();
    let mut kept = 0;
    for i in 0..keys.len() {
        if kept == 0 || keys[kept - 1] != keys[i] {
            keys[kept] = keys[i];
            kept += 1;
        }
    }
    kept
}

/// The query's keys, sorted and deduplicated, joined by `&` (at most 16 keys of 32 bytes).
pub fn query_keys(query: &str) -> String {
    let mut keys = [""; MAX_QUERY_KEYS];
    let n = sorted_query_keys(query, &mut keys);
    keys[..n].join("&")
}

/// Query length in buckets: none, 1-16, 17-64, 65-256, more.
pub fn query_length_class(query: &str) -> &'static str {
    match query.len() {
        0 => "none",
        1..=16 => "1-16",
        17..=64 => "17-64",
        65..=256 => "65-256",
        _ => "long",
    }
}

/// How random the query's values look, by the Shannon entropy of their characters and the
/// share of digits: `none` (no values), `low`, `high` (random tokens, cache busters).
pub fn query_randomness(query: &str) -> &'static str {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for pair in truncate(query).split('&') {
        if let Some((_, value)) = pair.split_once('=') {
            for &b in value.as_bytes() {
                counts[usize::from(b)] += 1;
                total += 1;
            }
        }
    }
    if total == 0 {
        return "none";
    }
    let n = f64::from(total);
    let entropy: f64 =
        counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum();
    // A random alphanumeric value of 8+ characters has entropy near log2(min(len, 62)); words
    // and small numbers stay well under 3 bits.
    if total >= 8 && entropy >= 3.0 { "high" } else { "low" }
}

/// The header names in order on the wire, each once per run (at most [`MAX_HEADERS`]).
fn header_names_in_order(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    // HeaderMap iterates in insertion order for distinct names (hyper inserts as it parses),
    // repeating a name for each of its values.
    let mut last: Option<&http::HeaderName> = None;
    headers
        .iter()
        .filter_map(move |(name, _)| {
            if last == Some(name) {
                return None;
            }
            last = Some(name);
            Some(name.as_str())
        })
        .take(MAX_HEADERS)
}

/// The first [`MAX_HEADERS`] distinct header names into `names`, sorted: how many.
fn sorted_header_names<'a>(headers: &'a HeaderMap, names: &mut [&'a str; MAX_HEADERS]) -> usize {
    let mut n = 0;
    for name in headers.keys().take(MAX_HEADERS) {
        names[n] = name.as_str();
        n += 1;
    }
    names[..n].sort_unstable();
    n
}

/// The header names in order, lower case, joined by `,` (at most [`MAX_HEADERS`]).
pub fn header_order(headers: &HeaderMap) -> String {
    header_names_in_order(headers).collect::<Vec<_>>().join(",")
}

/// The header names sorted, joined by `,`.
pub fn header_set(headers: &HeaderMap) -> String {
    let mut names = [""; MAX_HEADERS];
    let n = sorted_header_names(headers, &mut names);
    names[..n].join(",")
}

/// The client's IPv4 /24 or IPv6 /64, as text.
pub fn client_prefix(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_replace_variable_segments() {
        assert_eq!(path_template("/user/12345/posts"), "/user/{n}/posts");
        assert_eq!(path_template("/o/123e4567-e89b-12d3-a456-426614174000"), "/o/{uuid}");
        assert_eq!(path_template("/blob/deadbeefcafe00"), "/blob/{hex}");
        assert_eq!(path_template("/s/aB3dE5gH7jK9mN1pQ3sT5vW7"), "/s/{token}");
        assert_eq!(path_template("/about/team"), "/about/team");
        assert_eq!(path_template("/"), "/");
    }

    #[test]
    fn query_shape() {
        assert_eq!(query_keys("b=1&a=2&b=3"), "a&b");
        assert_eq!(query_keys(""), "");
        assert_eq!(query_randomness(""), "none");
        assert_eq!(query_randomness("q=news"), "low");
        assert_eq!(query_randomness("cb=x8Fk2LqP9zR1"), "high");
        assert_eq!(query_length_class("a=1"), "1-16");
    }

    #[test]
    fn hashes_are_those_of_the_shown_strings() {
        let mut h = HeaderMap::new();
        h.insert("host", "x".parse().unwrap());
        h.append("accept", "a".parse().unwrap());
        h.append("accept", "b".parse().unwrap());
        h.insert("user-agent", "curl".parse().unwrap());
        let view = RequestView {
            method: "GET",
            path: "/user/12/x",
            query: Some("b=1&a=2&b=3"),
            headers: Some(&h),
            user_agent: None,
            client: "2001:db8::1".parse().unwrap(),
            fingerprints: None,
        };
        let f = extract(&view);
        assert_eq!(f.get(Attr::PathTemplate), stable_hash(path_template("/user/12/x").as_bytes()));
        assert_eq!(f.get(Attr::QueryKeys), stable_hash(b"a&b"));
        assert_eq!(f.get(Attr::HeaderOrder), stable_hash(b"host,accept,user-agent"));
        assert_eq!(f.get(Attr::HeaderSet), stable_hash(b"accept,host,user-agent"));
    }

    #[test]
    fn header_order_differs_from_set() {
        let mut a = HeaderMap::new();
        a.insert("host", "x".parse().unwrap());
        a.insert("accept", "*/*".parse().unwrap());
        let mut b = HeaderMap::new();
        b.insert("accept", "*/*".parse().unwrap());
        b.insert("host", "x".parse().unwrap());
        assert_ne!(header_order(&a), header_order(&b));
        assert_eq!(header_set(&a), header_set(&b));
    }

    #[test]
    fn unseen_attributes_are_unknown() {
        let view = RequestView {
            method: "GET",
            path: "/",
            query: None,
            headers: None,
            user_agent: Some("curl/8"),
            client: "192.0.2.7".parse().unwrap(),
            fingerprints: None,
        };
        let f = extract(&view);
        assert_eq!(f.get(Attr::HeaderOrder), UNKNOWN);
        assert_eq!(f.get(Attr::Tls), UNKNOWN);
        assert_ne!(f.get(Attr::UserAgent), UNKNOWN);
        assert_eq!(labels(&view)[Attr::ClientPrefix.index()], "192.0.2.0/24");
    }

    proptest! {
        #[test]
        fn any_input_is_bounded_and_never_panics(
            path in ".{0,600}",
            query in proptest::option::of(".{0,600}"),
            ua in proptest::option::of(".{0,600}"),
            v6 in any::<u128>(),
        ) {
            let view = RequestView {
                method: "GET",
                path: &path,
                query: query.as_deref(),
                headers: None,
                user_agent: ua.as_deref(),
                client: IpAddr::V6(v6.into()),
                fingerprints: None,
            };
            let f = extract(&view);
            prop_assert!(f.get(Attr::Method) != UNKNOWN);
            for label in labels(&view) {
                prop_assert!(label.len() <= MAX_INPUT * 2 + 64);
            }
            prop_assert!(path_template(&path).len() <= MAX_INPUT + 8 * MAX_INPUT);
        }
    }
}
