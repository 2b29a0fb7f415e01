//! Counters of everything the shield refuses, by reason, and per-route request counts, in the
//! Prometheus/OpenMetrics text format (prometheus-client).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Why the shield refused or cut something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelValue)]
pub enum Reason {
    /// Too many connections open from one address.
    ConnectionsPerAddress,
    /// Too many connections open from one /24 or /64.
    ConnectionsPerPrefix,
    /// The client address or its prefix is banned.
    Banned,
    /// The TLS handshake did not finish within its deadline.
    TlsHandshakeTimeout,
    /// The TLS handshake failed.
    TlsHandshakeFailed,
    /// The request body came too slowly or took too long (slow POST).
    SlowBody,
    /// The client read the response too slowly (slow read).
    SlowRead,
    /// The connection was idle past its timeout.
    Idle,
    /// The request target was longer than allowed.
    UriTooLong,
    /// A Range header with too many ranges (the "Apache killer").
    RangeAbuse,
    /// More requests than the rate allows for the client address.
    RateAddress,
    /// More requests than the rate allows for the client's prefix.
    RatePrefix,
    /// More requests than the route's rate allows for the client address.
    RateRoute,
    /// The request head did not arrive whole within its deadline (slowloris).
    HeaderTimeout,
    /// The request head was larger than allowed, or had too many fields.
    HeadTooLarge,
    /// The request head was malformed.
    BadRequestHead,
    /// A path that could mean another path to the origin (dot segments, encoded slashes,
    /// `;` parameters), or an HTTP/2 `:authority` that disagrees with Host.
    SuspiciousPath,
    /// An HTTP/2 client cancelled more streams than its budget allows (Rapid Reset).
    ResetFlood,
    /// An HTTP/2 client sent more PINGs a second than its budget allows (CVE-2019-9512).
    PingFlood,
    /// An HTTP/2 client sent more SETTINGS a second than its budget allows (CVE-2019-9515).
    SettingsFlood,
    /// An HTTP/2 client sent more empty frames a second than its budget allows (CVE-2019-9518).
    EmptyFrameFlood,
    /// An HTTP/2 connection broke a protocol budget (resets, streams, header list) and was
    /// closed by the h2 layer.
    Http2Protocol,
    /// No route matches the host and path.
    NoRoute,
    /// A route's upstream pool has no healthy server, or the upstream failed.
    UpstreamUnavailable,
    /// A route marked internal was asked from outside the internal networks.
    InternalOnly,
    /// A PROXY protocol listener got a connection from an untrusted peer, or no valid
    /// header in time.
    ProxyProtocol,
    /// An automatic flood rule throttled, challenged or blocked the request.
    FloodRule,
    /// The origin's admission queue was full or the request waited past its deadline, and
    /// neither a stale copy nor a snapshot could answer.
    OriginOverloaded,
    /// The origin did not answer within its timeout.
    OriginTimeout,
}

/// What the challenge ladder did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ChallengeOutcome {
    /// Served the cookie-check (no JavaScript) page.
    PageCookie,
    /// Served the proof-of-work page.
    PageWork,
    /// Passed the cookie check: clearance issued.
    PassedCookie,
    /// Solved the proof of work: clearance issued.
    PassedWork,
    /// Gave up on a client that keeps no cookies.
    NoCookies,
    /// A proof for a forged, foreign or expired challenge.
    BadChallenge,
    /// A proof without the zero bits.
    BadWork,
    /// A proof for a challenge already redeemed.
    Replayed,
    /// A request with a valid clearance.
    Cleared,
    /// A good bot confirmed by reverse DNS.
    GoodBot,
    /// A bot User-Agent not (yet) confirmed by reverse DNS.
    BotUnverified,
    /// A client in the allowed networks.
    AllowedNetwork,
}

/// Label set for challenge outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: ChallengeOutcome,
}

/// Label set for rejections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: Reason,
}

/// Label set for per-route requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route's name.
    pub route: String,
    /// The response status class: 2xx, 3xx, 4xx, 5xx.
    pub class: String,
}

/// Label set for per-route latency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteOnly {
    /// The route's name.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Label set for upstream server health.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServerLabel {
    /// The pool's name.
    pub upstream: String,
    /// The server's address.
    pub server: String,
}

/// Label set for per-upstream origin protection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamLabel {
    /// The pool's name.
    pub upstream: String,
}

/// Label set for answers the shield gave in place of the origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SubstituteLabel {
    /// The pool's name.
    pub upstream: String,
    /// `stale` (a cached copy) or `snapshot` (the static snapshot).
    pub kind: String,
    /// Why: `overloaded`, `origin-error`, `origin-down`, `operator`.
    pub reason: String,
}

/// The shield's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Rejections by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Requests answered per route and status class.
    pub requests: Family<RouteLabel, Counter>,
    /// Connections accepted.
    pub accepted: Counter,
    /// Connections open now.
    pub open: Gauge,
    /// 1 when an upstream server passes its health check.
    pub healthy: Family<ServerLabel, Gauge>,
    /// Seconds from the request head to the origin's response head, per route.
    pub latency: Family<RouteOnly, Histogram, fn() -> Histogram>,
    /// Automatic flood rules in force.
    pub flood_rules_active: Gauge,
    /// Requests matched by an automatic flood rule, by rung.
    pub flood_matched: Family<RungLabel, Counter>,
    /// Floods for which no rule was safe (or measurable).
    pub flood_no_safe_rule: Counter,
    /// The adaptive concurrency limit of each upstream.
    pub origin_limit: Family<UpstreamLabel, Gauge>,
    /// Requests waiting in each upstream's admission queue.
    pub origin_queued: Family<UpstreamLabel, Gauge>,
    /// Answers the shield gave in place of the origin (stale copies, snapshot files).
    pub substituted: Family<SubstituteLabel, Counter>,
    /// Challenge ladder outcomes.
    pub challenges: Family<OutcomeLabel, Counter>,
    /// Access log lines dropped because the writer fell behind (its queue was full).
    pub access_log_dropped: Counter,
}

/// One route's request counters (by status class) and latency histogram, looked up once each
/// instead of on every request (a label lookup hashes and clones the route's name). Lazily, so
/// a series still appears only once it has something to count.
#[derive(Debug)]
pub struct RouteMetrics {
    route: String,
    /// 1xx to 5xx.
    requests: [std::sync::OnceLock<Counter>; 5],
    latency: std::sync::OnceLock<Histogram>,
}

impl RouteMetrics {
    /// The handles of `route`, none resolved yet.
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics { route: route.to_owned(), requests: Default::default(), latency: Default::default() }
    }

    /// Count one answer with `status`.
    pub fn answered(&self, metrics: &Metrics, status: u16) {
        let class = status / 100;
        let label = || RouteLabel { route: self.route.clone(), class: format!("{class}xx") };
        match self.requests.get(usize::from(class).wrapping_sub(1)) {
            Some(cell) => cell.get_or_init(|| metrics.requests.get_or_create(&label()).clone()).inc(),
            None => metrics.requests.get_or_create(&label()).inc(),
        };
    }

    /// Observe one origin latency.
    pub fn origin_latency(&self, metrics: &Metrics, seconds: f64) {
        self.latency
            .get_or_init(|| metrics.latency.get_or_create(&RouteOnly { route: self.route.clone() }).clone())
            .observe(seconds);
    }
}

/// Label set for flood rule rungs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RungLabel {
    /// `rate_limit`, `challenge` or `block`.
    pub rung: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            rejected: Family::default(),
            requests: Family::default(),
            accepted: Counter::default(),
            open: Gauge::default(),
            healthy: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            flood_rules_active: Gauge::default(),
            flood_matched: Family::default(),
            flood_no_safe_rule: Counter::default(),
            origin_limit: Family::default(),
            origin_queued: Family::default(),
            substituted: Family::default(),
            challenges: Family::default(),
            access_log_dropped: Counter::default(),
        }
    }
}

impl Metrics {
    /// Count one rejection.
    pub fn reject(&self, reason: Reason) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Rejections counted so far for `reason`.
    pub fn rejections(&self, reason: Reason) -> u64 {
        self.rejected.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Count one request matched by a flood rule at `rung`.
    pub fn flood_matched(&self, rung: &str) {
        self.flood_matched.get_or_create(&RungLabel { rung: rung.to_owned() }).inc();
    }

    /// Count one challenge outcome.
    pub fn challenge(&self, outcome: ChallengeOutcome) {
        self.challenges.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Challenge outcomes counted so far.
    pub fn challenge_count(&self, outcome: ChallengeOutcome) -> u64 {
        self.challenges.get_or_create(&OutcomeLabel { outcome }).get()
    }

    /// Register every metric under the `rampart_shield` prefix.
    pub fn registry(self: &std::sync::Arc<Self>) -> Registry {
        let mut registry = Registry::with_prefix("rampart_shield");
        registry.register("rejected", "Requests and connections refused, by reason", self.rejected.clone());
        registry.register("requests", "Requests answered, by route and status class", self.requests.clone());
        registry.register("accepted", "Connections accepted", self.accepted.clone());
        registry.register("open_connections", "Connections open now", self.open.clone());
        registry.register(
            "upstream_healthy",
            "1 when the upstream server passes its health check",
            self.healthy.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Seconds from the request head to the origin's response head, by route",
            self.latency.clone(),
        );
        registry.register(
            "flood_rules_active",
            "Automatic flood rules in force",
            self.flood_rules_active.clone(),
        );
        registry.register(
            "flood_matched",
            "Requests matched by an automatic flood rule, by rung",
            self.flood_matched.clone(),
        );
        registry.register(
            "flood_no_safe_rule",
            "Floods for which no rule was safe or measurable",
            self.flood_no_safe_rule.clone(),
        );
        registry.register(
            "origin_concurrency_limit",
            "The adaptive concurrency limit of each upstream",
            self.origin_limit.clone(),
        );
        registry.register(
            "origin_queued",
            "Requests waiting in each upstream's admission queue",
            self.origin_queued.clone(),
        );
        registry.register(
            "substituted",
            "Answers given in place of the origin (stale copies, snapshot files), by upstream, kind and reason",
            self.substituted.clone(),
        );
        registry.register("challenges", "Challenge ladder outcomes", self.challenges.clone());
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            self.access_log_dropped.clone(),
        );
        registry
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(self: &std::sync::Arc<Self>) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry());
        text
    }
}
