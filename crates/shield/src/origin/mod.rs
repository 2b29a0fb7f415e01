//! Protecting the origin (issue 12 §4): an adaptive concurrency limit per upstream with an
//! admission queue that serves clients holding a clearance or a session first, stale copies of
//! cacheable GET answers when the origin is overloaded, failing or down, an optional static
//! snapshot, and the shield-wide threat level that tightens all of it.
//!
//! The proxy calls [`Protection::context`] once it knows the route, then
//! [`Protection::forward`] instead of sending to the origin itself.

pub mod body;
pub mod cache;
pub mod client;
pub mod guard;
pub mod limit;
pub mod pool;
pub mod queue;
pub mod snapshot;
pub mod threat;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::body::GuardedBody;
use crate::defense::Challenger;
use crate::metrics::{Metrics, SubstituteLabel, UpstreamLabel};
use crate::proxy::{ProxyBody, strip_hop_by_hop};

pub use body::OriginBody;
pub use cache::{CacheSettings, StaleReason};
pub use client::OriginClient;
pub use guard::{OriginGuard, Permit, Refusal};
pub use limit::LimitSettings;
pub use queue::Priority;
pub use threat::{Threat, ThreatLevel};

/// The protection of one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginSettings {
    /// The adaptive concurrency limit.
    pub limit: LimitSettings,
    /// Requests that may wait beyond the limit.
    pub queue_size: usize,
    /// How long a request may wait for its turn (at threat level normal).
    pub queue_timeout: Duration,
    /// How long the origin may take to answer (its head).
    pub timeout: Duration,
    /// Cookies that mark an established session (served before anonymous clients).
    pub session_cookies: Vec<String>,
    /// The stale cache; `None` keeps no copies.
    pub cache: Option<CacheSettings>,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            limit: LimitSettings::default(),
            queue_size: 1024,
            queue_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            session_cookies: Vec::new(),
            cache: Some(CacheSettings::default()),
        }
    }
}

/// The emergency static snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// The directory of files, by path.
    pub dir: PathBuf,
    /// Serve it for every GET it has a file for, origin or not (the operator's switch).
    pub always: bool,
    /// Serve it for every GET from this threat level on.
    pub at_level: Option<ThreatLevel>,
}

/// The shield-wide settings of origin protection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtectionSettings {
    /// The configured threat level.
    pub threat_level: ThreatLevel,
    /// A file (in the data directory) whose word raises it: `normal`, `elevated`, `high`.
    pub threat_file: Option<PathBuf>,
    /// The static snapshot, if any.
    pub snapshot: Option<SnapshotSettings>,
}

#[derive(Debug)]
struct Protected {
    name: String,
    /// `origin_limit` and `origin_queued` of this upstream (handles, so that setting them
    /// costs no label lookup).
    gauges: (prometheus_client::metrics::gauge::Gauge, prometheus_client::metrics::gauge::Gauge),
    settings: OriginSettings,
    guard: Arc<OriginGuard>,
    cache: Option<Arc<Mutex<cache::StaleCache>>>,
}

/// Origin protection for every upstream.
#[derive(Debug)]
pub struct Protection {
    upstreams: Vec<Protected>,
    threat: Arc<Threat>,
    snapshot: Option<(Arc<snapshot::Snapshot>, SnapshotSettings)>,
    epoch: Instant,
    metrics: Arc<Metrics>,
}

/// What [`Protection::forward`] needs to know about a request, taken before it is rewritten
/// for the origin.
#[derive(Debug)]
pub struct RequestContext {
    upstream: usize,
    priority: Priority,
    /// The cache key, when the request may be answered from the cache.
    key: Option<String>,
    head: bool,
    /// The request headers, for Vary and storability (only when `key` is set).
    headers: HeaderMap,
    path: String,
    internal: bool,
    /// The request has a body: its latency includes the client's upload, so it does not
    /// teach the limit (slow uploads must not shrink the origin's limit).
    has_body: bool,
}

/// What the origin itself did with a request, for its health (the flood defense's error and
/// latency baselines): its status (502 when the request failed, 504 when it timed out) and
/// the time from asking it to its answer's head, the queue wait left out. The shield's own
/// answers (admission refusals, queue timeouts, stale copies or snapshots served instead of
/// asking) are not the origin's: they have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginSaw {
    /// The origin's status, or 502 / 504 for a failure / timeout.
    pub status: u16,
    /// How long the origin took.
    pub latency: Duration,
}

/// The outcome of sending a request through the protection.
#[derive(Debug)]
pub enum Forwarded {
    /// The origin's answer, hop-by-hop headers removed, streaming.
    Origin(Response<OriginBody>),
    /// The shield answered in its place (a stale copy, a snapshot file).
    Substitute(Response<ProxyBody>),
    /// The origin was not asked: its queue was full or the wait too long.
    Overloaded(Refusal),
    /// The origin did not answer within its timeout.
    Timeout,
    /// The request could not be sent or the origin's answer failed.
    Failed(pool::OriginError),
}

fn has_cookie(headers: &HeaderMap, names: &[String]) -> bool {
    if names.is_empty() {
        return false;
    }
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).any(
        |pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
            names.iter().any(|n| n == name)
        },
    )
}

impl Protection {
    /// Protection for `upstreams` (name and settings, in configuration order).
    pub fn new(
        upstreams: &[(String, OriginSettings)],
        settings: &ProtectionSettings,
        threat: Arc<Threat>,
        metrics: Arc<Metrics>,
    ) -> Protection {
        let upstreams = upstreams
            .iter()
            .map(|(name, s)| Protected {
                name: name.clone(),
                gauges: {
                    let label = UpstreamLabel { upstream: name.clone() };
                    (
                        metrics.origin_limit.get_or_create(&label).clone(),
                        metrics.origin_queued.get_or_create(&label).clone(),
                    )
                },
                guard: OriginGuard::new(s.limit, s.queue_size),
                cache: s.cache.map(|c| Arc::new(Mutex::new(cache::StaleCache::new(c)))),
                settings: s.clone(),
            })
            .collect();
        let snapshot =
            settings.snapshot.as_ref().map(|s| (Arc::new(snapshot::Snapshot::new(s.dir.clone())), s.clone()));
        Protection { upstreams, threat, snapshot, epoch: Instant::now(), metrics }
    }

    /// The threat level in force.
    pub fn threat_level(&self) -> ThreatLevel {
        self.threat.level()
    }

    /// The pressure the challenge ladder should apply, 0 to 1, from the threat level.
    pub fn pressure(&self) -> f64 {
        self.threat.tightening().pressure
    }

    /// The threat level's state (to poll its file).
    pub fn threat(&self) -> &Arc<Threat> {
        &self.threat
    }

    /// The guard of upstream `index` (limit and queue), for tests and metrics.
    pub fn guard(&self, index: usize) -> Option<&Arc<OriginGuard>> {
        self.upstreams.get(index).map(|p| &p.guard)
    }

    /// What to remember of a request (its head `request`; `has_body`: a body follows) for
    /// upstream `upstream`: its class (clearance, session, anonymous) and its cache key.
    /// `internal`: the route is internal (never a snapshot).
    #[allow(clippy::too_many_arguments)]
    pub fn context(
        &self,
        upstream: usize,
        request: &http::request::Parts,
        has_body: bool,
        host: Option<&str>,
        client: IpAddr,
        challenger: Option<&dyn Challenger>,
        internal: bool,
    ) -> RequestContext {
        let headers = &request.headers;
        let names = self.upstreams.get(upstream).map_or(&[][..], |p| &p.settings.session_cookies[..]);
        let cleared = || challenger.is_some_and(|c| c.is_cleared(request, client, SystemTime::now()));
        let priority = if has_cookie(headers, names) {
            // A session outranks a clearance only when it is there: check the cheap one first.
            if cleared() { Priority::Cleared } else { Priority::Session }
        } else if cleared() {
            Priority::Cleared
        } else {
            Priority::Anonymous
        };
        let cacheable = cache::request_is_cacheable(&request.method, headers);
        let path_and_query = request.uri.path_and_query().map_or("/", |p| p.as_str());
        RequestContext {
            upstream,
            priority,
            key: cacheable.then(|| cache::key(host, path_and_query)),
            head: request.method == Method::HEAD,
            headers: if cacheable { headers.clone() } else { HeaderMap::new() },
            path: request.uri.path().to_owned(),
            internal,
            has_body,
        }
    }

    fn snapshot_forced(&self) -> bool {
        self.snapshot
            .as_ref()
            .is_some_and(|(_, s)| s.always || s.at_level.is_some_and(|level| self.threat.level() >= level))
    }

    /// Send `request` to the origin through the limit and queue, answering for the origin
    /// when it is overloaded or failing (stale copy, then snapshot) and keeping a copy of a
    /// cacheable answer as it streams.
    pub async fn forward(
        &self,
        client: &OriginClient,
        context: &RequestContext,
        request: Request<GuardedBody>,
    ) -> (Forwarded, Option<OriginSaw>) {
        let Some(protected) = self.upstreams.get(context.upstream) else {
            return (Forwarded::Overloaded(Refusal::QueueFull), None);
        };
        if self.snapshot_forced()
            && let Some(answer) = self.snapshot_file(context, "operator").await
        {
            return (Forwarded::Substitute(answer), None);
        }
        let tightening = self.threat.tightening();
        protected.guard.tighten(tightening.concurrency);
        if tightening.stale_instead_of_queue
            && protected.guard.would_wait()
            && let Some(answer) = self.stale_copy(protected, context, StaleReason::Overloaded)
        {
            return (Forwarded::Substitute(answer), None);
        }
        let deadline = protected.settings.queue_timeout.mul_f64(tightening.queue_deadline);
        let acquired = protected.guard.acquire(context.priority, deadline).await;
        let (limit, _, queued) = protected.guard.load();
        protected.gauges.0.set(i64::from(limit));
        protected.gauges.1.set(queued as i64);
        let mut permit = match acquired {
            Ok(permit) => permit,
            Err(refusal) => {
                let forwarded = match self.fallback(protected, context, StaleReason::Overloaded).await {
                    Some(answer) => Forwarded::Substitute(answer),
                    None => Forwarded::Overloaded(refusal),
                };
                return (forwarded, None);
            }
        };
        if !context.has_body {
            permit.sent();
        }
        let asked = Instant::now();
        let sent = tokio::time::timeout(protected.settings.timeout, client.request(request)).await;
        let saw = |status: u16| Some(OriginSaw { status, latency: asked.elapsed() });
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                // Only a failure to connect says the origin is in trouble; a request that
                // broke later may have been broken by its client.
                permit.answered(error.is_connect());
                drop(permit);
                let saw = saw(502);
                let forwarded = match self.fallback(protected, context, StaleReason::Failing).await {
                    Some(answer) => Forwarded::Substitute(answer),
                    None => Forwarded::Failed(error),
                };
                return (forwarded, saw);
            }
            Err(_) => {
                permit.answered(true);
                drop(permit);
                let saw = saw(504);
                let forwarded = match self.fallback(protected, context, StaleReason::Failing).await {
                    Some(answer) => Forwarded::Substitute(answer),
                    None => Forwarded::Timeout,
                };
                return (forwarded, saw);
            }
        };
        let status = response.status();
        let saw = saw(status.as_u16());
        // Only the answers that say "too much" teach the limit to back off; a 500 from a bug
        // on one page does not.
        permit.answered(matches!(status.as_u16(), 502..=504));
        // The origin's place is given back with the answer's head, not its body's end: a
        // client reading slowly must not hold the origin's slots (the slow-read guard cuts it
        // meanwhile), as a body streamed from the origin's buffers costs the origin little.
        drop(permit);
        if status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && let Some(answer) = self.fallback(protected, context, StaleReason::Failing).await
        {
            return (Forwarded::Substitute(answer), saw);
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let tee = match (&protected.cache, &context.key) {
            (Some(cache), Some(key))
                if !context.head
                    && cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .wants_copy(key, self.epoch.elapsed()) =>
            {
                cache::storable(&context.headers, parts.status, &parts.headers).and_then(|policy| {
                    let max = protected.settings.cache.map_or(0, |c| c.max_entry_bytes);
                    // Known too big from its length: do not even start the copy.
                    let length = parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<usize>().ok());
                    if length.is_some_and(|l| l > max) {
                        return None;
                    }
                    Some(body::Tee {
                        cache: Arc::clone(cache),
                        epoch: self.epoch,
                        key: key.clone(),
                        stored: cache::Stored {
                            status: parts.status,
                            headers: parts.headers.clone(),
                            body: Bytes::new(),
                            policy,
                        },
                        body: BytesMut::with_capacity(length.unwrap_or(0)),
                        max,
                    })
                })
            }
            _ => None,
        };
        (Forwarded::Origin(Response::from_parts(parts, OriginBody::new(body, tee))), saw)
    }

    /// An answer in the origin's place: a stale copy, else a snapshot file.
    async fn fallback(
        &self,
        protected: &Protected,
        context: &RequestContext,
        reason: StaleReason,
    ) -> Option<Response<ProxyBody>> {
        if let Some(answer) = self.stale_copy(protected, context, reason) {
            return Some(answer);
        }
        self.snapshot_file(context, reason.as_str()).await
    }

    /// The answer to a request whose upstream has no healthy server, if the shield has one.
    pub async fn unavailable(&self, context: &RequestContext) -> Option<Response<ProxyBody>> {
        let protected = self.upstreams.get(context.upstream)?;
        self.fallback(protected, context, StaleReason::Unhealthy).await
    }

    fn stale_copy(
        &self,
        protected: &Protected,
        context: &RequestContext,
        reason: StaleReason,
    ) -> Option<Response<ProxyBody>> {
        let (cache, key) = (protected.cache.as_ref()?, context.key.as_ref()?);
        let now = self.epoch.elapsed();
        let hit = cache.lock().unwrap_or_else(|p| p.into_inner()).stale(
            key,
            &context.headers,
            now,
            Duration::MAX,
        )?;
        let mut response = Response::new(Either::Right(Full::new(if context.head {
            Bytes::new()
        } else {
            hit.stored.body.clone()
        })));
        *response.status_mut() = hit.stored.status;
        *response.headers_mut() = hit.stored.headers;
        let headers = response.headers_mut();
        headers.insert(header::AGE, HeaderValue::from(hit.age));
        headers.insert(header::WARNING, HeaderValue::from_static("110 - \"Response is Stale\""));
        headers.insert("x-rampart-stale", HeaderValue::from_static(reason.as_str()));
        self.count(protected, "stale", reason.as_str());
        Some(response)
    }

    async fn snapshot_file(
        &self,
        context: &RequestContext,
        reason: &'static str,
    ) -> Option<Response<ProxyBody>> {
        let (snapshot, _) = self.snapshot.as_ref()?;
        // Only public GET and HEAD: an internal route's answer never comes from the snapshot.
        if context.internal || context.key.is_none() {
            return None;
        }
        let snapshot = Arc::clone(snapshot);
        let path = context.path.clone();
        let file = tokio::task::spawn_blocking(move || snapshot.find(&path)).await.ok()??;
        let body = if context.head { Bytes::new() } else { file.body };
        let mut response = Response::new(Either::Right(Full::new(body)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-rampart-snapshot", HeaderValue::from_static(reason));
        if let Some(protected) = self.upstreams.get(context.upstream) {
            self.count(protected, "snapshot", reason);
        }
        Some(response)
    }

    fn count(&self, protected: &Protected, kind: &str, reason: &str) {
        let label = SubstituteLabel {
            upstream: protected.name.clone(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        };
        self.metrics.substituted.get_or_create(&label).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A challenger that clears requests carrying `x-cleared: yes` (the real ladder checks a
    /// signed cookie; only the answer matters here).
    #[derive(Debug)]
    struct HeaderChallenger;

    impl Challenger for HeaderChallenger {
        fn is_cleared(&self, request: &http::request::Parts, _: IpAddr, _: SystemTime) -> bool {
            request.headers.get("x-cleared").is_some_and(|v| v == "yes")
        }

        fn challenge(&self, _: &http::request::Parts, _: IpAddr, _: SystemTime) -> Response<Full<Bytes>> {
            Response::new(Full::new(Bytes::new()))
        }
    }

    #[test]
    fn classes_from_clearance_and_session_and_the_cache_key() {
        let settings =
            OriginSettings { session_cookies: vec!["sessionid".into()], ..OriginSettings::default() };
        let protection = Protection::new(
            &[("web".into(), settings)],
            &ProtectionSettings::default(),
            Arc::new(Threat::new(ThreatLevel::Normal, None)),
            Arc::new(Metrics::default()),
        );
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let challenger = HeaderChallenger;
        let request = |headers: &[(&str, &str)], method: Method| {
            let mut builder = Request::builder().method(method).uri("/a?b=1");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).unwrap().into_parts().0
        };
        let class = |r: &http::request::Parts, c: Option<&dyn Challenger>| {
            protection.context(0, r, false, Some("www.example"), client, c, false).priority
        };
        let anonymous = request(&[], Method::GET);
        assert_eq!(class(&anonymous, Some(&challenger)), Priority::Anonymous);
        let session = request(&[("cookie", "sessionid=1")], Method::GET);
        assert_eq!(class(&session, Some(&challenger)), Priority::Session);
        let cleared = request(&[("x-cleared", "yes")], Method::GET);
        assert_eq!(class(&cleared, Some(&challenger)), Priority::Cleared);
        assert_eq!(class(&cleared, None), Priority::Anonymous);
        let both = request(&[("x-cleared", "yes"), ("cookie", "sessionid=1")], Method::GET);
        assert_eq!(class(&both, Some(&challenger)), Priority::Cleared);
        let context = protection.context(0, &anonymous, false, Some("www.example"), client, None, false);
        assert_eq!(context.key.as_deref(), Some("www.example\u{0}/a?b=1"));
        let post = request(&[], Method::POST);
        assert!(protection.context(0, &post, false, None, client, None, false).key.is_none());
    }

    #[test]
    fn session_cookies_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; sessionid=abc"));
        assert!(has_cookie(&headers, &["sessionid".into()]));
        assert!(!has_cookie(&headers, &["session".into()]));
        assert!(!has_cookie(&headers, &[]));
        assert!(!has_cookie(&HeaderMap::new(), &["sessionid".into()]));
    }
}
