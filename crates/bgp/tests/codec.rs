//! Property tests of the codec: random and mutated input never panics; what Rampart encodes
//! decodes back to the same values, through its own decoder and through an independent one
//! (bgpkit-parser).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgpkit_parser::models::{
    AsnLength, AttributeValue, BgpMessage, BitmaskOperator, Community as KitCommunity, FlowSpecComponent,
    FlowSpecNlri, NetworkPrefix, NumericOperator, encode_flowspec_nlri, parse_flowspec_nlri,
};
use bgpkit_parser::parser::bgp::messages::parse_bgp_message;
use bytes::Bytes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use rampart_bgp::attr::{Nlri, PathAttribute};
use rampart_bgp::community::{Community, ExtCommunity, LargeCommunity, RedirectIpEncoding};
use rampart_bgp::flowspec::{
    BitmaskKind, BitmaskOp, Component, FlowAfi, FlowPrefix, FlowRule, NumericKind, NumericOp,
};
use rampart_bgp::message::{Capability, Message, Open};
use rampart_bgp::route::{Encoding, Route, RouteKey};
use rampart_contract::{
    Action, AttackId, Decision, DecisionId, EventTime, FragmentMatch, LengthRange, Origin, PortRange,
    RouteTarget, Scope, Signature, TcpFlags,
};

fn v4_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 1u8..=32).prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn v6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 1u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn ports() -> impl Strategy<Value = Vec<PortRange>> {
    prop::collection::vec(
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange { first: a.min(b), last: a.max(b) }),
        0..4,
    )
}

fn signature() -> impl Strategy<Value = Signature> {
    let v6 = any::<bool>();
    (
        v6,
        prop::collection::vec(v4_prefix(), 1..3),
        prop::collection::vec(v6_prefix(), 1..3),
        prop::option::of(any::<u8>()),
        ports(),
        ports(),
        prop::option::of((any::<u8>(), any::<u8>()).prop_map(|(value, mask)| TcpFlags { value, mask })),
        prop::option::of(prop::sample::select(vec![FragmentMatch::NonInitial, FragmentMatch::NotNonInitial])),
        prop::option::of(
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| LengthRange { min: a.min(b), max: a.max(b) }),
        ),
    )
        .prop_map(|(v6, p4, p6, protocol, dst_ports, src_ports, tcp_flags, fragment, packet_len)| {
            Signature {
                dst_prefixes: if v6 { p6 } else { p4 },
                protocol,
                dst_ports,
                src_ports,
                tcp_flags,
                fragment,
                packet_len,
                ..Signature::default()
            }
        })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Discard),
        any::<u64>().prop_map(|bytes_per_sec| Action::RateLimitBytes { bytes_per_sec }),
        any::<u64>().prop_map(|packets_per_sec| Action::RateLimitPackets { packets_per_sec }),
        (any::<u16>(), any::<u32>())
            .prop_map(|(asn, value)| Action::RedirectVrf { route_target: RouteTarget::As2 { asn, value } }),
        (any::<u32>(), any::<u16>())
            .prop_map(|(asn, value)| Action::RedirectVrf { route_target: RouteTarget::As4 { asn, value } }),
        (0u8..64).prop_map(|dscp| Action::Mark { dscp }),
        Just(Action::Blackhole),
    ]
}

fn decision(id: u64, scope: Scope, action: Action) -> Decision {
    Decision {
        id: DecisionId(id),
        scope,
        action,
        origin: Origin::Attack { attack: AttackId(1) },
        created: EventTime::from_unix_secs(1),
        expires: None,
        reason: "test".into(),
    }
}

fn encoding(as4: bool, redirect_ip: RedirectIpEncoding) -> Encoding {
    Encoding {
        local_as: 64512,
        ebgp: true,
        as4,
        blackhole_next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 66)),
        blackhole_next_hop_v6: Some("2001:db8::66".parse().unwrap()),
        communities: vec![Community::new(64512, 7)],
        large_communities: vec![LargeCommunity { global: 64512, local1: 1, local2: 2 }],
        redirect_ip,
    }
}

/// The MP_REACH value of an encoded UPDATE, found by walking the attributes with no help from
/// Rampart's decoder.
fn mp_reach_value(update: &[u8]) -> Option<&[u8]> {
    let body = &update[19..];
    let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
    let mut attrs = &body[4 + wlen..4 + wlen + alen];
    while attrs.len() >= 3 {
        let (flags, code) = (attrs[0], attrs[1]);
        let (len, head) = if flags & 0x10 != 0 {
            (usize::from(u16::from_be_bytes([attrs[2], attrs[3]])), 4)
        } else {
            (usize::from(attrs[2]), 3)
        };
        if code == 14 {
            return Some(&attrs[head..head + len]);
        }
        attrs = &attrs[head + len..];
    }
    None
}

fn kit_numeric(ops: &[NumericOp]) -> Vec<(bool, bool, bool, bool, bool, u64)> {
    ops.iter().enumerate().map(|(i, o)| (i + 1 == ops.len(), o.and, o.lt, o.gt, o.eq, o.value)).collect()
}

fn from_kit_numeric(ops: &[NumericOperator]) -> Vec<(bool, bool, bool, bool, bool, u64)> {
    ops.iter()
        .map(|o| (o.end_of_list, o.and_with_next, o.less_than, o.greater_than, o.equal, o.value))
        .collect()
}

fn kit_bitmask(ops: &[BitmaskOp]) -> Vec<(bool, bool, bool, bool, u64)> {
    ops.iter().enumerate().map(|(i, o)| (i + 1 == ops.len(), o.and, o.not, o.matches, o.value)).collect()
}

fn from_kit_bitmask(ops: &[BitmaskOperator]) -> Vec<(bool, bool, bool, bool, u64)> {
    ops.iter().map(|o| (o.end_of_list, o.and_with_next, o.not, o.match_flag, o.bitmask)).collect()
}

fn value_length(v: u64) -> u8 {
    match v {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

/// Our rule in bgpkit's model, for its encoder.
fn to_kit(rule: &FlowRule) -> FlowSpecNlri {
    let numeric = |ops: &[NumericOp]| {
        ops.iter()
            .enumerate()
            .map(|(i, o)| NumericOperator {
                end_of_list: i + 1 == ops.len(),
                and_with_next: o.and,
                value_length: value_length(o.value),
                less_than: o.lt,
                greater_than: o.gt,
                equal: o.eq,
                value: o.value,
            })
            .collect::<Vec<_>>()
    };
    let bitmask = |ops: &[BitmaskOp]| {
        ops.iter()
            .enumerate()
            .map(|(i, o)| BitmaskOperator {
                end_of_list: i + 1 == ops.len(),
                and_with_next: o.and,
                value_length: value_length(o.value),
                not: o.not,
                match_flag: o.matches,
                bitmask: o.value,
            })
            .collect::<Vec<_>>()
    };
    let components = rule
        .components
        .iter()
        .map(|c| match c {
            Component::DstPrefix(FlowPrefix::V6 { prefix, offset }) => {
                FlowSpecComponent::DestinationIpv6Prefix {
                    offset: *offset,
                    prefix: NetworkPrefix::new(IpNet::V6(*prefix), None),
                }
            }
            Component::SrcPrefix(FlowPrefix::V6 { prefix, offset }) => FlowSpecComponent::SourceIpv6Prefix {
                offset: *offset,
                prefix: NetworkPrefix::new(IpNet::V6(*prefix), None),
            },
            Component::DstPrefix(FlowPrefix::V4(p)) => {
                FlowSpecComponent::DestinationPrefix(NetworkPrefix::new(IpNet::V4(*p), None))
            }
            Component::SrcPrefix(FlowPrefix::V4(p)) => {
                FlowSpecComponent::SourcePrefix(NetworkPrefix::new(IpNet::V4(*p), None))
            }
            Component::Numeric(NumericKind::Protocol, o) => FlowSpecComponent::IpProtocol(numeric(o)),
            Component::Numeric(NumericKind::Port, o) => FlowSpecComponent::Port(numeric(o)),
            Component::Numeric(NumericKind::DstPort, o) => FlowSpecComponent::DestinationPort(numeric(o)),
            Component::Numeric(NumericKind::SrcPort, o) => FlowSpecComponent::SourcePort(numeric(o)),
            Component::Numeric(NumericKind::IcmpType, o) => FlowSpecComponent::IcmpType(numeric(o)),
            Component::Numeric(NumericKind::IcmpCode, o) => FlowSpecComponent::IcmpCode(numeric(o)),
            Component::Numeric(NumericKind::PacketLength, o) => FlowSpecComponent::PacketLength(numeric(o)),
            Component::Numeric(NumericKind::Dscp, o) => FlowSpecComponent::Dscp(numeric(o)),
            Component::Numeric(NumericKind::FlowLabel, o) => FlowSpecComponent::FlowLabel(numeric(o)),
            Component::Bitmask(BitmaskKind::TcpFlags, o) => FlowSpecComponent::TcpFlags(bitmask(o)),
            Component::Bitmask(BitmaskKind::Fragment, o) => FlowSpecComponent::Fragment(bitmask(o)),
        })
        .collect();
    FlowSpecNlri { components }
}

/// Our components and bgpkit's, compared field by field.
fn same_rule(ours: &FlowRule, theirs: &[FlowSpecComponent]) -> Result<(), TestCaseError> {
    prop_assert_eq!(ours.components.len(), theirs.len());
    for (a, b) in ours.components.iter().zip(theirs) {
        prop_assert_eq!(a.type_code(), b.component_type());
        match (a, b) {
            (Component::DstPrefix(FlowPrefix::V4(p)), FlowSpecComponent::DestinationPrefix(q)) => {
                prop_assert_eq!(IpNet::V4(*p), q.prefix)
            }
            (
                Component::DstPrefix(FlowPrefix::V6 { prefix, offset }),
                FlowSpecComponent::DestinationIpv6Prefix { offset: o, prefix: q },
            ) => {
                prop_assert_eq!(*offset, *o);
                prop_assert_eq!(IpNet::V6(*prefix), q.prefix);
            }
            (Component::Numeric(_, ops), FlowSpecComponent::IpProtocol(k))
            | (Component::Numeric(_, ops), FlowSpecComponent::DestinationPort(k))
            | (Component::Numeric(_, ops), FlowSpecComponent::SourcePort(k))
            | (Component::Numeric(_, ops), FlowSpecComponent::PacketLength(k)) => {
                prop_assert_eq!(kit_numeric(ops), from_kit_numeric(k))
            }
            (Component::Bitmask(_, ops), FlowSpecComponent::TcpFlags(k))
            | (Component::Bitmask(_, ops), FlowSpecComponent::Fragment(k)) => {
                prop_assert_eq!(kit_bitmask(ops), from_kit_bitmask(k))
            }
            (a, b) => prop_assert!(false, "unexpected pair {a:?} / {b:?}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), as4 in any::<bool>()) {
        let mut framed = vec![0xff; 16];
        framed.extend_from_slice(&((19 + bytes.len().min(4077)) as u16).to_be_bytes());
        framed.extend_from_slice(&bytes[..bytes.len().min(4078)]);
        let _ = Message::decode(&framed, as4);
        let _ = Message::decode(&bytes, as4);
    }

    #[test]
    fn decisions_round_trip_through_both_decoders(
        sig in signature(),
        action in action(),
        as4 in any::<bool>(),
        address_community in any::<bool>(),
        mutations in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let d = decision(9, Scope::Signature(Box::new(sig)), action);
        let routes = match Route::from_decision(&d) {
            Ok(r) => r,
            // Too many port ranges for one NLRI and the like: refused, not mangled.
            Err(_) => return Ok(()),
        };
        prop_assert!(!routes.is_empty());
        let enc = encoding(as4, if address_community { RedirectIpEncoding::AddressCommunity } else { RedirectIpEncoding::NextHop });
        for route in &routes {
            let wire = enc.announce(route).unwrap();
            let (msg, used) = Message::decode(&wire, as4).unwrap().unwrap();
            prop_assert_eq!(used, wire.len());
            let Message::Update(update) = msg else { panic!("not an update") };
            let communities: Vec<Community> = update.attributes.iter().find_map(|a| if let PathAttribute::Communities(c) = a { Some(c.clone()) } else { None }).unwrap_or_default();
            prop_assert!(communities.contains(&Community::new(64512, 7)));
            let kit = parse_bgp_message(&mut Bytes::from(wire.clone()), false, if as4 { &AsnLength::Bits32 } else { &AsnLength::Bits16 });
            match &route.key {
                RouteKey::Blackhole(prefix) => {
                    prop_assert!(communities.contains(&Community::BLACKHOLE));
                    let BgpMessage::Update(u) = kit.unwrap() else { panic!("bgpkit: not an update") };
                    let mut announced: Vec<IpNet> = u.announced_prefixes.iter().map(|p| p.prefix).collect();
                    for a in &u.attributes {
                        if let AttributeValue::MpReachNlri(n) = a {
                            announced.extend(n.prefixes.iter().map(|p| p.prefix));
                        }
                        if let AttributeValue::Communities(c) = a {
                            prop_assert!(c.iter().any(|c| matches!(c, KitCommunity::Custom(asn, 666) if asn.to_u32() == 65535)));
                        }
                    }
                    prop_assert_eq!(announced, vec![*prefix]);
                    let ours: Vec<IpNet> = update.nlri.iter().map(|p| IpNet::V4(*p)).chain(update.attributes.iter().filter_map(|a| match a {
                        PathAttribute::MpReach(r) => match &r.nlri { Nlri::Prefixes(p) => p.first().copied(), _ => None },
                        _ => None,
                    })).collect();
                    prop_assert_eq!(ours, vec![*prefix]);
                }
                RouteKey::Flow(rule) => {
                    let flows: Vec<FlowRule> = update.attributes.iter().find_map(|a| match a {
                        PathAttribute::MpReach(r) => match &r.nlri { Nlri::Flows(f) => Some(f.clone()), _ => None },
                        _ => None,
                    }).unwrap();
                    prop_assert_eq!(&flows, &vec![rule.clone()]);
                    let ext: Vec<ExtCommunity> = update.attributes.iter().find_map(|a| if let PathAttribute::ExtCommunities(c) = a { Some(c.clone()) } else { None }).unwrap_or_default();
                    prop_assert_eq!(ext.len(), 1);
                    // The independent decoder, on the NLRI the attribute walk found.
                    let value = mp_reach_value(&wire).unwrap();
                    let nh_len = usize::from(value[3]);
                    let nlri = &value[5 + nh_len..];
                    if rule.afi == FlowAfi::Ipv4 {
                        let theirs = parse_flowspec_nlri(nlri).map_err(|e| TestCaseError::fail(format!("bgpkit: {e:?}")))?;
                        same_rule(rule, &theirs.components)?;
                    } else {
                        // bgpkit decodes only the IPv4 prefix form; its encoder knows RFC 8956's.
                        let theirs = encode_flowspec_nlri(&to_kit(rule)).map_err(|e| TestCaseError::fail(format!("bgpkit: {e:?}")))?;
                        prop_assert_eq!(theirs.as_slice(), nlri);
                    }
                }
            }
            // Mutations: decoding garbage is an error or a value, never a panic.
            let mut mutated = wire.clone();
            for (at, byte) in &mutations {
                let i = at % mutated.len();
                mutated[i] = *byte;
            }
            let _ = Message::decode(&mutated, as4);
        }
    }

    #[test]
    fn withdrawals_pack_and_decode(prefixes in prop::collection::vec(v4_prefix(), 1..800)) {
        let keys: Vec<RouteKey> = prefixes.iter().map(|p| RouteKey::Flow(FlowRule {
            afi: rampart_bgp::flowspec::FlowAfi::Ipv4,
            components: vec![Component::DstPrefix(FlowPrefix::new(*p))],
        })).collect();
        let updates = encoding(true, RedirectIpEncoding::NextHop).withdraw(&keys).unwrap();
        let mut back = Vec::new();
        for wire in updates {
            prop_assert!(wire.len() <= 4096);
            let (Message::Update(u), _) = Message::decode(&wire, true).unwrap().unwrap() else { panic!() };
            for a in u.attributes {
                if let PathAttribute::MpUnreach(Nlri::Flows(f)) = a {
                    back.extend(f.into_iter().map(RouteKey::Flow));
                }
            }
        }
        prop_assert_eq!(back, keys);
    }

    #[test]
    fn opens_round_trip(asn in any::<u32>(), hold in any::<u16>(), id in any::<u32>(), rr in any::<bool>(), gr in prop::option::of(0u16..4096)) {
        let mut caps = vec![Capability::multiprotocol(rampart_bgp::family::Family::Ipv6Flowspec)];
        if rr { caps.push(Capability::RouteRefresh); }
        if let Some(time) = gr { caps.push(Capability::GracefulRestart { restarting: false, time, families: Vec::new() }); }
        let open = Open::new(asn, hold, Ipv4Addr::from(id), caps);
        let wire = Message::Open(open.clone()).encode(true).unwrap();
        prop_assert_eq!(Message::decode(&wire, true).unwrap().unwrap().0, Message::Open(open.clone()));
        let BgpMessage::Open(kit) = parse_bgp_message(&mut Bytes::from(wire), false, &AsnLength::Bits32).unwrap() else { panic!() };
        prop_assert_eq!(u32::from(kit.asn.to_u32() as u16), u32::from(open.asn2));
        prop_assert_eq!(kit.hold_time, hold);
    }
}

#[test]
fn blackhole_of_an_address_and_redirects_by_encoding() {
    let d = decision(1, Scope::Address("198.51.100.7".parse().unwrap()), Action::Blackhole);
    let routes = Route::from_decision(&d).unwrap();
    assert_eq!(routes[0].key, RouteKey::Blackhole("198.51.100.7/32".parse().unwrap()));
    let d = decision(2, Scope::Prefix("0.0.0.0/0".parse().unwrap()), Action::Blackhole);
    assert!(Route::from_decision(&d).is_err());
    let d = decision(3, Scope::Address("198.51.100.7".parse().unwrap()), Action::Notify);
    assert!(Route::from_decision(&d).unwrap().is_empty());
    let d = decision(
        4,
        Scope::Prefix("203.0.113.0/24".parse().unwrap()),
        Action::RedirectNextHop { next_hop: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)) },
    );
    let route = &Route::from_decision(&d).unwrap()[0];
    for (encoding, want_nh, want_ext) in [
        (
            RedirectIpEncoding::NextHop,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ExtCommunity::RedirectToNextHop { copy: false },
        ),
        (
            RedirectIpEncoding::AddressCommunity,
            None,
            ExtCommunity::RedirectToIpv4 { address: Ipv4Addr::new(192, 0, 2, 1), copy: false },
        ),
    ] {
        let wire = super_encoding(encoding).announce(route).unwrap();
        let (Message::Update(u), _) = Message::decode(&wire, true).unwrap().unwrap() else { panic!() };
        let nh = u
            .attributes
            .iter()
            .find_map(|a| if let PathAttribute::MpReach(r) = a { Some(r.next_hop) } else { None })
            .unwrap();
        assert_eq!(nh, want_nh);
        assert!(u.attributes.contains(&PathAttribute::ExtCommunities(vec![want_ext])));
    }
    // A v6 next hop for a v4 rule is refused.
    let d = decision(
        5,
        Scope::Prefix("203.0.113.0/24".parse().unwrap()),
        Action::RedirectNextHop { next_hop: "2001:db8::1".parse().unwrap() },
    );
    assert!(Route::from_decision(&d).is_err());
}

fn super_encoding(redirect: RedirectIpEncoding) -> Encoding {
    encoding(true, redirect)
}
