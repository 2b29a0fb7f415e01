//! The thin Tokio driver: one task per peer connects (with backoff) or accepts, feeds the
//! [`Session`] bytes and the clock, and writes what it returns. [`Speaker`] is what the
//! daemon calls: `announce`, `withdraw`, `set_active` (reconcile), `status`, `shutdown`, and
//! `take_refusals`: every route a peer's budget leaves out (aggregated, dropped), once, for
//! the audit log.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rampart_contract::{Decision, DecisionId, EventTime};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::budget::WidenGuard;
use crate::config::{ConnectMode, Md5Key, PeerConfig, SpeakerConfig};
use crate::rib::{RefusalCounts, Refused};
use crate::route::{Route, RouteError};
use crate::session::{Event, Session, State};

/// The driver cannot start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// A peer's configuration is unusable.
    #[error("{0}")]
    Config(String),
}

/// A peer as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub state: State,
    pub routes: usize,
    pub established_count: u64,
    /// Routes refused (budget, duplicate NLRI, aggregated) since start.
    pub refused_total: u64,
    /// The same by reason.
    pub refusals: RefusalCounts,
    /// The routes left out now, and why.
    pub last_refused: Vec<Refused>,
    pub last_error: Option<String>,
}

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running speaker.
#[derive(Debug)]
pub struct Speaker {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    status: Vec<Arc<Mutex<PeerStatus>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Keeps each peer's inbound channel open when no listener holds it.
    _inbound: Vec<mpsc::Sender<TcpStream>>,
    refusals: Mutex<Option<mpsc::Receiver<PeerRefusal>>>,
}

/// A route a peer's table left out, reported once when it becomes left out.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRefusal {
    pub peer: String,
    pub budget: usize,
    pub refused: Refused,
}

/// Refusal reports waiting for the daemon; beyond this many they are dropped (and counted in
/// [`Speaker::reports_dropped`]; the per-peer counts still hold them).
const REFUSAL_QUEUE: usize = 4096;

/// An active decision: its expiry, routes and priority rank (lower first).
#[derive(Debug)]
struct Entry {
    expires: Option<EventTime>,
    routes: Vec<Route>,
    rank: u64,
}

type Active = BTreeMap<DecisionId, Entry>;

/// The active decisions (with their expiry) and the routes every peer task follows.
#[derive(Debug)]
struct Shared {
    decisions: Mutex<Active>,
    /// Bumped on every change; peer tasks then read the routes (changes coalesce, so
    /// announcing decisions one by one costs no full copy each).
    generation: watch::Sender<u64>,
    /// The rank the next announced decision gets: after everything active.
    next_rank: AtomicU64,
    /// How far a destination may be widened to fit a budget; `None`: never.
    widen: Option<WidenGuard>,
    refusals: mpsc::Sender<PeerRefusal>,
    reports_dropped: AtomicU64,
}

/// How often expiry is checked: a decision is withdrawn at most this long after it expires.
const EXPIRY_TICK: Duration = Duration::from_millis(100);

fn wall_clock() -> EventTime {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    EventTime::from_unix_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        self.decisions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, _changed: &Active) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Every active route in priority order: the first ones fill a peer's budget.
    fn routes(&self) -> Vec<Route> {
        let d = self.lock();
        let mut entries: Vec<&Entry> = d.values().collect();
        entries.sort_by_key(|e| e.rank);
        entries.into_iter().flat_map(|e| e.routes.iter().cloned()).collect()
    }

    /// Withdraws the decisions expired at `now`.
    fn expire(&self, now: EventTime) -> Vec<DecisionId> {
        let mut d = self.lock();
        let expired: Vec<DecisionId> =
            d.iter().filter(|(_, e)| e.expires.is_some_and(|t| t <= now)).map(|(id, _)| *id).collect();
        if !expired.is_empty() {
            for id in &expired {
                d.remove(id);
            }
            self.publish(&d);
        }
        expired
    }
}

impl Speaker {
    /// Starts one task per peer (and the listener, when configured); over budget, routes are
    /// dropped by priority, never widened.
    pub async fn start(config: SpeakerConfig) -> Result<Speaker, DriverError> {
        Speaker::start_with(config, None).await
    }

    /// [`Speaker::start`], aggregating over budget as far as `widen` allows.
    pub async fn start_with(
        config: SpeakerConfig,
        widen: Option<WidenGuard>,
    ) -> Result<Speaker, DriverError> {
        let mut keys = Vec::with_capacity(config.peers.len());
        for peer in &config.peers {
            peer.check().map_err(DriverError::Config)?;
            keys.push(peer.md5_key().map_err(DriverError::Config)?);
        }
        let (generation, _) = watch::channel(0u64);
        let (refusals, refusals_rx) = mpsc::channel(REFUSAL_QUEUE);
        let shared = Arc::new(Shared {
            decisions: Mutex::new(BTreeMap::new()),
            generation,
            next_rank: AtomicU64::new(0),
            widen,
            refusals,
            reports_dropped: AtomicU64::new(0),
        });
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut status = Vec::new();
        let mut inbound = Vec::new();
        for (peer, md5) in config.peers.iter().zip(&keys) {
            let (tx, rx) = mpsc::channel::<TcpStream>(1);
            inbound.push((peer.address, tx));
            let s = Arc::new(Mutex::new(PeerStatus {
                name: peer.name.clone(),
                state: State::Idle,
                routes: 0,
                established_count: 0,
                refused_total: 0,
                refusals: RefusalCounts::default(),
                last_refused: Vec::new(),
                last_error: None,
            }));
            status.push(s.clone());
            let task = PeerTask {
                session: Session::new(peer.session(&config)),
                peer: peer.clone(),
                md5: md5.clone(),
                shared: shared.clone(),
                desired: shared.generation.subscribe(),
                stop: stop.subscribe(),
                inbound: rx,
                status: s,
            };
            tasks.push(tokio::spawn(task.run()));
        }
        let keep: Vec<_> = inbound.iter().map(|(_, tx)| tx.clone()).collect();
        if let Some(addr) = config.listen {
            let peer_keys: Vec<(IpAddr, &Md5Key)> = config
                .peers
                .iter()
                .zip(&keys)
                .filter_map(|(p, k)| k.as_ref().map(|k| (p.address, k)))
                .collect();
            let listener = listen(addr, &peer_keys)?;
            let mut stop_rx = stop.subscribe();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, remote)) = accepted else { continue };
                            // Connections from addresses that are not peers are dropped.
                            if let Some((_, tx)) = inbound.iter().find(|(a, _)| *a == remote.ip()) {
                                let _ = tx.try_send(stream);
                            }
                        }
                        _ = stop_rx.changed() => return,
                    }
                }
            }));
        }
        let expiry = shared.clone();
        let mut stop_rx = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            loop {
                tokio::select! {
                    _ = tick.tick() => { expiry.expire(wall_clock()); }
                    _ = stop_rx.changed() => return,
                }
            }
        }));
        Ok(Speaker {
            shared,
            stop,
            status,
            tasks: Mutex::new(tasks),
            _inbound: keep,
            refusals: Mutex::new(Some(refusals_rx)),
        })
    }

    /// The reports of routes left out (once: the first caller gets the receiver).
    pub fn take_refusals(&self) -> Option<mpsc::Receiver<PeerRefusal>> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Refusal reports dropped because nobody took them fast enough.
    pub fn reports_dropped(&self) -> u64 {
        self.shared.reports_dropped.load(Ordering::Relaxed)
    }

    /// Adds (or replaces) a decision's routes at every peer, after every active decision in
    /// priority (a replaced one keeps its place); one already expired is not announced, and
    /// each is withdrawn when it expires.
    pub fn announce(&self, decision: &Decision) -> Result<(), RouteError> {
        let routes = Route::from_decision(decision)?;
        let mut d = self.shared.lock();
        if decision.expires.is_some_and(|e| e <= wall_clock()) {
            d.remove(&decision.id);
        } else {
            let rank = match d.get(&decision.id) {
                Some(e) => e.rank,
                None => self.shared.next_rank.fetch_add(1, Ordering::Relaxed),
            };
            d.insert(decision.id, Entry { expires: decision.expires, routes, rank });
        }
        self.shared.publish(&d);
        Ok(())
    }

    /// Withdraws a decision's routes from every peer.
    pub fn withdraw(&self, id: DecisionId) {
        let mut d = self.shared.lock();
        if d.remove(&id).is_some() {
            self.shared.publish(&d);
        }
    }

    /// Makes every peer hold exactly the routes of the unexpired `decisions`, given in
    /// priority order (when a peer's budget is full, the first ones stay); returns the
    /// decisions that give no route, with why.
    pub fn set_active(&self, decisions: &[Decision]) -> Vec<(DecisionId, RouteError)> {
        let now = wall_clock();
        let mut next = BTreeMap::new();
        let mut errors = Vec::new();
        let base = self.shared.next_rank.fetch_add(decisions.len() as u64, Ordering::Relaxed);
        for (i, decision) in decisions.iter().enumerate().filter(|(_, d)| d.expires.is_none_or(|e| now < e)) {
            match Route::from_decision(decision) {
                Ok(routes) => {
                    next.insert(
                        decision.id,
                        Entry { expires: decision.expires, routes, rank: base + i as u64 },
                    );
                }
                Err(e) => errors.push((decision.id, e)),
            }
        }
        let mut d = self.shared.lock();
        *d = next;
        self.shared.publish(&d);
        errors
    }

    /// Withdraws what has expired at `now` (the driver also does this every 100 ms).
    pub fn expire(&self, now: EventTime) -> Vec<DecisionId> {
        self.shared.expire(now)
    }

    pub fn status(&self) -> Vec<PeerStatus> {
        self.status.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone()).collect()
    }

    /// A clean shutdown: every established session withdraws its routes (or relies on
    /// graceful restart) and sends Cease; waits at most `grace` for the peers.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

struct PeerTask {
    session: Session,
    peer: PeerConfig,
    /// The TCP-MD5 key of the peer's connections, read once at start.
    md5: Option<Md5Key>,
    shared: Arc<Shared>,
    desired: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    inbound: mpsc::Receiver<TcpStream>,
    status: Arc<Mutex<PeerStatus>>,
}

enum Ended {
    Stop,
    Lost,
}

impl PeerTask {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *self.stop.borrow() {
                return;
            }
            self.session.connecting(self.peer.mode == ConnectMode::Active);
            self.update_status(None);
            let stream = tokio::select! {
                s = connect(&self.peer, self.md5.as_ref()), if self.peer.mode == ConnectMode::Active => s,
                s = self.inbound.recv() => s.ok_or_else(|| "listener gone".to_string()),
                _ = self.stop.changed() => return,
            };
            match stream {
                Ok(stream) => {
                    let established_before = self.session.stats().established_count;
                    match self.serve(stream).await {
                        Ended::Stop => return,
                        Ended::Lost => {}
                    }
                    if self.session.stats().established_count > established_before {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(e) => self.update_status(Some(e)),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                s = self.inbound.recv(), if self.peer.mode == ConnectMode::Active => {
                    if let Some(stream) = s && let Ended::Stop = self.serve(stream).await {
                        return;
                    }
                }
                _ = self.stop.changed() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Runs one connection until it ends.
    async fn serve(&mut self, stream: TcpStream) -> Ended {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer_task = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        self.session.connected(Instant::now());
        self.desired.borrow_and_update();
        self.apply();
        let mut buf = vec![0u8; 64 * 1024];
        let ended = loop {
            if let Some(end) = self.pump(&out_tx) {
                break end;
            }
            let deadline = self.session.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        self.session.closed();
                        break Ended::Lost;
                    }
                    Ok(n) => self.session.received(&buf[..n], Instant::now()),
                },
                _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } else { std::future::pending().await } } => {
                    self.session.handle_timeout(Instant::now());
                }
                changed = self.desired.changed() => {
                    if changed.is_ok() {
                        self.desired.borrow_and_update();
                        self.apply();
                    }
                }
                _ = self.stop.changed() => {
                    self.session.shutdown();
                    self.pump(&out_tx);
                    break Ended::Stop;
                }
            }
        };
        drop(out_tx);
        // Let the writer finish what was queued (withdrawals, NOTIFICATION), but not forever.
        let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
        self.update_status(None);
        ended
    }

    fn apply(&mut self) {
        let refused = self.session.set_routes_within(self.shared.routes(), self.shared.widen.as_ref());
        for refused in refused {
            let report = PeerRefusal { peer: self.peer.name.clone(), budget: self.peer.rule_budget, refused };
            if self.shared.refusals.try_send(report).is_err() {
                self.shared.reports_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.last_refused = self.session.rib().left_out();
        drop(s);
        self.update_status(None);
    }

    /// Writes what the session queued and handles its events; `Some` when the connection
    /// must end.
    fn pump(&mut self, out: &mpsc::UnboundedSender<Vec<u8>>) -> Option<Ended> {
        while let Some(bytes) = self.session.poll_transmit() {
            let _ = out.send(bytes);
        }
        let mut end = None;
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Established(_) => self.update_status(None),
                Event::Closed(reason) => {
                    self.update_status(Some(format!("closed: {reason:?}")));
                    end = Some(Ended::Lost);
                }
                Event::Unsendable { decision, error } => {
                    self.update_status(Some(format!("decision {}: {error}", decision.0)))
                }
            }
        }
        end
    }

    fn update_status(&self, error: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = self.session.state();
        s.routes = self.session.rib().len();
        s.established_count = self.session.stats().established_count;
        s.refused_total = self.session.rib().refused_total();
        s.refusals = self.session.rib().refusal_counts();
        if error.is_some() {
            s.last_error = error;
        }
    }
}

/// The listening socket for passive (and inbound) connections, keyed for every peer with a
/// TCP-MD5 password before it listens, so no SYN of such a peer is taken unsigned.
fn listen(addr: SocketAddr, keys: &[(IpAddr, &Md5Key)]) -> Result<TcpListener, DriverError> {
    let bind = |source| DriverError::Bind { addr, source };
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(bind)?;
    socket.set_reuseaddr(true).map_err(bind)?;
    socket.bind(addr).map_err(bind)?;
    for (peer, key) in keys {
        if addr.is_ipv4() && peer.is_ipv6() {
            return Err(DriverError::Config(format!(
                "peer {peer} is IPv6 but `listen` ({addr}) is IPv4: its TCP-MD5 key cannot be set"
            )));
        }
        rampart_filter::sockopt::set_tcp_md5sig(socket.as_fd(), *peer, key.expose()).map_err(|e| {
            DriverError::Config(format!("TCP-MD5 key for {peer} on the listener {addr}: {e}"))
        })?;
    }
    socket.listen(1024).map_err(bind)
}

async fn connect(peer: &PeerConfig, md5: Option<&Md5Key>) -> Result<TcpStream, String> {
    let remote = SocketAddr::new(peer.address, peer.port);
    let socket = if remote.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| format!("socket for {remote}: {e}"))?;
    if let Some(local) = peer.local_address {
        socket.bind(SocketAddr::new(local, 0)).map_err(|e| format!("bind {local}: {e}"))?;
    }
    // Before connect: the SYN itself must be signed, or the peer's kernel drops it.
    if let Some(key) = md5 {
        rampart_filter::sockopt::set_tcp_md5sig(socket.as_fd(), peer.address, key.expose())
            .map_err(|e| format!("TCP-MD5 key for {remote}: {e}"))?;
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("connect {remote}: {e}")),
        // No answer at all: the peer is down or filtered, or its kernel dropped the SYN for
        // a TCP-MD5 password that is missing, extra or wrong on one side.
        Err(_) => Err(format!(
            "connect {remote}: timed out (no answer; with TCP-MD5, check the password on both sides)"
        )),
    }
}
