//! The TLS ClientHello, parsed from the raw records a client sends first, and its JA4
//! fingerprint (FoxIO's JA4 specification, TCP flavour):
//!
//! `t` + TLS version (`13`, `12`...) + `d` (SNI present) or `i` + cipher count + extension count
//! (two digits each, GREASE ignored) + first and last character of the first ALPN value, `_`,
//! the first 12 hex digits of the SHA-256 of the sorted cipher suites, `_`, those of the sorted
//! extensions (SNI and ALPN left out) followed by `_` and the signature algorithms in their
//! order.
//!
//! Bounded: the parser looks at no more than [`MAX_HELLO`] bytes and never allocates more
//! than the input it was given.

use sha2::{Digest, Sha256};

/// The most bytes of records the parser waits for (a ClientHello with post-quantum key shares
/// is about 2 KiB; browsers pad to 512).
pub const MAX_HELLO: usize = 32 * 1024;

/// What the fingerprint needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The legacy version field.
    pub legacy_version: u16,
    /// Cipher suites, in order, GREASE included.
    pub ciphers: Vec<u16>,
    /// Extension types, in order, GREASE included.
    pub extensions: Vec<u16>,
    /// The server_name extension is present.
    pub sni: bool,
    /// The first ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The supported_versions extension's list.
    pub supported_versions: Vec<u16>,
    /// The signature_algorithms extension's list.
    pub signature_algorithms: Vec<u16>,
}

/// Why bytes are not a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first record is not a TLS handshake record.
    #[error("not a TLS handshake record")]
    NotTls,
    /// The first handshake message is not a ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// A length field points past its container.
    #[error("malformed ClientHello")]
    Malformed,
    /// The ClientHello is longer than the parser accepts.
    #[error("ClientHello longer than {MAX_HELLO} bytes")]
    TooLong,
}

/// GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// Parse the ClientHello at the start of `bytes` (TLS records as received):
/// `Ok(None)` when more bytes are needed.
pub fn parse(bytes: &[u8]) -> Result<Option<ClientHello>, HelloError> {
    // Reassemble the handshake message from as many records as it spans.
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = bytes.get(at..at + 5) else { return Ok(None) };
        if header[0] != 0x16 || header[1] != 0x03 {
            return Err(HelloError::NotTls);
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length == 0 || length > 16384 + 2048 {
            return Err(HelloError::Malformed);
        }
        if at + 5 + length > MAX_HELLO + 5 * 4 {
            return Err(HelloError::TooLong);
        }
        let Some(fragment) = bytes.get(at + 5..at + 5 + length) else { return Ok(None) };
        message.extend_from_slice(fragment);
        at += 5 + length;
        if message.len() >= 4 {
            if message[0] != 0x01 {
                return Err(HelloError::NotClientHello);
            }
            let body =
                (usize::from(message[1]) << 16) | (usize::from(message[2]) << 8) | usize::from(message[3]);
            if body > MAX_HELLO {
                return Err(HelloError::TooLong);
            }
            if message.len() >= 4 + body {
                return parse_body(&message[4..4 + body]).map(Some);
            }
        }
    }
}

/// A cursor over a byte slice whose reads fail instead of running past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        if n > self.bytes.len() {
            return Err(HelloError::Malformed);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, HelloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, HelloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u8()?);
        Ok(Reader { bytes: self.take(n)? })
    }

    fn vec16(&mut self) -> Result<Reader<'a>, HelloError> {
        let n = usize::from(self.u16()?);
        Ok(Reader { bytes: self.take(n)? })
    }

    fn u16_list(mut self) -> Result<Vec<u16>, HelloError> {
        if !self.bytes.len().is_multiple_of(2) {
            return Err(HelloError::Malformed);
        }
        let mut out = Vec::with_capacity(self.bytes.len() / 2);
        while !self.bytes.is_empty() {
            out.push(self.u16()?);
        }
        Ok(out)
    }
}

fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader { bytes: body };
    let mut hello = ClientHello { legacy_version: r.u16()?, ..ClientHello::default() };
    r.take(32)?;
    r.vec8()?;
    hello.ciphers = r.vec16()?.u16_list()?;
    r.vec8()?;
    if r.bytes.is_empty() {
        return Ok(hello);
    }
    let mut extensions = r.vec16()?;
    while !extensions.bytes.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec16()?;
        hello.extensions.push(kind);
        match kind {
            0x0000 => hello.sni = true,
            0x0010 => {
                let mut list = data.vec16()?;
                if !list.bytes.is_empty() && hello.alpn.is_none() {
                    hello.alpn = Some(list.vec8()?.bytes.to_vec());
                }
            }
            0x002b => hello.supported_versions = data.vec8()?.u16_list()?,
            0x000d => hello.signature_algorithms = data.vec16()?.u16_list()?,
            _ => {}
        }
    }
    Ok(hello)
}

fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn truncated_hash(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(12);
    for b in digest.iter().take(6) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// `0a0b,1301,...`: four lower-case hex digits each, written without a `format!` per value
/// (this runs once per TLS connection, also under a handshake flood).
fn hex_list(values: &[u16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for shift in [12, 8, 4, 0] {
            out.push(char::from(HEX[usize::from((v >> shift) & 0x0f)]));
        }
    }
    out
}

impl ClientHello {
    /// The JA4 fingerprint (TCP).
    pub fn ja4(&self) -> String {
        let version = self
            .supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version);
        let mut ciphers: Vec<u16> = self.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
        let extensions: Vec<u16> = self.extensions.iter().copied().filter(|e| !is_grease(*e)).collect();
        let alpn = match self.alpn.as_deref() {
            Some([first, .., last]) if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() => {
                format!("{}{}", char::from(*first), char::from(*last))
            }
            Some([only]) if only.is_ascii_alphanumeric() => format!("{0}{0}", char::from(*only)),
            Some(value @ [first, ..]) => {
                let last = value.last().copied().unwrap_or(*first);
                let hex = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
                format!("{}{}", hex(first >> 4), hex(last & 0x0f))
            }
            _ => "00".to_owned(),
        };
        let a = format!(
            "t{}{}{:02}{:02}{}",
            version_code(version),
            if self.sni { 'd' } else { 'i' },
            ciphers.len().min(99),
            extensions.len().min(99),
            alpn
        );
        ciphers.sort_unstable();
        let b =
            if ciphers.is_empty() { "000000000000".to_owned() } else { truncated_hash(&hex_list(&ciphers)) };
        let mut sorted: Vec<u16> = extensions.into_iter().filter(|e| *e != 0x0000 && *e != 0x0010).collect();
        sorted.sort_unstable();
        let algorithms: Vec<u16> =
            self.signature_algorithms.iter().copied().filter(|s| !is_grease(*s)).collect();
        let c = if sorted.is_empty() {
            "000000000000".to_owned()
        } else if algorithms.is_empty() {
            truncated_hash(&hex_list(&sorted))
        } else {
            truncated_hash(&format!("{}_{}", hex_list(&sorted), hex_list(&algorithms)))
        };
        format!("{a}_{b}_{c}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn list16(values: &[u16]) -> Vec<u8> {
        let mut out = ((values.len() * 2) as u16).to_be_bytes().to_vec();
        for v in values {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// A ClientHello record carrying `ciphers` and `extensions` (whole extension blocks).
    pub(crate) fn hello_record(ciphers: &[u16], extensions: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&list16(ciphers));
        body.extend_from_slice(&[1, 0]);
        let all: Vec<u8> = extensions.concat();
        body.extend_from_slice(&(all.len() as u16).to_be_bytes());
        body.extend_from_slice(&all);
        let mut handshake = vec![0x01];
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    /// The cipher suites and extensions of the example in FoxIO's JA4 technical details, whose
    /// published fingerprint is `t13d1516h2_8daaf6152771_e5627efa2ab1`, with GREASE added.
    pub(crate) fn foxio_example() -> Vec<u8> {
        let ciphers = [
            0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let mut sni = vec![0, 14, 0, 0, 11];
        sni.extend_from_slice(b"example.org");
        let alpn = [0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'];
        let versions = [6, 0x1a, 0x1a, 0x03, 0x04, 0x03, 0x03];
        let algorithms = list16(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]);
        let extensions = vec![
            ext(0x1a1a, &[]),
            ext(0x0000, &sni),
            ext(0x0017, &[]),
            ext(0xff01, &[0]),
            ext(0x000a, &list16(&[0x001d, 0x0017])),
            ext(0x000b, &[1, 0]),
            ext(0x0023, &[]),
            ext(0x0010, &alpn),
            ext(0x0005, &[1, 0, 0, 0, 0]),
            ext(0x000d, &algorithms),
            ext(0x0012, &[]),
            ext(0x0033, &[0, 0]),
            ext(0x002d, &[1, 1]),
            ext(0x002b, &versions),
            ext(0x001b, &[2, 0, 2]),
            ext(0x4469, &[0, 3, 2, b'h', b'2']),
            ext(0x0015, &[0; 20]),
            ext(0x2a2a, &[0]),
        ];
        hello_record(&ciphers, &extensions)
    }

    #[test]
    fn known_answer_from_the_ja4_specification() {
        let record = foxio_example();
        let hello = parse(&record).unwrap().unwrap();
        assert!(hello.sni);
        assert_eq!(hello.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(hello.ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        for cut in 0..record.len() {
            assert_eq!(parse(&record[..cut]), Ok(None), "{cut} bytes are not enough yet");
        }
    }

    #[test]
    fn a_hello_split_over_records_and_odd_alpn_values() {
        let record = foxio_example();
        let handshake = &record[5..];
        let (first, second) = handshake.split_at(100);
        let mut split = Vec::new();
        for part in [first, second] {
            split.extend_from_slice(&[0x16, 0x03, 0x01]);
            split.extend_from_slice(&(part.len() as u16).to_be_bytes());
            split.extend_from_slice(part);
        }
        assert_eq!(parse(&split).unwrap().unwrap().ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        let bare = hello_record(&[0x002f], &[]);
        let expected = format!("t12i010000_{}_000000000000", truncated_hash("002f"));
        assert_eq!(parse(&bare).unwrap().unwrap().ja4(), expected);
        let odd = hello_record(&[0x002f], &[ext(0x0010, &[0, 3, 2, 0xab, b'x'])]);
        assert!(parse(&odd).unwrap().unwrap().ja4().starts_with("t12i0101a8_"));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(HelloError::NotTls));
        assert_eq!(parse(&[0x16, 0x03, 0x01, 0, 4, 2, 0, 0, 0]), Err(HelloError::NotClientHello));
    }

    proptest! {
        /// Random bytes and mutated ClientHellos: no panic, and an answer (not "need more")
        /// once past the bound.
        #[test]
        fn any_bytes(
            base in prop_oneof![Just(foxio_example()), Just(Vec::new()), Just(vec![0x16, 0x03, 0x01])],
            tail in proptest::collection::vec(any::<u8>(), 0..2000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = [base, tail].concat();
            for (at, xor) in flips {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] ^= xor;
                }
            }
            let cut = if bytes.is_empty() { 0 } else { cut % (bytes.len() + 1) };
            match parse(&bytes[..cut]) {
                Ok(Some(hello)) => { let _ = hello.ja4(); }
                Ok(None) => prop_assert!(cut < MAX_HELLO + 40),
                Err(_) => {}
            }
        }
    }
}
