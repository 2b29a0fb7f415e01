//! The listeners: accept with an overall cap (accept backpressure), per-address and per-prefix
//! caps, bans, the TLS handshake deadline, then one hyper connection (HTTP/1.1 or HTTP/2)
//! watched for idleness, slow reads and stream-reset floods; graceful shutdown drains.
//!
//! Why hyper and h2 directly, not Pingora: the hardening needs a deadline on the whole request
//! head (hyper's `header_read_timeout`; Pingora has none, its issue #447), HTTP/2 reset-stream
//! budgets (h2's `max_pending_accept_reset_streams` and `max_local_error_reset_streams`;
//! Pingora's h2 defaults advertise unlimited concurrent streams) and rustls as the TLS stack
//! (Pingora calls its rustls support experimental). hyper has no body deadline and no minimum
//! rates; those are ours (`body`, `watch`), wrapped around hyper's body and socket.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::bans::{BanList, canonical};
use crate::config::Config;
use crate::config::ConfigError;
use crate::connections::{ConnectionCaps, ConnectionSlot, ConnectionTable};
use crate::defense::{Challenger, ClientFingerprints};
use crate::fingerprint::{Tap, TapKind, TapResult};
use crate::h2_frames::FrameGuard;
use crate::metrics::{Metrics, Reason, RouteMetrics};
use crate::observe::Observed;
use crate::proxy::{ConnectionInfo, Limiters, Shared, handle};
use crate::tls::{TlsError, server_config};
use crate::upstream::Pool;
use crate::watch::{Activity, SendLimits, Watch};

/// Why the shield could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShieldError {
    /// A listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The challenge ladder cannot start (its key file, its resolver).
    #[error(transparent)]
    Challenge(#[from] crate::challenge::LadderError),
    /// The access log file cannot be opened.
    #[error("access_log.path {path}: {source}")]
    AccessLog {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listener's certificates are unusable.
    #[error("listener {address}: {source}")]
    Tls {
        /// The listener.
        address: SocketAddr,
        /// Why.
        source: TlsError,
    },
}

struct Bound {
    listener: TcpListener,
    proxy_protocol: bool,
    tls: Option<TlsAcceptor>,
    h2c: bool,
    internal: bool,
}

/// A shield ready to run: sockets bound, certificates loaded.
pub struct Shield {
    shared: Arc<Shared>,
    current: Current,
    listeners: Vec<Bound>,
    metrics_listener: Option<TcpListener>,
}

impl std::fmt::Debug for Shield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shield").field("addresses", &self.local_addrs()).finish_non_exhaustive()
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ShieldError> {
    TcpListener::bind(address).await.map_err(|source| ShieldError::Bind { address, source })
}

impl Shield {
    /// Bind every listener of `config` and load its certificates; bans come from `bans`.
    pub async fn bind(config: Config, bans: Arc<dyn BanList>) -> Result<Shield, ShieldError> {
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let tls = if listener.certificates.is_empty() {
                None
            } else {
                let tls = server_config(&listener.certificates)
                    .map_err(|source| ShieldError::Tls { address: listener.address, source })?;
                Some(TlsAcceptor::from(tls))
            };
            listeners.push(Bound {
                listener: bind(listener.address).await?,
                proxy_protocol: listener.proxy_protocol,
                tls,
                h2c: listener.h2c,
                internal: listener.internal,
            });
        }
        let metrics_listener = match config.metrics {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let flood = config.flood.enabled.then(|| {
            let flood = Arc::new(crate::flood::FloodDefense::new(config.flood.clone(), &config.routes));
            flood.attach_metrics(Arc::clone(&metrics));
            flood
        });
        let challenger = build_challenger(&config, &metrics, None)?;
        let access_log = open_access_log(&config, &metrics, None)?;
        let mut shared = new_shared(config, bans, metrics, challenger);
        shared.access_log = access_log;
        shared.flood = flood;
        let shared = Arc::new(shared);
        let current = Current {
            shared: Arc::new(RwLock::new(Arc::clone(&shared))),
            health: Arc::new(Mutex::new(Vec::new())),
        };
        Ok(Shield { shared, current, listeners, metrics_listener })
    }

    /// The bound addresses of the listeners, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|b| b.listener.local_addr().ok()).collect()
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle to swap the configuration while running (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader { current: self.current.clone() }
    }

    /// The challenge ladder, to drive its pressure (`Challenger::set_pressure`).
    pub fn challenger(&self) -> Option<Arc<dyn Challenger>> {
        self.shared.challenger.clone()
    }

    /// The automatic flood defense, unless `[flood] enabled = false`.
    pub fn flood(&self) -> Option<Arc<crate::flood::FloodDefense>> {
        self.shared.flood.clone()
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Serve until `shutdown` completes, then stop accepting, let open connections finish
    /// their requests (HTTP/2 gets GOAWAY) for up to `drain`, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        let hardening = &self.shared.config.hardening;
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(hardening.max_connections));
        let table = Arc::new(Mutex::new(ConnectionTable::new(ConnectionCaps {
            per_address: hardening.max_connections_per_address,
            per_prefix: hardening.max_connections_per_prefix,
        })));
        let builder = Arc::new(http_builder(&self.shared.config));
        let mut tasks = tokio::task::JoinSet::new();
        self.current.start_health_checks(&self.shared);
        tasks.spawn(poll_threat_level(self.current.clone()));
        if let Some(listener) = self.metrics_listener {
            tasks.spawn(crate::metrics_server::serve(
                listener,
                Arc::clone(&self.shared.metrics),
                stop_rx.clone(),
            ));
        }
        let flood_task = self.shared.flood.clone().map(|flood| tokio::spawn(flood.run(stop_rx.clone())));
        let mut accepters = tokio::task::JoinSet::new();
        for bound in self.listeners {
            accepters.spawn(accept_loop(
                bound,
                Arc::clone(&self.shared),
                self.current.clone(),
                Arc::clone(&builder),
                Arc::clone(&permits),
                Arc::clone(&table),
                stop_rx.clone(),
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while accepters.join_next().await.is_some() {}
        // Every connection holds a permit: all of them back means all connections are done.
        let max = u32::try_from(hardening.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(drain, permits.acquire_many(max)).await;
        tasks.abort_all();
        if let Some(task) = flood_task {
            // It saves the baselines on its way out.
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.current.stop_health_checks();
    }
}

/// Bans, then the per-address and per-prefix caps: the slot, or `None` (counted) to refuse.
fn admit(
    shared: &Shared,
    table: &Arc<Mutex<ConnectionTable>>,
    address: std::net::IpAddr,
) -> Option<ConnectionSlot> {
    if shared.bans.is_banned(address) {
        shared.metrics.reject(Reason::Banned);
        return None;
    }
    match ConnectionSlot::acquire(table, address) {
        Ok(slot) => Some(slot),
        Err(reason) => {
            shared.metrics.reject(reason);
            None
        }
    }
}

/// Read exactly one PROXY header (v1 or v2) and nothing after it: `None` if it is not one.
async fn read_proxy_header(stream: &mut TcpStream) -> Option<crate::proxy_protocol::Header> {
    use crate::proxy_protocol::{V2_SIGNATURE, parse};
    use tokio::io::AsyncReadExt;
    // 15 bytes: the shortest header ("PROXY UNKNOWN\r\n"), so never a byte of the request.
    let mut buf = vec![0u8; 15];
    stream.read_exact(&mut buf).await.ok()?;
    loop {
        match parse(&buf) {
            Ok(Some((header, used))) if used == buf.len() => return Some(header),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => {
                let more = if buf.starts_with(&V2_SIGNATURE[..12]) {
                    if buf.len() < 16 {
                        16 - buf.len()
                    } else {
                        16 + usize::from(u16::from_be_bytes([buf[14], buf[15]])) - buf.len()
                    }
                } else {
                    1
                };
                let start = buf.len();
                buf.resize(start + more, 0);
                stream.read_exact(&mut buf[start..]).await.ok()?;
            }
        }
    }
}

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let h = &config.hardening;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(h.header_timeout())
        .max_buf_size(h.max_header_bytes)
        .max_headers(h.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(h.h2_max_pending_reset_streams)
        .max_local_error_reset_streams(h.h2_max_local_error_resets)
        .max_header_list_size(h.h2_max_header_list_bytes)
        .max_send_buf_size(h.h2_max_send_buffer)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// hyper's HTTP/1 server, set up as `http_builder`'s HTTP/1 side (for HTTP/1-only listeners).
fn http1_builder(h: &crate::hardening::Hardening) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(h.header_timeout())
        .max_buf_size(h.max_header_bytes)
        .max_headers(h.max_headers)
        .keep_alive(true);
    builder
}

async fn accept_loop(
    bound: Bound,
    shared: Arc<Shared>,
    current: Current,
    builder: Arc<auto::Builder<TokioExecutor>>,
    permits: Arc<Semaphore>,
    table: Arc<Mutex<ConnectionTable>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // No permit, no accept: beyond the overall cap, connections wait in the kernel's
        // backlog instead of costing us memory.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors or a connection reset before accept: retry soon.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let address = canonical(peer.ip());
        let proxy_protocol = bound.proxy_protocol;
        if proxy_protocol && !shared.config.trusted_proxies.iter().any(|p| p.contains(&address)) {
            // A PROXY header names any address it likes: only a trusted balancer may send one.
            shared.metrics.reject(Reason::ProxyProtocol);
            continue;
        }
        let slot = if proxy_protocol {
            // Bans and caps apply to the client the header names, once it is read.
            None
        } else {
            match admit(&shared, &table, address) {
                Some(slot) => Some(slot),
                None => continue,
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let current = current.clone();
        let builder = Arc::clone(&builder);
        let table = Arc::clone(&table);
        let tls = bound.tls.clone();
        let (h2c, internal) = (bound.h2c, bound.internal);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let (peer, slot) = match slot {
                Some(slot) => (peer, slot),
                None => {
                    let deadline = shared.config.hardening.header_timeout();
                    let header = tokio::time::timeout(deadline, read_proxy_header(&mut stream)).await;
                    let Ok(Some(header)) = header else {
                        shared.metrics.reject(Reason::ProxyProtocol);
                        return;
                    };
                    let client = header.source.map_or(peer, |s| SocketAddr::new(canonical(s.ip()), s.port()));
                    match admit(&shared, &table, client.ip()) {
                        Some(slot) => (client, slot),
                        None => return,
                    }
                }
            };
            shared.metrics.accepted.inc();
            shared.metrics.open.inc();
            serve(stream, peer, tls, h2c, internal, &shared, &current, &builder, stop).await;
            shared.metrics.open.dec();
            drop(slot);
            drop(permit);
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    h2c: bool,
    internal: bool,
    shared: &Arc<Shared>,
    current: &Current,
    builder: &auto::Builder<TokioExecutor>,
    stop: watch::Receiver<bool>,
) {
    let hardening = &shared.config.hardening;
    let activity = Arc::new(Activity::new());
    let limits = SendLimits { min_rate: hardening.send_min_rate, window: hardening.send_grace() };
    let watch = Watch::new(Arc::clone(&activity), limits, Arc::clone(&shared.metrics));
    let frames = || FrameGuard::new(hardening.h2_frame_budgets(), Arc::clone(&shared.metrics));
    let info = ConnectionInfo {
        peer,
        tls: tls.is_some(),
        internal_listener: internal,
        activity,
        fingerprints: ClientFingerprints::default(),
    };
    // One observer per byte stream: the socket's, and over TLS the decrypted one's.
    match tls {
        Some(acceptor) => {
            // The tap copies the ClientHello as rustls reads it (JA4).
            let hello = Tap::new(TapKind::Tls);
            let hello_fingerprint = hello.result();
            let socket = Observed::new(stream, (watch, hello));
            let handshake =
                tokio::time::timeout(hardening.tls_handshake_timeout(), acceptor.accept(socket)).await;
            match handshake {
                Ok(Ok(stream)) => {
                    let mut info = info;
                    info.fingerprints.tls = hello_fingerprint.get().cloned().flatten();
                    let tap = Tap::new(TapKind::Http2);
                    let http2_fingerprint = tap.result();
                    let io = Observed::new(stream, (tap, frames()));
                    drive(io, info, http2_fingerprint, true, shared, current, builder, stop).await
                }
                Ok(Err(_)) => shared.metrics.reject(Reason::TlsHandshakeFailed),
                Err(_) => shared.metrics.reject(Reason::TlsHandshakeTimeout),
            }
        }
        None => {
            let tap = Tap::new(TapKind::Http2);
            let http2_fingerprint = tap.result();
            let io = Observed::new(stream, (watch, (tap, frames())));
            drive(io, info, http2_fingerprint, h2c, shared, current, builder, stop).await
        }
    }
}

/// Run one HTTP connection to its end, closing it when idle, when it cancels too many
/// streams, or (gracefully) at shutdown.
#[allow(clippy::too_many_arguments)]
async fn drive<I>(
    io: I,
    info: ConnectionInfo,
    http2_fingerprint: TapResult,
    allow_h2: bool,
    shared: &Arc<Shared>,
    current: &Current,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hardening = &shared.config.hardening;
    let activity = Arc::clone(&info.activity);
    let service = {
        // Each request takes the configuration current when it arrives (SIGHUP reloads).
        let current = current.clone();
        service_fn(move |request| {
            let mut info = info.clone();
            // hyper dispatches a request once it has read its HEADERS frame through the tap,
            // so the HTTP/2 fingerprint is known by the first request.
            if info.fingerprints.http2.is_none() {
                info.fingerprints.http2 = http2_fingerprint.get().cloned().flatten();
            }
            handle(current.get(), info, request)
        })
    };
    let io = TokioIo::new(io);
    // Upgrades (WebSocket) either way: hyper-util's auto-detecting mode ignores `http1_only`,
    // so an HTTP/1-only listener is served by hyper's own HTTP/1 connection, set up alike.
    let mut connection = if allow_h2 {
        Serving::Auto(Box::pin(builder.serve_connection_with_upgrades(io, service)))
    } else {
        Serving::Http1(Box::pin(http1_builder(hardening).serve_connection(io, service).with_upgrades()))
    };
    macro_rules! graceful_shutdown {
        () => {
            match &mut connection {
                Serving::Auto(c) => c.as_mut().graceful_shutdown(),
                Serving::Http1(c) => c.as_mut().graceful_shutdown(),
            }
        };
    }
    let idle = hardening.idle_timeout();
    let window = hardening.h2_reset_window();
    // Once a second: cheap with ten thousand connections open, prompt enough for idleness and
    // cancelled-stream floods.
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(idle));
    let mut window_start = Instant::now();
    let mut cancelled_at_start = 0u32;
    let mut draining = false;
    let result = loop {
        tokio::select! {
            result = std::future::poll_fn(|cx| connection.poll(cx)) => break result,
            _ = stop.changed(), if !draining => {
                draining = true;
                graceful_shutdown!();
            }
            _ = tick.tick() => {
                let cancelled = activity.cancelled.load(std::sync::atomic::Ordering::Relaxed);
                if cancelled.wrapping_sub(cancelled_at_start) > hardening.h2_max_cancelled_streams {
                    shared.metrics.reject(Reason::ResetFlood);
                    return;
                }
                if window_start.elapsed() >= window {
                    window_start = Instant::now();
                    cancelled_at_start = cancelled;
                }
                let busy = activity.inflight.load(std::sync::atomic::Ordering::Relaxed) > 0;
                if !busy && activity.quiet_for() >= idle {
                    shared.metrics.reject(Reason::Idle);
                    if draining {
                        return;
                    }
                    draining = true;
                    graceful_shutdown!();
                }
            }
        }
    };
    if let Err(error) = result {
        count_connection_error(shared, &*error);
    }
    // hyper may end a connection whose client left with a request still being answered; the
    // request's future lives in the connection (holding its in-flight count and maybe an
    // origin permit) until the connection is dropped, so drop it before waiting.
    drop(connection);
    // A WebSocket tunnel holds the connection's slot until it ends.
    while activity.inflight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client connection: HTTP/1.1 or HTTP/2 by detection, or HTTP/1 only; upgrades in both.
enum Serving<A, B> {
    Auto(std::pin::Pin<Box<A>>),
    Http1(std::pin::Pin<Box<B>>),
}

type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

impl<A, B> Serving<A, B>
where
    A: Future<Output = Result<(), ConnectionError>>,
    B: Future<Output = Result<(), hyper::Error>>,
{
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), ConnectionError>> {
        match self {
            Serving::Auto(a) => a.as_mut().poll(cx),
            Serving::Http1(b) => b.as_mut().poll(cx).map(|r| r.map_err(Into::into)),
        }
    }
}

fn count_connection_error(shared: &Shared, error: &(dyn std::error::Error + 'static)) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(hyper_error) = e.downcast_ref::<hyper::Error>() {
            let reason = if hyper_error.is_timeout() {
                Some(Reason::HeaderTimeout)
            } else if hyper_error.is_parse_too_large() {
                Some(Reason::HeadTooLarge)
            } else if hyper_error.is_parse() {
                Some(Reason::BadRequestHead)
            } else {
                None
            };
            if let Some(reason) = reason {
                shared.metrics.reject(reason);
                return;
            }
        }
        // h2's GOAWAY for a broken budget surfaces as a protocol error in the chain.
        let text = e.to_string();
        if text.contains("GOAWAY") || text.contains("ENHANCE_YOUR_CALM") || text.contains("PROTOCOL_ERROR") {
            shared.metrics.reject(Reason::Http2Protocol);
            return;
        }
        cause = e.source();
    }
}

/// The access log of `config`; `previous` (the running one) is kept when its settings did not
/// change, so a reload neither reopens the file nor loses the second's counts.
fn open_access_log(
    config: &Config,
    metrics: &Arc<Metrics>,
    previous: Option<&Shared>,
) -> Result<Option<Arc<crate::access_log::AccessLog>>, ShieldError> {
    let Some(settings) = &config.access_log else { return Ok(None) };
    if let Some(log) = previous.and_then(|p| p.access_log.as_ref())
        && log.settings() == settings
    {
        return Ok(Some(Arc::clone(log)));
    }
    crate::access_log::AccessLog::open(settings, Arc::clone(metrics))
        .map(Some)
        .map_err(|source| ShieldError::AccessLog { path: settings.path.clone(), source })
}

/// The challenge ladder of `config`; `previous` (the running one) is kept when its settings
/// did not change, so a reload keeps clearances, the replay cache and the pressure.
fn build_challenger(
    config: &Config,
    metrics: &Arc<Metrics>,
    previous: Option<&Shared>,
) -> Result<Option<Arc<dyn Challenger>>, crate::challenge::LadderError> {
    if let Some(previous) = previous
        && previous.config.challenge == config.challenge
    {
        return Ok(previous.challenger.clone());
    }
    let ladder = crate::challenge::Ladder::new(config.challenge.clone(), Arc::clone(metrics))?;
    Ok(Some(Arc::new(ladder)))
}

fn new_shared(
    config: Config,
    bans: Arc<dyn BanList>,
    metrics: Arc<Metrics>,
    challenger: Option<Arc<dyn Challenger>>,
) -> Shared {
    let threat = Arc::new(crate::origin::Threat::new(
        config.protection.threat_level,
        config.protection.threat_file.clone(),
    ));
    threat.read_file();
    let upstreams: Vec<_> = config.upstreams.iter().map(|u| (u.name.clone(), u.origin.clone())).collect();
    let protection =
        crate::origin::Protection::new(&upstreams, &config.protection, threat, Arc::clone(&metrics));
    let route_metrics = config.routes.iter().map(|r| RouteMetrics::new(&r.name)).collect();
    Shared {
        protection,
        pools: config.upstreams.iter().map(|u| Arc::new(Pool::new(u))).collect(),
        limiters: Mutex::new(Limiters::new(&config.rate_limits, &config)),
        clients: config.upstreams.iter().map(crate::origin::client::client).collect(),
        config,
        bans,
        metrics,
        epoch: Instant::now(),
        challenger,
        flood: None,
        access_log: None,
        route_metrics,
    }
}

/// Re-read the threat file of the configuration in force every second, and hand a changed
/// level to the challenge ladder as its pressure (normal 0, elevated 2: proofs of work for
/// whoever is challenged, high 3: the hardest). Only a change is applied, so what the flood
/// defense sets in between stands until the level moves.
async fn poll_threat_level(current: Current) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut applied: Option<u8> = None;
    loop {
        tick.tick().await;
        let shared = current.get();
        let threat = Arc::clone(shared.protection.threat());
        // A file read may block on a slow disk: off the request threads.
        let _ = tokio::task::spawn_blocking(move || threat.read_file()).await;
        let pressure = threat_pressure(shared.protection.pressure());
        if applied != Some(pressure) {
            if let Some(challenger) = &shared.challenger {
                challenger.set_pressure(pressure);
            }
            applied = Some(pressure);
        }
    }
}

/// The ladder's pressure (0..=3) for the origin protection's 0..=1.
fn threat_pressure(pressure: f64) -> u8 {
    (pressure.clamp(0.0, 1.0) * 3.0).round() as u8
}

/// The configuration requests use now, and the health checks of its pools.
#[derive(Debug, Clone)]
struct Current {
    shared: Arc<RwLock<Arc<Shared>>>,
    health: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Current {
    fn get(&self) -> Arc<Shared> {
        Arc::clone(&self.shared.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn start_health_checks(&self, shared: &Shared) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        for task in health.drain(..) {
            task.abort();
        }
        for pool in &shared.pools {
            let task = tokio::spawn(Arc::clone(pool).run_health_checks(Arc::clone(&shared.metrics)));
            health.push(task.abort_handle());
        }
    }

    fn stop_health_checks(&self) {
        for task in self.health.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new challenge settings cannot start.
    #[error(transparent)]
    Challenge(#[from] crate::challenge::LadderError),
    /// The new access log cannot be opened.
    #[error(transparent)]
    AccessLog(#[from] ShieldError),
    /// The new configuration changes what only a restart can (listeners, connection limits,
    /// metrics listener).
    #[error(
        "{0} changed: restart to apply it (routes, upstreams, rate limits, trusted proxies and internal networks reload)"
    )]
    NeedsRestart(&'static str),
}

/// Swaps the configuration of a running shield without dropping connections: requests
/// already in flight finish under the old one, every new request (also on open connections)
/// uses the new one.
#[derive(Debug, Clone)]
pub struct Reloader {
    current: Current,
}

impl Reloader {
    /// Apply `config`; rate-limit state starts afresh.
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        let old = self.current.get();
        if config.listeners != old.config.listeners {
            return Err(ReloadError::NeedsRestart("[[listener]]"));
        }
        if config.hardening != old.config.hardening {
            return Err(ReloadError::NeedsRestart("[limits]"));
        }
        if config.metrics != old.config.metrics {
            return Err(ReloadError::NeedsRestart("metrics"));
        }
        if config.flood != old.config.flood {
            return Err(ReloadError::NeedsRestart("[flood]"));
        }
        let challenger = build_challenger(&config, &old.metrics, Some(&old))?;
        let access_log = open_access_log(&config, &old.metrics, Some(&old))?;
        let mut shared = new_shared(config, Arc::clone(&old.bans), Arc::clone(&old.metrics), challenger);
        shared.flood = old.flood.clone();
        shared.access_log = access_log;
        let shared = Arc::new(shared);
        self.current.start_health_checks(&shared);
        *self.current.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
        Ok(())
    }
}
