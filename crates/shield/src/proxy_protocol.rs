//! The PROXY protocol (HAProxy's, versions 1 and 2): the client address a load balancer in
//! front of the shield passes at the start of each connection.
//!
//! Pure: [`parse`] takes the bytes read so far and says "need more", "here is the header and
//! how many bytes it took", or why the bytes are not one. Headers are bounded (v1: 107 bytes,
//! v2: 16 + 536 bytes here), so a peer cannot make us buffer more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// Longest v2 address block accepted (IPv6 addresses plus 500 bytes of TLVs).
pub const V2_MAX_BLOCK: usize = 536;

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The original client, when the header carries one (not for LOCAL or UNKNOWN).
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither the v1 `PROXY ` prefix nor the v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A v1 line longer than 107 bytes or without CRLF.
    #[error("PROXY v1 line too long")]
    TooLong,
    /// A v1 line that does not parse.
    #[error("malformed PROXY v1 line")]
    BadV1,
    /// A v2 header with an unknown version, command, family or a short address block.
    #[error("malformed PROXY v2 header")]
    BadV2,
}

/// Parse the header at the start of `bytes`: `Ok(None)` when more bytes are needed.
pub fn parse(bytes: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let signature_prefix = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..signature_prefix] == V2_SIGNATURE[..signature_prefix] && !bytes.is_empty() {
        return parse_v2(bytes);
    }
    let v1_prefix = bytes.len().min(6);
    if bytes[..v1_prefix] == b"PROXY "[..v1_prefix] {
        return parse_v1(bytes);
    }
    Err(ProxyHeaderError::NotProxy)
}

fn parse_v1(bytes: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let Some(end) = bytes.iter().take(V1_MAX).position(|b| *b == b'\n') else {
        return if bytes.len() >= V1_MAX { Err(ProxyHeaderError::TooLong) } else { Ok(None) };
    };
    let line = &bytes[..end + 1];
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::BadV1)?;
    let text = text.strip_suffix("\r\n").ok_or(ProxyHeaderError::BadV1)?;
    let mut fields = text.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(ProxyHeaderError::BadV1);
    }
    let family = fields.next().ok_or(ProxyHeaderError::BadV1)?;
    if family == "UNKNOWN" {
        return Ok(Some((Header { source: None, destination: None }, line.len())));
    }
    let parts: Vec<&str> = fields.collect();
    let [source, destination, source_port, destination_port] = parts[..] else {
        return Err(ProxyHeaderError::BadV1);
    };
    let parse_ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
        match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| ProxyHeaderError::BadV1),
            "TCP6" => text.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| ProxyHeaderError::BadV1),
            _ => Err(ProxyHeaderError::BadV1),
        }
    };
    let parse_port = |text: &str| -> Result<u16, ProxyHeaderError> {
        // Decimal without sign or leading zeros, as the specification says.
        if text.is_empty()
            || text.len() > 5
            || (text.len() > 1 && text.starts_with('0'))
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ProxyHeaderError::BadV1);
        }
        text.parse().map_err(|_| ProxyHeaderError::BadV1)
    };
    let header = Header {
        source: Some(SocketAddr::new(parse_ip(source)?, parse_port(source_port)?)),
        destination: Some(SocketAddr::new(parse_ip(destination)?, parse_port(destination_port)?)),
    };
    Ok(Some((header, line.len())))
}

fn parse_v2(bytes: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    if bytes.len() < 16 {
        return Ok(None);
    }
    let version_command = bytes[12];
    let family = bytes[13];
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if version_command >> 4 != 2 || length > V2_MAX_BLOCK {
        return Err(ProxyHeaderError::BadV2);
    }
    if bytes.len() < 16 + length {
        return Ok(None);
    }
    let block = &bytes[16..16 + length];
    let total = 16 + length;
    match version_command & 0x0f {
        // LOCAL: the balancer's own connection (health checks); no client address.
        0 => return Ok(Some((Header { source: None, destination: None }, total))),
        1 => {}
        _ => return Err(ProxyHeaderError::BadV2),
    }
    let header = match family {
        // TCP or UDP over IPv4.
        0x11 | 0x12 => {
            if block.len() < 12 {
                return Err(ProxyHeaderError::BadV2);
            }
            let ip =
                |at: usize| IpAddr::V4(Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]));
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Header {
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
            }
        }
        0x21 | 0x22 => {
            if block.len() < 36 {
                return Err(ProxyHeaderError::BadV2);
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Header {
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
            }
        }
        // UNSPEC or UNIX sockets: no address we can use.
        0x00 | 0x31 | 0x32 => Header { source: None, destination: None },
        _ => return Err(ProxyHeaderError::BadV2),
    };
    Ok(Some((header, total)))
}

/// A v2 PROXY header for `source` → `destination` (for tests and tools).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        _ => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(source).octets());
            out.extend_from_slice(&v6(destination).octets());
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        let (header, used) = parse(line).unwrap().unwrap();
        assert_eq!(header.source, Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(header.destination, Some("198.51.100.2:443".parse().unwrap()));
        assert_eq!(&line[used..], b"GET /");
        let (header, _) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").unwrap().unwrap();
        assert_eq!(header.source, Some("[2001:db8::1]:1".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0.source, None);
        assert_eq!(parse(b"PROXY TCP4 192.0.2.1"), Ok(None));
        assert_eq!(parse(b"PRO"), Ok(None));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::NotProxy));
        assert_eq!(parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 056 443\r\n"), Err(ProxyHeaderError::BadV1));
        assert_eq!(parse(b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n"), Err(ProxyHeaderError::BadV1));
        assert_eq!(parse(&[b"PROXY ".as_slice(), &[b'x'; 200]].concat()), Err(ProxyHeaderError::TooLong));
    }

    #[test]
    fn v2_round_trip() {
        for (source, destination) in
            [("192.0.2.1:1000", "198.51.100.2:443"), ("[2001:db8::1]:1000", "[2001:db8::2]:443")]
        {
            let source: SocketAddr = source.parse().unwrap();
            let destination: SocketAddr = destination.parse().unwrap();
            let mut bytes = encode_v2(source, destination);
            let header_len = bytes.len();
            bytes.extend_from_slice(b"GET /");
            let (header, used) = parse(&bytes).unwrap().unwrap();
            assert_eq!(
                (header.source, header.destination, used),
                (Some(source), Some(destination), header_len)
            );
            for cut in 1..header_len {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "{cut}");
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().0.source, None);
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(ProxyHeaderError::BadV2));
    }

    proptest! {
        /// Random bytes and mutated valid headers: no panic, a consumed length within the
        /// input and the bound, and "need more" only for inputs shorter than the bound.
        #[test]
        fn any_bytes(
            prefix in prop_oneof![
                Just(b"PROXY ".to_vec()),
                Just(V2_SIGNATURE.to_vec()),
                Just(encode_v2("192.0.2.1:1".parse().unwrap(), "198.51.100.1:2".parse().unwrap())),
                Just(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n".to_vec()),
                Just(Vec::new()),
            ],
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            flip in any::<(usize, u8)>(),
        ) {
            let mut bytes = [prefix, tail].concat();
            if !bytes.is_empty() {
                let at = flip.0 % bytes.len();
                bytes[at] ^= flip.1;
            }
            match parse(&bytes) {
                Ok(Some((_, used))) => prop_assert!(used <= bytes.len() && used <= 16 + V2_MAX_BLOCK),
                Ok(None) => prop_assert!(bytes.len() < 16 + V2_MAX_BLOCK),
                Err(_) => {}
            }
        }
    }
}
