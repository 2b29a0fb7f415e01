//! Two session state machines driven against each other in simulated time (quinn's
//! `Pair::drive` pattern): Rampart's speaker on one side, a session standing in for the router
//! on the other, whose received routes the test tracks by decoding what crosses the wire.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rampart_bgp::attr::{Nlri, PathAttribute};
use rampart_bgp::community::RedirectIpEncoding;
use rampart_bgp::family::Family;
use rampart_bgp::message::{Message, Notification};
use rampart_bgp::rib::Refusal;
use rampart_bgp::route::{Route, RouteKey};
use rampart_bgp::session::{CloseReason, Event, Session, SessionConfig, State};
use rampart_contract::{
    Action, AttackId, Decision, DecisionId, EventTime, Origin, PortRange, Scope, Signature,
};

fn config(local_as: u32, peer_as: u32, id: u8, families: Vec<Family>) -> SessionConfig {
    SessionConfig {
        local_as,
        peer_as,
        router_id: Ipv4Addr::new(192, 0, 2, id),
        hold_time: 9,
        families,
        graceful_restart: None,
        blackhole_next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 66)),
        blackhole_next_hop_v6: Some("2001:db8::66".parse().unwrap()),
        communities: Vec::new(),
        large_communities: Vec::new(),
        redirect_ip: RedirectIpEncoding::NextHop,
        rule_budget: 100,
    }
}

struct Pair {
    now: Instant,
    speaker: Session,
    router: Session,
    /// What the router holds from the speaker.
    table: BTreeSet<RouteKey>,
    end_of_ribs: usize,
    received: Vec<Message>,
    /// Drop what the router sends (a dead peer).
    router_mute: bool,
}

impl Pair {
    fn new(speaker: SessionConfig, router: SessionConfig) -> Pair {
        let mut pair = Pair {
            now: Instant::now(),
            speaker: Session::new(speaker),
            router: Session::new(router),
            table: BTreeSet::new(),
            end_of_ribs: 0,
            received: Vec::new(),
            router_mute: false,
        };
        pair.connect();
        pair
    }

    fn connect(&mut self) {
        self.speaker.connected(self.now);
        self.router.connected(self.now);
        self.drive();
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.speaker.poll_transmit() {
                moved = true;
                self.observe(&bytes);
                self.router.received(&bytes, self.now);
            }
            while let Some(bytes) = self.router.poll_transmit() {
                moved = true;
                if !self.router_mute {
                    self.speaker.received(&bytes, self.now);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances simulated time to `until`, firing timers on the way.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let next = [self.speaker.poll_timeout(), self.router.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.speaker.handle_timeout(self.now);
                    self.router.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn observe(&mut self, bytes: &[u8]) {
        let (message, _) = Message::decode(bytes, true).unwrap().unwrap();
        if let Message::Update(u) = &message {
            let mut any = false;
            for p in &u.withdrawn {
                any = true;
                self.table.remove(&RouteKey::Blackhole(IpNet::V4(*p)));
            }
            for p in &u.nlri {
                any = true;
                self.table.insert(RouteKey::Blackhole(IpNet::V4(*p)));
            }
            for a in &u.attributes {
                match a {
                    PathAttribute::MpReach(r) => {
                        any = true;
                        self.table.extend(keys(&r.nlri));
                    }
                    PathAttribute::MpUnreach(n) => {
                        for k in keys(n) {
                            any = true;
                            self.table.remove(&k);
                        }
                    }
                    _ => {}
                }
            }
            if !any {
                self.end_of_ribs += 1;
            }
        }
        self.received.push(message);
    }

    fn speaker_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.speaker.poll_event()).collect()
    }
}

fn keys(n: &Nlri) -> Vec<RouteKey> {
    match n {
        Nlri::Prefixes(p) => p.iter().map(|p| RouteKey::Blackhole(*p)).collect(),
        Nlri::Flows(f) => f.iter().cloned().map(RouteKey::Flow).collect(),
        Nlri::Other { .. } => Vec::new(),
    }
}

fn decision(id: u64, scope: Scope, action: Action) -> Decision {
    Decision {
        id: DecisionId(id),
        scope,
        action,
        origin: Origin::Attack { attack: AttackId(id) },
        created: EventTime::from_unix_secs(1),
        expires: None,
        reason: "test".into(),
    }
}

fn routes() -> Vec<Route> {
    let flood = Signature {
        dst_prefixes: vec!["203.0.113.10/32".parse().unwrap()],
        protocol: Some(17),
        src_ports: vec![PortRange::single(53)],
        ..Signature::default()
    };
    let mut out = Vec::new();
    for d in [
        decision(1, Scope::Signature(Box::new(flood)), Action::RateLimitBytes { bytes_per_sec: 1_000_000 }),
        decision(2, Scope::Address("198.51.100.7".parse().unwrap()), Action::Blackhole),
        decision(3, Scope::Prefix("2001:db8:1::/48".parse().unwrap()), Action::Discard),
        decision(4, Scope::Address("2001:db8::9".parse().unwrap()), Action::Blackhole),
    ] {
        out.extend(Route::from_decision(&d).unwrap());
    }
    out
}

fn all_keys(routes: &[Route]) -> BTreeSet<RouteKey> {
    routes.iter().map(|r| r.key.clone()).collect()
}

#[test]
fn session_up_sends_the_full_set_then_end_of_rib() {
    let mut speaker = Session::new(config(64512, 64513, 1, Family::ALL.to_vec()));
    speaker.set_routes(routes());
    let mut pair = Pair {
        now: Instant::now(),
        speaker,
        router: Session::new(config(64513, 64512, 2, Family::ALL.to_vec())),
        table: BTreeSet::new(),
        end_of_ribs: 0,
        received: Vec::new(),
        router_mute: false,
    };
    pair.connect();
    assert_eq!(pair.speaker.state(), State::Established);
    assert_eq!(pair.router.state(), State::Established);
    assert_eq!(pair.table, all_keys(&routes()));
    assert_eq!(pair.end_of_ribs, 4);
    let events = pair.speaker_events();
    assert!(
        matches!(&events[0], Event::Established(n) if n.as4 && n.families.len() == 4 && n.hold_time == 9)
    );
}

#[test]
fn changes_are_sent_as_they_happen_and_withdrawals_remove() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    assert!(pair.table.is_empty());
    let rs = routes();
    pair.speaker.set_routes(rs.clone());
    pair.drive();
    assert_eq!(pair.table, all_keys(&rs));
    pair.speaker.withdraw(DecisionId(2));
    pair.drive();
    assert!(!pair.table.contains(&RouteKey::Blackhole("198.51.100.7/32".parse().unwrap())));
    assert_eq!(pair.table.len(), rs.len() - 1);
    // Reconcile to a smaller set: exactly that set remains.
    pair.speaker.set_routes(rs[..1].to_vec());
    pair.drive();
    assert_eq!(pair.table, all_keys(&rs[..1]));
}

#[test]
fn keepalives_hold_the_session_and_a_silent_peer_expires() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    pair.advance(Duration::from_secs(600));
    assert_eq!(pair.speaker.state(), State::Established);
    let keepalives = pair.received.iter().filter(|m| matches!(m, Message::Keepalive)).count();
    assert!(keepalives >= 600 / 3, "{keepalives} keepalives in 10 minutes at hold 9");
    pair.speaker_events();
    pair.router_mute = true;
    pair.advance(Duration::from_secs(10));
    assert_eq!(pair.speaker.state(), State::Idle);
    assert!(pair.received.iter().any(
        |m| matches!(m, Message::Notification(n) if (n.code, n.subcode) == Notification::HOLD_TIMER_EXPIRED)
    ));
    let events = pair.speaker_events();
    assert!(events.iter().any(|e| matches!(e, Event::Closed(CloseReason::SentNotification(_)))));
}

#[test]
fn route_refresh_is_answered_with_the_whole_table() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    pair.speaker.set_routes(routes());
    pair.drive();
    let before = pair.received.len();
    pair.table.clear();
    let refresh = Message::RouteRefresh { afi: 1, subtype: 0, safi: 133 }.encode(true).unwrap();
    pair.speaker.received(&refresh, pair.now);
    pair.drive();
    let flows: BTreeSet<RouteKey> =
        routes().into_iter().filter(|r| r.key.family() == Family::Ipv4Flowspec).map(|r| r.key).collect();
    assert_eq!(pair.table, flows);
    assert_eq!(pair.received.len() - before, flows.len());
}

#[test]
fn clean_shutdown_withdraws_everything_unless_graceful_restart() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    pair.speaker.set_routes(routes());
    pair.drive();
    pair.speaker.shutdown();
    pair.drive();
    assert!(pair.table.is_empty());
    assert!(
        matches!(pair.received.last(), Some(Message::Notification(n)) if (n.code, n.subcode) == Notification::CEASE_ADMIN_SHUTDOWN)
    );
    assert_eq!(pair.router.state(), State::Idle);

    let mut gr = config(64512, 64513, 1, Family::ALL.to_vec());
    gr.graceful_restart = Some(120);
    let mut pair = Pair::new(gr, config(64513, 64512, 2, Family::ALL.to_vec()));
    pair.speaker.set_routes(routes());
    pair.drive();
    let before = pair.received.len();
    pair.speaker.shutdown();
    pair.drive();
    assert_eq!(pair.received.len(), before, "graceful restart: nothing sent, the routes stay");
    assert_eq!(pair.table, all_keys(&routes()));
    // Back up: the full set and End-of-RIB again, now with the forwarding bit set.
    pair.router.closed();
    pair.connect();
    assert_eq!(pair.speaker.state(), State::Established);
    assert_eq!(pair.table, all_keys(&routes()));
    let opens: Vec<_> = pair
        .received
        .iter()
        .filter_map(|m| if let Message::Open(o) = m { Some(o.clone()) } else { None })
        .collect();
    let gr_caps: Vec<_> = opens
        .iter()
        .map(|o| {
            o.capabilities
                .iter()
                .find_map(|c| match c {
                    rampart_bgp::message::Capability::GracefulRestart { restarting, families, .. } => {
                        Some((*restarting, families.iter().all(|f| f.forwarding)))
                    }
                    _ => None,
                })
                .unwrap()
        })
        .collect();
    assert_eq!(gr_caps, vec![(true, false), (false, true)]);
}

#[test]
fn the_rule_budget_refuses_and_says_so() {
    let mut c = config(64512, 64513, 1, Family::ALL.to_vec());
    c.rule_budget = 2;
    let mut pair = Pair::new(c, config(64513, 64512, 2, Family::ALL.to_vec()));
    let refused = pair.speaker.set_routes(routes());
    pair.drive();
    assert_eq!(refused.len(), routes().len() - 2);
    assert!(refused.iter().all(|r| r.why == Refusal::OverBudget));
    assert_eq!(pair.table.len(), 2);
    assert_eq!(pair.speaker.rib().refused_total(), refused.len() as u64);
}

#[test]
fn only_negotiated_families_are_sent() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, vec![Family::Ipv4Unicast, Family::Ipv4Flowspec]),
    );
    pair.speaker.set_routes(routes());
    pair.drive();
    assert!(pair.table.iter().all(|k| matches!(k.family(), Family::Ipv4Unicast | Family::Ipv4Flowspec)));
    assert_eq!(pair.table.len(), 2);
}

#[test]
fn wrong_peer_as_is_refused_with_a_notification() {
    let pair = Pair::new(
        config(64512, 65000, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    assert_eq!(pair.speaker.state(), State::Idle);
    assert!(
        pair.received.iter().any(|m| matches!(m, Message::Notification(n) if (n.code, n.subcode) == (2, 2)))
    );
}

#[test]
fn reconnecting_resends_the_active_set() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    pair.speaker.set_routes(routes());
    pair.drive();
    pair.speaker.closed();
    pair.router.closed();
    pair.table.clear();
    pair.speaker.withdraw(DecisionId(1)); // while down: nothing sent, the table remembers
    pair.connect();
    let mut want = all_keys(&routes());
    want.retain(|k| k.family() != Family::Ipv4Flowspec);
    assert_eq!(pair.table, want);
}

#[test]
fn an_unreadable_update_is_counted_not_fatal_and_garbage_framing_is() {
    let mut pair = Pair::new(
        config(64512, 64513, 1, Family::ALL.to_vec()),
        config(64513, 64512, 2, Family::ALL.to_vec()),
    );
    // MP_REACH for IPv4 FlowSpec whose components are out of order (protocol before destination).
    let nlri = [0x08, 0x03, 0x81, 0x11, 0x01, 0x18, 0xc0, 0x00, 0x02];
    let mut mp = vec![0x00, 0x01, 133, 0x00, 0x00];
    mp.extend_from_slice(&nlri);
    let mut attrs = vec![0x80, 14, mp.len() as u8];
    attrs.extend_from_slice(&mp);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    let mut wire = vec![0xff; 16];
    wire.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    wire.push(2);
    wire.extend_from_slice(&body);
    pair.speaker.received(&wire, pair.now);
    assert_eq!(pair.speaker.state(), State::Established);
    assert_eq!(pair.speaker.stats().undecodable_updates, 1);
    // A broken marker ends the session with a header error.
    pair.speaker.received(&[0u8; 19], pair.now);
    assert_eq!(pair.speaker.state(), State::Idle);
    pair.drive();
    assert!(pair.received.iter().any(|m| matches!(m, Message::Notification(n) if n.code == 1)));
}
