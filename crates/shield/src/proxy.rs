//! One request through the shield: client address, bans, request-target checks, rate limits,
//! route, segmentation, then the origin, with hop-by-hop headers removed both ways and the
//! forwarding headers set. Bodies stream both ways.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::access_log::{LoggedBody, Pending, Rejected, RouteName};
use crate::bans::{BanList, canonical};
use crate::body::{BodyLimits, GuardedBody};
use crate::config::{Config, RateLimits};
use crate::defense::{Challenger, ClientFingerprints, FloodVerdict};
use crate::forwarded::{client_address, set_forwarding_headers};
use crate::gcra::{Key, Limiter, Verdict};
use crate::metrics::{Metrics, Reason, RouteMetrics};
use crate::origin::{Forwarded, OriginBody, Protection};
use crate::routing::{check_path, find_route, normalize_host};
use crate::upstream::Pool;
use crate::watch::Activity;

/// What the shield answers with: the origin's streamed body or one of its own.
pub type ProxyBody = Either<OriginBody, Full<Bytes>>;

/// The limiters applied before routing, and one per route with a rate.
#[derive(Debug)]
pub struct Limiters {
    per_address: Option<Limiter>,
    per_prefix: Option<Limiter>,
    per_v6_48: Option<Limiter>,
    per_route: Vec<Option<Limiter>>,
}

impl Limiters {
    /// Limiters for `config`.
    pub fn new(limits: &RateLimits, config: &Config) -> Limiters {
        let make = |rate: Option<crate::gcra::Rate>| rate.map(|r| Limiter::new(r, limits.table_capacity));
        Limiters {
            per_address: make(limits.per_address),
            per_prefix: make(limits.per_prefix),
            per_v6_48: make(limits.per_v6_48),
            per_route: config.routes.iter().map(|r| make(r.rate)).collect(),
        }
    }

    /// The global limits for `client` at `now`: the reason and retry delay of the first one
    /// refusing. Every limiter sees the request, so a refused client keeps paying.
    fn check_global(&mut self, client: IpAddr, now: u64) -> Option<(Reason, u64)> {
        let checks = [
            (self.per_address.as_mut(), Key::address(client), Reason::RateAddress),
            (self.per_prefix.as_mut(), Key::prefix(client, 24, 64), Reason::RatePrefix),
            (
                if client.is_ipv6() { self.per_v6_48.as_mut() } else { None },
                Key::prefix(client, 24, 48),
                Reason::RatePrefix,
            ),
        ];
        let mut refused = None;
        for (limiter, key, reason) in checks {
            if let Some(limiter) = limiter
                && let Verdict::Deny { retry_after_nanos } = limiter.check(key, now)
            {
                refused.get_or_insert((reason, retry_after_nanos));
            }
        }
        refused
    }

    fn check_route(&mut self, route: usize, client: IpAddr, now: u64) -> Option<u64> {
        let limiter = self.per_route.get_mut(route)?.as_mut()?;
        match limiter.check(Key::address(client), now) {
            Verdict::Allow => None,
            Verdict::Deny { retry_after_nanos } => Some(retry_after_nanos),
        }
    }
}

/// Everything requests share.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// Upstream pools, as `config.upstreams`.
    pub pools: Vec<Arc<Pool>>,
    /// The client of each upstream, as `config.upstreams` (HTTP or HTTPS, its own trust).
    pub clients: Vec<crate::origin::OriginClient>,
    /// Rate limiters.
    pub limiters: Mutex<Limiters>,
    /// Bans.
    pub bans: Arc<dyn BanList>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The limiters' clock origin.
    pub epoch: Instant,
    /// The challenge ladder, when configured.
    pub challenger: Option<Arc<dyn Challenger>>,
    /// The automatic flood defense, unless `[flood] enabled = false`; one for the shield's
    /// life (reloads keep it).
    pub flood: Option<Arc<crate::flood::FloodDefense>>,
    /// Origin protection: concurrency limits, admission queues, stale cache, snapshot,
    /// threat level.
    pub protection: Protection,
    /// The access log, when configured.
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// Each route's metric handles, as `config.routes`.
    pub route_metrics: Vec<RouteMetrics>,
}

impl Shared {
    fn lock_limiters(&self) -> std::sync::MutexGuard<'_, Limiters> {
        self.limiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer.
    pub peer: SocketAddr,
    /// Over TLS.
    pub tls: bool,
    /// An internal listener.
    pub internal_listener: bool,
    /// The connection's activity (requests in flight, cancellations).
    pub activity: Arc<Activity>,
    /// Fingerprints of the client's TLS and HTTP/2 stacks.
    pub fingerprints: ClientFingerprints,
}

/// Counts a request in flight; a request dropped before its answer (its stream reset or its
/// connection gone) counts as cancelled.
struct InFlight {
    activity: Arc<Activity>,
    done: bool,
}

impl InFlight {
    fn new(activity: Arc<Activity>) -> InFlight {
        activity.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight { activity, done: false }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.inflight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.activity.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Headers that describe one hop and never travel through a proxy (RFC 9110 7.6.1), besides
/// those the `Connection` header names.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The hop-by-hop header names, lower case.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Remove hop-by-hop headers (and those listed in `Connection`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds the hop-by-hop ones present (most requests carry none;
    // most answers only `Connection: keep-alive`), and only those are removed.
    let mut present: [Option<HeaderName>; 8] = Default::default();
    let mut found = 0;
    for name in headers.keys() {
        if is_hop_by_hop(name) && found < present.len() {
            present[found] = Some(name.clone());
            found += 1;
        }
    }
    if found == 0 {
        return;
    }
    // What `Connection` lists besides its usual `close` and hop-by-hop names such as
    // `keep-alive` (no allocation for those, which is nearly every message).
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(text) = value.to_str() else { continue };
        for token in text.split(',').map(str::trim) {
            // Checked as text first: parsing a name allocates for names `http` has no
            // constant for, such as `keep-alive`.
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || HOP_BY_HOP.iter().any(|h| token.eq_ignore_ascii_case(h))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
                && !is_hop_by_hop(&name)
            {
                named.push(name);
            }
        }
    }
    for name in named.into_iter().chain(present.into_iter().flatten()) {
        headers.remove(name);
    }
}

fn answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn refuse(shared: &Shared, reason: Reason, status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    shared.metrics.reject(reason);
    let mut response = answer(status, text);
    response.extensions_mut().insert(Rejected(reason));
    response
}

fn too_many(shared: &Shared, reason: Reason, retry_after_nanos: u64) -> Response<ProxyBody> {
    let mut response = refuse(shared, reason, StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    let secs = retry_after_nanos.div_ceil(1_000_000_000).max(1);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

fn challenge_answer(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(Either::Right)
}

fn in_networks(address: IpAddr, networks: &[IpNet]) -> bool {
    networks.iter().any(|n| n.contains(&address))
}

/// The request's host: the target's authority (HTTP/2 `:authority`, absolute form), else the
/// Host header. `Err` when both are present and disagree.
fn request_host<B>(request: &Request<B>) -> Result<Option<String>, ()> {
    let from_uri = request.uri().authority().map(|a| normalize_host(a.as_str()));
    let from_header = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(normalize_host);
    match (from_uri, from_header) {
        (Some(a), Some(b)) if request.version() == Version::HTTP_2 && a != b => Err(()),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

fn range_count(headers: &HeaderMap) -> usize {
    headers
        .get_all(header::RANGE)
        .iter()
        .map(|v| v.as_bytes().iter().filter(|b| **b == b',').count() + 1)
        .sum()
}

/// The flood defense's verdict for a request of `route`.
fn flood_check(
    flood: &crate::flood::FloodDefense,
    route: &str,
    host: Option<&str>,
    request: &Request<Incoming>,
    conn: &ConnectionInfo,
    client: IpAddr,
) -> FloodVerdict {
    let view = crate::flood::RequestView {
        method: request.method().as_str(),
        path: request.uri().path(),
        query: request.uri().query(),
        headers: Some(request.headers()),
        user_agent: None,
        client,
        fingerprints: Some(&conn.fingerprints),
    };
    flood.check(route, host, &view, SystemTime::now())
}

/// The answer to a refusing flood verdict: `429` for a throttle, `403` for a block, and for a
/// challenge when no challenge ladder is configured (then blocking is the safe side). A
/// challenge with a ladder is answered after routing, where the request's parts are at hand.
fn flood_refusal(shared: &Shared, verdict: FloodVerdict) -> Option<Response<ProxyBody>> {
    match verdict {
        FloodVerdict::Pass => None,
        FloodVerdict::Throttle { retry_after } => Some(too_many(
            shared,
            Reason::FloodRule,
            u64::try_from(retry_after.as_nanos()).unwrap_or(u64::MAX),
        )),
        FloodVerdict::Challenge if shared.challenger.is_some() => None,
        FloodVerdict::Challenge | FloodVerdict::Block => {
            Some(refuse(shared, Reason::FloodRule, StatusCode::FORBIDDEN, "forbidden\n"))
        }
    }
}

/// Answer one request (and log it, when the access log is on).
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnectionInfo,
    request: Request<Incoming>,
) -> Result<Response<LoggedBody<ProxyBody>>, Infallible> {
    let mut in_flight = InFlight::new(Arc::clone(&conn.activity));
    if request.version() == Version::HTTP_2 {
        // Rapid Reset: hyper drops a stream's service when it sees RST_STREAM while the
        // service is pending. Wait until the connection has read all the client sent so far
        // (microseconds normally; 20 ms at most), then give way once, so a stream reset by
        // bytes already received never costs an origin request.
        conn.activity.until_drained(std::time::Duration::from_millis(20)).await;
        tokio::task::yield_now().await;
    }
    let pending = shared.access_log.as_ref().map(|log| {
        let client =
            client_address(canonical(conn.peer.ip()), request.headers(), &shared.config.trusted_proxies);
        Pending::start(Arc::clone(log), &request, client)
    });
    // Boxed: the request's future is a few kB (the origin call's state), and hyper moves the
    // service future several times as it spawns an HTTP/2 stream; a pointer moves cheaply.
    let response = Box::pin(route_request(&shared, &conn, request)).await;
    in_flight.done = true;
    Ok(match pending {
        Some(pending) => pending.finish(response),
        None => response.map(LoggedBody::unlogged),
    })
}

async fn route_request(
    shared: &Arc<Shared>,
    conn: &ConnectionInfo,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    if conn.tls {
        // The challenge ladder's cookies get `Secure` on TLS listeners only.
        request.extensions_mut().insert(crate::challenge::OverTls);
    }
    let hardening = &shared.config.hardening;
    let peer = canonical(conn.peer.ip());
    let client = client_address(peer, request.headers(), &shared.config.trusted_proxies);
    if shared.bans.is_banned(client) || (client != peer && shared.bans.is_banned(peer)) {
        return refuse(shared, Reason::Banned, StatusCode::FORBIDDEN, "forbidden\n");
    }
    let target_len = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > hardening.max_uri_bytes {
        return refuse(shared, Reason::UriTooLong, StatusCode::URI_TOO_LONG, "request target too long\n");
    }
    if range_count(request.headers()) > hardening.max_ranges {
        return refuse(shared, Reason::RangeAbuse, StatusCode::RANGE_NOT_SATISFIABLE, "too many ranges\n");
    }
    let path = request.uri().path().to_owned();
    if check_path(&path).is_err() {
        return refuse(shared, Reason::SuspiciousPath, StatusCode::BAD_REQUEST, "bad request path\n");
    }
    let Ok(host) = request_host(&request) else {
        return refuse(
            shared,
            Reason::SuspiciousPath,
            StatusCode::BAD_REQUEST,
            ":authority and Host differ\n",
        );
    };
    let now = (shared.epoch.elapsed().as_nanos() as u64).max(1);
    if let Some((reason, retry)) = shared.lock_limiters().check_global(client, now) {
        return too_many(shared, reason, retry);
    }
    let route_hit = match find_route(&shared.config.routes, host.as_deref(), &path) {
        None => None,
        Some((index, route)) => {
            let internal_ok = !route.internal
                || conn.internal_listener
                || in_networks(client, &shared.config.internal_networks);
            // The flood rules see every request of the route, before its own rate limit (and
            // outside the limiters' lock: they have their own).
            let flood = match &shared.flood {
                Some(flood) if internal_ok => {
                    flood_check(flood, &route.name, host.as_deref(), &request, conn, client)
                }
                _ => FloodVerdict::Pass,
            };
            if !internal_ok {
                Some(Err(()))
            } else if let Some(response) = flood_refusal(shared, flood) {
                return response;
            } else if let Some(retry) = shared.lock_limiters().check_route(index, client, now) {
                return too_many(shared, Reason::RateRoute, retry);
            } else {
                Some(Ok((index, flood)))
            }
        }
    };
    if let Some(challenger) = &shared.challenger
        && path.starts_with(crate::challenge::PREFIX)
    {
        // The ladder's own step (the check of a solved challenge), whatever the route.
        let (parts, _body) = request.into_parts();
        return challenge_answer(challenger.challenge(&parts, client, std::time::SystemTime::now()));
    }
    let index = match route_hit {
        None => return refuse(shared, Reason::NoRoute, StatusCode::NOT_FOUND, "not found\n"),
        // The same answer as no route: an outsider learns nothing about internal routes.
        Some(Err(())) => return refuse(shared, Reason::InternalOnly, StatusCode::NOT_FOUND, "not found\n"),
        Some(Ok(index)) => index,
    };
    let (index, flood_verdict) = index;
    let route = &shared.config.routes[index];
    let pool = &shared.pools[route.upstream];
    // Only HTTP/1.1 GET upgrades to WebSocket; anything else loses its Upgrade header with the
    // other hop-by-hop headers.
    let websocket = request.version() == Version::HTTP_11
        && request.method() == http::Method::GET
        && crate::tunnel::wants_websocket(request.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
    let has_body = !hyper::body::Body::is_end_stream(request.body());
    let (mut parts, body) = request.into_parts();
    let context = shared.protection.context(
        route.upstream,
        &parts,
        has_body,
        host.as_deref(),
        client,
        shared.challenger.as_deref(),
        route.internal,
    );
    let Some(server) = pool.pick() else {
        if let Some(answer) = shared.protection.unavailable(&context).await {
            return answer;
        }
        return refuse(
            shared,
            Reason::UpstreamUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy upstream\n",
        );
    };
    if flood_verdict == FloodVerdict::Challenge
        && let Some(challenger) = &shared.challenger
        && !challenger.is_cleared(&parts, client, SystemTime::now())
    {
        shared.metrics.reject(Reason::FloodRule);
        let mut response = challenge_answer(challenger.challenge(&parts, client, SystemTime::now()));
        response.extensions_mut().insert(Rejected(Reason::FloodRule));
        return response;
    }
    if route.challenge == crate::challenge::ChallengeMode::Always
        && let Some(challenger) = &shared.challenger
    {
        let now = std::time::SystemTime::now();
        if !challenger.is_cleared(&parts, client, now) {
            return challenge_answer(challenger.challenge(&parts, client, now));
        }
    }
    // The origin's URI from parts parsed once (no text formatted and parsed again).
    let mut target = http::uri::Parts::default();
    target.scheme = Some(pool.uri_scheme.clone());
    target.authority = server.uri_authority.clone();
    target.path_and_query =
        Some(parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    let Ok(uri) = Uri::from_parts(target) else {
        return refuse(shared, Reason::SuspiciousPath, StatusCode::BAD_REQUEST, "bad request target\n");
    };
    // The Host the client asked for: the target's authority (HTTP/2, absolute form) is set as
    // the origin's Host; a Host header alone stays as it came.
    let authority_host = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let original_host = match &authority_host {
        Some(value) => Some(value.clone()),
        None => parts.headers.get(header::HOST).cloned(),
    };
    strip_hop_by_hop(&mut parts.headers);
    if websocket {
        crate::tunnel::set_upgrade_headers(&mut parts.headers);
    }
    set_forwarding_headers(
        &mut parts.headers,
        peer,
        &shared.config.trusted_proxies,
        conn.tls,
        original_host.as_ref(),
    );
    crate::fingerprint::set_headers(&mut parts.headers, &conn.fingerprints);
    if let Some(host) = authority_host {
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let tripped = Arc::new(AtomicBool::new(false));
    let limits = BodyLimits {
        timeout: hardening.body_timeout(),
        grace: hardening.body_grace(),
        min_rate: hardening.body_min_rate,
    };
    let body = GuardedBody::new(body, limits, Arc::clone(&shared.metrics), Arc::clone(&tripped));
    let upstream_request = Request::from_parts(parts, body);

    let sent = std::time::Instant::now();
    let (forwarded, origin_saw) =
        shared.protection.forward(&shared.clients[route.upstream], &context, upstream_request).await;
    let response = match forwarded {
        Forwarded::Origin(response) => {
            shared.route_metrics[index].origin_latency(&shared.metrics, sent.elapsed().as_secs_f64());
            let mut response = response;
            if let Some(client_upgrade) = client_upgrade
                && response.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                let origin_upgrade = hyper::upgrade::on(&mut response);
                crate::tunnel::spawn(
                    client_upgrade,
                    origin_upgrade,
                    hardening.idle_timeout(),
                    Arc::clone(&conn.activity),
                    Arc::clone(&shared.metrics),
                );
                crate::tunnel::set_upgrade_headers(response.headers_mut());
            }
            let (mut parts, body) = response.into_parts();
            // The client's connection has its own version (an HTTP/1.0 origin must not make
            // hyper close a kept-alive HTTP/1.1 client).
            parts.version = Version::HTTP_11;
            Response::from_parts(parts, Either::Left(body))
        }
        Forwarded::Substitute(response) => response,
        Forwarded::Overloaded(_) => {
            let mut response = refuse(
                shared,
                Reason::OriginOverloaded,
                StatusCode::SERVICE_UNAVAILABLE,
                "origin overloaded\n",
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            response
        }
        Forwarded::Failed(_) if tripped.load(Ordering::Relaxed) => {
            // Counted by the body guard; close the connection, its body is unread.
            let mut response = answer(StatusCode::REQUEST_TIMEOUT, "request body too slow\n");
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Forwarded::Timeout => {
            refuse(shared, Reason::OriginTimeout, StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
        }
        Forwarded::Failed(error) => {
            // An untrusted certificate or a refused connection: say why, for the operator.
            crate::origin::client::report_failure(&pool.name, &server.authority, &error);
            refuse(shared, Reason::UpstreamUnavailable, StatusCode::BAD_GATEWAY, "upstream failed\n")
        }
    };
    // The origin's health is what the origin did: the shield's own 503s (admission refused,
    // queue timeout) and stale copies served instead of asking are not origin errors, and a
    // request body the client sent too slowly is the client's fault.
    if let Some(flood) = &shared.flood
        && let Some(saw) = origin_saw
        && !tripped.load(Ordering::Relaxed)
    {
        flood.observe_response(&route.name, saw.status, saw.latency, SystemTime::now());
    }
    shared.route_metrics[index].answered(&shared.metrics, response.status().as_u16());
    let mut response = response;
    if shared.access_log.is_some() {
        response.extensions_mut().insert(RouteName(route.name.clone()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    proptest::proptest! {
        /// Whatever the headers and whatever `Connection` lists: every hop-by-hop header and
        /// every listed one goes, every other stays.
        #[test]
        fn hop_by_hop_strip_keeps_exactly_the_end_to_end_headers(
            present in proptest::collection::vec(0usize..12, 0..12),
            listed in proptest::collection::vec(0usize..12, 0..4),
        ) {
            let names = [
                "connection", "keep-alive", "te", "trailer", "upgrade", "transfer-encoding",
                "proxy-connection", "proxy-authorization", "accept", "x-secret", "cookie", "host",
            ];
            let mut h = HeaderMap::new();
            for i in &present {
                if names[*i] != "connection" {
                    h.append(names[*i], HeaderValue::from_static("v"));
                }
            }
            let list: Vec<&str> = listed.iter().map(|i| names[*i]).chain(["close"]).collect();
            if present.contains(&0) || !listed.is_empty() {
                h.insert(header::CONNECTION, HeaderValue::from_str(&list.join(", ")).unwrap());
            }
            let before = h.clone();
            strip_hop_by_hop(&mut h);
            for (name, _) in &before {
                let hop = is_hop_by_hop(name)
                    || (before.contains_key(header::CONNECTION) && list.contains(&name.as_str()));
                proptest::prop_assert_eq!(h.contains_key(name), !hop, "{}", name);
            }
        }
    }

    #[test]
    fn authority_and_host_must_agree_on_http2() {
        let request = Request::builder()
            .version(Version::HTTP_2)
            .uri("https://public.example/x")
            .header(header::HOST, "internal.example")
            .body(())
            .unwrap();
        assert!(request_host(&request).is_err());
        let request =
            Request::builder().uri("/x").header(header::HOST, "Public.Example:443").body(()).unwrap();
        assert_eq!(request_host(&request), Ok(Some("public.example".into())));
        let ranges = {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,2-3,4-5"));
            h
        };
        assert_eq!(range_count(&ranges), 3);
    }
}
