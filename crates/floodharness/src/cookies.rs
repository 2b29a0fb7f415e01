//! A browser's cookie jar for one site, bounded the way browsers bound it (50 cookies, 4 KiB
//! each). Pure: `now` is passed in.
//!
//! Kept small on purpose (no cookie crate): one host, so Domain and Path are not matched (every
//! cookie goes back on every request, as it would for a site setting `Path=/`), and expiry is
//! `Max-Age` only, plus `Expires` dated before 2000 (how servers delete a cookie).

use std::time::Duration;

/// Most cookies a jar holds (browsers keep at least 50 a domain, RFC 6265 §6.1).
pub const MAX_COOKIES: usize = 50;
/// Longest `name=value` kept (RFC 6265 §6.1: at least 4096 bytes).
pub const MAX_COOKIE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
    /// Time (since the jar's epoch) after which it is gone.
    expires: Option<Duration>,
}

/// The cookies of one site.
#[derive(Debug, Clone, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Takes one `Set-Cookie` header value at `now`; malformed ones are ignored, as browsers do.
    pub fn store(&mut self, set_cookie: &str, now: Duration) {
        let mut parts = set_cookie.split(';');
        let Some(pair) = parts.next() else { return };
        let Some((name, value)) = pair.split_once('=') else { return };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || name.len() + value.len() > MAX_COOKIE_BYTES
            || !name.bytes().all(is_token_byte)
            || !value.bytes().all(is_cookie_value_byte)
        {
            return;
        }
        let mut expires = None;
        let mut deleted = false;
        for attribute in parts {
            let (key, argument) = attribute.split_once('=').unwrap_or((attribute, ""));
            let key = key.trim();
            let argument = argument.trim();
            if key.eq_ignore_ascii_case("max-age") {
                match argument.parse::<i64>() {
                    Ok(seconds) if seconds <= 0 => deleted = true,
                    Ok(seconds) => expires = Some(now.saturating_add(Duration::from_secs(seconds as u64))),
                    Err(_) => {}
                }
            } else if key.eq_ignore_ascii_case("expires") && expires.is_none() && dated_before_2000(argument)
            {
                deleted = true;
            }
        }
        self.cookies.retain(|c| c.name != name);
        if deleted {
            return;
        }
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies.push(Cookie { name: name.to_owned(), value: value.to_owned(), expires });
    }

    /// The `Cookie` header for a request at `now`, or `None` when the jar has nothing to send.
    pub fn header(&mut self, now: Duration) -> Option<String> {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self.cookies.iter().map(|c| format!("{}={}", c.name, c.value)).collect();
        Some(pairs.join("; "))
    }

    /// How many cookies the jar holds (expired ones included until the next `header`).
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// Whether the jar is empty.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// The value of cookie `name`, if held.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.value.as_str())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

fn is_cookie_value_byte(b: u8) -> bool {
    // RFC 6265 cookie-octet, plus the quotes of a quoted value.
    b == 0x21
        || (0x23..=0x2b).contains(&b)
        || (0x2d..=0x3a).contains(&b)
        || (0x3c..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b == b'"'
}

/// Whether an `Expires` date names a year before 2000 (the conventional "delete me").
fn dated_before_2000(date: &str) -> bool {
    date.split(|c: char| !c.is_ascii_digit())
        .filter(|word| word.len() == 4)
        .filter_map(|word| word.parse::<u32>().ok())
        .any(|year| year < 2000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn stores_replaces_and_sends() {
        let mut jar = CookieJar::new();
        assert_eq!(jar.header(T0), None);
        jar.store("session=abc; Path=/; HttpOnly", T0);
        jar.store("clearance=v1.xyz; Max-Age=3600; SameSite=Lax", T0);
        assert_eq!(jar.header(T0).as_deref(), Some("session=abc; clearance=v1.xyz"));
        jar.store("session=def", T0);
        assert_eq!(jar.header(T0).as_deref(), Some("clearance=v1.xyz; session=def"));
        assert_eq!(jar.get("session"), Some("def"));
    }

    #[test]
    fn expires_by_max_age_and_deletes() {
        let mut jar = CookieJar::new();
        jar.store("a=1; Max-Age=10", T0);
        jar.store("b=2", T0);
        assert_eq!(jar.header(T0 + Duration::from_secs(9)).as_deref(), Some("a=1; b=2"));
        assert_eq!(jar.header(T0 + Duration::from_secs(10)).as_deref(), Some("b=2"));
        jar.store("b=; Max-Age=0", T0);
        assert_eq!(jar.header(T0), None);
        jar.store("c=3", T0);
        jar.store("c=gone; Expires=Thu, 01 Jan 1970 00:00:00 GMT", T0);
        assert!(jar.is_empty());
    }

    #[test]
    fn ignores_malformed() {
        let mut jar = CookieJar::new();
        for bad in ["", "novalue", "=v", "a b=c", "a=b c", "a=b\u{1}", "a=\\x"] {
            jar.store(bad, T0);
        }
        assert!(jar.is_empty(), "{:?}", jar.header(T0));
    }

    #[test]
    fn bounded() {
        let mut jar = CookieJar::new();
        for i in 0..200 {
            jar.store(&format!("c{i}=v"), T0);
        }
        assert_eq!(jar.len(), MAX_COOKIES);
        assert_eq!(jar.get("c199"), Some("v"));
        assert_eq!(jar.get("c0"), None);
        jar.store(&format!("big={}", "x".repeat(MAX_COOKIE_BYTES)), T0);
        assert_eq!(jar.get("big"), None);
    }

    proptest! {
        #[test]
        fn any_header_value_is_safe(values in proptest::collection::vec(".{0,300}", 0..80), at in 0u64..1_000_000) {
            let mut jar = CookieJar::new();
            for value in &values {
                jar.store(value, Duration::from_secs(at));
            }
            prop_assert!(jar.len() <= MAX_COOKIES);
            if let Some(header) = jar.header(Duration::from_secs(at)) {
                // What goes back is always a valid Cookie header value.
                prop_assert!(header.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()));
                prop_assert!(header.len() <= MAX_COOKIES * (MAX_COOKIE_BYTES + 3));
            }
        }

        #[test]
        fn mutated_cookies_are_safe(name in "[a-z]{1,8}", value in "[a-zA-Z0-9._-]{0,40}", attributes in "[ -~]{0,80}") {
            let mut jar = CookieJar::new();
            jar.store(&format!("{name}={value};{attributes}"), T0);
            let _ = jar.header(T0);
        }
    }
}
