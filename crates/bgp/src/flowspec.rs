//! FlowSpec NLRI for IPv4 (RFC 8955) and IPv6 (RFC 8956): typed components, their operators,
//! and the wire form (components in strictly increasing type order, the two-byte length form
//! from 240 bytes, end-of-list and AND bits set from each operator's position).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rampart_contract::{FragmentMatch, LengthRange, PortRange, TcpFlags};

use crate::error::{CodecError, invalid};
use crate::wire::Reader;

/// The longest NLRI the 12-bit two-byte length form can express.
pub const MAX_NLRI_LEN: usize = 0x0fff;

const END: u8 = 0x80;
const AND: u8 = 0x40;
const LEN_MASK: u8 = 0x30;
const NUM_LT: u8 = 0x04;
const NUM_GT: u8 = 0x02;
const NUM_EQ: u8 = 0x01;
const BIT_NOT: u8 = 0x02;
const BIT_MATCH: u8 = 0x01;

/// Fragment bitmask bits (RFC 8955 section 4.2.2.12).
pub const FRAG_DONT: u64 = 0x01;
pub const FRAG_IS: u64 = 0x02;
pub const FRAG_FIRST: u64 = 0x04;
pub const FRAG_LAST: u64 = 0x08;

/// Address family of a FlowSpec rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowAfi {
    Ipv4,
    Ipv6,
}

/// One numeric comparison (`<`, `>`, `=` and their unions) with a value; `and` joins it to
/// the previous operator (otherwise it starts a new OR term).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumericOp {
    pub and: bool,
    pub lt: bool,
    pub gt: bool,
    pub eq: bool,
    pub value: u64,
}

impl NumericOp {
    pub const fn eq(value: u64) -> Self {
        NumericOp { and: false, lt: false, gt: false, eq: true, value }
    }
}

/// One bitmask test: `matches` asks for all of `value`'s bits, otherwise any of them; `not`
/// negates the test; `and` joins it to the previous operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BitmaskOp {
    pub and: bool,
    pub not: bool,
    pub matches: bool,
    pub value: u64,
}

/// Numeric component types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumericKind {
    /// IP protocol (IPv4) or last next header (IPv6).
    Protocol = 3,
    /// Source or destination port.
    Port = 4,
    DstPort = 5,
    SrcPort = 6,
    IcmpType = 7,
    IcmpCode = 8,
    /// IP total length (IPv4) or payload length... as the router defines it.
    PacketLength = 10,
    Dscp = 11,
    /// IPv6 only.
    FlowLabel = 13,
}

/// Bitmask component types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BitmaskKind {
    TcpFlags = 9,
    Fragment = 12,
}

/// A prefix component: IPv4, or IPv6 with its bit offset (RFC 8956; 0 for a plain prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowPrefix {
    V4(Ipv4Net),
    V6 { prefix: Ipv6Net, offset: u8 },
}

impl FlowPrefix {
    /// A plain prefix, host bits cleared.
    pub fn new(net: IpNet) -> Self {
        match net.trunc() {
            IpNet::V4(n) => FlowPrefix::V4(n),
            IpNet::V6(n) => FlowPrefix::V6 { prefix: n, offset: 0 },
        }
    }

    fn afi(&self) -> FlowAfi {
        match self {
            FlowPrefix::V4(_) => FlowAfi::Ipv4,
            FlowPrefix::V6 { .. } => FlowAfi::Ipv6,
        }
    }
}

/// One FlowSpec component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    DstPrefix(FlowPrefix),
    SrcPrefix(FlowPrefix),
    Numeric(NumericKind, Vec<NumericOp>),
    Bitmask(BitmaskKind, Vec<BitmaskOp>),
}

impl Component {
    /// The component's type code, which orders components on the wire.
    pub fn type_code(&self) -> u8 {
        match self {
            Component::DstPrefix(_) => 1,
            Component::SrcPrefix(_) => 2,
            Component::Numeric(kind, _) => *kind as u8,
            Component::Bitmask(kind, _) => *kind as u8,
        }
    }
}

/// A FlowSpec rule: the match part (NLRI) of a FlowSpec route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowRule {
    pub afi: FlowAfi,
    /// In strictly increasing type order (checked by `encode`, guaranteed by `decode`).
    pub components: Vec<Component>,
}

// ---- builders from the contract's match fields ----

/// Operators matching any of the port ranges.
pub fn port_ops(ranges: &[PortRange]) -> Vec<NumericOp> {
    ranges.iter().flat_map(|r| range_ops(u64::from(r.first), u64::from(r.last))).collect()
}

/// Operators matching a length range.
pub fn length_ops(range: LengthRange) -> Vec<NumericOp> {
    range_ops(u64::from(range.min), u64::from(range.max))
}

fn range_ops(first: u64, last: u64) -> Vec<NumericOp> {
    if first == last {
        vec![NumericOp::eq(first)]
    } else {
        vec![
            NumericOp { and: false, lt: false, gt: true, eq: true, value: first },
            NumericOp { and: true, lt: true, gt: false, eq: true, value: last },
        ]
    }
}

/// Operators for `(flags & mask) == (value & mask)`: every required bit set, every other
/// examined bit clear.
pub fn tcp_flag_ops(flags: TcpFlags) -> Vec<BitmaskOp> {
    let set = u64::from(flags.value & flags.mask);
    let clear = u64::from(flags.mask & !flags.value);
    let mut ops = Vec::with_capacity(2);
    if set != 0 {
        ops.push(BitmaskOp { and: false, not: false, matches: true, value: set });
    }
    if clear != 0 {
        ops.push(BitmaskOp { and: !ops.is_empty(), not: true, matches: false, value: clear });
    }
    ops
}

/// Operators for the contract's fragment match.
pub fn fragment_ops(fragment: FragmentMatch) -> Vec<BitmaskOp> {
    match fragment {
        // A fragment that is not the first one: IsF set AND FF clear.
        FragmentMatch::NonInitial => vec![
            BitmaskOp { and: false, not: false, matches: true, value: FRAG_IS },
            BitmaskOp { and: true, not: true, matches: false, value: FRAG_FIRST },
        ],
        // Not a fragment, OR the first fragment.
        FragmentMatch::NotNonInitial => vec![
            BitmaskOp { and: false, not: true, matches: false, value: FRAG_IS },
            BitmaskOp { and: false, not: false, matches: true, value: FRAG_FIRST },
        ],
    }
}

// ---- wire form ----

fn len_code(value: u64) -> (u8, usize) {
    if value <= 0xff {
        (0x00, 1)
    } else if value <= 0xffff {
        (0x10, 2)
    } else if value <= 0xffff_ffff {
        (0x20, 4)
    } else {
        (0x30, 8)
    }
}

fn put_value(out: &mut Vec<u8>, value: u64, size: usize) {
    out.extend_from_slice(&value.to_be_bytes()[8 - size..]);
}

fn encode_prefix(out: &mut Vec<u8>, prefix: &FlowPrefix) {
    match prefix {
        FlowPrefix::V4(net) => {
            let len = net.prefix_len();
            out.push(len);
            let bytes = net.network().octets();
            out.extend_from_slice(&bytes[..usize::from(len).div_ceil(8)]);
        }
        FlowPrefix::V6 { prefix, offset } => {
            let len = prefix.prefix_len();
            out.push(len);
            out.push(*offset);
            let bits = u128::from(prefix.network()) << offset;
            let pattern_bits = usize::from(len.saturating_sub(*offset));
            out.extend_from_slice(&bits.to_be_bytes()[..pattern_bits.div_ceil(8)]);
        }
    }
}

impl FlowRule {
    /// The NLRI on the wire, length prefix included.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.components.is_empty() {
            return Err(invalid("flowspec rule", "no components"));
        }
        let mut body = Vec::with_capacity(64);
        let mut previous = 0u8;
        for component in &self.components {
            let code = component.type_code();
            if code <= previous {
                return Err(CodecError::ComponentOrder { previous, found: code });
            }
            previous = code;
            body.push(code);
            match component {
                Component::DstPrefix(p) | Component::SrcPrefix(p) => {
                    if p.afi() != self.afi {
                        return Err(invalid("flowspec prefix", "family differs from the rule's"));
                    }
                    if let FlowPrefix::V6 { prefix, offset } = p
                        && *offset > prefix.prefix_len()
                    {
                        return Err(invalid("flowspec prefix", "offset beyond prefix length"));
                    }
                    encode_prefix(&mut body, p);
                }
                Component::Numeric(kind, ops) => {
                    if ops.is_empty() {
                        return Err(invalid("flowspec operators", "empty list"));
                    }
                    if *kind == NumericKind::FlowLabel && self.afi == FlowAfi::Ipv4 {
                        return Err(invalid("flowspec component", "flow label in an IPv4 rule"));
                    }
                    for (i, op) in ops.iter().enumerate() {
                        let (code, size) = len_code(op.value);
                        let mut byte = code;
                        if i + 1 == ops.len() {
                            byte |= END;
                        }
                        // The first operator has nothing before it to AND with.
                        if op.and && i > 0 {
                            byte |= AND;
                        }
                        byte |= (u8::from(op.lt) * NUM_LT)
                            | (u8::from(op.gt) * NUM_GT)
                            | (u8::from(op.eq) * NUM_EQ);
                        body.push(byte);
                        put_value(&mut body, op.value, size);
                    }
                }
                Component::Bitmask(_, ops) => {
                    if ops.is_empty() {
                        return Err(invalid("flowspec operators", "empty list"));
                    }
                    for (i, op) in ops.iter().enumerate() {
                        let (code, size) = len_code(op.value);
                        let mut byte = code;
                        if i + 1 == ops.len() {
                            byte |= END;
                        }
                        if op.and && i > 0 {
                            byte |= AND;
                        }
                        byte |= (u8::from(op.not) * BIT_NOT) | (u8::from(op.matches) * BIT_MATCH);
                        body.push(byte);
                        put_value(&mut body, op.value, size);
                    }
                }
            }
        }
        match body.len() {
            n if n < 240 => out.push(n as u8),
            n if n <= MAX_NLRI_LEN => out.extend_from_slice(&(0xf000 | n as u16).to_be_bytes()),
            n => return Err(invalid("flowspec rule", format!("{n} bytes exceed {MAX_NLRI_LEN}"))),
        }
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Decodes one NLRI (length prefix included) from `r`.
    pub(crate) fn decode(r: &mut Reader<'_>, afi: FlowAfi) -> Result<FlowRule, CodecError> {
        let first = r.u8("flowspec length")?;
        let len = if first >= 0xf0 {
            (usize::from(first & 0x0f) << 8) | usize::from(r.u8("flowspec length")?)
        } else {
            usize::from(first)
        };
        let mut body = r.sub(len, "flowspec nlri")?;
        let mut components = Vec::new();
        let mut previous = 0u8;
        while !body.is_empty() {
            let code = body.u8("flowspec component type")?;
            if code <= previous {
                return Err(CodecError::ComponentOrder { previous, found: code });
            }
            previous = code;
            let component = match code {
                1 => Component::DstPrefix(decode_prefix(&mut body, afi)?),
                2 => Component::SrcPrefix(decode_prefix(&mut body, afi)?),
                9 => Component::Bitmask(BitmaskKind::TcpFlags, decode_bitmask(&mut body)?),
                12 => Component::Bitmask(BitmaskKind::Fragment, decode_bitmask(&mut body)?),
                _ => {
                    let kind = match code {
                        3 => NumericKind::Protocol,
                        4 => NumericKind::Port,
                        5 => NumericKind::DstPort,
                        6 => NumericKind::SrcPort,
                        7 => NumericKind::IcmpType,
                        8 => NumericKind::IcmpCode,
                        10 => NumericKind::PacketLength,
                        11 => NumericKind::Dscp,
                        13 if afi == FlowAfi::Ipv6 => NumericKind::FlowLabel,
                        other => return Err(invalid("flowspec component type", other.to_string())),
                    };
                    Component::Numeric(kind, decode_numeric(&mut body)?)
                }
            };
            components.push(component);
        }
        if components.is_empty() {
            return Err(invalid("flowspec rule", "no components"));
        }
        Ok(FlowRule { afi, components })
    }
}

fn decode_prefix(r: &mut Reader<'_>, afi: FlowAfi) -> Result<FlowPrefix, CodecError> {
    let len = r.u8("flowspec prefix length")?;
    match afi {
        FlowAfi::Ipv4 => {
            if len > 32 {
                return Err(invalid("flowspec prefix length", len.to_string()));
            }
            let bytes = r.take(usize::from(len).div_ceil(8), "flowspec prefix")?;
            let mut octets = [0u8; 4];
            octets[..bytes.len()].copy_from_slice(bytes);
            let net = Ipv4Net::new(Ipv4Addr::from(octets), len)
                .map_err(|e| invalid("flowspec prefix", e.to_string()))?;
            Ok(FlowPrefix::V4(net.trunc()))
        }
        FlowAfi::Ipv6 => {
            let offset = r.u8("flowspec prefix offset")?;
            if len > 128 || offset > len {
                return Err(invalid("flowspec prefix", format!("length {len} offset {offset}")));
            }
            let bytes = r.take(usize::from(len - offset).div_ceil(8), "flowspec prefix")?;
            let mut octets = [0u8; 16];
            octets[..bytes.len()].copy_from_slice(bytes);
            let bits = u128::from_be_bytes(octets) >> offset;
            let net = Ipv6Net::new(Ipv6Addr::from(bits), len)
                .map_err(|e| invalid("flowspec prefix", e.to_string()))?;
            Ok(FlowPrefix::V6 { prefix: net.trunc(), offset })
        }
    }
}

fn read_op(r: &mut Reader<'_>) -> Result<(u8, u64), CodecError> {
    let byte = r.u8("flowspec operator")?;
    let size = 1usize << ((byte & LEN_MASK) >> 4);
    let mut value = 0u64;
    for b in r.take(size, "flowspec operator value")? {
        value = (value << 8) | u64::from(*b);
    }
    Ok((byte, value))
}

fn decode_numeric(r: &mut Reader<'_>) -> Result<Vec<NumericOp>, CodecError> {
    let mut ops = Vec::new();
    loop {
        let (byte, value) = read_op(r)?;
        ops.push(NumericOp {
            and: byte & AND != 0 && !ops.is_empty(),
            lt: byte & NUM_LT != 0,
            gt: byte & NUM_GT != 0,
            eq: byte & NUM_EQ != 0,
            value,
        });
        if byte & END != 0 {
            return Ok(ops);
        }
    }
}

fn decode_bitmask(r: &mut Reader<'_>) -> Result<Vec<BitmaskOp>, CodecError> {
    let mut ops = Vec::new();
    loop {
        let (byte, value) = read_op(r)?;
        ops.push(BitmaskOp {
            and: byte & AND != 0 && !ops.is_empty(),
            not: byte & BIT_NOT != 0,
            matches: byte & BIT_MATCH != 0,
            value,
        });
        if byte & END != 0 {
            return Ok(ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], afi: FlowAfi) -> Result<FlowRule, CodecError> {
        FlowRule::decode(&mut Reader::new(bytes), afi)
    }

    #[test]
    fn rfc_8955_example_encodes_byte_for_byte() {
        // RFC 8955 section 4.2.2, example 1: destination 10.0.1/24, protocol TCP, port 25.
        let rule = FlowRule {
            afi: FlowAfi::Ipv4,
            components: vec![
                Component::DstPrefix(FlowPrefix::new("10.0.1.0/24".parse().unwrap())),
                Component::Numeric(NumericKind::Protocol, vec![NumericOp::eq(6)]),
                Component::Numeric(NumericKind::Port, vec![NumericOp::eq(25)]),
            ],
        };
        let mut out = Vec::new();
        rule.encode(&mut out).unwrap();
        assert_eq!(out, [0x0b, 0x01, 0x18, 0x0a, 0x00, 0x01, 0x03, 0x81, 0x06, 0x04, 0x81, 0x19]);
        assert_eq!(decode_all(&out, FlowAfi::Ipv4).unwrap(), rule);
    }

    #[test]
    fn port_ranges_set_and_and_end_bits() {
        let ops = port_ops(&[PortRange::single(53), PortRange { first: 1024, last: 2048 }]);
        let rule =
            FlowRule { afi: FlowAfi::Ipv4, components: vec![Component::Numeric(NumericKind::DstPort, ops)] };
        let mut out = Vec::new();
        rule.encode(&mut out).unwrap();
        // =53 | >=1024 & (end) <=2048
        assert_eq!(out, [9, 5, 0x01, 53, 0x13, 0x04, 0x00, 0xd5, 0x08, 0x00]);
    }

    #[test]
    fn long_rules_use_the_two_byte_length() {
        let ops: Vec<NumericOp> = (0..120).map(|p| NumericOp::eq(1000 + p)).collect();
        let rule =
            FlowRule { afi: FlowAfi::Ipv4, components: vec![Component::Numeric(NumericKind::DstPort, ops)] };
        let mut out = Vec::new();
        rule.encode(&mut out).unwrap();
        assert_eq!(out[0] & 0xf0, 0xf0);
        assert_eq!(usize::from(u16::from_be_bytes([out[0], out[1]]) & 0x0fff), out.len() - 2);
        assert_eq!(decode_all(&out, FlowAfi::Ipv4).unwrap(), rule);
        // 239 bytes still take the one-byte form, 240 the two-byte one.
        let ports = |n: u64| Component::Numeric(NumericKind::DstPort, (0..n).map(NumericOp::eq).collect());
        let one = FlowRule { afi: FlowAfi::Ipv4, components: vec![ports(119)] };
        let two = FlowRule {
            afi: FlowAfi::Ipv4,
            components: vec![Component::Numeric(NumericKind::Protocol, vec![NumericOp::eq(17)]), ports(118)],
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        one.encode(&mut a).unwrap();
        two.encode(&mut b).unwrap();
        assert_eq!((a[0], a.len()), (239, 240));
        assert_eq!((b[0], b[1], b.len()), (0xf0, 240, 242));
        assert_eq!(decode_all(&b, FlowAfi::Ipv4).unwrap(), two);
    }

    #[test]
    fn out_of_order_components_are_refused_both_ways() {
        let rule = FlowRule {
            afi: FlowAfi::Ipv4,
            components: vec![
                Component::Numeric(NumericKind::Protocol, vec![NumericOp::eq(17)]),
                Component::DstPrefix(FlowPrefix::new("192.0.2.0/24".parse().unwrap())),
            ],
        };
        assert!(matches!(rule.encode(&mut Vec::new()), Err(CodecError::ComponentOrder { .. })));
        let wire = [0x08, 0x03, 0x81, 0x11, 0x01, 0x18, 0xc0, 0x00, 0x02];
        assert!(matches!(decode_all(&wire, FlowAfi::Ipv4), Err(CodecError::ComponentOrder { .. })));
    }

    #[test]
    fn tcp_flags_and_fragments() {
        // SYN without ACK: SYN set AND ACK... clear.
        let ops = tcp_flag_ops(TcpFlags { value: 0x02, mask: 0x12 });
        assert_eq!(ops.len(), 2);
        assert!(ops[0].matches && !ops[0].not && ops[0].value == 0x02);
        assert!(ops[1].and && ops[1].not && ops[1].value == 0x10);
        assert_eq!(tcp_flag_ops(TcpFlags::exact(0x00)).len(), 1);
        let frag = fragment_ops(FragmentMatch::NonInitial);
        assert!(frag[1].and);
        assert!(!fragment_ops(FragmentMatch::NotNonInitial)[1].and);
    }

    #[test]
    fn ipv6_prefix_with_offset() {
        let prefix: Ipv6Net = "2001:db8:0:0:1::/80".parse().unwrap();
        let rule = FlowRule {
            afi: FlowAfi::Ipv6,
            components: vec![Component::DstPrefix(FlowPrefix::V6 { prefix: prefix.trunc(), offset: 64 })],
        };
        let mut out = Vec::new();
        rule.encode(&mut out).unwrap();
        // type, length 80, offset 64, 16 bits of pattern.
        assert_eq!(out, [5, 1, 80, 64, 0x00, 0x01]);
        let back = decode_all(&out, FlowAfi::Ipv6).unwrap();
        assert_eq!(
            back.components[0],
            Component::DstPrefix(FlowPrefix::V6 { prefix: "::1:0:0:0/80".parse().unwrap(), offset: 64 })
        );
    }
}
