//! BGP messages (RFC 4271 section 4): the header, OPEN with its capabilities, UPDATE,
//! NOTIFICATION, KEEPALIVE and ROUTE-REFRESH (RFC 2918).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::attr::{AS_TRANS, PathAttribute, decode_prefixes, encode_prefix};
use crate::error::{CodecError, invalid};
use crate::family::Family;
use crate::wire::Reader;

pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
const PARAM_CAPABILITIES: u8 = 2;

/// A family in the graceful-restart capability, with its forwarding-state bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrFamily {
    pub afi: u16,
    pub safi: u8,
    /// Forwarding state was preserved across the restart.
    pub forwarding: bool,
}

/// A capability advertised in OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol { afi: u16, safi: u8 },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 4724: restart flag, restart time (seconds, 12 bits), families.
    GracefulRestart { restarting: bool, time: u16, families: Vec<GrFamily> },
    /// RFC 6793.
    FourOctetAs(u32),
    /// Any other, as received.
    Unknown { code: u8, value: Vec<u8> },
}

impl Capability {
    pub fn multiprotocol(family: Family) -> Capability {
        let (afi, safi) = family.afi_safi();
        Capability::Multiprotocol { afi, safi }
    }
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The two-octet "My Autonomous System" field (AS_TRANS for a four-octet AS).
    pub asn2: u16,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`, with the four-octet AS capability added.
    pub fn new(asn: u32, hold_time: u16, router_id: Ipv4Addr, mut capabilities: Vec<Capability>) -> Open {
        capabilities.push(Capability::FourOctetAs(asn));
        Open { asn2: u16::try_from(asn).unwrap_or(AS_TRANS), hold_time, router_id, capabilities }
    }

    /// The speaker's AS: from the four-octet capability when present.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| if let Capability::FourOctetAs(a) = c { Some(*a) } else { None })
            .unwrap_or(u32::from(self.asn2))
    }

    pub fn has(&self, wanted: impl Fn(&Capability) -> bool) -> bool {
        self.capabilities.iter().any(wanted)
    }
}

/// An UPDATE: classic IPv4 withdrawals and NLRI, and the path attributes (MP_REACH /
/// MP_UNREACH for every other family).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Ipv4Net>,
}

/// A NOTIFICATION: error code, subcode, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub const HOLD_TIMER_EXPIRED: (u8, u8) = (4, 0);
    pub const CEASE_ADMIN_SHUTDOWN: (u8, u8) = (6, 2);
    pub const FSM_ERROR: (u8, u8) = (5, 0);

    pub fn new((code, subcode): (u8, u8)) -> Notification {
        Notification { code, subcode, data: Vec::new() }
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    /// RFC 2918 (subtype 0) and RFC 7313's markers (subtypes 1, 2).
    RouteRefresh {
        afi: u16,
        subtype: u8,
        safi: u8,
    },
}

impl Message {
    /// The message with its header; `as4` says whether AS numbers take four octets.
    pub fn encode(&self, as4: bool) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&[0, 0, 0]);
        match self {
            Message::Open(open) => {
                out[18] = OPEN;
                out.push(4);
                out.extend_from_slice(&open.asn2.to_be_bytes());
                out.extend_from_slice(&open.hold_time.to_be_bytes());
                out.extend_from_slice(&open.router_id.octets());
                let mut params = Vec::new();
                for cap in &open.capabilities {
                    let value = encode_capability(cap);
                    let (code, body) = value;
                    let len =
                        u8::try_from(body.len()).map_err(|_| invalid("capability", "longer than 255"))?;
                    params.push(PARAM_CAPABILITIES);
                    params.push(len + 2);
                    params.push(code);
                    params.push(len);
                    params.extend_from_slice(&body);
                }
                out.push(
                    u8::try_from(params.len())
                        .map_err(|_| invalid("OPEN", "optional parameters longer than 255"))?,
                );
                out.extend_from_slice(&params);
            }
            Message::Update(update) => {
                out[18] = UPDATE;
                let mut withdrawn = Vec::new();
                update.withdrawn.iter().for_each(|p| encode_prefix(&mut withdrawn, &(*p).into()));
                out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
                out.extend_from_slice(&withdrawn);
                let mut attrs = Vec::new();
                for a in &update.attributes {
                    a.encode(&mut attrs, as4)?;
                }
                let attrs_len = u16::try_from(attrs.len()).map_err(|_| CodecError::TooLong(attrs.len()))?;
                out.extend_from_slice(&attrs_len.to_be_bytes());
                out.extend_from_slice(&attrs);
                update.nlri.iter().for_each(|p| encode_prefix(&mut out, &(*p).into()));
            }
            Message::Notification(n) => {
                out[18] = NOTIFICATION;
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
            }
            Message::Keepalive => out[18] = KEEPALIVE,
            Message::RouteRefresh { afi, subtype, safi } => {
                out[18] = ROUTE_REFRESH;
                out.extend_from_slice(&afi.to_be_bytes());
                out.push(*subtype);
                out.push(*safi);
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(CodecError::TooLong(out.len()));
        }
        let len = (out.len() as u16).to_be_bytes();
        out[16] = len[0];
        out[17] = len[1];
        Ok(out)
    }

    /// Decodes the first message of `buf`: `Ok(None)` when more bytes are needed, else the
    /// message and how many bytes it took.
    pub fn decode(buf: &[u8], as4: bool) -> Result<Option<(Message, usize)>, CodecError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        if buf[..16] != [0xff; 16] {
            return Err(CodecError::BadMarker);
        }
        let len = u16::from_be_bytes([buf[16], buf[17]]);
        if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(len)) {
            return Err(CodecError::BadLength(len));
        }
        if buf.len() < usize::from(len) {
            return Ok(None);
        }
        let mut r = Reader::new(&buf[HEADER_LEN..usize::from(len)]);
        let bad_len = || CodecError::BadLength(len);
        let message = match buf[18] {
            OPEN => Message::Open(decode_open(&mut r)?),
            UPDATE => {
                let wlen = usize::from(r.u16("withdrawn length")?);
                let mut w = r.sub(wlen, "withdrawn routes")?;
                let withdrawn = v4_only(decode_prefixes(&mut w, false)?);
                let alen = usize::from(r.u16("attributes length")?);
                let mut a = r.sub(alen, "path attributes")?;
                let mut attributes = Vec::new();
                while !a.is_empty() {
                    attributes.push(PathAttribute::decode(&mut a, as4)?);
                }
                let nlri = v4_only(decode_prefixes(&mut r, false)?);
                Message::Update(Update { withdrawn, attributes, nlri })
            }
            NOTIFICATION => {
                let code = r.u8("notification code")?;
                let subcode = r.u8("notification subcode")?;
                Message::Notification(Notification { code, subcode, data: r.rest().to_vec() })
            }
            KEEPALIVE if r.is_empty() => Message::Keepalive,
            KEEPALIVE => return Err(bad_len()),
            ROUTE_REFRESH if r.remaining() == 4 => {
                Message::RouteRefresh { afi: r.u16("AFI")?, subtype: r.u8("subtype")?, safi: r.u8("SAFI")? }
            }
            ROUTE_REFRESH => return Err(bad_len()),
            other => return Err(CodecError::BadType(other)),
        };
        Ok(Some((message, usize::from(len))))
    }
}

fn v4_only(prefixes: Vec<ipnet::IpNet>) -> Vec<Ipv4Net> {
    prefixes.into_iter().filter_map(|p| if let ipnet::IpNet::V4(n) = p { Some(n) } else { None }).collect()
}

fn encode_capability(cap: &Capability) -> (u8, Vec<u8>) {
    match cap {
        Capability::Multiprotocol { afi, safi } => {
            let a = afi.to_be_bytes();
            (CAP_MULTIPROTOCOL, vec![a[0], a[1], 0, *safi])
        }
        Capability::RouteRefresh => (CAP_ROUTE_REFRESH, Vec::new()),
        Capability::GracefulRestart { restarting, time, families } => {
            let word = (u16::from(*restarting) << 15) | (time & 0x0fff);
            let mut v = word.to_be_bytes().to_vec();
            for f in families {
                v.extend_from_slice(&f.afi.to_be_bytes());
                v.push(f.safi);
                v.push(if f.forwarding { 0x80 } else { 0 });
            }
            (CAP_GRACEFUL_RESTART, v)
        }
        Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
        Capability::Unknown { code, value } => (*code, value.clone()),
    }
}

fn decode_open(r: &mut Reader<'_>) -> Result<Open, CodecError> {
    let version = r.u8("version")?;
    if version != 4 {
        return Err(invalid("BGP version", version.to_string()));
    }
    let asn2 = r.u16("my AS")?;
    let hold_time = r.u16("hold time")?;
    let router_id = Ipv4Addr::from(r.array::<4>("BGP identifier")?);
    let plen = usize::from(r.u8("optional parameters length")?);
    let mut params = r.sub(plen, "optional parameters")?;
    let mut capabilities = Vec::new();
    while !params.is_empty() {
        let kind = params.u8("parameter type")?;
        let len = usize::from(params.u8("parameter length")?);
        let mut p = params.sub(len, "parameter")?;
        if kind != PARAM_CAPABILITIES {
            continue; // RFC 5492: only capabilities are defined; others are skipped.
        }
        while !p.is_empty() {
            let code = p.u8("capability code")?;
            let clen = usize::from(p.u8("capability length")?);
            let mut c = p.sub(clen, "capability")?;
            capabilities.push(match (code, clen) {
                (CAP_MULTIPROTOCOL, 4) => {
                    let afi = c.u16("AFI")?;
                    c.u8("reserved")?;
                    Capability::Multiprotocol { afi, safi: c.u8("SAFI")? }
                }
                (CAP_ROUTE_REFRESH, 0) => Capability::RouteRefresh,
                (CAP_FOUR_OCTET_AS, 4) => Capability::FourOctetAs(c.u32("AS")?),
                (CAP_GRACEFUL_RESTART, n) if n >= 2 && (n - 2) % 4 == 0 => {
                    let word = c.u16("restart flags")?;
                    let mut families = Vec::new();
                    while !c.is_empty() {
                        let afi = c.u16("AFI")?;
                        let safi = c.u8("SAFI")?;
                        let flags = c.u8("flags")?;
                        families.push(GrFamily { afi, safi, forwarding: flags & 0x80 != 0 });
                    }
                    Capability::GracefulRestart {
                        restarting: word & 0x8000 != 0,
                        time: word & 0x0fff,
                        families,
                    }
                }
                _ => Capability::Unknown { code, value: c.rest().to_vec() },
            });
        }
    }
    Ok(Open { asn2, hold_time, router_id, capabilities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_nineteen_bytes() {
        let wire = Message::Keepalive.encode(true).unwrap();
        assert_eq!(wire.len(), 19);
        assert_eq!(wire[16..], [0, 19, 4]);
        assert_eq!(Message::decode(&wire, true).unwrap(), Some((Message::Keepalive, 19)));
        assert_eq!(Message::decode(&wire[..18], true).unwrap(), None);
    }

    #[test]
    fn open_round_trips_with_four_octet_as() {
        let open = Open::new(
            4_200_000_001,
            90,
            Ipv4Addr::new(192, 0, 2, 1),
            vec![
                Capability::multiprotocol(Family::Ipv4Flowspec),
                Capability::RouteRefresh,
                Capability::GracefulRestart {
                    restarting: true,
                    time: 120,
                    families: vec![GrFamily { afi: 1, safi: 133, forwarding: true }],
                },
            ],
        );
        assert_eq!(open.asn2, AS_TRANS);
        let wire = Message::Open(open.clone()).encode(true).unwrap();
        let (back, used) = Message::decode(&wire, true).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(back, Message::Open(open.clone()));
        assert_eq!(open.asn(), 4_200_000_001);
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut wire = Message::Keepalive.encode(true).unwrap();
        wire[0] = 0;
        assert_eq!(Message::decode(&wire, true), Err(CodecError::BadMarker));
        let mut wire = Message::Keepalive.encode(true).unwrap();
        wire[17] = 18;
        assert_eq!(Message::decode(&wire, true), Err(CodecError::BadLength(18)));
        let mut wire = Message::Keepalive.encode(true).unwrap();
        wire[18] = 9;
        assert_eq!(Message::decode(&wire, true), Err(CodecError::BadType(9)));
    }
}
