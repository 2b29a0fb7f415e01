//! Path attributes of an UPDATE (RFC 4271 section 4.3 and the extensions Rampart sends).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::community::{Community, ExtCommunity, Ipv6ExtCommunity, LargeCommunity, decode_list};
use crate::error::{CodecError, invalid};
use crate::family::{AFI_IPV4, AFI_IPV6, Family, SAFI_FLOWSPEC, SAFI_UNICAST};
use crate::flowspec::{FlowAfi, FlowRule};
use crate::wire::Reader;

const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;
const EXTENDED_LENGTH: u8 = 0x10;

/// AS_TRANS (RFC 6793): the two-octet stand-in for a four-octet AS.
pub const AS_TRANS: u16 = 23456;

/// ORIGIN values.
pub const ORIGIN_IGP: u8 = 0;

/// An AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
}

/// NLRI of one family inside MP_REACH / MP_UNREACH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nlri {
    Prefixes(Vec<IpNet>),
    Flows(Vec<FlowRule>),
    /// A family Rampart does not decode, as received.
    Other {
        afi: u16,
        safi: u8,
        bytes: Vec<u8>,
    },
}

/// MP_REACH_NLRI (RFC 4760): routes of a family with their next hop (none for FlowSpec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub next_hop: Option<IpAddr>,
    pub nlri: Nlri,
}

/// One path attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum PathAttribute {
    Origin(u8),
    AsPath(Vec<AsSegment>),
    NextHop(Ipv4Addr),
    Med(u32),
    LocalPref(u32),
    Communities(Vec<Community>),
    ExtCommunities(Vec<ExtCommunity>),
    Ipv6ExtCommunities(Vec<Ipv6ExtCommunity>),
    LargeCommunities(Vec<LargeCommunity>),
    MpReach(MpReach),
    MpUnreach(Nlri),
    /// Anything else, as received.
    Unknown {
        flags: u8,
        code: u8,
        value: Vec<u8>,
    },
}

impl PathAttribute {
    /// The attribute's type code (also the order routers emit attributes in).
    pub(crate) fn code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => 1,
            PathAttribute::AsPath(_) => 2,
            PathAttribute::NextHop(_) => 3,
            PathAttribute::Med(_) => 4,
            PathAttribute::LocalPref(_) => 5,
            PathAttribute::Communities(_) => 8,
            PathAttribute::MpReach(_) => 14,
            PathAttribute::MpUnreach(_) => 15,
            PathAttribute::ExtCommunities(_) => 16,
            PathAttribute::Ipv6ExtCommunities(_) => 25,
            PathAttribute::LargeCommunities(_) => 32,
            PathAttribute::Unknown { code, .. } => *code,
        }
    }

    fn flags(&self) -> u8 {
        match self {
            PathAttribute::Origin(_)
            | PathAttribute::AsPath(_)
            | PathAttribute::NextHop(_)
            | PathAttribute::LocalPref(_) => TRANSITIVE,
            PathAttribute::Med(_) | PathAttribute::MpReach(_) | PathAttribute::MpUnreach(_) => OPTIONAL,
            PathAttribute::Communities(_)
            | PathAttribute::ExtCommunities(_)
            | PathAttribute::Ipv6ExtCommunities(_)
            | PathAttribute::LargeCommunities(_) => OPTIONAL | TRANSITIVE,
            PathAttribute::Unknown { flags, .. } => *flags & !EXTENDED_LENGTH,
        }
    }

    /// Appends the attribute; `as4` says whether AS numbers take four octets on this session.
    pub fn encode(&self, out: &mut Vec<u8>, as4: bool) -> Result<(), CodecError> {
        let mut value = Vec::new();
        match self {
            PathAttribute::Origin(o) => value.push(*o),
            PathAttribute::AsPath(segments) => {
                for segment in segments {
                    let (kind, asns) = match segment {
                        AsSegment::Set(a) => (1u8, a),
                        AsSegment::Sequence(a) => (2u8, a),
                    };
                    for chunk in asns.chunks(255) {
                        value.push(kind);
                        value.push(chunk.len() as u8);
                        for asn in chunk {
                            if as4 {
                                value.extend_from_slice(&asn.to_be_bytes());
                            } else {
                                let two = u16::try_from(*asn).unwrap_or(AS_TRANS);
                                value.extend_from_slice(&two.to_be_bytes());
                            }
                        }
                    }
                }
            }
            PathAttribute::NextHop(a) => value.extend_from_slice(&a.octets()),
            PathAttribute::Med(v) | PathAttribute::LocalPref(v) => value.extend_from_slice(&v.to_be_bytes()),
            PathAttribute::Communities(cs) => {
                cs.iter().for_each(|c| value.extend_from_slice(&c.0.to_be_bytes()))
            }
            PathAttribute::ExtCommunities(cs) => {
                cs.iter().for_each(|c| value.extend_from_slice(&c.to_bytes()))
            }
            PathAttribute::Ipv6ExtCommunities(cs) => {
                cs.iter().for_each(|c| value.extend_from_slice(&c.to_bytes()))
            }
            PathAttribute::LargeCommunities(cs) => {
                for c in cs {
                    for part in [c.global, c.local1, c.local2] {
                        value.extend_from_slice(&part.to_be_bytes());
                    }
                }
            }
            PathAttribute::MpReach(reach) => {
                let (afi, safi) = nlri_afi_safi(&reach.nlri);
                value.extend_from_slice(&afi.to_be_bytes());
                value.push(safi);
                match reach.next_hop {
                    None => value.push(0),
                    Some(IpAddr::V4(a)) => {
                        value.push(4);
                        value.extend_from_slice(&a.octets());
                    }
                    Some(IpAddr::V6(a)) => {
                        value.push(16);
                        value.extend_from_slice(&a.octets());
                    }
                }
                value.push(0); // reserved
                encode_nlri(&mut value, &reach.nlri)?;
            }
            PathAttribute::MpUnreach(nlri) => {
                let (afi, safi) = nlri_afi_safi(nlri);
                value.extend_from_slice(&afi.to_be_bytes());
                value.push(safi);
                encode_nlri(&mut value, nlri)?;
            }
            PathAttribute::Unknown { value: v, .. } => value.extend_from_slice(v),
        }
        let mut flags = self.flags();
        if value.len() > 255 {
            flags |= EXTENDED_LENGTH;
        }
        out.push(flags);
        out.push(self.code());
        if flags & EXTENDED_LENGTH != 0 {
            let len = u16::try_from(value.len()).map_err(|_| CodecError::TooLong(value.len()))?;
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(&value);
        Ok(())
    }

    /// Decodes one attribute from `r`.
    pub(crate) fn decode(r: &mut Reader<'_>, as4: bool) -> Result<PathAttribute, CodecError> {
        let flags = r.u8("attribute flags")?;
        let code = r.u8("attribute type")?;
        let len = if flags & EXTENDED_LENGTH != 0 {
            usize::from(r.u16("attribute length")?)
        } else {
            usize::from(r.u8("attribute length")?)
        };
        let mut v = r.sub(len, "attribute value")?;
        let fixed = |v: &Reader<'_>, n: usize, what: &'static str| {
            if v.remaining() == n { Ok(()) } else { Err(invalid(what, format!("length {}", v.remaining()))) }
        };
        let attr = match code {
            1 => {
                fixed(&v, 1, "ORIGIN")?;
                PathAttribute::Origin(v.u8("ORIGIN")?)
            }
            2 => {
                let mut segments = Vec::new();
                while !v.is_empty() {
                    let kind = v.u8("AS_PATH segment type")?;
                    let count = usize::from(v.u8("AS_PATH segment length")?);
                    let mut asns = Vec::with_capacity(count);
                    for _ in 0..count {
                        asns.push(if as4 { v.u32("AS_PATH")? } else { u32::from(v.u16("AS_PATH")?) });
                    }
                    segments.push(match kind {
                        1 => AsSegment::Set(asns),
                        2 => AsSegment::Sequence(asns),
                        other => return Err(invalid("AS_PATH segment type", other.to_string())),
                    });
                }
                PathAttribute::AsPath(segments)
            }
            3 => {
                fixed(&v, 4, "NEXT_HOP")?;
                PathAttribute::NextHop(Ipv4Addr::from(v.array::<4>("NEXT_HOP")?))
            }
            4 => {
                fixed(&v, 4, "MED")?;
                PathAttribute::Med(v.u32("MED")?)
            }
            5 => {
                fixed(&v, 4, "LOCAL_PREF")?;
                PathAttribute::LocalPref(v.u32("LOCAL_PREF")?)
            }
            8 => PathAttribute::Communities(decode_list::<4, _>(&mut v, "COMMUNITIES", |b| {
                Ok(Community(u32::from_be_bytes(b)))
            })?),
            16 => PathAttribute::ExtCommunities(decode_list::<8, _>(
                &mut v,
                "EXTENDED_COMMUNITIES",
                ExtCommunity::from_bytes,
            )?),
            25 => PathAttribute::Ipv6ExtCommunities(decode_list::<20, _>(
                &mut v,
                "IPV6_EXTENDED_COMMUNITIES",
                |b| Ok(Ipv6ExtCommunity::from_bytes(b)),
            )?),
            32 => PathAttribute::LargeCommunities(decode_list::<12, _>(&mut v, "LARGE_COMMUNITIES", |b| {
                let part = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                Ok(LargeCommunity { global: part(0), local1: part(4), local2: part(8) })
            })?),
            14 => {
                let afi = v.u16("MP_REACH AFI")?;
                let safi = v.u8("MP_REACH SAFI")?;
                let nh_len = usize::from(v.u8("MP_REACH next hop length")?);
                let nh = v.take(nh_len, "MP_REACH next hop")?;
                let next_hop = match nh.len() {
                    0 => None,
                    4 => Some(IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))),
                    // 32: global and link-local (RFC 2545); the global one is what matters here.
                    16 | 32 => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&nh[..16]);
                        Some(IpAddr::V6(Ipv6Addr::from(o)))
                    }
                    n => return Err(invalid("MP_REACH next hop length", n.to_string())),
                };
                v.u8("MP_REACH reserved")?;
                PathAttribute::MpReach(MpReach { next_hop, nlri: decode_nlri(&mut v, afi, safi)? })
            }
            15 => {
                let afi = v.u16("MP_UNREACH AFI")?;
                let safi = v.u8("MP_UNREACH SAFI")?;
                PathAttribute::MpUnreach(decode_nlri(&mut v, afi, safi)?)
            }
            _ => PathAttribute::Unknown { flags: flags & !EXTENDED_LENGTH, code, value: v.rest().to_vec() },
        };
        Ok(attr)
    }
}

/// The AFI/SAFI an NLRI list belongs to (an empty prefix list counts as IPv4 unicast only
/// when built as `Nlri::Prefixes` for that family: use [`Nlri::empty`]).
fn nlri_afi_safi(nlri: &Nlri) -> (u16, u8) {
    match nlri {
        Nlri::Prefixes(p) => match p.first() {
            Some(IpNet::V6(_)) => (AFI_IPV6, SAFI_UNICAST),
            _ => (AFI_IPV4, SAFI_UNICAST),
        },
        Nlri::Flows(f) => match f.first().map(|r| r.afi) {
            Some(FlowAfi::Ipv6) => (AFI_IPV6, SAFI_FLOWSPEC),
            _ => (AFI_IPV4, SAFI_FLOWSPEC),
        },
        Nlri::Other { afi, safi, .. } => (*afi, *safi),
    }
}

impl Nlri {
    /// No routes of `family` (End-of-RIB marker's MP_UNREACH).
    pub fn empty(family: Family) -> Nlri {
        let (afi, safi) = family.afi_safi();
        match family {
            // An empty list carries no family, so say it explicitly.
            Family::Ipv6Unicast | Family::Ipv6Flowspec => Nlri::Other { afi, safi, bytes: Vec::new() },
            Family::Ipv4Unicast => Nlri::Prefixes(Vec::new()),
            Family::Ipv4Flowspec => Nlri::Flows(Vec::new()),
        }
    }

    /// The family, when Rampart knows it.
    pub fn family(&self) -> Option<Family> {
        let (afi, safi) = nlri_afi_safi(self);
        Family::from_afi_safi(afi, safi)
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Nlri::Prefixes(p) => p.is_empty(),
            Nlri::Flows(f) => f.is_empty(),
            Nlri::Other { bytes, .. } => bytes.is_empty(),
        }
    }
}

fn encode_nlri(out: &mut Vec<u8>, nlri: &Nlri) -> Result<(), CodecError> {
    let mixed = match nlri {
        Nlri::Prefixes(p) => p.windows(2).any(|w| w[0].addr().is_ipv4() != w[1].addr().is_ipv4()),
        Nlri::Flows(f) => f.windows(2).any(|w| w[0].afi != w[1].afi),
        Nlri::Other { .. } => false,
    };
    if mixed {
        return Err(invalid("NLRI", "families mixed in one attribute"));
    }
    match nlri {
        Nlri::Prefixes(prefixes) => prefixes.iter().for_each(|p| encode_prefix(out, p)),
        Nlri::Flows(rules) => {
            for rule in rules {
                rule.encode(out)?;
            }
        }
        Nlri::Other { bytes, .. } => out.extend_from_slice(bytes),
    }
    Ok(())
}

fn decode_nlri(r: &mut Reader<'_>, afi: u16, safi: u8) -> Result<Nlri, CodecError> {
    Ok(match (afi, safi) {
        (AFI_IPV4, SAFI_UNICAST) => Nlri::Prefixes(decode_prefixes(r, false)?),
        (AFI_IPV6, SAFI_UNICAST) if !r.is_empty() => Nlri::Prefixes(decode_prefixes(r, true)?),
        (AFI_IPV4, SAFI_FLOWSPEC) => Nlri::Flows(decode_flows(r, FlowAfi::Ipv4)?),
        (AFI_IPV6, SAFI_FLOWSPEC) if !r.is_empty() => Nlri::Flows(decode_flows(r, FlowAfi::Ipv6)?),
        _ => Nlri::Other { afi, safi, bytes: r.rest().to_vec() },
    })
}

fn decode_flows(r: &mut Reader<'_>, afi: FlowAfi) -> Result<Vec<FlowRule>, CodecError> {
    let mut rules = Vec::new();
    while !r.is_empty() {
        rules.push(FlowRule::decode(r, afi)?);
    }
    Ok(rules)
}

/// Appends a prefix in the classic NLRI form: length, then the significant bytes.
pub(crate) fn encode_prefix(out: &mut Vec<u8>, net: &IpNet) {
    out.push(net.prefix_len());
    let n = usize::from(net.prefix_len()).div_ceil(8);
    match net.trunc().network() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
    }
}

/// Decodes classic NLRI prefixes until `r` is empty.
pub(crate) fn decode_prefixes(r: &mut Reader<'_>, v6: bool) -> Result<Vec<IpNet>, CodecError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8("prefix length")?;
        let max = if v6 { 128 } else { 32 };
        if len > max {
            return Err(invalid("prefix length", len.to_string()));
        }
        let bytes = r.take(usize::from(len).div_ceil(8), "prefix")?;
        let net = if v6 {
            let mut o = [0u8; 16];
            o[..bytes.len()].copy_from_slice(bytes);
            Ipv6Net::new(Ipv6Addr::from(o), len).map(IpNet::V6)
        } else {
            let mut o = [0u8; 4];
            o[..bytes.len()].copy_from_slice(bytes);
            Ipv4Net::new(Ipv4Addr::from(o), len).map(IpNet::V4)
        }
        .map_err(|e| invalid("prefix", e.to_string()))?;
        out.push(net.trunc());
    }
    Ok(out)
}
