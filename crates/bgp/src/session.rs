//! The BGP session state machine (RFC 4271 section 8), without I/O: the driver reports the
//! transport (`connected`, `received`, `closed`) and the time; the session answers with bytes
//! to send ([`Session::poll_transmit`]), events ([`Session::poll_event`]) and when it next
//! needs the clock ([`Session::poll_timeout`]). It owns the peer's Adj-RIB-Out: a session
//! coming up is sent every active route then End-of-RIB, changes are sent as they happen, a
//! route refresh is answered with the whole table, and a clean shutdown withdraws everything
//! (or, with graceful restart, leaves the routes to the peer's restart timer).

use std::collections::{BTreeSet, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use rampart_contract::DecisionId;

use crate::budget::WidenGuard;
use crate::community::{Community, LargeCommunity, RedirectIpEncoding};
use crate::error::CodecError;
use crate::family::Family;
use crate::message::{Capability, GrFamily, Message, Notification, Open};
use crate::rib::{AdjRibOut, Refused};
use crate::route::{Encoding, Route, RouteError, end_of_rib};

/// RFC 4271 section 8.2.2 states. Connect and Active belong to the driver's transport; the
/// session records them so status reads true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// One peer's session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds (0 disables keepalives; otherwise at least 3).
    pub hold_time: u16,
    /// Families offered; routes of others are not sent.
    pub families: Vec<Family>,
    /// Advertise graceful restart with this restart time (seconds), and rely on it at shutdown.
    pub graceful_restart: Option<u16>,
    pub blackhole_next_hop_v4: Option<Ipv4Addr>,
    pub blackhole_next_hop_v6: Option<Ipv6Addr>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub redirect_ip: RedirectIpEncoding,
    /// The most routes this peer is sent.
    pub rule_budget: usize,
}

/// What was agreed with the peer's OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub hold_time: u16,
    pub as4: bool,
    pub families: BTreeSet<Family>,
    pub route_refresh: bool,
    /// The peer's graceful-restart time, when it advertised the capability.
    pub peer_restart_time: Option<u16>,
    pub peer_router_id: Ipv4Addr,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    /// The peer sent a NOTIFICATION.
    PeerNotification(Notification),
    /// We sent one (error code, subcode).
    SentNotification(Notification),
    /// The transport closed.
    TransportClosed,
    /// A clean local shutdown.
    Shutdown,
}

/// Something the driver or its caller should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Established(Negotiated),
    /// The driver should close the transport once the queued bytes are written.
    Closed(CloseReason),
    /// Routes that could not be encoded for this peer (missing next hop and the like).
    Unsendable {
        decision: DecisionId,
        error: RouteError,
    },
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub updates_sent: u64,
    pub updates_received: u64,
    pub undecodable_updates: u64,
    pub established_count: u64,
}

/// Keepalive and hold time before the OPEN exchange ends (RFC 4271 suggests 4 minutes).
const OPEN_HOLD: Duration = Duration::from_secs(240);

/// A BGP session with one peer.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    rib: AdjRibOut,
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    negotiated: Option<Negotiated>,
    hold_deadline: Option<Instant>,
    keepalive_due: Option<Instant>,
    /// No session has been established yet by this process (the restart bit of GR).
    first_session: bool,
    stats: SessionStats,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        let rib = AdjRibOut::new(config.rule_budget);
        Session {
            config,
            state: State::Idle,
            rib,
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            negotiated: None,
            hold_deadline: None,
            keepalive_due: None,
            first_session: true,
            stats: SessionStats::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    pub fn rib(&self) -> &AdjRibOut {
        &self.rib
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The driver started connecting (active) or listening (passive).
    pub fn connecting(&mut self, active: bool) {
        if matches!(self.state, State::Idle | State::Connect | State::Active) {
            self.state = if active { State::Connect } else { State::Active };
        }
    }

    /// The transport is up: send OPEN.
    pub fn connected(&mut self, now: Instant) {
        self.reset_connection();
        let open = self.open();
        self.send(Message::Open(open));
        self.state = State::OpenSent;
        self.hold_deadline = Some(now + OPEN_HOLD);
    }

    fn open(&self) -> Open {
        let mut caps: Vec<Capability> =
            self.config.families.iter().map(|f| Capability::multiprotocol(*f)).collect();
        caps.push(Capability::RouteRefresh);
        if let Some(time) = self.config.graceful_restart {
            let families = self
                .config
                .families
                .iter()
                .map(|f| {
                    let (afi, safi) = f.afi_safi();
                    // Forwarding state here is the routes at the router: kept across our restart.
                    GrFamily { afi, safi, forwarding: !self.first_session }
                })
                .collect();
            caps.push(Capability::GracefulRestart { restarting: self.first_session, time, families });
        }
        Open::new(self.config.local_as, self.config.hold_time, self.config.router_id, caps)
    }

    /// The transport closed or failed.
    pub fn closed(&mut self) {
        if self.state != State::Idle {
            self.events.push_back(Event::Closed(CloseReason::TransportClosed));
        }
        self.reset_connection();
        self.state = State::Idle;
    }

    fn reset_connection(&mut self) {
        self.rx.clear();
        self.tx.clear();
        self.negotiated = None;
        self.hold_deadline = None;
        self.keepalive_due = None;
        self.rib.clear_changes();
    }

    /// Bytes read from the transport.
    pub fn received(&mut self, bytes: &[u8], now: Instant) {
        if matches!(self.state, State::Idle | State::Connect | State::Active) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        let mut offset = 0;
        loop {
            let as4 = self.negotiated.as_ref().is_none_or(|n| n.as4);
            match Message::decode(&self.rx[offset..], as4) {
                Ok(Some((message, used))) => {
                    offset += used;
                    self.handle(message, now);
                    if self.state == State::Idle {
                        return;
                    }
                }
                Ok(None) => break,
                Err(
                    CodecError::Invalid { .. }
                    | CodecError::Truncated(_)
                    | CodecError::ComponentOrder { .. }
                    | CodecError::BadRate(_),
                ) if self.rx.get(offset + 18) == Some(&2) => {
                    // An UPDATE we cannot read: we install nothing a peer sends, so count it and
                    // go on rather than tear the session down (RFC 7606 spirit).
                    // The header was valid (decode checks it first), so its length is there.
                    let len = match (self.rx.get(offset + 16), self.rx.get(offset + 17)) {
                        (Some(hi), Some(lo)) => usize::from(u16::from_be_bytes([*hi, *lo])),
                        _ => return self.fail(Notification::FSM_ERROR, now),
                    };
                    offset += len;
                    self.stats.undecodable_updates += 1;
                    self.note_alive(now);
                }
                Err(CodecError::BadType(_)) => return self.fail((1, 3), now),
                Err(CodecError::BadMarker) => return self.fail((1, 1), now),
                Err(CodecError::BadLength(_)) => return self.fail((1, 2), now),
                Err(_) => return self.fail(Notification::FSM_ERROR, now),
            }
        }
        self.rx.drain(..offset);
    }

    fn handle(&mut self, message: Message, now: Instant) {
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.events.push_back(Event::Closed(CloseReason::PeerNotification(n)));
                self.reset_connection();
                self.state = State::Idle;
            }
            (State::OpenSent, Message::Open(open)) => self.on_open(open, now),
            (State::OpenConfirm, Message::Keepalive) => self.establish(now),
            (State::Established, Message::Keepalive) => self.note_alive(now),
            (State::Established, Message::Update(_)) => {
                self.stats.updates_received += 1;
                self.note_alive(now);
            }
            (State::Established, Message::RouteRefresh { afi, safi, subtype: 0 }) => {
                self.note_alive(now);
                if let Some(family) = Family::from_afi_safi(afi, safi)
                    && self.negotiated.as_ref().is_some_and(|n| n.families.contains(&family))
                {
                    let routes: Vec<Route> =
                        self.rib.routes().filter(|r| r.key.family() == family).cloned().collect();
                    self.announce_routes(&routes);
                }
            }
            (State::Established, Message::RouteRefresh { .. }) => self.note_alive(now),
            _ => self.fail(Notification::FSM_ERROR, now),
        }
    }

    fn on_open(&mut self, open: Open, now: Instant) {
        if open.asn() != self.config.peer_as {
            return self.fail((2, 2), now);
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return self.fail((2, 6), now);
        }
        if open.router_id == Ipv4Addr::UNSPECIFIED || open.router_id == self.config.router_id {
            return self.fail((2, 3), now);
        }
        let peer_families: BTreeSet<Family> = open
            .capabilities
            .iter()
            .filter_map(|c| {
                if let Capability::Multiprotocol { afi, safi } = c {
                    Family::from_afi_safi(*afi, *safi)
                } else {
                    None
                }
            })
            .collect();
        let any_mp = open.has(|c| matches!(c, Capability::Multiprotocol { .. }));
        let families = self
            .config
            .families
            .iter()
            .copied()
            // Without multiprotocol capabilities a peer speaks IPv4 unicast only (RFC 4760).
            .filter(|f| if any_mp { peer_families.contains(f) } else { *f == Family::Ipv4Unicast })
            .collect();
        let negotiated = Negotiated {
            hold_time: open.hold_time.min(self.config.hold_time),
            as4: open.has(|c| matches!(c, Capability::FourOctetAs(_))),
            families,
            route_refresh: open.has(|c| matches!(c, Capability::RouteRefresh)),
            peer_restart_time: open.capabilities.iter().find_map(|c| {
                if let Capability::GracefulRestart { time, .. } = c { Some(*time) } else { None }
            }),
            peer_router_id: open.router_id,
        };
        let hold = negotiated.hold_time;
        self.negotiated = Some(negotiated);
        self.send(Message::Keepalive);
        self.state = State::OpenConfirm;
        self.arm_timers(now, hold);
    }

    fn establish(&mut self, now: Instant) {
        self.state = State::Established;
        self.first_session = false;
        self.stats.established_count += 1;
        let Some(negotiated) = self.negotiated.clone() else { return };
        self.arm_timers(now, negotiated.hold_time);
        self.events.push_back(Event::Established(negotiated.clone()));
        self.rib.clear_changes();
        let routes: Vec<Route> = self.rib.routes().cloned().collect();
        self.announce_routes(&routes);
        for family in &negotiated.families {
            if let Ok(eor) = end_of_rib(*family) {
                self.tx.push_back(eor);
            }
        }
    }

    fn arm_timers(&mut self, now: Instant, hold: u16) {
        if hold == 0 {
            self.hold_deadline = None;
            self.keepalive_due = None;
        } else {
            self.hold_deadline = Some(now + Duration::from_secs(u64::from(hold)));
            self.keepalive_due = Some(now + Duration::from_secs(u64::from(hold / 3).max(1)));
        }
    }

    fn note_alive(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            self.hold_deadline = Some(now + Duration::from_secs(u64::from(n.hold_time)));
        }
    }

    /// Sends a NOTIFICATION and ends the session.
    fn fail(&mut self, code: (u8, u8), _now: Instant) {
        let n = Notification::new(code);
        self.tx.clear();
        self.send(Message::Notification(n.clone()));
        let tx = std::mem::take(&mut self.tx);
        self.reset_connection();
        self.tx = tx;
        self.state = State::Idle;
        self.events.push_back(Event::Closed(CloseReason::SentNotification(n)));
    }

    /// Timers: hold expiry ends the session, keepalives are due every third of the hold time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold_deadline.is_some_and(|d| now >= d) {
            return self.fail(Notification::HOLD_TIMER_EXPIRED, now);
        }
        if let Some(due) = self.keepalive_due
            && now >= due
            && matches!(self.state, State::OpenConfirm | State::Established)
        {
            self.send(Message::Keepalive);
            let hold = self.negotiated.as_ref().map_or(0, |n| n.hold_time);
            self.keepalive_due = Some(now + Duration::from_secs(u64::from(hold / 3).max(1)));
        }
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.hold_deadline, self.keepalive_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Makes the peer's table exactly `routes` (priority order); returns what was newly left
    /// out (no route is widened: see [`Session::set_routes_within`]).
    pub fn set_routes(&mut self, routes: Vec<Route>) -> Vec<Refused> {
        self.set_routes_within(routes, None)
    }

    /// Makes the peer's table exactly `routes` (priority order), aggregating over budget as
    /// far as `widen` allows; returns what was newly left out.
    pub fn set_routes_within(&mut self, routes: Vec<Route>, widen: Option<&WidenGuard>) -> Vec<Refused> {
        let refused = self.rib.set(routes, widen);
        self.flush();
        refused
    }

    /// Adds one route.
    pub fn announce(&mut self, route: Route) -> Result<(), Refused> {
        self.rib.insert(route)?;
        self.flush();
        Ok(())
    }

    /// Withdraws every route of a decision.
    pub fn withdraw(&mut self, decision: DecisionId) {
        self.rib.remove_decision(decision);
        self.flush();
    }

    /// A clean shutdown: withdraw everything and send Cease, or, with graceful restart, leave
    /// the routes to the peer's restart timer and just close.
    pub fn shutdown(&mut self) {
        if self.state == State::Established && self.config.graceful_restart.is_none() {
            let keys: Vec<_> = self.rib.routes().map(|r| r.key.clone()).collect();
            self.withdraw_keys(&keys);
        }
        if self.config.graceful_restart.is_none()
            && matches!(self.state, State::OpenSent | State::OpenConfirm | State::Established)
        {
            self.send(Message::Notification(Notification::new(Notification::CEASE_ADMIN_SHUTDOWN)));
        }
        let tx = std::mem::take(&mut self.tx);
        self.reset_connection();
        self.tx = tx;
        self.state = State::Idle;
        self.events.push_back(Event::Closed(CloseReason::Shutdown));
    }

    fn flush(&mut self) {
        if self.state != State::Established {
            return;
        }
        let (announce, withdraw) = self.rib.take_changes();
        self.withdraw_keys(&withdraw);
        self.announce_routes(&announce);
    }

    fn encoding(&self) -> Option<(Encoding, BTreeSet<Family>)> {
        let n = self.negotiated.as_ref()?;
        let c = &self.config;
        Some((
            Encoding {
                local_as: c.local_as,
                ebgp: c.local_as != c.peer_as,
                as4: n.as4,
                blackhole_next_hop_v4: c.blackhole_next_hop_v4,
                blackhole_next_hop_v6: c.blackhole_next_hop_v6,
                communities: c.communities.clone(),
                large_communities: c.large_communities.clone(),
                redirect_ip: c.redirect_ip,
            },
            n.families.clone(),
        ))
    }

    fn announce_routes(&mut self, routes: &[Route]) {
        let Some((encoding, families)) = self.encoding() else { return };
        let mut out = Vec::new();
        for route in routes.iter().filter(|r| families.contains(&r.key.family())) {
            match encoding.announce(route) {
                Ok(bytes) => out.push(bytes),
                Err(error) => self.events.push_back(Event::Unsendable { decision: route.decision, error }),
            }
        }
        self.stats.updates_sent += out.len() as u64;
        self.tx.extend(out);
    }

    fn withdraw_keys(&mut self, keys: &[crate::route::RouteKey]) {
        let Some((encoding, families)) = self.encoding() else { return };
        let keys: Vec<_> = keys.iter().filter(|k| families.contains(&k.family())).collect();
        match encoding.withdraw(keys) {
            Ok(updates) => {
                self.stats.updates_sent += updates.len() as u64;
                self.tx.extend(updates);
            }
            Err(error) => self.events.push_back(Event::Unsendable { decision: DecisionId(0), error }),
        }
    }

    fn send(&mut self, message: Message) {
        let as4 = self.negotiated.as_ref().is_none_or(|n| n.as4);
        // Only OPEN, KEEPALIVE and NOTIFICATION pass here; they always fit.
        if let Ok(bytes) = message.encode(as4) {
            self.tx.push_back(bytes);
        }
    }
}
