//! The four floods of issue 12 §5, each bounded by a deadline and a request cap. Attackers keep
//! no cookies and follow no challenge; each worker holds one keep-alive connection at a time,
//! bound to the next of its source addresses, and paces its requests so the flood's total rate
//! is the plan's (a worker waiting on a slow answer sends nothing meanwhile: the flood's
//! concurrency is its worker count).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::HarnessError;
use crate::browser::build_request;
use crate::challenge::meta_refresh;
use crate::client::{Answer, Connection};
use crate::report::{FloodOutcome, FloodSecond};
use crate::sources::{distributed_address, population_address};

/// The floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FloodKind {
    /// GETs of the home page with random query strings, one bot User-Agent, from 127.66.0.0/24.
    GetFlood,
    /// GETs from many /24s of 127.128.0.0/9 with varied browser User-Agents but one header
    /// order and set, none of them a browser's.
    Distributed,
    /// POST /login with random credentials from 127.67.0.0/16.
    LoginFlood,
    /// Cache-busting GETs of the expensive `/search` from 127.68.0.0/16 (run it with a slow
    /// origin).
    CacheBusting,
}

impl FloodKind {
    /// Every flood.
    pub const ALL: [FloodKind; 4] =
        [FloodKind::GetFlood, FloodKind::Distributed, FloodKind::LoginFlood, FloodKind::CacheBusting];

    /// Its name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FloodKind::GetFlood => "get_flood",
            FloodKind::Distributed => "distributed",
            FloodKind::LoginFlood => "login_flood",
            FloodKind::CacheBusting => "cache_busting",
        }
    }

    /// The flood named `name`.
    pub fn from_name(name: &str) -> Option<FloodKind> {
        FloodKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `index`th source address of this flood.
    pub fn source(self, index: u32) -> IpAddr {
        match self {
            FloodKind::GetFlood => IpAddr::V4(Ipv4Addr::new(127, 66, 0, (index % 254 + 1) as u8)),
            // Four bots a /24, so a per-/24 limit sees four times a per-address one.
            FloodKind::Distributed => distributed_address(index / 4, index % 4),
            FloodKind::LoginFlood => IpAddr::V4(population_address(67, index)),
            FloodKind::CacheBusting => IpAddr::V4(population_address(68, index)),
        }
    }

    /// Default concurrent workers: the cache-busting flood holds twice the origin's default
    /// concurrency limit (64) in flight when nothing stops it.
    pub fn default_workers(self) -> u32 {
        match self {
            FloodKind::CacheBusting => 128,
            _ => 64,
        }
    }

    /// Default source count: a few heavy bots for the GET flood, thousands of light ones for
    /// the distributed flood.
    pub fn default_sources(self) -> u32 {
        match self {
            FloodKind::GetFlood => 16,
            FloodKind::Distributed => 2048,
            FloodKind::LoginFlood => 64,
            FloodKind::CacheBusting => 32,
        }
    }
}

/// A flood: what, how fast, how long, from how many sources.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    /// Which flood.
    pub kind: FloodKind,
    /// Total requests per second it aims at.
    pub rate: u32,
    /// How long it lasts.
    pub duration: Duration,
    /// Concurrent workers (connections).
    pub workers: u32,
    /// Distinct source addresses.
    pub sources: u32,
    /// Requests a connection carries before the worker moves to its next source.
    pub requests_per_connection: u32,
    /// Most requests in all (a bound besides the deadline).
    pub max_requests: u64,
    /// Per request.
    pub request_timeout: Duration,
    /// Seed of the random parts.
    pub seed: u64,
}

impl FloodPlan {
    /// A plan with the defaults for `kind`.
    pub fn new(kind: FloodKind, rate: u32, duration: Duration) -> FloodPlan {
        FloodPlan {
            kind,
            rate,
            duration,
            workers: kind.default_workers(),
            sources: kind.default_sources(),
            requests_per_connection: 20,
            max_requests: u64::from(rate).saturating_mul(duration.as_secs() + 1),
            request_timeout: Duration::from_secs(5),
            seed: 1,
        }
    }

    fn check(&self) -> Result<(), HarnessError> {
        if self.rate == 0 || self.workers == 0 || self.sources == 0 || self.requests_per_connection == 0 {
            return Err(HarnessError::Plan(
                "rate, workers, sources and requests per connection must be positive".into(),
            ));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(600) {
            return Err(HarnessError::Plan("a flood lasts between 1 ms and 600 s".into()));
        }
        Ok(())
    }
}

const BROWSER_UAS: [&str; 10] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/115.0.0.0",
];

const HEADLESS_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36";

fn random_token(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// One flood request: method, target, ordered headers, body.
pub fn flood_request(
    kind: FloodKind,
    host: &str,
    rng: &mut ChaCha8Rng,
) -> (Method, String, Vec<(&'static str, String)>, Bytes) {
    let h =
        |pairs: &[(&'static str, &str)]| pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect::<Vec<_>>();
    match kind {
        FloodKind::GetFlood => {
            let key_len = rng.gen_range(1..=6);
            let target = format!("/?{}={}", random_token(rng, key_len), random_token(rng, 12));
            // python-requests' headers, in its order.
            let headers = h(&[
                ("host", host),
                ("user-agent", "python-requests/2.32.3"),
                ("accept-encoding", "gzip, deflate"),
                ("accept", "*/*"),
                ("connection", "keep-alive"),
            ]);
            (Method::GET, target, headers, Bytes::new())
        }
        FloodKind::Distributed => {
            let target = if rng.gen_bool(0.5) {
                "/".to_owned()
            } else {
                format!("/article/{}", rng.gen_range(1..=200u32))
            };
            let ua = BROWSER_UAS[rng.gen_range(0..BROWSER_UAS.len())];
            // One order and set for every "browser" (a bot framework's, Go's net/http style).
            let headers = h(&[
                ("host", host),
                ("user-agent", ua),
                ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ("accept-language", "en-US,en;q=0.9"),
                ("accept-encoding", "gzip"),
            ]);
            (Method::GET, target, headers, Bytes::new())
        }
        FloodKind::LoginFlood => {
            let body = format!("user={}&password={}", random_token(rng, 8), random_token(rng, 14));
            let headers = vec![
                ("host", host.to_owned()),
                ("user-agent", BROWSER_UAS[0].to_owned()),
                ("content-type", "application/x-www-form-urlencoded".to_owned()),
                ("content-length", body.len().to_string()),
                ("accept", "*/*".to_owned()),
            ];
            (Method::POST, "/login".to_owned(), headers, Bytes::from(body))
        }
        FloodKind::CacheBusting => {
            let target = format!("/search?q={}&_={}", random_token(rng, 6), rng.r#gen::<u64>());
            let headers = h(&[
                ("host", host),
                ("connection", "keep-alive"),
                ("upgrade-insecure-requests", "1"),
                ("user-agent", HEADLESS_UA),
                (
                    "accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
                ),
                ("accept-encoding", "gzip, deflate"),
                ("accept-language", "en-US"),
            ]);
            (Method::GET, target, headers, Bytes::new())
        }
    }
}

/// How the proxy's (or origin's) answer to a flood request counts.
pub fn classify(answer: &Answer, path: &str) -> FloodOutcome {
    if answer.from_origin() {
        return FloodOutcome::Origin;
    }
    // A redirect, a meta refresh, or a page of the proxy's own instead of the site.
    let challenge = (answer.status.is_redirection() && answer.headers.contains_key(http::header::LOCATION))
        || answer.status.is_success()
        || meta_refresh(&String::from_utf8_lossy(&answer.body), path).is_some();
    match answer.status.as_u16() {
        _ if challenge => FloodOutcome::Challenged,
        403 => FloodOutcome::Blocked,
        429 => FloodOutcome::Throttled,
        _ => FloodOutcome::Refused,
    }
}

/// Runs the flood against `target` from `start` and returns its outcomes per second since
/// `start`. Ends by itself at `start + duration` (answers awaited at most `request_timeout`
/// longer) or at the request cap.
pub async fn run_flood(
    plan: &FloodPlan,
    target: SocketAddr,
    host: &str,
    start: Instant,
) -> Result<Vec<FloodSecond>, HarnessError> {
    plan.check()?;
    crate::sources::ensure_loopback(target)?;
    let seconds = plan.duration.as_secs_f64().ceil() as usize;
    let deadline = start + plan.duration;
    let interval = Duration::from_secs_f64(f64::from(plan.workers) / f64::from(plan.rate));
    let per_worker_cap = plan.max_requests.div_ceil(u64::from(plan.workers));
    let mut tasks = Vec::new();
    for worker in 0..plan.workers {
        let plan = plan.clone();
        let host = host.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut series = vec![FloodSecond::default(); seconds.max(1)];
            let mut rng = ChaCha8Rng::seed_from_u64(
                plan.seed.wrapping_mul(0x9e37_79b9).wrapping_add(u64::from(worker)),
            );
            let mut source_turn = 0u32;
            let mut connection: Option<Connection> = None;
            let mut on_connection = 0;
            // Workers start spread over one interval.
            let mut next = start + interval.mul_f64(f64::from(worker) / f64::from(plan.workers));
            let mut sent = 0u64;
            while sent < per_worker_cap {
                if next >= deadline {
                    break;
                }
                tokio::time::sleep_until(next.into()).await;
                let now = Instant::now();
                // Behind by more than a second (answers were slow): skip, never burst.
                next = if now > next + Duration::from_secs(1) { now + interval } else { next + interval };
                sent += 1;
                let second =
                    ((now.saturating_duration_since(start)).as_secs() as usize).min(series.len() - 1);
                if on_connection >= plan.requests_per_connection
                    || !connection.as_ref().is_some_and(Connection::is_open)
                {
                    let source = plan.kind.source((worker + source_turn * plan.workers) % plan.sources);
                    source_turn = source_turn.wrapping_add(1);
                    on_connection = 0;
                    connection = match Connection::open(source, target, plan.request_timeout).await {
                        Ok(c) => Some(c),
                        Err(HarnessError::Timeout) => {
                            series[second].add(FloodOutcome::TimedOut);
                            continue;
                        }
                        Err(_) => {
                            series[second].add(FloodOutcome::Dropped);
                            continue;
                        }
                    };
                }
                let Some(open) = connection.as_mut() else { continue };
                on_connection += 1;
                let (method, path, headers, body) = flood_request(plan.kind, &host, &mut rng);
                let Ok(request) = build_request(method, &path, &headers, body) else { continue };
                let outcome = match open.send(request, plan.request_timeout).await {
                    Ok(answer) => classify(&answer, &path),
                    Err(HarnessError::Timeout) => {
                        connection = None;
                        FloodOutcome::TimedOut
                    }
                    Err(_) => {
                        connection = None;
                        FloodOutcome::Dropped
                    }
                };
                series[second].add(outcome);
            }
            series
        }));
    }
    let mut total = vec![FloodSecond::default(); seconds.max(1)];
    for task in tasks {
        if let Ok(series) = task.await {
            for (sum, part) in total.iter_mut().zip(&series) {
                sum.merge(part);
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_their_populations() {
        for kind in FloodKind::ALL {
            for index in [0, 1, 3, 4, 253, 254, 2047, 100_000] {
                let IpAddr::V4(a) = kind.source(index) else { unreachable!() };
                assert_eq!(a.octets()[0], 127);
                let second = a.octets()[1];
                match kind {
                    FloodKind::GetFlood => assert_eq!(second, 66),
                    FloodKind::Distributed => assert!(second >= 128),
                    FloodKind::LoginFlood => assert_eq!(second, 67),
                    FloodKind::CacheBusting => assert_eq!(second, 68),
                }
            }
        }
        // The distributed flood spreads over /24s, four bots each.
        let prefixes: std::collections::HashSet<_> = (0..2048)
            .map(|i| match FloodKind::Distributed.source(i) {
                IpAddr::V4(a) => (a.octets()[1], a.octets()[2]),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        assert_eq!(prefixes.len(), 512);
        assert_eq!(FloodKind::from_name("login_flood"), Some(FloodKind::LoginFlood));
    }

    #[test]
    fn requests_are_what_the_floods_say() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (method, target, headers, _) = flood_request(FloodKind::GetFlood, "h", &mut rng);
        assert_eq!(method, Method::GET);
        assert!(target.starts_with("/?"));
        assert_eq!(headers[1].1, "python-requests/2.32.3");
        let mut uas = std::collections::HashSet::new();
        let mut orders = std::collections::HashSet::new();
        for _ in 0..100 {
            let (_, _, headers, _) = flood_request(FloodKind::Distributed, "h", &mut rng);
            uas.insert(headers[1].1.clone());
            orders.insert(headers.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        }
        assert!(uas.len() > 5);
        assert_eq!(orders.len(), 1);
        let (method, target, headers, body) = flood_request(FloodKind::LoginFlood, "h", &mut rng);
        assert_eq!((method, target.as_str()), (Method::POST, "/login"));
        assert!(headers.contains(&("content-length", body.len().to_string())));
        let (_, a, _, _) = flood_request(FloodKind::CacheBusting, "h", &mut rng);
        let (_, b, _, _) = flood_request(FloodKind::CacheBusting, "h", &mut rng);
        assert!(a.starts_with("/search?q=") && a != b);
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn classifies_answers() {
        assert_eq!(
            classify(&answer(200, &[(crate::origin::ORIGIN_MARKER, "1")], ""), "/"),
            FloodOutcome::Origin
        );
        // An origin's own error is still the origin's answer.
        assert_eq!(
            classify(&answer(404, &[(crate::origin::ORIGIN_MARKER, "1")], ""), "/"),
            FloodOutcome::Origin
        );
        assert_eq!(classify(&answer(403, &[], "no"), "/"), FloodOutcome::Blocked);
        assert_eq!(classify(&answer(429, &[("retry-after", "1")], ""), "/"), FloodOutcome::Throttled);
        assert_eq!(classify(&answer(503, &[], "busy"), "/"), FloodOutcome::Refused);
        assert_eq!(classify(&answer(200, &[], "<script>prove()</script>"), "/"), FloodOutcome::Challenged);
        assert_eq!(classify(&answer(303, &[("location", "/check")], ""), "/"), FloodOutcome::Challenged);
        let page = r#"<meta http-equiv="refresh" content="0; url=/.check">"#;
        assert_eq!(classify(&answer(403, &[], page), "/"), FloodOutcome::Challenged);
        assert_eq!(classify(&answer(200, &[], page), "/"), FloodOutcome::Challenged);
    }
}
