//! The real client address, and the headers that tell the origin about it.
//!
//! `X-Forwarded-For` is believed only from a configured trusted proxy, and then read from the
//! right: each trusted hop is skipped, the first address not trusted is the client. From any
//! other peer, forwarded headers are the client's invention and are replaced.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::bans::canonical;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn trusted(address: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|p| p.contains(&address))
}

/// The addresses in the `X-Forwarded-For` fields, left to right; `None` if one is not an
/// address (the whole header is then ignored).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        let text = value.to_str().ok()?;
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            out.push(canonical(parse_node(item)?));
        }
        if out.len() > 64 {
            return None;
        }
    }
    Some(out)
}

/// An address, possibly `[v6]`, `[v6]:port` or `v4:port`.
fn parse_node(item: &str) -> Option<IpAddr> {
    if let Ok(address) = item.parse() {
        return Some(address);
    }
    if let Some(rest) = item.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = item.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// The client address of a request that came from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted(peer, proxies) {
        return peer;
    }
    let Some(hops) = forwarded_for(headers) else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = *hop;
        if !trusted(*hop, proxies) {
            break;
        }
    }
    client
}

/// Set `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` for the
/// origin: appended to when `peer` is a trusted proxy, replaced otherwise.
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: IpAddr,
    proxies: &[IpNet],
    https: bool,
    host: Option<&HeaderValue>,
) {
    let peer = canonical(peer);
    let keep = trusted(peer, proxies);
    let proto = if https { "https" } else { "http" };
    // A Host that is not visible text is neither quoted in `Forwarded` nor forwarded.
    let host = host.and_then(|h| Some((h, h.to_str().ok()?)));
    // Built in place, without `format!`: this runs on every request.
    let mut xff = String::with_capacity(64);
    let mut forwarded = String::with_capacity(96);
    if keep {
        join_values(&mut xff, headers.get_all(&X_FORWARDED_FOR));
        join_values(&mut forwarded, headers.get_all(http::header::FORWARDED));
    }
    if !xff.is_empty() {
        xff.push_str(", ");
    }
    push_address(&mut xff, peer);
    if !forwarded.is_empty() {
        forwarded.push_str(", ");
    }
    forwarded.push_str("for=");
    if peer.is_ipv6() {
        forwarded.push_str("\"[");
        push_address(&mut forwarded, peer);
        forwarded.push_str("]\"");
    } else {
        push_address(&mut forwarded, peer);
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(proto);
    if let Some((_, host)) =
        host.filter(|(_, h)| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
    }
    // `insert` replaces every earlier value; a value that cannot be a header (it always can:
    // addresses and visible ASCII) removes the field rather than keep the client's.
    for (name, value) in [(&X_FORWARDED_FOR, xff), (&http::header::FORWARDED, forwarded)] {
        match HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            Ok(value) => {
                headers.insert(name.clone(), value);
            }
            Err(_) => {
                headers.remove(name);
            }
        }
    }
    let host_value = host.map(|(value, _)| value.clone());
    if keep {
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        }
        if let Some(value) = host_value
            && !headers.contains_key(&X_FORWARDED_HOST)
        {
            headers.insert(X_FORWARDED_HOST.clone(), value);
        }
    } else {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        match host_value {
            Some(value) => {
                headers.insert(X_FORWARDED_HOST.clone(), value);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// The text values of one field, joined by ", " (values that are not text are left out).
fn join_values<'a>(out: &mut String, values: impl IntoIterator<Item = &'a HeaderValue>) {
    for value in values.into_iter().filter_map(|v| v.to_str().ok()) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(value);
    }
}

/// `address` as text: IPv4 dotted decimal without the formatting machinery, IPv6 as
/// `Display` writes it.
fn push_address(out: &mut String, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers("198.51.100.9, 203.0.113.5, 10.1.1.1");
        assert_eq!(
            client_address("10.0.0.1".parse().unwrap(), &h, &proxies),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address("192.0.2.1".parse().unwrap(), &h, &proxies),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let bad = headers("junk, 203.0.113.5");
        assert_eq!(
            client_address("10.0.0.1".parse().unwrap(), &bad, &proxies),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        let ports = headers("[2001:db8::1]:443, 198.51.100.1:8080");
        assert_eq!(
            client_address("10.0.0.1".parse().unwrap(), &ports, &proxies),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn untrusted_headers_are_replaced() {
        let mut h = headers("1.2.3.4");
        h.insert(http::header::FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        set_forwarding_headers(
            &mut h,
            "192.0.2.1".parse().unwrap(),
            &[],
            true,
            Some(&HeaderValue::from_static("example.org")),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.1");
        assert_eq!(h[http::header::FORWARDED], "for=192.0.2.1;proto=https;host=\"example.org\"");
        let mut h = headers("198.51.100.1");
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        set_forwarding_headers(&mut h, "10.0.0.2".parse().unwrap(), &proxies, false, None);
        assert_eq!(h[&X_FORWARDED_FOR], "198.51.100.1, 10.0.0.2");
        set_forwarding_headers(&mut h, "2001:db8::1".parse().unwrap(), &[], false, None);
        assert_eq!(h[http::header::FORWARDED], "for=\"[2001:db8::1]\";proto=http");
    }

    proptest! {
        /// The hand-written address text is what `Display` writes.
        #[test]
        fn address_text_matches_display(v4 in any::<u32>(), v6 in any::<u128>()) {
            for address in [IpAddr::from(std::net::Ipv4Addr::from(v4)), IpAddr::from(std::net::Ipv6Addr::from(v6))] {
                let mut text = String::new();
                push_address(&mut text, address);
                prop_assert_eq!(text, address.to_string());
            }
        }
    }

    proptest! {
        /// Any header text from a trusted peer: no panic, and the answer is the peer or an
        /// address that appears in the header.
        #[test]
        fn any_forwarded_for(text in "[0-9a-f:.\\[\\], ]{0,80}") {
            let proxies: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap()];
            if let Ok(value) = HeaderValue::from_str(&text) {
                let mut h = HeaderMap::new();
                h.insert(&X_FORWARDED_FOR, value);
                let peer: IpAddr = "10.0.0.1".parse().unwrap();
                let client = client_address(peer, &h, &proxies);
                prop_assert!(client == peer || forwarded_for(&h).unwrap_or_default().contains(&client));
                let host = HeaderValue::from_str(&text).ok();
                set_forwarding_headers(&mut h, peer, &proxies, false, host.as_ref());
            }
        }
    }
}
