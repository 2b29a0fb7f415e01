//! Communities: standard (RFC 1997, BLACKHOLE of RFC 7999), large (RFC 8092), and the
//! extended communities FlowSpec actions travel in (RFC 8955 section 7, RFC 7674, and the two
//! redirect-to-IP encodings routers disagree on).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use rampart_contract::RouteTarget;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::wire::Reader;

/// A standard community, `ASN:VALUE` in 16 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Community(pub u32);

impl Community {
    /// RFC 7999 BLACKHOLE, 65535:666.
    pub const BLACKHOLE: Community = Community(0xffff_029a);
    /// RFC 1997 NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xffff_ff01);

    pub const fn new(asn: u16, value: u16) -> Self {
        Community(((asn as u32) << 16) | value as u32)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl TryFrom<String> for Community {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (a, v) = s.split_once(':').ok_or_else(|| format!("community {s:?}: expected ASN:VALUE"))?;
        let parse = |x: &str| x.trim().parse::<u16>().map_err(|e| format!("community {s:?}: {e}"));
        Ok(Community::new(parse(a)?, parse(v)?))
    }
}

impl From<Community> for String {
    fn from(c: Community) -> String {
        c.to_string()
    }
}

/// A large community, `GLOBAL:LOCAL1:LOCAL2` in 32 bits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl TryFrom<String> for LargeCommunity {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [g, l1, l2] = parts.as_slice() else {
            return Err(format!("large community {s:?}: expected GLOBAL:LOCAL1:LOCAL2"));
        };
        let parse = |x: &str| x.trim().parse::<u32>().map_err(|e| format!("large community {s:?}: {e}"));
        Ok(LargeCommunity { global: parse(g)?, local1: parse(l1)?, local2: parse(l2)? })
    }
}

impl From<LargeCommunity> for String {
    fn from(c: LargeCommunity) -> String {
        c.to_string()
    }
}

/// A traffic rate: an IEEE single-precision float, finite and non-negative by construction
/// (a NaN rate once reset ExaBGP sessions).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f32);

impl Rate {
    pub const ZERO: Rate = Rate(0.0);

    pub fn new(value: f32) -> Result<Rate, CodecError> {
        if value.is_finite() && value >= 0.0 { Ok(Rate(value)) } else { Err(CodecError::BadRate(value)) }
    }

    /// A rate from an integer count per second (rounded to the nearest float).
    pub fn from_count(per_sec: u64) -> Rate {
        Rate(per_sec as f32)
    }

    pub fn get(self) -> f32 {
        self.0
    }
}

/// How a FlowSpec redirect-to-IP action is encoded; vendors differ, so it is chosen per peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectIpEncoding {
    /// draft-simpson-idr-flowspec-redirect: extended community 0x0800 with the target in the
    /// MP_REACH_NLRI next hop (Cisco, Juniper, GoBGP, ExaBGP's `redirect-to-nexthop`).
    #[default]
    NextHop,
    /// draft-ietf-idr-flowspec-redirect-ip: the target address inside an address-specific
    /// extended community, 0x010c (IPv4) or the IPv6 address-specific 0x000c.
    AddressCommunity,
}

const TYPE_FLOW: u8 = 0x80;
const TYPE_FLOW_IPV4: u8 = 0x81;
const TYPE_FLOW_AS4: u8 = 0x82;
const SUB_RATE_BYTES: u8 = 0x06;
const SUB_ACTION: u8 = 0x07;
const SUB_REDIRECT: u8 = 0x08;
const SUB_MARKING: u8 = 0x09;
const SUB_RATE_PACKETS: u8 = 0x0c;
const TYPE_REDIRECT_NEXT_HOP: u8 = 0x08;
const TYPE_IPV4_SPECIFIC: u8 = 0x01;
const SUB_REDIRECT_IP: u8 = 0x0c;

/// An extended community (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExtCommunity {
    /// traffic-rate-bytes (0x8006); 0 discards.
    TrafficRateBytes { asn: u16, rate: Rate },
    /// traffic-rate-packets (0x800c).
    TrafficRatePackets { asn: u16, rate: Rate },
    /// traffic-action (0x8007): sample and terminal bits.
    TrafficAction { sample: bool, terminal: bool },
    /// rt-redirect to a VRF (0x8008, 0x8108, 0x8208 by the route target's form, RFC 7674).
    RedirectVrf(RouteTarget),
    /// traffic-marking (0x8009): the DSCP to set.
    TrafficMarking { dscp: u8 },
    /// Redirect to the next hop of MP_REACH_NLRI (0x0800, draft-simpson).
    RedirectToNextHop { copy: bool },
    /// Redirect to this IPv4 address (0x010c, draft-ietf-idr-flowspec-redirect-ip).
    RedirectToIpv4 { address: Ipv4Addr, copy: bool },
    /// Any other community, as received.
    Other([u8; 8]),
}

impl ExtCommunity {
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        match *self {
            ExtCommunity::TrafficRateBytes { asn, rate } | ExtCommunity::TrafficRatePackets { asn, rate } => {
                b[0] = TYPE_FLOW;
                b[1] = if matches!(self, ExtCommunity::TrafficRateBytes { .. }) {
                    SUB_RATE_BYTES
                } else {
                    SUB_RATE_PACKETS
                };
                b[2..4].copy_from_slice(&asn.to_be_bytes());
                b[4..8].copy_from_slice(&rate.0.to_be_bytes());
            }
            ExtCommunity::TrafficAction { sample, terminal } => {
                b[0] = TYPE_FLOW;
                b[1] = SUB_ACTION;
                b[7] = u8::from(sample) << 1 | u8::from(terminal);
            }
            ExtCommunity::RedirectVrf(rt) => {
                b[1] = SUB_REDIRECT;
                match rt {
                    RouteTarget::As2 { asn, value } => {
                        b[0] = TYPE_FLOW;
                        b[2..4].copy_from_slice(&asn.to_be_bytes());
                        b[4..8].copy_from_slice(&value.to_be_bytes());
                    }
                    RouteTarget::Ipv4 { address, value } => {
                        b[0] = TYPE_FLOW_IPV4;
                        b[2..6].copy_from_slice(&address.octets());
                        b[6..8].copy_from_slice(&value.to_be_bytes());
                    }
                    RouteTarget::As4 { asn, value } => {
                        b[0] = TYPE_FLOW_AS4;
                        b[2..6].copy_from_slice(&asn.to_be_bytes());
                        b[6..8].copy_from_slice(&value.to_be_bytes());
                    }
                }
            }
            ExtCommunity::TrafficMarking { dscp } => {
                b[0] = TYPE_FLOW;
                b[1] = SUB_MARKING;
                b[7] = dscp & 0x3f;
            }
            ExtCommunity::RedirectToNextHop { copy } => {
                b[0] = TYPE_REDIRECT_NEXT_HOP;
                b[7] = u8::from(copy);
            }
            ExtCommunity::RedirectToIpv4 { address, copy } => {
                b[0] = TYPE_IPV4_SPECIFIC;
                b[1] = SUB_REDIRECT_IP;
                b[2..6].copy_from_slice(&address.octets());
                b[7] = u8::from(copy);
            }
            ExtCommunity::Other(raw) => b = raw,
        }
        b
    }

    /// Decodes one community; a rate that is NaN, negative or infinite is refused.
    pub fn from_bytes(b: [u8; 8]) -> Result<ExtCommunity, CodecError> {
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(match (b[0], b[1]) {
            (TYPE_FLOW, SUB_RATE_BYTES) => {
                ExtCommunity::TrafficRateBytes { asn: u16_at(2), rate: Rate::new(f32::from_bits(u32_at(4)))? }
            }
            (TYPE_FLOW, SUB_RATE_PACKETS) => ExtCommunity::TrafficRatePackets {
                asn: u16_at(2),
                rate: Rate::new(f32::from_bits(u32_at(4)))?,
            },
            (TYPE_FLOW, SUB_ACTION) if b[2..7] == [0; 5] && b[7] & !0x03 == 0 => {
                ExtCommunity::TrafficAction { sample: b[7] & 0x02 != 0, terminal: b[7] & 0x01 != 0 }
            }
            (TYPE_FLOW, SUB_REDIRECT) => {
                ExtCommunity::RedirectVrf(RouteTarget::As2 { asn: u16_at(2), value: u32_at(4) })
            }
            (TYPE_FLOW_IPV4, SUB_REDIRECT) => ExtCommunity::RedirectVrf(RouteTarget::Ipv4 {
                address: Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                value: u16_at(6),
            }),
            (TYPE_FLOW_AS4, SUB_REDIRECT) => {
                ExtCommunity::RedirectVrf(RouteTarget::As4 { asn: u32_at(2), value: u16_at(6) })
            }
            (TYPE_FLOW, SUB_MARKING) if b[2..7] == [0; 5] && b[7] & 0xc0 == 0 => {
                ExtCommunity::TrafficMarking { dscp: b[7] }
            }
            (TYPE_REDIRECT_NEXT_HOP, 0x00) if b[2..7] == [0; 5] && b[7] & !1 == 0 => {
                ExtCommunity::RedirectToNextHop { copy: b[7] & 1 != 0 }
            }
            (TYPE_IPV4_SPECIFIC, SUB_REDIRECT_IP) if b[6] == 0 && b[7] & !1 == 0 => {
                ExtCommunity::RedirectToIpv4 {
                    address: Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                    copy: b[7] & 1 != 0,
                }
            }
            _ => ExtCommunity::Other(b),
        })
    }
}

/// An IPv6 address-specific extended community (RFC 5701, 20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv6ExtCommunity {
    /// Redirect to this IPv6 address (0x000c, draft-ietf-idr-flowspec-redirect-ip).
    RedirectToIpv6 { address: Ipv6Addr, copy: bool },
    /// Any other, as received.
    Other([u8; 20]),
}

impl Ipv6ExtCommunity {
    pub fn to_bytes(&self) -> [u8; 20] {
        match *self {
            Ipv6ExtCommunity::RedirectToIpv6 { address, copy } => {
                let mut b = [0u8; 20];
                b[1] = SUB_REDIRECT_IP;
                b[2..18].copy_from_slice(&address.octets());
                b[19] = u8::from(copy);
                b
            }
            Ipv6ExtCommunity::Other(raw) => raw,
        }
    }

    pub fn from_bytes(b: [u8; 20]) -> Ipv6ExtCommunity {
        if b[0] == 0 && b[1] == SUB_REDIRECT_IP && b[18] == 0 && b[19] & !1 == 0 {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[2..18]);
            Ipv6ExtCommunity::RedirectToIpv6 { address: Ipv6Addr::from(octets), copy: b[19] & 1 != 0 }
        } else {
            Ipv6ExtCommunity::Other(b)
        }
    }
}

pub(crate) fn decode_list<const N: usize, T>(
    r: &mut Reader<'_>,
    what: &'static str,
    f: impl Fn([u8; N]) -> Result<T, CodecError>,
) -> Result<Vec<T>, CodecError> {
    if !r.remaining().is_multiple_of(N) {
        return Err(crate::error::invalid(what, format!("length {} not a multiple of {N}", r.remaining())));
    }
    let mut out = Vec::with_capacity(r.remaining() / N);
    while !r.is_empty() {
        out.push(f(r.array::<N>(what)?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_refuse_nan_negative_and_infinite() {
        for bad in [f32::NAN, -1.0, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(Rate::new(bad).is_err());
            let mut b = [0x80, 0x06, 0, 0, 0, 0, 0, 0];
            b[4..].copy_from_slice(&bad.to_be_bytes());
            assert!(ExtCommunity::from_bytes(b).is_err(), "{bad}");
        }
        let discard = ExtCommunity::TrafficRateBytes { asn: 0, rate: Rate::ZERO };
        assert_eq!(discard.to_bytes(), [0x80, 0x06, 0, 0, 0, 0, 0, 0]);
        let limit = ExtCommunity::TrafficRateBytes { asn: 64500, rate: Rate::from_count(125_000) };
        assert_eq!(ExtCommunity::from_bytes(limit.to_bytes()).unwrap(), limit);
    }

    #[test]
    fn redirects_and_marking_have_their_type_codes() {
        let rt = ExtCommunity::RedirectVrf(RouteTarget::As4 { asn: 4_200_000_000, value: 7 });
        assert_eq!(rt.to_bytes()[..2], [0x82, 0x08]);
        assert_eq!(ExtCommunity::from_bytes(rt.to_bytes()).unwrap(), rt);
        let ip = ExtCommunity::RedirectToIpv4 { address: Ipv4Addr::new(192, 0, 2, 9), copy: false };
        assert_eq!(ip.to_bytes(), [0x01, 0x0c, 192, 0, 2, 9, 0, 0]);
        assert_eq!(ExtCommunity::RedirectToNextHop { copy: false }.to_bytes(), [0x08, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ExtCommunity::TrafficMarking { dscp: 46 }.to_bytes(), [0x80, 0x09, 0, 0, 0, 0, 0, 46]);
        let v6 = Ipv6ExtCommunity::RedirectToIpv6 { address: "2001:db8::1".parse().unwrap(), copy: true };
        assert_eq!(Ipv6ExtCommunity::from_bytes(v6.to_bytes()), v6);
    }

    #[test]
    fn communities_parse_and_print() {
        assert_eq!(Community::BLACKHOLE.to_string(), "65535:666");
        assert_eq!(Community::try_from("64500:1".to_string()).unwrap(), Community::new(64500, 1));
        assert!(Community::try_from("70000:1".to_string()).is_err());
        let lc = LargeCommunity::try_from("4200000000:1:2".to_string()).unwrap();
        assert_eq!(lc.to_string(), "4200000000:1:2");
    }
}
