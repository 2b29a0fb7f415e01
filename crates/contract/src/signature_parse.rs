//! Reading a signature back from the text `text::signature` writes ("dst 198.51.100.10/32,
//! proto 17, src port 53, length 512-1500"), so an operator can ban what a report showed them
//! (`rampart ban 'dst 198.51.100.10/32, proto 17, src port 53' --action discard ...`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::signature::{FragmentMatch, LengthRange, PortRange, Signature, TcpFlags};

/// What is wrong with a signature's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSyntax {
    /// The comma-separated field that could not be read.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for SignatureSyntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signature field {:?}: {}", self.field, self.reason)
    }
}

impl std::error::Error for SignatureSyntax {}

/// Longest text read, so a pasted blob cannot cost unbounded work.
const MAX_TEXT: usize = 4096;
/// Most prefixes or port ranges in one field.
const MAX_ITEMS: usize = 64;

/// Reads a signature in the form `text::signature` writes: comma-separated fields `src
/// PREFIX...`, `dst PREFIX...|any`, `proto N`, `src port P[-Q]...`, `dst port P[-Q]...`,
/// `tcp flags 0xVV[/0xMM]`, `non-initial fragments` or `not fragments`, `length MIN-MAX`. A
/// bare address stands for its /32 or /128. Each field at most once.
pub fn parse_signature(text: &str) -> Result<Signature, SignatureSyntax> {
    let fail =
        |field: &str, reason: &str| SignatureSyntax { field: field.to_owned(), reason: reason.to_owned() };
    if text.len() > MAX_TEXT {
        return Err(fail(&text[..text.floor_char_boundary(40)], "the text is too long"));
    }
    let mut s = Signature::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let words: Vec<&str> = field.split_whitespace().collect();
        let (name, rest): (&'static str, &[&str]) = match words.as_slice() {
            ["src", "port", rest @ ..] => ("src port", rest),
            ["dst", "port", rest @ ..] => ("dst port", rest),
            ["src", rest @ ..] => ("src", rest),
            ["dst", rest @ ..] => ("dst", rest),
            ["proto", rest @ ..] => ("proto", rest),
            ["tcp", "flags", rest @ ..] => ("tcp flags", rest),
            ["non-initial", "fragments"] | ["not", "fragments"] => ("fragments", &[]),
            ["length", rest @ ..] => ("length", rest),
            _ => {
                return Err(fail(
                    field,
                    "unknown field (src, dst, proto, src port, dst port, tcp flags, fragments, length)",
                ));
            }
        };
        if seen.contains(&name) {
            return Err(fail(field, "given twice"));
        }
        seen.push(name);
        if rest.len() > MAX_ITEMS {
            return Err(fail(field, "too many values"));
        }
        let one = || match rest {
            [value] => Ok(*value),
            _ => Err(fail(field, "takes one value")),
        };
        match name {
            "src" => s.src_prefixes = prefixes(rest).map_err(|r| fail(field, &r))?,
            "dst" if rest == ["any"] => {}
            "dst" => s.dst_prefixes = prefixes(rest).map_err(|r| fail(field, &r))?,
            "proto" => {
                s.protocol = Some(one()?.parse().map_err(|_| fail(field, "a protocol number 0-255"))?);
            }
            "src port" => s.src_ports = ports(rest).map_err(|r| fail(field, &r))?,
            "dst port" => s.dst_ports = ports(rest).map_err(|r| fail(field, &r))?,
            "tcp flags" => s.tcp_flags = Some(flags(one()?).map_err(|r| fail(field, &r))?),
            "fragments" => {
                s.fragment = Some(if words[0] == "not" {
                    FragmentMatch::NotNonInitial
                } else {
                    FragmentMatch::NonInitial
                });
            }
            _ => {
                let (min, max) = one()?.split_once('-').ok_or_else(|| fail(field, "MIN-MAX"))?;
                let (min, max) = (min.parse::<u16>(), max.parse::<u16>());
                match (min, max) {
                    (Ok(min), Ok(max)) if min <= max => s.packet_len = Some(LengthRange { min, max }),
                    _ => return Err(fail(field, "MIN-MAX, two lengths 0-65535, MIN first")),
                }
            }
        }
    }
    Ok(s)
}

fn prefixes(values: &[&str]) -> Result<Vec<IpNet>, String> {
    if values.is_empty() {
        return Err("needs a prefix".into());
    }
    values
        .iter()
        .map(|v| {
            v.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{v:?} is not an address or prefix"))
        })
        .collect()
}

fn ports(values: &[&str]) -> Result<Vec<PortRange>, String> {
    if values.is_empty() {
        return Err("needs a port".into());
    }
    values
        .iter()
        .map(|v| {
            let (first, last) = v.split_once('-').unwrap_or((v, v));
            match (first.parse::<u16>(), last.parse::<u16>()) {
                (Ok(first), Ok(last)) if first <= last => Ok(PortRange { first, last }),
                _ => Err(format!("{v:?} is not a port or a range P-Q")),
            }
        })
        .collect()
}

fn flags(text: &str) -> Result<TcpFlags, String> {
    let hex = |h: &str| {
        h.strip_prefix("0x")
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("{h:?} is not a byte in hex (0x12)"))
    };
    match text.split_once('/') {
        Some((value, mask)) => Ok(TcpFlags { value: hex(value)?, mask: hex(mask)? }),
        None => Ok(TcpFlags::exact(hex(text)?)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::text;

    #[test]
    fn reads_what_reports_print() {
        let s = parse_signature("dst 198.51.100.10/32, proto 17, src port 53 1000-2000, length 512-1500")
            .unwrap();
        assert_eq!(s.dst_prefixes, vec!["198.51.100.10/32".parse::<IpNet>().unwrap()]);
        assert_eq!((s.protocol, s.src_ports.len(), s.packet_len.map(|l| l.max)), (Some(17), 2, Some(1500)));
        let s = parse_signature("dst 2001:db8::1, proto 6, tcp flags 0x04/0x04, not fragments").unwrap();
        assert_eq!(s.dst_prefixes[0].prefix_len(), 128);
        assert_eq!(s.tcp_flags, Some(TcpFlags { value: 4, mask: 4 }));
        assert_eq!(s.fragment, Some(FragmentMatch::NotNonInitial));
        for (bad, field) in [
            ("dst 198.51.100.0/33", "dst"),
            ("proto 300", "proto"),
            ("dst port 80-20", "dst port"),
            ("length 9-1", "length"),
            ("proto 6, proto 17", "proto 17"),
            ("colour red", "colour red"),
            ("tcp flags 12", "tcp flags 12"),
        ] {
            let err = parse_signature(bad).unwrap_err();
            assert!(err.field.starts_with(field), "{bad}: {err}");
        }
    }

    fn signature() -> impl Strategy<Value = Signature> {
        let net = (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| IpNet::new(a.into(), l).unwrap().trunc());
        let range =
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange { first: a.min(b), last: a.max(b) });
        (
            prop::collection::vec(net.clone(), 0..3),
            prop::collection::vec(net, 0..3),
            prop::option::of(any::<u8>()),
            prop::collection::vec(range.clone(), 0..4),
            prop::collection::vec(range, 0..4),
            prop::option::of((any::<u8>(), any::<u8>())),
            prop::option::of(prop_oneof![
                Just(FragmentMatch::NonInitial),
                Just(FragmentMatch::NotNonInitial)
            ]),
            prop::option::of((any::<u16>(), any::<u16>())),
        )
            .prop_map(|(src, dst, protocol, sp, dp, flags, fragment, len)| Signature {
                src_prefixes: src,
                dst_prefixes: dst,
                protocol,
                src_ports: sp,
                dst_ports: dp,
                tcp_flags: flags.map(|(value, mask)| TcpFlags { value, mask }),
                fragment,
                packet_len: len.map(|(a, b)| LengthRange { min: a.min(b), max: a.max(b) }),
                ..Signature::default()
            })
    }

    proptest! {
        #[test]
        fn what_is_printed_reads_back(s in signature()) {
            prop_assert_eq!(parse_signature(&text::signature(&s)).unwrap(), s);
        }

        #[test]
        fn random_and_mutated_text_never_panics(
            s in signature(),
            cut in any::<prop::sample::Index>(),
            junk in "[ -~]{0,40}",
            noise in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let printed = text::signature(&s);
            let at = printed.floor_char_boundary(cut.index(printed.len() + 1));
            let _ = parse_signature(&format!("{}{}{}", &printed[..at], junk, &printed[at..]));
            let _ = parse_signature(&String::from_utf8_lossy(&noise));
        }
    }

    #[test]
    fn long_text_is_refused_quickly() {
        let long = "src 198.51.100.1 ".repeat(10_000);
        assert!(parse_signature(&long).unwrap_err().reason.contains("too long"));
    }
}
