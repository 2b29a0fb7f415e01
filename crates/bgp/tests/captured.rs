//! UPDATEs encoded by the routers themselves, decoded by Rampart's codec: BIRD (static flow
//! routes) and GoBGP (rules added with its CLI) connect to a session driven here by hand, and
//! the FlowSpec rules and actions they send must decode to exactly what was configured.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_bgp::attr::{Nlri, PathAttribute};
use rampart_bgp::community::{ExtCommunity, Rate, RedirectIpEncoding};
use rampart_bgp::family::Family;
use rampart_bgp::flowspec::{
    BitmaskKind, Component, FlowAfi, FlowPrefix, FlowRule, NumericKind, NumericOp, port_ops, tcp_flag_ops,
};
use rampart_bgp::message::Message;
use rampart_bgp::session::{Session, SessionConfig};
use rampart_contract::{PortRange, RouteTarget, TcpFlags};
use support::*;

/// Accepts one connection from the router on `listener` and runs a session with it until
/// `done` says the collected (rule, extended communities) pairs are complete.
fn collect(
    listener: &TcpListener,
    peer_as: u32,
    done: impl Fn(&[(FlowRule, Vec<ExtCommunity>)]) -> bool,
) -> Vec<(FlowRule, Vec<ExtCommunity>)> {
    listener.set_nonblocking(true).unwrap();
    let (mut stream, _) = wait_until(Duration::from_secs(20), "the router connects", || {
        listener.accept().map_err(|e| e.to_string())
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut session = Session::new(SessionConfig {
        local_as: 64512,
        peer_as,
        router_id: std::net::Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 9,
        families: Family::ALL.to_vec(),
        graceful_restart: None,
        blackhole_next_hop_v4: None,
        blackhole_next_hop_v6: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        redirect_ip: RedirectIpEncoding::NextHop,
        rule_budget: 10,
    });
    session.connected(Instant::now());
    let mut captured = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        while let Some(bytes) = session.poll_transmit() {
            stream.write_all(&bytes).unwrap();
        }
        session.handle_timeout(Instant::now());
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                session.received(&buf[..n], Instant::now());
                pending.extend_from_slice(&buf[..n]);
                while let Some((message, used)) = Message::decode(&pending, true).unwrap() {
                    pending.drain(..used);
                    if let Message::Update(u) = message {
                        let ext: Vec<ExtCommunity> = u
                            .attributes
                            .iter()
                            .find_map(|a| {
                                if let PathAttribute::ExtCommunities(c) = a { Some(c.clone()) } else { None }
                            })
                            .unwrap_or_default();
                        for a in &u.attributes {
                            if let PathAttribute::MpReach(r) = a
                                && let Nlri::Flows(rules) = &r.nlri
                            {
                                captured.extend(rules.iter().map(|r| (r.clone(), ext.clone())));
                            }
                        }
                    }
                }
                if done(&captured) {
                    return captured;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading from the router: {e}"),
        }
    }
    panic!("router sent only {captured:#?}");
}

fn dst(prefix: &str) -> Component {
    Component::DstPrefix(FlowPrefix::new(prefix.parse().unwrap()))
}

fn num(kind: NumericKind, ops: Vec<NumericOp>) -> Component {
    Component::Numeric(kind, ops)
}

fn find<'a>(captured: &'a [(FlowRule, Vec<ExtCommunity>)], rule: &FlowRule) -> Option<&'a Vec<ExtCommunity>> {
    captured.iter().find(|(r, _)| r == rule).map(|(_, e)| e)
}

#[test]
fn bird_encoded_flow_routes_decode_exactly() {
    if !peer_available("bird") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let listener = TcpListener::bind(SocketAddr::from((rampart, 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"router id 192.0.2.254;
protocol device {{}}
flow4 table flowtab4;
flow6 table flowtab6;
protocol static f4 {{
  flow4 {{ table flowtab4; }};
  route flow4 {{ dst 203.0.113.1/32; proto 17; dport 1024..65535; sport 53; length 500..1500; }};
  route flow4 {{ dst 203.0.113.2/32; proto 6; dport 80; tcp flags 0x2/0x12; }};
}}
protocol static f6 {{
  flow6 {{ table flowtab6; }};
  route flow6 {{ dst 2001:db8:1::/48; next header 6; dport 443; }};
}}
protocol bgp rampart {{
  local {router} as 64513;
  neighbor {rampart} port {port} as 64512;
  multihop;
  hold time 9;
  flow4 {{ table flowtab4; import none; export filter {{ bgp_ext_community.add((generic, 0x80060000, 0x49742400)); accept; }}; }};
  flow6 {{ table flowtab6; import none; export filter {{ bgp_ext_community.add((generic, 0x80090000, 0x2e)); accept; }}; }};
}}
"#
    );
    std::fs::write(dir.path().join("bird.conf"), config).unwrap();
    let _bird = ChildGuard::spawn(
        "bird",
        Command::new("bird")
            .arg("-c")
            .arg(dir.path().join("bird.conf"))
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .arg("-f")
            .stderr(Stdio::null()),
    );
    let udp = FlowRule {
        afi: FlowAfi::Ipv4,
        components: vec![
            dst("203.0.113.1/32"),
            num(NumericKind::Protocol, vec![NumericOp::eq(17)]),
            num(NumericKind::DstPort, port_ops(&[PortRange { first: 1024, last: 65535 }])),
            num(NumericKind::SrcPort, vec![NumericOp::eq(53)]),
            num(NumericKind::PacketLength, port_ops(&[PortRange { first: 500, last: 1500 }])),
        ],
    };
    let syn = FlowRule {
        afi: FlowAfi::Ipv4,
        components: vec![
            dst("203.0.113.2/32"),
            num(NumericKind::Protocol, vec![NumericOp::eq(6)]),
            num(NumericKind::DstPort, vec![NumericOp::eq(80)]),
            Component::Bitmask(BitmaskKind::TcpFlags, tcp_flag_ops(TcpFlags { value: 0x02, mask: 0x12 })),
        ],
    };
    let v6 = FlowRule {
        afi: FlowAfi::Ipv6,
        components: vec![
            dst("2001:db8:1::/48"),
            num(NumericKind::Protocol, vec![NumericOp::eq(6)]),
            num(NumericKind::DstPort, vec![NumericOp::eq(443)]),
        ],
    };
    let wanted = [udp.clone(), syn.clone(), v6.clone()];
    let captured = collect(&listener, 64513, |c| wanted.iter().all(|w| find(c, w).is_some()));
    let rate = vec![ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::new(1_000_000.0).unwrap() }];
    assert_eq!(find(&captured, &udp), Some(&rate));
    assert_eq!(find(&captured, &syn), Some(&rate));
    assert_eq!(find(&captured, &v6), Some(&vec![ExtCommunity::TrafficMarking { dscp: 46 }]));
}

#[test]
fn gobgp_encoded_flow_routes_decode_exactly() {
    if !peer_available("gobgpd") || !peer_available("gobgp") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let listener = TcpListener::bind(SocketAddr::from((rampart, 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let api_port = free_port(router);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[global.config]
  as = 64513
  router-id = "192.0.2.253"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{rampart}"
    peer-as = 64512
  [neighbors.transport.config]
    local-address = "{router}"
    remote-port = {port}
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 5
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-flowspec"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-flowspec"
"#
    );
    std::fs::write(dir.path().join("gobgpd.toml"), config).unwrap();
    let _gobgpd = ChildGuard::spawn(
        "gobgpd",
        Command::new("gobgpd")
            .arg("-f")
            .arg(dir.path().join("gobgpd.toml"))
            .arg("--api-hosts")
            .arg(format!("{router}:{api_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let gobgp = |args: &str| {
        wait_until(Duration::from_secs(10), &format!("gobgp {args}"), || {
            let out = Command::new("gobgp")
                .args(["-u", &router.to_string(), "-p", &api_port.to_string()])
                .args(args.split(' '))
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
        })
    };
    gobgp(
        "global rib -a ipv4-flowspec add match destination 203.0.113.1/32 protocol udp source-port ==53 then rate-limit 1000000",
    );
    gobgp(
        "global rib -a ipv4-flowspec add match destination 203.0.113.2/32 protocol tcp destination-port ==80 then redirect 64512:100",
    );
    gobgp("global rib -a ipv4-flowspec add match destination 203.0.113.3/32 then discard");
    gobgp("global rib -a ipv6-flowspec add match destination 2001:db8:1::/48 then mark 46");
    let udp = FlowRule {
        afi: FlowAfi::Ipv4,
        components: vec![
            dst("203.0.113.1/32"),
            num(NumericKind::Protocol, vec![NumericOp::eq(17)]),
            num(NumericKind::SrcPort, vec![NumericOp::eq(53)]),
        ],
    };
    let tcp = FlowRule {
        afi: FlowAfi::Ipv4,
        components: vec![
            dst("203.0.113.2/32"),
            num(NumericKind::Protocol, vec![NumericOp::eq(6)]),
            num(NumericKind::DstPort, vec![NumericOp::eq(80)]),
        ],
    };
    let discard = FlowRule { afi: FlowAfi::Ipv4, components: vec![dst("203.0.113.3/32")] };
    let v6 = FlowRule { afi: FlowAfi::Ipv6, components: vec![dst("2001:db8:1::/48")] };
    let wanted = [udp.clone(), tcp.clone(), discard.clone(), v6.clone()];
    let captured = collect(&listener, 64513, |c| wanted.iter().all(|w| find(c, w).is_some()));
    assert_eq!(
        find(&captured, &udp),
        Some(&vec![ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::new(1_000_000.0).unwrap() }])
    );
    assert_eq!(
        find(&captured, &tcp),
        Some(&vec![ExtCommunity::RedirectVrf(RouteTarget::As2 { asn: 64512, value: 100 })])
    );
    assert_eq!(
        find(&captured, &discard),
        Some(&vec![ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::ZERO }])
    );
    assert_eq!(find(&captured, &v6), Some(&vec![ExtCommunity::TrafficMarking { dscp: 46 }]));
}
