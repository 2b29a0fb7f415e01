//! The HTTP/2 fingerprint of a client, in Akamai's format (Shuster and Segal, "Passive
//! Fingerprinting of HTTP/2 Clients", Black Hat EU 2017):
//!
//! `SETTINGS|WINDOW_UPDATE|PRIORITY|PSEUDO_HEADER_ORDER`, as in
//! `1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p`: the client's first SETTINGS as
//! `id:value` in its order; the increment of its first connection WINDOW_UPDATE (`00` when
//! none); its PRIORITY frames before the first request as `stream:exclusive:dependency:weight`
//! (`0` when none); the order of the pseudo-headers of its first request (`m` method, `a`
//! authority, `s` scheme, `p` path).
//!
//! Parsed from the bytes the client sends first (the connection preface and the frames up to
//! its first HEADERS), bounded by [`MAX_PREFACE`]; the pseudo-header order comes from a minimal
//! HPACK reading of the names only (static table, names added to the dynamic table within the
//! same block, plain literal names); a Huffman-coded literal name ends the order there.

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most bytes read for a fingerprint; a client that has not sent its first HEADERS by
/// then gets one without the pseudo-header order.
pub const MAX_PREFACE: usize = 16 * 1024;

/// Why bytes are not the start of an HTTP/2 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Http2Error {
    /// No HTTP/2 connection preface (an HTTP/1 client).
    #[error("no HTTP/2 connection preface")]
    NoPreface,
    /// A frame's fields are inconsistent.
    #[error("malformed HTTP/2 frame")]
    Malformed,
}

#[derive(Debug, Default)]
struct Seen {
    settings: Option<Vec<(u16, u32)>>,
    window_update: Option<u32>,
    priorities: Vec<(u32, bool, u32, u16)>,
    pseudo: Option<String>,
}

impl Seen {
    fn render(&self) -> String {
        let settings = self
            .settings
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|(id, value)| format!("{id}:{value}"))
            .collect::<Vec<_>>()
            .join(";");
        let window = self.window_update.map_or_else(|| "00".to_owned(), |w| w.to_string());
        let priorities = if self.priorities.is_empty() {
            "0".to_owned()
        } else {
            self.priorities
                .iter()
                .map(|(stream, exclusive, dependency, weight)| {
                    format!("{stream}:{}:{dependency}:{weight}", u8::from(*exclusive))
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("{settings}|{window}|{priorities}|{}", self.pseudo.as_deref().unwrap_or(""))
    }
}

/// At most this many PRIORITY frames are listed.
const MAX_PRIORITIES: usize = 32;

/// The fingerprint from the bytes the client sent first: `Ok(None)` while more bytes are
/// needed (no HEADERS frame yet and fewer than [`MAX_PREFACE`] bytes).
pub fn fingerprint(bytes: &[u8]) -> Result<Option<String>, Http2Error> {
    let prefix = bytes.len().min(PREFACE.len());
    if bytes[..prefix] != PREFACE[..prefix] {
        return Err(Http2Error::NoPreface);
    }
    let mut seen = Seen::default();
    let mut at = PREFACE.len();
    let bytes = &bytes[..bytes.len().min(MAX_PREFACE)];
    while let Some(header) = bytes.get(at..at + 9) {
        let length = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let Some(payload) = bytes.get(at + 9..at + 9 + length) else { break };
        at += 9 + length;
        match kind {
            // SETTINGS (not an ACK): the first one only.
            0x4 if flags & 0x1 == 0 && seen.settings.is_none() => {
                if length % 6 != 0 {
                    return Err(Http2Error::Malformed);
                }
                let list = payload
                    .chunks_exact(6)
                    .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
                    .collect();
                seen.settings = Some(list);
            }
            0x8 if stream == 0 && seen.window_update.is_none() => {
                let w = payload.get(..4).ok_or(Http2Error::Malformed)?;
                seen.window_update = Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]) & 0x7fff_ffff);
            }
            0x2 if seen.priorities.len() < MAX_PRIORITIES => {
                let p = payload.get(..5).ok_or(Http2Error::Malformed)?;
                let dependency = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                seen.priorities.push((
                    stream,
                    dependency >> 31 == 1,
                    dependency & 0x7fff_ffff,
                    u16::from(p[4]) + 1,
                ));
            }
            0x1 => {
                seen.pseudo = Some(pseudo_order(headers_block(payload, flags)?));
                return Ok(Some(seen.render()));
            }
            _ => {}
        }
    }
    if bytes.len() >= MAX_PREFACE { Ok(Some(seen.render())) } else { Ok(None) }
}

/// The header block fragment of a HEADERS frame's payload, without padding and priority.
fn headers_block(payload: &[u8], flags: u8) -> Result<&[u8], Http2Error> {
    let mut block = payload;
    let mut padding = 0;
    if flags & 0x8 != 0 {
        padding = usize::from(*block.first().ok_or(Http2Error::Malformed)?);
        block = &block[1..];
    }
    if flags & 0x20 != 0 {
        block = block.get(5..).ok_or(Http2Error::Malformed)?;
    }
    let end = block.len().checked_sub(padding).ok_or(Http2Error::Malformed)?;
    Ok(&block[..end])
}

/// An HPACK integer with an `n`-bit prefix at the start of `bytes`: value and length.
fn integer(bytes: &[u8], n: u32) -> Option<(usize, usize)> {
    let mask = (1usize << n) - 1;
    let mut value = usize::from(*bytes.first()?) & mask;
    if value < mask {
        return Some((value, 1));
    }
    let mut shift = 0;
    for (i, b) in bytes.iter().enumerate().skip(1) {
        // Four continuation bytes are plenty for any length here (2^28).
        if shift > 21 {
            return None;
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// An HPACK string at the start of `bytes`: its raw bytes unless Huffman-coded, and its
/// total length.
fn string(bytes: &[u8]) -> Option<(Option<&[u8]>, usize)> {
    let huffman = bytes.first()? & 0x80 != 0;
    let (length, used) = integer(bytes, 7)?;
    let raw = bytes.get(used..used.checked_add(length)?)?;
    Some(((!huffman).then_some(raw), used + length))
}

/// Static-table names that are pseudo-headers (RFC 7541 appendix A).
fn static_name(index: usize) -> Option<&'static str> {
    match index {
        1 => Some(":authority"),
        2 | 3 => Some(":method"),
        4 | 5 => Some(":path"),
        6 | 7 => Some(":scheme"),
        8..=14 => Some(":status"),
        15..=61 => Some("regular"),
        _ => None,
    }
}

fn letter(name: &[u8]) -> Option<char> {
    match name {
        b":method" => Some('m'),
        b":authority" => Some('a'),
        b":scheme" => Some('s'),
        b":path" => Some('p'),
        b":protocol" => Some('r'),
        _ => None,
    }
}

/// The pseudo-header order at the start of a header block, as `m,a,s,p`.
fn pseudo_order(block: &[u8]) -> String {
    let mut letters: Vec<char> = Vec::new();
    // Names added to the dynamic table in this block, newest first (index 62 is the newest).
    let mut dynamic: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while at < block.len() && letters.len() < 8 {
        let first = block[at];
        let (name, used): (Option<Vec<u8>>, usize) = if first & 0x80 != 0 {
            let Some((index, used)) = integer(&block[at..], 7) else { break };
            (name_at(index, &dynamic), used)
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update: no header.
            let Some((_, used)) = integer(&block[at..], 5) else { break };
            at += used;
            continue;
        } else {
            let (prefix, indexing) = if first & 0xc0 == 0x40 { (6, true) } else { (4, false) };
            let Some((index, mut used)) = integer(&block[at..], prefix) else { break };
            let name = if index == 0 {
                let Some((raw, n)) = string(&block[at + used..]) else { break };
                used += n;
                let Some(raw) = raw else { break };
                Some(raw.to_vec())
            } else {
                name_at(index, &dynamic)
            };
            let Some((_, n)) = string(&block[at + used..]) else { break };
            used += n;
            if indexing && let Some(name) = &name {
                dynamic.insert(0, name.clone());
                dynamic.truncate(16);
            }
            (name, used)
        };
        at += used;
        match name.as_deref().and_then(letter) {
            Some(letter) => letters.push(letter),
            None => break,
        }
    }
    letters.iter().map(char::to_string).collect::<Vec<_>>().join(",")
}

fn name_at(index: usize, dynamic: &[Vec<u8>]) -> Option<Vec<u8>> {
    match static_name(index) {
        Some(name) => Some(name.as_bytes().to_vec()),
        None => dynamic.get(index.checked_sub(62)?).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// What Firefox sent in Akamai's paper: SETTINGS, WINDOW_UPDATE, five PRIORITY frames,
    /// then HEADERS with `:method GET` (static 2), `:path /` (static 4), `:authority` as a
    /// literal with indexed name 1, `:scheme https` (static 7).
    pub(crate) fn firefox_like() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        let settings: Vec<u8> = [(1u16, 65536u32), (4, 131072), (5, 16384)]
            .iter()
            .flat_map(|(i, v)| [&i.to_be_bytes()[..], &v.to_be_bytes()[..]].concat())
            .collect();
        bytes.extend(frame(0x4, 0, 0, &settings));
        bytes.extend(frame(0x8, 0, 0, &12517377u32.to_be_bytes()));
        for (stream, dependency, weight) in
            [(3u32, 0u32, 200u8), (5, 0, 100), (7, 0, 0), (9, 7, 0), (11, 3, 0)]
        {
            let mut p = dependency.to_be_bytes().to_vec();
            p.push(weight);
            bytes.extend(frame(0x2, 0, stream, &p));
        }
        let mut block = vec![0x82, 0x84, 0x41, 11];
        block.extend_from_slice(b"example.org");
        block.push(0x87);
        block.extend_from_slice(&[0x40, 10]);
        block.extend_from_slice(b"user-agent");
        block.extend_from_slice(&[3]);
        block.extend_from_slice(b"fox");
        bytes.extend(frame(0x1, 0x4 | 0x1, 13, &block));
        bytes
    }

    #[test]
    fn known_answer_in_akamai_format() {
        let bytes = firefox_like();
        assert_eq!(
            fingerprint(&bytes).unwrap().unwrap(),
            "1:65536;4:131072;5:16384|12517377|3:0:0:201,5:0:0:101,7:0:0:1,9:0:7:1,11:0:3:1|m,p,a,s"
        );
        for cut in 0..bytes.len() {
            assert_eq!(fingerprint(&bytes[..cut]), Ok(None), "{cut}");
        }
        assert_eq!(fingerprint(b"GET / HTTP/1.1\r\n"), Err(Http2Error::NoPreface));
    }

    #[test]
    fn names_from_the_dynamic_table_padding_and_priority_flags() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[]));
        // Padded, with priority: pad length 2, 5 priority bytes, then the block.
        let mut payload = vec![2, 0, 0, 0, 0, 255];
        // `:scheme` as a new literal name added to the table, then referenced by index 62.
        payload.extend_from_slice(&[0x40, 7]);
        payload.extend_from_slice(b":scheme");
        payload.extend_from_slice(&[4]);
        payload.extend_from_slice(b"http");
        payload.extend_from_slice(&[0x20, 0xbe, 0x82, 0x0f, 0x01, 1, b'x']);
        payload.extend_from_slice(&[0, 0]);
        bytes.extend(frame(0x1, 0x8 | 0x20 | 0x4, 1, &payload));
        assert_eq!(fingerprint(&bytes).unwrap().unwrap(), "|00|0|s,s,m");
    }

    proptest! {
        /// Random and mutated frames: no panic, and "need more" only below the bound.
        #[test]
        fn any_bytes(
            base in prop_oneof![Just(firefox_like()), Just(PREFACE.to_vec()), Just(Vec::new())],
            tail in proptest::collection::vec(any::<u8>(), 0..3000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            let mut bytes = [base, tail].concat();
            for (at, xor) in flips {
                if bytes.len() > PREFACE.len() {
                    let at = PREFACE.len() + at % (bytes.len() - PREFACE.len());
                    bytes[at] ^= xor;
                }
            }
            match fingerprint(&bytes) {
                Ok(Some(text)) => prop_assert!(text.len() < 4 * MAX_PREFACE),
                Ok(None) => prop_assert!(bytes.len() < MAX_PREFACE),
                Err(_) => {}
            }
        }
    }
}
