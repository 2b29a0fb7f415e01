//! The shield's client to one upstream: hyper's client connections (HTTP/1.1, or HTTP/2 when
//! ALPN chose it) over the upstream's connector, kept alive in a pool of our own.
//!
//! Why not hyper-util's `legacy::Client`: its pool keys every checkout and return by
//! (scheme, authority) through SipHash, and races a new connection against every checkout;
//! at full load that was ~8 % of the proxy's instructions per request. An upstream here has
//! a handful of servers, so the pool is a short list of per-server stacks behind one lock:
//! a checkout pops the most recently used connection, a return pushes it back.
//!
//! What it keeps of the legacy client's behaviour: `Host` set from the target when the
//! request has none, origin-form targets over HTTP/1.1 (absolute ones over HTTP/2), a
//! request that a reused connection could not start (closed by the origin meanwhile)
//! retried on another connection, a connection returned only once ready for the next
//! request (after the answer's body), upgrades (WebSocket) on HTTP/1.1 connections.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::client::OriginConnector;

/// Idle connections kept per server (as the legacy client's `pool_max_idle_per_host`).
pub const MAX_IDLE_PER_SERVER: usize = 256;
/// An idle connection older than this is closed rather than reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to the origin failed.
#[derive(Debug)]
pub struct OriginError {
    connect: bool,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl OriginError {
    fn connect(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> OriginError {
        OriginError { connect: true, source: source.into() }
    }

    fn request(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> OriginError {
        OriginError { connect: false, source: source.into() }
    }

    /// The connection could not be made (refused, unreachable, TLS refused): the origin is
    /// in trouble, not the request.
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl std::fmt::Display for OriginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.connect { "cannot connect to the origin" } else { "the origin request failed" })
    }
}

impl std::error::Error for OriginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// One server's idle connections: HTTP/1.1 ones, most recently used last, or the one shared
/// HTTP/2 connection.
struct Server<B> {
    authority: Authority,
    http1: VecDeque<(http1::SendRequest<B>, Instant)>,
    http2: Option<http2::SendRequest<B>>,
}

/// The client of one upstream, pooling kept-alive connections.
pub struct OriginClient<B> {
    connector: OriginConnector,
    servers: Arc<Mutex<Vec<Server<B>>>>,
}

impl<B> std::fmt::Debug for OriginClient<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClient").finish_non_exhaustive()
    }
}

enum Fresh<B> {
    Http1(http1::SendRequest<B>),
    Http2(http2::SendRequest<B>),
}

impl<B> OriginClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A client connecting through `connector`.
    pub fn new(connector: OriginConnector) -> OriginClient<B> {
        OriginClient { connector, servers: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Send `request` (an absolute URI naming the server) and wait for the answer's head.
    pub async fn request(&self, mut request: Request<B>) -> Result<Response<Incoming>, OriginError> {
        let target = request.uri().clone();
        let Some(authority) = target.authority().cloned() else {
            return Err(OriginError::request("the origin request has no authority"));
        };
        if let Some(mut shared) = self.http2(&authority) {
            return shared.send_request(request).await.map_err(OriginError::request);
        }
        // Reused connections first; one the origin closed meanwhile gives the request back
        // unsent, and the next one is tried.
        while let Some(mut sender) = self.checkout(&authority) {
            prepare_http1(&mut request, &target);
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.give_back(authority, sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => {
                        request = unsent;
                        *request.uri_mut() = target.clone();
                    }
                    None => return Err(OriginError::request(error.into_error())),
                },
            }
        }
        // Boxed: the connect path's futures (TCP, TLS, handshakes) are large, and inline they
        // would grow every request's future, which hyper moves into place (a 10 kB copy per
        // request in the profile).
        match Box::pin(self.connect(&target)).await? {
            Fresh::Http2(mut sender) => {
                server_entry(&mut self.lock(), authority).http2 = Some(sender.clone());
                sender.send_request(request).await.map_err(OriginError::request)
            }
            Fresh::Http1(mut sender) => {
                prepare_http1(&mut request, &target);
                let response = sender.send_request(request).await.map_err(OriginError::request)?;
                self.give_back(authority, sender);
                Ok(response)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Server<B>>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server's shared HTTP/2 connection, while it is open.
    fn http2(&self, authority: &Authority) -> Option<http2::SendRequest<B>> {
        let mut servers = self.lock();
        let server = servers.iter_mut().find(|s| s.authority == *authority)?;
        match &server.http2 {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                server.http2 = None;
                None
            }
            None => None,
        }
    }

    /// The most recently used idle HTTP/1.1 connection to the server that is still open
    /// and young enough.
    fn checkout(&self, authority: &Authority) -> Option<http1::SendRequest<B>> {
        let mut servers = self.lock();
        let server = servers.iter_mut().find(|s| s.authority == *authority)?;
        let now = Instant::now();
        while let Some((sender, since)) = server.http1.pop_back() {
            if now.saturating_duration_since(since) < IDLE_TIMEOUT && sender.is_ready() {
                return Some(sender);
            }
            // Closed, or idle too long: dropping the sender closes the connection.
        }
        None
    }

    /// Back to the pool once ready for the next request: at once when the answer's body was
    /// already read with its head, else after it (a task that waits for the connection).
    fn give_back(&self, authority: Authority, mut sender: http1::SendRequest<B>) {
        if sender.is_ready() {
            return put_back(&self.servers, authority, sender);
        }
        let servers = Arc::clone(&self.servers);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                put_back(&servers, authority, sender);
            }
        });
    }

    async fn connect(&self, target: &Uri) -> Result<Fresh<B>, OriginError> {
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx)).await.map_err(OriginError::connect)?;
        let io = connector.call(target.clone()).await.map_err(OriginError::connect)?;
        if io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(OriginError::connect)?;
            tokio::spawn(connection);
            Ok(Fresh::Http2(sender))
        } else {
            let (sender, connection) =
                http1::Builder::new().handshake(io).await.map_err(OriginError::connect)?;
            tokio::spawn(connection.with_upgrades());
            Ok(Fresh::Http1(sender))
        }
    }
}

fn put_back<B>(servers: &Mutex<Vec<Server<B>>>, authority: Authority, sender: http1::SendRequest<B>) {
    let mut servers = servers.lock().unwrap_or_else(|p| p.into_inner());
    let server = server_entry(&mut servers, authority);
    let now = Instant::now();
    // The oldest idle connections age out from the front.
    while server.http1.front().is_some_and(|(_, since)| now.saturating_duration_since(*since) >= IDLE_TIMEOUT)
    {
        server.http1.pop_front();
    }
    if server.http1.len() < MAX_IDLE_PER_SERVER {
        server.http1.push_back((sender, now));
    }
}

fn server_entry<B>(servers: &mut Vec<Server<B>>, authority: Authority) -> &mut Server<B> {
    let at = match servers.iter().position(|s| s.authority == authority) {
        Some(at) => at,
        None => {
            servers.push(Server { authority, http1: VecDeque::new(), http2: None });
            servers.len() - 1
        }
    };
    &mut servers[at]
}

/// An HTTP/1.1 request as the origin expects it: a `Host` (from the target when the client
/// sent none) and the target in origin form (authority form for CONNECT).
fn prepare_http1<B>(request: &mut Request<B>, target: &Uri) {
    if !request.headers().contains_key(HOST)
        && let Some(authority) = target.authority()
    {
        let default_port = match target.scheme() {
            Some(s) if *s == Scheme::HTTPS => 443,
            _ => 80,
        };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str(),
            _ => authority.host(),
        };
        if let Ok(value) = HeaderValue::from_str(host) {
            request.headers_mut().insert(HOST, value);
        }
    }
    let form = if request.method() == Method::CONNECT {
        target.authority().and_then(|a| Uri::try_from(a.as_str()).ok())
    } else {
        Some(Uri::from(target.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"))))
    };
    if let Some(form) = form {
        *request.uri_mut() = form;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_requests_get_a_host_and_the_origin_form() {
        let target: Uri = "http://127.0.0.1:8080/a/b?c=d".parse().unwrap();
        let mut request = Request::get(target.clone()).body(()).unwrap();
        prepare_http1(&mut request, &target);
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()[HOST], "127.0.0.1:8080");

        let target: Uri = "https://origin.example:443/".parse().unwrap();
        let mut request = Request::get(target.clone()).header(HOST, "www.example").body(()).unwrap();
        prepare_http1(&mut request, &target);
        assert_eq!(request.headers()[HOST], "www.example", "the client's Host stays");
        let mut request = Request::get(target.clone()).body(()).unwrap();
        prepare_http1(&mut request, &target);
        assert_eq!(request.headers()[HOST], "origin.example", "default port left out");
    }
}
