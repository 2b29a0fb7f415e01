//! The metrics endpoint: `GET /metrics` over HTTP/1.1 (hyper), built to keep answering scrapes
//! while the port is flooded with idle or slow connections.
//!
//! Every connection is in a table with its state. A connection must send its first request
//! head within `header_timeout` of being accepted, a kept-alive one its next head within
//! `idle_timeout`, and a client must take its response within `write_timeout`; past that it is
//! closed. At most `max_connections` are open: a new connection beyond that closes the one that
//! has waited longest without a request in progress (an idle or slow one), so the newest
//! connection (a scraper's) gets served; only if every connection is in the middle of a
//! response is the new one closed at once.

use crate::setup;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The OpenMetrics text format, which `prometheus-client` writes.
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connection limits of the metrics server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From accept to the end of the first request head.
    pub header_timeout: Duration,
    /// From the end of a response to the end of the next request head (keep-alive).
    pub idle_timeout: Duration,
    /// From a complete request head to the end of writing its response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Connection counters, shown in the metrics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub accepted: AtomicU64,
    /// Idle or slow connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// New connections closed at once: every slot was serving a request.
    pub shed: AtomicU64,
    /// Connections closed by a header, idle or write timeout.
    pub timed_out: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// One connection's entry in the table.
#[derive(Debug)]
struct Slot {
    /// When the current state began: accepted, request head complete, or response written.
    since: Instant,
    /// A request is being answered (head read, response not yet written).
    busy: bool,
    /// Requests answered on this connection.
    served: u64,
    /// Ends the connection's task; `None` only until the task is spawned.
    abort: Option<AbortHandle>,
}

impl Slot {
    fn deadline(&self, limits: &Limits) -> Instant {
        let allowed = if self.busy {
            limits.write_timeout
        } else if self.served == 0 {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        self.since + allowed
    }
}

#[derive(Debug, Default)]
struct Table {
    slots: HashMap<u64, Slot>,
    next_id: u64,
}

type Shared = Arc<Mutex<Table>>;

/// Removes a connection's slot when its task ends (normally or aborted).
struct SlotGuard {
    table: Shared,
    id: u64,
    stats: Arc<ConnectionStats>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.slots.remove(&self.id);
            self.stats.open.store(table.slots.len() as u64, Ordering::Relaxed);
        }
    }
}

/// A response body that marks its connection idle again once hyper is done with it (fully
/// written into the connection, or the connection is gone).
struct TrackedBody {
    inner: Full<Bytes>,
    _done: Done,
}

struct Done {
    table: Shared,
    id: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock()
            && let Some(slot) = table.slots.get_mut(&self.id)
        {
            slot.busy = false;
            slot.served += 1;
            slot.since = Instant::now();
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What `/metrics` answers: the exposition text, or why it could not be made.
pub type Render = Arc<dyn Fn() -> Result<String, std::fmt::Error> + Send + Sync>;

/// Serves `GET /metrics` with `render()`'s text until `stop` fires.
pub async fn serve_metrics(
    listener: TcpListener,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    render: Render,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let table: Shared = Arc::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or a similar transient failure: do not spin on it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let Some((id, victim)) = admit(&table, &limits) else {
            stats.shed.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        if let Some(victim) = victim {
            stats.evicted.fetch_add(1, Ordering::Relaxed);
            victim.abort();
        }
        let guard = SlotGuard { table: table.clone(), id, stats: stats.clone() };
        let task = tokio::spawn(connection(stream, guard, limits, stats.clone(), render.clone()));
        if let Ok(mut table) = table.lock() {
            // The task may already be over (its slot gone): then there is nothing to abort.
            if let Some(slot) = table.slots.get_mut(&id) {
                slot.abort = Some(task.abort_handle());
            }
            stats.open.store(table.slots.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Makes room for a new connection: returns its id and the connection to close for it, or
/// `None` when every connection is busy answering (the new one is then refused).
fn admit(table: &Shared, limits: &Limits) -> Option<(u64, Option<AbortHandle>)> {
    let mut table = table.lock().ok()?;
    let mut victim = None;
    if table.slots.len() >= limits.max_connections {
        // The one waiting longest without a request in progress; ties go to the oldest id.
        let oldest = table
            .slots
            .iter()
            .filter(|(_, slot)| !slot.busy)
            .min_by_key(|(id, slot)| (slot.since, **id))
            .map(|(id, _)| *id)?;
        // A slot whose task is not spawned yet has no handle; removing it still frees the
        // place, and its task finds its slot gone on its first deadline check.
        victim = table.slots.remove(&oldest).and_then(|slot| slot.abort);
    }
    let id = table.next_id;
    table.next_id += 1;
    table.slots.insert(id, Slot { since: Instant::now(), busy: false, served: 0, abort: None });
    Some((id, victim))
}

/// The deadline of connection `id`, `None` if it was evicted.
fn deadline(table: &Shared, id: u64, limits: &Limits) -> Option<Instant> {
    table.lock().ok()?.slots.get(&id).map(|slot| slot.deadline(limits))
}

async fn connection(
    stream: TcpStream,
    guard: SlotGuard,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    render: Render,
) {
    let (table, id) = (guard.table.clone(), guard.id);
    let service_table = table.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        if let Ok(mut table) = service_table.lock()
            && let Some(slot) = table.slots.get_mut(&id)
        {
            slot.busy = true;
            slot.since = Instant::now();
        }
        let done = Done { table: service_table.clone(), id };
        let response = respond(&request, &render, done);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our own deadlines cover header reads (hyper's timer would also cut keep-alive idling at
    // the header timeout); 16 KiB bounds a request head.
    builder.header_read_timeout(None).max_buf_size(16 * 1024).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    loop {
        let Some(until) = deadline(&table, id, &limits) else { return };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(until) => {
                // The state may have moved on since the deadline was read.
                match deadline(&table, id, &limits) {
                    Some(until) if until > Instant::now() => continue,
                    Some(_) => {
                        stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    None => return,
                }
            }
        }
    }
}

fn respond(request: &Request<Incoming>, render: &Render, done: Done) -> Response<TrackedBody> {
    let (status, body, content_type) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => match render() {
            Ok(text) => (StatusCode::OK, text, CONTENT_TYPE_OPENMETRICS),
            Err(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n".to_owned(), "text/plain")
            }
        },
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "not found; try /metrics\n".to_owned(), "text/plain"),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned(), "text/plain"),
    };
    let mut response = Response::new(TrackedBody { inner: Full::new(Bytes::from(body)), _done: done });
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
    }
    response
}

/// Binds the metrics listener, with an operator-worded error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::DaemonError> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            setup!("cannot serve metrics on {addr}: the address is already in use (choose another with --metrics ADDR, or --metrics off)")
        }
        std::io::ErrorKind::PermissionDenied => setup!(
            "cannot serve metrics on {addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        ),
        _ => setup!("cannot serve metrics on {addr}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(limits: Limits) -> (SocketAddr, Arc<ConnectionStats>, tokio::sync::watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let render: Render = Arc::new(|| Ok("# EOF\n".to_owned()));
        tokio::spawn(serve_metrics(listener, limits, stats.clone(), render, stop));
        (addr, stats, stop_tx)
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        response
    }

    /// Reads until EOF or error; the time it took, at most `limit`.
    async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buffer = [0u8; 1024];
        tokio::time::timeout(limit, async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return started.elapsed(),
                    Ok(_) => {}
                }
            }
        })
        .await
        .ok()
    }

    #[tokio::test]
    async fn answers_metrics_404_and_405() {
        let (addr, _, _stop) = server(Limits::default()).await;
        let response = get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.to_ascii_lowercase().contains("content-type: application/openmetrics-text"),
            "{response}"
        );
        assert!(response.ends_with("# EOF\n"), "{response}");
        assert!(get(addr, "/").await.starts_with("HTTP/1.1 404"));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    }

    #[tokio::test]
    async fn idle_and_slow_connections_time_out() {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            ..Limits::default()
        };
        let (addr, stats, _stop) = server(limits).await;
        // Silent after connecting: the header timeout.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let took = time_to_close(&mut silent, Duration::from_secs(5)).await.unwrap();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
        // Kept alive after one answer: the idle timeout.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 512];
        let n = kept.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        let took = time_to_close(&mut kept, Duration::from_secs(5)).await.unwrap();
        assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(2), "{took:?}");
        assert_eq!(stats.timed_out.load(Ordering::Relaxed), 2);
    }

    /// With every slot answering a request, a new connection is closed at once, not queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_full_of_busy_connections_sheds_new_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnectionStats::default());
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        // A slow render keeps its connection busy (it blocks one worker; the other accepts).
        let rendering = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Arc::clone(&rendering);
        let render: Render = Arc::new(move || {
            started.store(true, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(600));
            Ok("# EOF\n".to_owned())
        });
        let limits = Limits { max_connections: 1, ..Limits::default() };
        tokio::spawn(serve_metrics(listener, limits, stats.clone(), render, stop));
        let busy = tokio::spawn(get(addr, "/metrics"));
        // The slot is taken once the render has begun (a fixed 200 ms wait was sometimes too
        // short on the loaded 2-core machine).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !rendering.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let took = time_to_close(&mut refused, Duration::from_secs(2)).await;
        assert!(took.is_some_and(|t| t < Duration::from_millis(300)), "{took:?}");
        assert_eq!(stats.shed.load(Ordering::Relaxed), 1);
        assert!(busy.await.unwrap().starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_idle_connection() {
        let limits = Limits { max_connections: 4, ..Limits::default() };
        let (addr, stats, _stop) = server(limits).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(TcpStream::connect(addr).await.unwrap());
            // Accept order is the eviction order.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A scrape on a fifth connection is served; the first idle one is closed for it.
        let response = get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let first = time_to_close(&mut idle[0], Duration::from_secs(2)).await;
        assert!(first.is_some(), "the oldest idle connection should be closed");
        assert!(time_to_close(&mut idle[3], Duration::from_millis(200)).await.is_none());
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(stats.shed.load(Ordering::Relaxed), 0);
    }
}
