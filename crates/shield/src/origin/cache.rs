//! The stale cache: the last good answer to each cacheable GET, kept so that the shield can
//! answer for the origin while it is overloaded, failing or down (RFC 5861 `stale-if-error`,
//! RFC 9111 otherwise). It is not a caching proxy: while the origin is well every request goes
//! to it, and copies are only refreshed.
//!
//! What is kept: answers to GET (HEAD is served from them) without `Authorization`, with a
//! status cacheable by default, no `Set-Cookie`, no `Cache-Control` `private`, `no-store`,
//! `no-cache`, `must-revalidate` or `proxy-revalidate`, no `Vary: *`, and a body no bigger
//! than the entry bound. A request carrying cookies is kept only when the origin marks the
//! answer `public` or gives it an `s-maxage`: a personal page must never reach someone else.
//! Memory is bounded in total; the least recently used copies go first.
//!
//! Pure: `now` is time since a fixed origin.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// The bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bodies larger than this are not kept (they still stream to the client).
    pub max_entry_bytes: usize,
    /// All copies together (bodies, headers, keys) stay under this.
    pub max_bytes: usize,
    /// How long past its freshness a copy may be served when the origin gives no
    /// `stale-if-error`.
    pub max_stale: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entry_bytes: 1 << 20,
            max_bytes: 64 << 20,
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a stale copy is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// The admission queue is full or the request waited past its deadline.
    Overloaded,
    /// The origin answered 5xx, could not be reached or did not answer in time.
    Failing,
    /// No server of the pool passes its health check.
    Unhealthy,
}

impl StaleReason {
    /// The value of the `X-Rampart-Stale` header.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::Overloaded => "overloaded",
            StaleReason::Failing => "origin-error",
            StaleReason::Unhealthy => "origin-down",
        }
    }
}

/// The cache key: host and request target. Vary is checked against the stored request
/// headers on lookup.
pub fn key(host: Option<&str>, path_and_query: &str) -> String {
    let host = host.unwrap_or("");
    let mut key = String::with_capacity(host.len() + 1 + path_and_query.len());
    key.push_str(host);
    key.push('\u{0}');
    key.push_str(path_and_query);
    key
}

/// Whether a request may be answered from, and its answer stored in, the cache.
pub fn request_is_cacheable(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD) && !headers.contains_key(header::AUTHORIZATION)
}

/// Statuses cacheable by default (RFC 9110 15.1), 206 aside (ranges are not kept).
fn status_cacheable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// The directives of the `Cache-Control` headers that matter here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Directives {
    forbidden: bool,
    public: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_if_error: Option<u64>,
}

fn directives(headers: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            d.forbidden = true;
            continue;
        };
        for directive in text.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "private" | "no-store" | "no-cache" | "must-revalidate" | "proxy-revalidate" => {
                    d.forbidden = true
                }
                "public" => d.public = true,
                "max-age" => d.max_age = seconds(),
                "s-maxage" => d.s_maxage = seconds(),
                "stale-if-error" => d.stale_if_error = seconds(),
                _ => {}
            }
        }
    }
    d
}

/// How a stored answer may be served later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    fresh_for: u64,
    stale_if_error: Option<u64>,
    /// The request headers the answer varies on, with the request's values.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
    initial_age: u64,
}

/// Whether an answer may be stored, and how to serve it later; `None` when it may not.
pub fn storable(request: &HeaderMap, status: StatusCode, response: &HeaderMap) -> Option<Policy> {
    if !status_cacheable(status) || response.contains_key(header::SET_COOKIE) {
        return None;
    }
    let d = directives(response);
    if d.forbidden {
        return None;
    }
    if request.contains_key(header::COOKIE) && !d.public && d.s_maxage.is_none() {
        return None;
    }
    let mut vary = Vec::new();
    for value in response.get_all(header::VARY) {
        for name in value.to_str().ok()?.split(',') {
            let name = name.trim();
            if name == "*" {
                return None;
            }
            if name.is_empty() {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = request.get(&name).cloned();
            vary.push((name, value));
        }
    }
    let initial_age = response
        .get(header::AGE)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(Policy {
        fresh_for: d.s_maxage.or(d.max_age).unwrap_or(0),
        stale_if_error: d.stale_if_error,
        vary,
        initial_age,
    })
}

/// One kept answer.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its status.
    pub status: StatusCode,
    /// Its headers (hop-by-hop already removed).
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
    /// How to serve it.
    pub policy: Policy,
}

impl Stored {
    fn cost(&self, key: &str) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
        // A fixed allowance for the map entries and the LRU index.
        key.len() * 2 + headers + self.body.len() + 160
    }
}

/// A copy to serve: the stored answer and its age in seconds.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The stored answer.
    pub stored: Stored,
    /// Its age now, as the `Age` header says it.
    pub age: u64,
}

#[derive(Debug)]
struct Slot {
    stored: Stored,
    stored_at: Duration,
    used_at: u64,
    cost: usize,
}

/// How old a kept copy gets before an answer replaces it: a copy served in place of the
/// origin is at most this much older than the origin's latest answer.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The kept answers, bounded in memory, least recently used out first.
#[derive(Debug)]
pub struct StaleCache {
    settings: CacheSettings,
    slots: HashMap<String, Slot, foldhash::fast::RandomState>,
    /// Use tick to key: the least recently used first.
    order: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
}

impl StaleCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> StaleCache {
        StaleCache { settings, slots: HashMap::default(), order: BTreeMap::new(), bytes: 0, tick: 0 }
    }

    /// The bounds.
    pub fn settings(&self) -> CacheSettings {
        self.settings
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Copies held now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Keep `stored` under `key` (replacing an older copy), evicting the least recently used
    /// copies to stay within the bound.
    pub fn insert(&mut self, key: String, stored: Stored, now: Duration) {
        self.remove(&key);
        let cost = stored.cost(&key);
        if stored.body.len() > self.settings.max_entry_bytes || cost > self.settings.max_bytes {
            return;
        }
        while self.bytes + cost > self.settings.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(slot) = self.slots.remove(&oldest) {
                self.bytes -= slot.cost;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.bytes += cost;
        self.slots.insert(key, Slot { stored, stored_at: now, used_at: self.tick, cost });
    }

    /// Whether an answer under `key` at `now` should be copied: there is no copy yet, or the
    /// one kept is older than [`REFRESH`]. A hot page answered thousands of times a second
    /// is copied about once a second instead of on every answer.
    pub fn wants_copy(&self, key: &str, now: Duration) -> bool {
        self.slots.get(key).is_none_or(|slot| now.saturating_sub(slot.stored_at) >= REFRESH)
    }

    /// Forget the copy under `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.used_at);
            self.bytes -= slot.cost;
        }
    }

    /// A copy for a request with `headers` that may still be served in place of the origin:
    /// its Vary headers match and it is no staler than `stale-if-error` (or the configured
    /// default, tightened to `max_stale` when given) allows.
    pub fn stale(
        &mut self,
        key: &str,
        headers: &HeaderMap,
        now: Duration,
        max_stale: Duration,
    ) -> Option<Hit> {
        let slot = self.slots.get_mut(key)?;
        let policy = &slot.stored.policy;
        if policy.vary.iter().any(|(name, value)| headers.get(name) != value.as_ref()) {
            return None;
        }
        let age = policy.initial_age.saturating_add(now.saturating_sub(slot.stored_at).as_secs());
        let staleness = age.saturating_sub(policy.fresh_for);
        let allowed = policy.stale_if_error.unwrap_or(self.settings.max_stale.as_secs());
        if staleness > allowed.min(max_stale.as_secs()) {
            return None;
        }
        self.order.remove(&slot.used_at);
        self.tick += 1;
        slot.used_at = self.tick;
        self.order.insert(self.tick, key.to_owned());
        Some(Hit { stored: slot.stored.clone(), age })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn stored(response: &[(&str, &str)], body: &'static [u8]) -> Stored {
        let response = headers(response);
        let policy = storable(&HeaderMap::new(), StatusCode::OK, &response).unwrap();
        Stored { status: StatusCode::OK, headers: response, body: Bytes::from_static(body), policy }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn what_may_be_stored() {
        let none = HeaderMap::new();
        assert!(storable(&none, StatusCode::OK, &none).is_some());
        assert!(storable(&none, StatusCode::NOT_FOUND, &none).is_some());
        assert!(storable(&none, StatusCode::MOVED_PERMANENTLY, &none).is_some());
        assert!(storable(&none, StatusCode::INTERNAL_SERVER_ERROR, &none).is_none());
        assert!(storable(&none, StatusCode::PARTIAL_CONTENT, &none).is_none());
        assert!(storable(&none, StatusCode::OK, &headers(&[("set-cookie", "a=b")])).is_none());
        for forbidden in ["private", "no-store", "max-age=60, No-Cache", "must-revalidate"] {
            assert!(storable(&none, StatusCode::OK, &headers(&[("cache-control", forbidden)])).is_none());
        }
        assert!(storable(&none, StatusCode::OK, &headers(&[("vary", "Accept, *")])).is_none());
        let cookie = headers(&[("cookie", "session=1")]);
        assert!(storable(&cookie, StatusCode::OK, &none).is_none());
        assert!(storable(&cookie, StatusCode::OK, &headers(&[("cache-control", "public")])).is_some());
        assert!(request_is_cacheable(&Method::GET, &none));
        assert!(request_is_cacheable(&Method::HEAD, &none));
        assert!(!request_is_cacheable(&Method::POST, &none));
        assert!(!request_is_cacheable(&Method::GET, &headers(&[("authorization", "Basic eA==")])));
    }

    #[test]
    fn staleness_follows_stale_if_error_or_the_default() {
        let mut cache =
            StaleCache::new(CacheSettings { max_stale: Duration::from_secs(100), ..Default::default() });
        cache.insert(
            "a".into(),
            stored(&[("cache-control", "max-age=10, stale-if-error=30")], b"A"),
            Duration::ZERO,
        );
        cache.insert("b".into(), stored(&[("age", "50")], b"B"), Duration::ZERO);
        let h = HeaderMap::new();
        let s = Duration::from_secs;
        assert_eq!(cache.stale("a", &h, s(40), DAY).unwrap().age, 40);
        assert!(cache.stale("a", &h, s(41), DAY).is_none(), "10 s fresh + 30 s stale-if-error");
        assert_eq!(cache.stale("b", &h, s(50), DAY).unwrap().age, 100);
        assert!(cache.stale("b", &h, s(51), DAY).is_none(), "the configured default, Age included");
        assert!(cache.stale("b", &h, s(20), s(60)).is_none(), "a tighter bound from the caller");
        assert!(cache.stale("c", &h, s(0), DAY).is_none());
    }

    #[test]
    fn vary_must_match() {
        let mut cache = StaleCache::new(CacheSettings::default());
        let request = headers(&[("accept-language", "fr")]);
        let response = headers(&[("vary", "Accept-Language")]);
        let policy = storable(&request, StatusCode::OK, &response).unwrap();
        let copy = Stored { status: StatusCode::OK, headers: response, body: Bytes::new(), policy };
        cache.insert("k".into(), copy, Duration::ZERO);
        assert!(cache.stale("k", &request, Duration::ZERO, DAY).is_some());
        assert!(cache.stale("k", &headers(&[("accept-language", "de")]), Duration::ZERO, DAY).is_none());
        assert!(cache.stale("k", &HeaderMap::new(), Duration::ZERO, DAY).is_none());
    }

    #[test]
    fn memory_is_bounded_least_recently_used_out_first() {
        let settings = CacheSettings { max_entry_bytes: 1000, max_bytes: 3000, max_stale: DAY };
        let mut cache = StaleCache::new(settings);
        static BODY: [u8; 800] = [b'x'; 800];
        let h = HeaderMap::new();
        for name in ["a", "b", "c"] {
            cache.insert(name.into(), stored(&[], &BODY), Duration::ZERO);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.stale("a", &h, Duration::ZERO, DAY).is_some());
        cache.insert("d".into(), stored(&[], &BODY), Duration::ZERO);
        assert!(cache.bytes() <= 3000);
        assert!(cache.stale("b", &h, Duration::ZERO, DAY).is_none(), "b was the least recently used");
        assert!(cache.stale("a", &h, Duration::ZERO, DAY).is_some());
        static BIG: [u8; 1001] = [b'x'; 1001];
        cache.insert("e".into(), stored(&[], &BIG), Duration::ZERO);
        assert!(cache.stale("e", &h, Duration::ZERO, DAY).is_none(), "over the entry bound");
    }

    proptest! {
        /// Random Cache-Control and Vary values never panic, and any sequence of inserts keeps
        /// the cache within its bound.
        #[test]
        fn any_headers_and_inserts_stay_bounded(
            control in "[ -~]{0,60}",
            vary in "[ -~]{0,30}",
            sizes in proptest::collection::vec((0usize..20, 0usize..3000), 0..60),
        ) {
            let mut response = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&control) { response.insert(header::CACHE_CONTROL, v); }
            if let Ok(v) = HeaderValue::from_str(&vary) { response.insert(header::VARY, v); }
            let policy = storable(&HeaderMap::new(), StatusCode::OK, &response);
            let mut cache = StaleCache::new(CacheSettings { max_entry_bytes: 2000, max_bytes: 10_000, max_stale: DAY });
            for (key, size) in sizes {
                let policy = policy.clone().unwrap_or(Policy { fresh_for: 0, stale_if_error: None, vary: vec![], initial_age: 0 });
                let copy = Stored { status: StatusCode::OK, headers: response.clone(), body: Bytes::from(vec![0; size]), policy };
                cache.insert(key.to_string(), copy, Duration::ZERO);
                prop_assert!(cache.bytes() <= 10_000);
                let _ = cache.stale(&key.to_string(), &HeaderMap::new(), Duration::from_secs(5), DAY);
            }
        }
    }
}
