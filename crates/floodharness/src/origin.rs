//! The site behind the proxy: an in-process hyper HTTP/1.1 origin with a page, static assets,
//! an expensive search, a login that sets a session cookie and articles. It counts requests
//! per route and the most requests it ever had in flight, and marks every answer it writes
//! ([`ORIGIN_MARKER`]) so a client can tell the origin's answers from a proxy's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::HarnessError;
use crate::sources::ensure_loopback;

/// The response header the origin puts on every answer.
pub const ORIGIN_MARKER: &str = "x-harness-origin";

/// The routes the origin tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `/`, the home page.
    Page,
    /// `/assets/*`, static files.
    Asset,
    /// `/search?q=`, the expensive route.
    Search,
    /// `POST /login`.
    Login,
    /// `/article/{id}`.
    Article,
    /// Anything else (404).
    Other,
}

impl Route {
    /// Every route, in counter order.
    pub const ALL: [Route; 6] =
        [Route::Page, Route::Asset, Route::Search, Route::Login, Route::Article, Route::Other];

    /// The route of a method and path.
    pub fn of(method: &Method, path: &str) -> Route {
        match path {
            "/" => Route::Page,
            "/search" => Route::Search,
            "/login" if method == Method::POST => Route::Login,
            _ if path.starts_with("/assets/") => Route::Asset,
            _ if path.starts_with("/article/") && path.len() > "/article/".len() => Route::Article,
            _ => Route::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How the origin behaves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Where it listens (loopback only; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The time `/search` takes.
    pub search_delay: Duration,
    /// Slow-origin mode: every request also waits this long for each request already in
    /// flight, the way a saturated backend slows down as its queue grows.
    pub slow_per_in_flight: Option<Duration>,
    /// The concurrency the origin is sized for (reported; not enforced).
    pub concurrency_limit: usize,
}

impl Default for OriginConfig {
    fn default() -> OriginConfig {
        OriginConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            search_delay: Duration::from_millis(50),
            slow_per_in_flight: None,
            concurrency_limit: 64,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    per_route: [AtomicU64; 6],
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    sessions: AtomicU64,
}

/// What the origin has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OriginStats {
    /// Requests answered by route, in [`Route::ALL`] order.
    pub per_route: [u64; 6],
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// The concurrency it is sized for.
    pub concurrency_limit: usize,
}

impl OriginStats {
    /// All requests it saw.
    pub fn total(&self) -> u64 {
        self.per_route.iter().sum()
    }

    /// Requests on one route.
    pub fn route(&self, route: Route) -> u64 {
        self.per_route[route.index()]
    }
}

/// A running origin; stops when dropped.
#[derive(Debug)]
pub struct Origin {
    address: SocketAddr,
    counters: Arc<Counters>,
    concurrency_limit: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Binds and starts serving.
    pub async fn start(config: OriginConfig) -> Result<Origin, HarnessError> {
        ensure_loopback(config.listen)?;
        let listener = TcpListener::bind(config.listen).await.map_err(|source| HarnessError::Io {
            context: format!("origin: bind {}", config.listen),
            source,
        })?;
        let address = listener.local_addr().map_err(|source| HarnessError::Io {
            context: format!("origin: address of {}", config.listen),
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let concurrency_limit = config.concurrency_limit;
        let config = Arc::new(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors under a flood: wait a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counters = Arc::clone(&shared);
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let counters = Arc::clone(&counters);
                        let config = Arc::clone(&config);
                        async move { Ok::<_, Infallible>(answer(request, &config, &counters).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Origin { address, counters, concurrency_limit, task })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its counters now.
    pub fn stats(&self) -> OriginStats {
        let mut per_route = [0; 6];
        for (slot, counter) in per_route.iter_mut().zip(&self.counters.per_route) {
            *slot = counter.load(Ordering::Relaxed);
        }
        OriginStats {
            per_route,
            max_in_flight: self.counters.max_in_flight.load(Ordering::Relaxed),
            concurrency_limit: self.concurrency_limit,
        }
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters) -> (InFlight<'a>, usize) {
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::Relaxed);
        (InFlight(counters), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Parliament</title><link rel="stylesheet" href="/assets/site.css"><script src="/assets/site.js" defer></script></head><body><h1>Parliament</h1><img src="/assets/logo.svg" alt="logo"><form action="/search"><input name="q"></form><ul><li><a href="/article/1">Session of the day</a></li><li><a href="/article/2">Votes</a></li></ul></body></html>"#;

async fn answer(
    request: Request<Incoming>,
    config: &OriginConfig,
    counters: &Counters,
) -> Response<Full<Bytes>> {
    let route = Route::of(request.method(), request.uri().path());
    let (_guard, in_flight) = InFlight::enter(counters);
    let mut delay = if route == Route::Search { config.search_delay } else { Duration::ZERO };
    if let Some(per) = config.slow_per_in_flight {
        delay += per.saturating_mul(u32::try_from(in_flight.saturating_sub(1)).unwrap_or(u32::MAX));
    }
    let path = request.uri().path().to_owned();
    let mut session = None;
    if route == Route::Login {
        // The credentials are read (a login reads its form) and not checked: every login works.
        let _ = Limited::new(request.into_body(), 64 * 1024).collect().await;
        session = Some(counters.sessions.fetch_add(1, Ordering::Relaxed));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    counters.per_route[route.index()].fetch_add(1, Ordering::Relaxed);
    let (status, content_type, body): (StatusCode, &str, Bytes) = match route {
        Route::Page => (StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(PAGE.as_bytes())),
        Route::Asset if path.ends_with(".css") => (
            StatusCode::OK,
            "text/css",
            Bytes::from_static(b"body{font-family:serif;margin:2em}h1{color:#036}"),
        ),
        Route::Asset if path.ends_with(".js") => (
            StatusCode::OK,
            "text/javascript",
            Bytes::from_static(b"document.documentElement.className='js';"),
        ),
        Route::Asset => (
            StatusCode::OK,
            "image/svg+xml",
            Bytes::from_static(br#"<svg xmlns="http://www.w3.org/2000/svg"/>"#),
        ),
        Route::Search => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(b"<!doctype html><p>3 results</p>"),
        ),
        Route::Login => {
            (StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(b"<!doctype html><p>Welcome</p>"))
        }
        Route::Article => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from(format!("<!doctype html><h1>{path}</h1>")),
        ),
        Route::Other => (StatusCode::NOT_FOUND, "text/plain", Bytes::from_static(b"not found")),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(ORIGIN_MARKER, "1");
    if route == Route::Asset {
        builder = builder.header(header::CACHE_CONTROL, "public, max-age=3600");
    }
    if let Some(session) = session {
        builder = builder
            .header(header::SET_COOKIE, format!("session=s{session:08x}; Path=/; HttpOnly; SameSite=Lax"));
    }
    builder.body(Full::new(body)).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of(&Method::GET, "/"), Route::Page);
        assert_eq!(Route::of(&Method::GET, "/assets/site.css"), Route::Asset);
        assert_eq!(Route::of(&Method::GET, "/search"), Route::Search);
        assert_eq!(Route::of(&Method::POST, "/login"), Route::Login);
        assert_eq!(Route::of(&Method::GET, "/login"), Route::Other);
        assert_eq!(Route::of(&Method::GET, "/article/42"), Route::Article);
        assert_eq!(Route::of(&Method::GET, "/article/"), Route::Other);
        for (i, route) in Route::ALL.iter().enumerate() {
            assert_eq!(route.index(), i);
        }
    }
}
