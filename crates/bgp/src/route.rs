//! Routes Rampart announces, derived from contract decisions: RTBH unicast routes carrying
//! BLACKHOLE (RFC 7999) and FlowSpec rules with their actions; and the UPDATEs that announce
//! and withdraw them for one peer's encoding choices.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rampart_contract::{Action, Decision, DecisionId, RouteTarget, Scope, Signature};
use thiserror::Error;

use crate::attr::{AsSegment, MpReach, Nlri, ORIGIN_IGP, PathAttribute};
use crate::community::{Community, ExtCommunity, Ipv6ExtCommunity, LargeCommunity, Rate, RedirectIpEncoding};
use crate::error::CodecError;
use crate::family::Family;
use crate::flowspec::{
    BitmaskKind, Component, FlowAfi, FlowPrefix, FlowRule, NumericKind, NumericOp, fragment_ops, length_ops,
    port_ops, tcp_flag_ops,
};
use crate::message::{MAX_MESSAGE_LEN, Message, Update};

/// Why a decision gives no route, or a route cannot go to a peer.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A signature without any prefix would match all traffic.
    #[error("signature names no prefix: the rule would match all traffic")]
    Unbounded,
    /// A default route (0.0.0.0/0, ::/0) is never announced.
    #[error("{0} covers everything")]
    DefaultRoute(IpNet),
    /// The action's address family differs from the matched traffic's.
    #[error("{0}: address family differs from the rule's")]
    FamilyMismatch(IpAddr),
    /// DSCP values have six bits.
    #[error("DSCP {0} is above 63")]
    BadDscp(u8),
    /// The peer has no next hop configured for this family's blackhole routes.
    #[error("no {0:?} next hop configured for blackhole routes")]
    NoNextHop(Family),
    /// The route does not fit the wire format (NLRI or message too long).
    #[error("cannot encode: {0}")]
    Encode(#[from] CodecError),
}

/// What a FlowSpec route does with matching traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowAction {
    /// traffic-rate 0.
    Discard,
    RateBytes(u64),
    RatePackets(u64),
    RedirectVrf(RouteTarget),
    RedirectIp(IpAddr),
    Mark(u8),
}

/// The NLRI of a route: what identifies it in the peer's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKey {
    /// RTBH: this prefix, with BLACKHOLE.
    Blackhole(IpNet),
    /// A FlowSpec rule.
    Flow(FlowRule),
}

/// For the audit log: `blackhole 198.51.100.7/32`, `flowspec dst 198.51.100.7/32 protocol =17`.
impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = match self {
            RouteKey::Blackhole(p) => return write!(f, "blackhole {p}"),
            RouteKey::Flow(rule) => rule,
        };
        f.write_str("flowspec")?;
        for c in &rule.components {
            match c {
                Component::DstPrefix(p) | Component::SrcPrefix(p) => {
                    let side = if matches!(c, Component::DstPrefix(_)) { "dst" } else { "src" };
                    match p {
                        FlowPrefix::V4(n) => write!(f, " {side} {n}")?,
                        FlowPrefix::V6 { prefix, offset: 0 } => write!(f, " {side} {prefix}")?,
                        FlowPrefix::V6 { prefix, offset } => write!(f, " {side} {prefix} offset {offset}")?,
                    }
                }
                Component::Numeric(kind, ops) => {
                    write!(f, " {}", format!("{kind:?}").to_lowercase())?;
                    for (i, op) in ops.iter().enumerate() {
                        let join = op_join(op.and, i);
                        let lt = if op.lt { "<" } else { "" };
                        let gt = if op.gt { ">" } else { "" };
                        let eq = if op.eq { "=" } else { "" };
                        write!(f, "{join}{lt}{gt}{eq}{}", op.value)?;
                    }
                }
                Component::Bitmask(kind, ops) => {
                    write!(f, " {}", format!("{kind:?}").to_lowercase())?;
                    for (i, op) in ops.iter().enumerate() {
                        let join = op_join(op.and, i);
                        let not = if op.not { "!" } else { "" };
                        let all = if op.matches { "=" } else { "" };
                        write!(f, "{join}{not}{all}0x{:x}", op.value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl RouteKey {
    pub fn family(&self) -> Family {
        match self {
            RouteKey::Blackhole(IpNet::V4(_)) => Family::Ipv4Unicast,
            RouteKey::Blackhole(IpNet::V6(_)) => Family::Ipv6Unicast,
            RouteKey::Flow(r) if r.afi == FlowAfi::Ipv4 => Family::Ipv4Flowspec,
            RouteKey::Flow(_) => Family::Ipv6Flowspec,
        }
    }
}

/// One route derived from a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub decision: DecisionId,
    pub key: RouteKey,
    /// `None` for blackhole routes.
    pub action: Option<FlowAction>,
    /// The signature's collateral estimate (the share of its target's normal traffic the rule
    /// would also match), in millionths, rounded up; `None` when unknown (no baseline, not a
    /// signature). A rule widened over several routes carries the sum of theirs.
    pub collateral_ppm: Option<u32>,
}

/// A collateral percentage in millionths, rounded up (an estimate that is not a number counts
/// as everything).
pub fn collateral_ppm(percent: f64) -> u32 {
    if percent.is_nan() {
        return u32::MAX;
    }
    // Saturating float-to-int conversion: negative to 0, huge to u32::MAX.
    (percent * 10_000.0).ceil() as u32
}

impl Route {
    /// The routes a decision asks for: none for `Notify`, one per destination prefix for a
    /// blackhole, one FlowSpec rule per destination (and source) prefix otherwise.
    pub fn from_decision(decision: &Decision) -> Result<Vec<Route>, RouteError> {
        let id = decision.id;
        let action = match &decision.action {
            Action::Notify => return Ok(Vec::new()),
            Action::Blackhole => {
                let prefixes = match &decision.scope {
                    Scope::Address(a) => vec![IpNet::from(*a)],
                    Scope::Prefix(p) => vec![p.trunc()],
                    Scope::Signature(s) => s.dst_prefixes.iter().map(IpNet::trunc).collect(),
                    _ => Vec::new(),
                };
                if prefixes.is_empty() {
                    return Err(RouteError::Unbounded);
                }
                return prefixes
                    .into_iter()
                    .map(|p| {
                        refuse_default(p)?;
                        Ok(Route {
                            decision: id,
                            key: RouteKey::Blackhole(p),
                            action: None,
                            collateral_ppm: None,
                        })
                    })
                    .collect();
            }
            Action::Discard => FlowAction::Discard,
            Action::RateLimitBytes { bytes_per_sec } => FlowAction::RateBytes(*bytes_per_sec),
            Action::RateLimitPackets { packets_per_sec } => FlowAction::RatePackets(*packets_per_sec),
            Action::RedirectVrf { route_target } => FlowAction::RedirectVrf(*route_target),
            Action::RedirectNextHop { next_hop } => FlowAction::RedirectIp(*next_hop),
            Action::Mark { dscp } if *dscp > 63 => return Err(RouteError::BadDscp(*dscp)),
            Action::Mark { dscp } => FlowAction::Mark(*dscp),
            _ => return Ok(Vec::new()),
        };
        let collateral = match &decision.scope {
            Scope::Signature(s) => s.collateral.as_ref().map(|c| collateral_ppm(c.percent)),
            _ => None,
        };
        let rules = match &decision.scope {
            Scope::Address(a) => vec![flow_rule(Some(IpNet::from(*a)), None, &Signature::default())],
            Scope::Prefix(p) => {
                refuse_default(*p)?;
                vec![flow_rule(Some(*p), None, &Signature::default())]
            }
            Scope::Signature(s) => signature_rules(s)?,
            _ => return Err(RouteError::Unbounded),
        };
        let mut routes = Vec::with_capacity(rules.len());
        for rule in rules {
            if let FlowAction::RedirectIp(ip) = action
                && (ip.is_ipv4() != (rule.afi == FlowAfi::Ipv4))
            {
                return Err(RouteError::FamilyMismatch(ip));
            }
            rule.encode(&mut Vec::new())?;
            routes.push(Route {
                decision: id,
                key: RouteKey::Flow(rule),
                action: Some(action),
                collateral_ppm: collateral,
            });
        }
        Ok(routes)
    }
}

fn refuse_default(p: IpNet) -> Result<(), RouteError> {
    if p.prefix_len() == 0 { Err(RouteError::DefaultRoute(p)) } else { Ok(()) }
}

/// One rule per (destination, source) pair of the same family; a side with no prefixes
/// matches any address of the other side's family.
fn signature_rules(s: &Signature) -> Result<Vec<FlowRule>, RouteError> {
    for p in s.dst_prefixes.iter().chain(&s.src_prefixes) {
        refuse_default(*p)?;
    }
    let dsts: Vec<Option<IpNet>> = if s.dst_prefixes.is_empty() {
        vec![None]
    } else {
        s.dst_prefixes.iter().copied().map(Some).collect()
    };
    let srcs: Vec<Option<IpNet>> = if s.src_prefixes.is_empty() {
        vec![None]
    } else {
        s.src_prefixes.iter().copied().map(Some).collect()
    };
    let mut rules = Vec::new();
    for dst in &dsts {
        for src in &srcs {
            match (dst, src) {
                (None, None) => return Err(RouteError::Unbounded),
                (Some(d), Some(s)) if d.addr().is_ipv4() != s.addr().is_ipv4() => continue,
                _ => rules.push(flow_rule(*dst, *src, s)),
            }
        }
    }
    if rules.is_empty() {
        return Err(RouteError::Unbounded);
    }
    Ok(rules)
}

/// A rule from prefixes (one at least) and the signature's other match fields, in type order.
fn flow_rule(dst: Option<IpNet>, src: Option<IpNet>, s: &Signature) -> FlowRule {
    let v4 = dst.or(src).is_none_or(|p| p.addr().is_ipv4());
    let mut components = Vec::new();
    if let Some(d) = dst {
        components.push(Component::DstPrefix(FlowPrefix::new(d)));
    }
    if let Some(p) = src {
        components.push(Component::SrcPrefix(FlowPrefix::new(p)));
    }
    if let Some(proto) = s.protocol {
        components.push(Component::Numeric(NumericKind::Protocol, vec![NumericOp::eq(u64::from(proto))]));
    }
    if !s.dst_ports.is_empty() {
        components.push(Component::Numeric(NumericKind::DstPort, port_ops(&s.dst_ports)));
    }
    if !s.src_ports.is_empty() {
        components.push(Component::Numeric(NumericKind::SrcPort, port_ops(&s.src_ports)));
    }
    if let Some(flags) = s.tcp_flags {
        let ops = tcp_flag_ops(flags);
        if !ops.is_empty() {
            components.push(Component::Bitmask(BitmaskKind::TcpFlags, ops));
        }
    }
    if let Some(len) = s.packet_len {
        components.push(Component::Numeric(NumericKind::PacketLength, length_ops(len)));
    }
    if let Some(fragment) = s.fragment {
        components.push(Component::Bitmask(BitmaskKind::Fragment, fragment_ops(fragment)));
    }
    FlowRule { afi: if v4 { FlowAfi::Ipv4 } else { FlowAfi::Ipv6 }, components }
}

/// How routes are encoded for one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    pub local_as: u32,
    /// eBGP prepends the local AS; iBGP sends LOCAL_PREF.
    pub ebgp: bool,
    /// Whether the session negotiated four-octet AS numbers.
    pub as4: bool,
    pub blackhole_next_hop_v4: Option<Ipv4Addr>,
    pub blackhole_next_hop_v6: Option<Ipv6Addr>,
    /// Added to every route (BLACKHOLE is added to blackhole routes on top).
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub redirect_ip: RedirectIpEncoding,
}

impl Encoding {
    fn base_attributes(&self) -> Vec<PathAttribute> {
        let mut attrs = vec![PathAttribute::Origin(ORIGIN_IGP)];
        attrs.push(PathAttribute::AsPath(if self.ebgp {
            vec![AsSegment::Sequence(vec![self.local_as])]
        } else {
            Vec::new()
        }));
        attrs
    }

    /// The UPDATE announcing `route`, encoded.
    pub fn announce(&self, route: &Route) -> Result<Vec<u8>, RouteError> {
        let mut attrs = self.base_attributes();
        let mut communities = Vec::new();
        let mut ext = Vec::new();
        let mut ext6 = Vec::new();
        let mut nlri = Vec::new();
        let mut tail = Vec::new();
        match &route.key {
            RouteKey::Blackhole(prefix) => {
                communities.push(Community::BLACKHOLE);
                match prefix {
                    IpNet::V4(p) => {
                        let nh =
                            self.blackhole_next_hop_v4.ok_or(RouteError::NoNextHop(Family::Ipv4Unicast))?;
                        attrs.push(PathAttribute::NextHop(nh));
                        nlri.push(*p);
                    }
                    IpNet::V6(_) => {
                        let nh =
                            self.blackhole_next_hop_v6.ok_or(RouteError::NoNextHop(Family::Ipv6Unicast))?;
                        tail.push(PathAttribute::MpReach(MpReach {
                            next_hop: Some(IpAddr::V6(nh)),
                            nlri: Nlri::Prefixes(vec![*prefix]),
                        }));
                    }
                }
            }
            RouteKey::Flow(rule) => {
                let mut next_hop = None;
                match route.action {
                    Some(FlowAction::Discard) | None => {
                        ext.push(ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::ZERO })
                    }
                    Some(FlowAction::RateBytes(n)) => {
                        ext.push(ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::from_count(n) })
                    }
                    Some(FlowAction::RatePackets(n)) => {
                        ext.push(ExtCommunity::TrafficRatePackets { asn: 0, rate: Rate::from_count(n) })
                    }
                    Some(FlowAction::RedirectVrf(rt)) => ext.push(ExtCommunity::RedirectVrf(rt)),
                    Some(FlowAction::Mark(dscp)) => ext.push(ExtCommunity::TrafficMarking { dscp }),
                    Some(FlowAction::RedirectIp(ip)) => match (self.redirect_ip, ip) {
                        (RedirectIpEncoding::NextHop, _) => {
                            next_hop = Some(ip);
                            ext.push(ExtCommunity::RedirectToNextHop { copy: false });
                        }
                        (RedirectIpEncoding::AddressCommunity, IpAddr::V4(address)) => {
                            ext.push(ExtCommunity::RedirectToIpv4 { address, copy: false })
                        }
                        (RedirectIpEncoding::AddressCommunity, IpAddr::V6(address)) => {
                            ext6.push(Ipv6ExtCommunity::RedirectToIpv6 { address, copy: false })
                        }
                    },
                }
                tail.push(PathAttribute::MpReach(MpReach {
                    next_hop,
                    nlri: Nlri::Flows(vec![rule.clone()]),
                }));
            }
        }
        if !self.ebgp {
            attrs.push(PathAttribute::LocalPref(100));
        }
        communities.extend(self.communities.iter().copied());
        if !communities.is_empty() {
            attrs.push(PathAttribute::Communities(communities));
        }
        if !ext.is_empty() {
            attrs.push(PathAttribute::ExtCommunities(ext));
        }
        if !ext6.is_empty() {
            attrs.push(PathAttribute::Ipv6ExtCommunities(ext6));
        }
        if !self.large_communities.is_empty() {
            attrs.push(PathAttribute::LargeCommunities(self.large_communities.clone()));
        }
        attrs.extend(tail);
        attrs.sort_by_key(PathAttribute::code); // in type code order, as routers emit them

        Ok(Message::Update(Update { withdrawn: Vec::new(), attributes: attrs, nlri }).encode(self.as4)?)
    }

    /// UPDATEs withdrawing `keys`, packed to fit the message limit.
    pub fn withdraw<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a RouteKey>,
    ) -> Result<Vec<Vec<u8>>, RouteError> {
        let mut by_family: [Vec<&RouteKey>; 4] = Default::default();
        for k in keys {
            let i = Family::ALL.iter().position(|f| *f == k.family()).unwrap_or(0);
            by_family[i].push(k);
        }
        let budget = MAX_MESSAGE_LEN - 64;
        let mut out = Vec::new();
        for (family, keys) in Family::ALL.iter().zip(by_family) {
            let mut chunk: Vec<&RouteKey> = Vec::new();
            let mut size = 0;
            for k in keys {
                let n = key_size(k)?;
                if size + n > budget && !chunk.is_empty() {
                    out.push(self.withdraw_one(*family, &chunk)?);
                    chunk.clear();
                    size = 0;
                }
                chunk.push(k);
                size += n;
            }
            if !chunk.is_empty() {
                out.push(self.withdraw_one(*family, &chunk)?);
            }
        }
        Ok(out)
    }

    fn withdraw_one(&self, family: Family, keys: &[&RouteKey]) -> Result<Vec<u8>, RouteError> {
        let prefixes =
            || keys.iter().filter_map(|k| if let RouteKey::Blackhole(p) = k { Some(*p) } else { None });
        let update = match family {
            Family::Ipv4Unicast => Update {
                withdrawn: prefixes()
                    .filter_map(|p| if let IpNet::V4(n) = p { Some(n) } else { None })
                    .collect(),
                ..Update::default()
            },
            Family::Ipv6Unicast => Update {
                attributes: vec![PathAttribute::MpUnreach(Nlri::Prefixes(prefixes().collect()))],
                ..Update::default()
            },
            Family::Ipv4Flowspec | Family::Ipv6Flowspec => {
                let rules = keys
                    .iter()
                    .filter_map(|k| if let RouteKey::Flow(r) = k { Some(r.clone()) } else { None })
                    .collect();
                Update { attributes: vec![PathAttribute::MpUnreach(Nlri::Flows(rules))], ..Update::default() }
            }
        };
        Ok(Message::Update(update).encode(self.as4)?)
    }
}

/// The End-of-RIB marker for `family` (RFC 4724 section 2).
pub fn end_of_rib(family: Family) -> Result<Vec<u8>, CodecError> {
    let update = match family {
        Family::Ipv4Unicast => Update::default(),
        other => {
            Update { attributes: vec![PathAttribute::MpUnreach(Nlri::empty(other))], ..Update::default() }
        }
    };
    Message::Update(update).encode(true)
}

fn key_size(k: &RouteKey) -> Result<usize, RouteError> {
    Ok(match k {
        RouteKey::Blackhole(p) => 1 + usize::from(p.prefix_len()).div_ceil(8),
        RouteKey::Flow(r) => {
            let mut v = Vec::new();
            r.encode(&mut v)?;
            v.len()
        }
    })
}

/// What precedes a FlowSpec operator in the route's text: `&` for AND, `,` for OR, a space
/// before the first.
fn op_join(and: bool, index: usize) -> &'static str {
    if and {
        "&"
    } else if index > 0 {
        ","
    } else {
        " "
    }
}
