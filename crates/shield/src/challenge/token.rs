//! Signed tokens: the clearance cookie, the no-JavaScript probe cookie and the proof-of-work
//! challenge, all one format so the server keeps no state for any of them.
//!
//! A token is `base64url(version ‖ kind ‖ key id ‖ issued ‖ expiry ‖ extra ‖ mac)` where the
//! MAC is HMAC-SHA256 over everything before it *and* the client's [`Binding`] (its prefix and
//! a hash of its User-Agent), which never travels: a token copied to another network or
//! another browser does not verify. Keys rotate: sign with the newest, verify with any, the
//! key id (4 bytes of the key's hash) picking the one to try.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The token format's version.
pub const VERSION: u8 = 1;
/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
const MAC_BYTES: usize = 32;
const HEADER_BYTES: usize = 1 + 1 + 4 + 8 + 8;
/// The longest extra part any kind carries; longer cookies are refused before decoding.
const MAX_EXTRA: usize = 32;
const MAX_TOKEN_BYTES: usize = HEADER_BYTES + MAX_EXTRA + MAC_BYTES;

/// What a token is for; part of the signed bytes, so one kind never passes for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The clearance: the client passed a challenge.
    Clearance = 1,
    /// The no-JavaScript check's probe cookie.
    Probe = 2,
    /// A proof-of-work challenge (extra: nonce and difficulty).
    Work = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Clearance),
            2 => Some(Kind::Probe),
            3 => Some(Kind::Work),
            _ => None,
        }
    }
}

/// Who a token belongs to: the client's network prefix and its User-Agent's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding([u8; 34]);

/// The network part of a [`Binding`]: address family, prefix length, masked address.
pub type Prefix = [u8; 18];

impl Binding {
    /// The client's prefix, without the User-Agent.
    pub fn prefix(&self) -> Prefix {
        let mut prefix = [0u8; 18];
        prefix.copy_from_slice(&self.0[..18]);
        prefix
    }
}

/// How much of the client a token is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRule {
    /// Prefix length for IPv4 clients (32: the exact address).
    pub ipv4_prefix: u8,
    /// Prefix length for IPv6 clients (128: the exact address).
    pub ipv6_prefix: u8,
    /// Whether the User-Agent is part of the binding.
    pub user_agent: bool,
}

impl Default for BindingRule {
    /// A /24 or /48: a phone moving inside its carrier's prefix keeps its clearance.
    fn default() -> Self {
        BindingRule { ipv4_prefix: 24, ipv6_prefix: 48, user_agent: true }
    }
}

impl BindingRule {
    /// The binding of `client` with `user_agent` (empty when absent).
    pub fn bind(&self, client: IpAddr, user_agent: &[u8]) -> Binding {
        let mut out = [0u8; 34];
        match client {
            IpAddr::V4(v4) => {
                let bits = u32::from(self.ipv4_prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                out[0] = 4;
                out[1] = bits as u8;
                out[2..6].copy_from_slice(&(u32::from(v4) & mask).to_be_bytes());
            }
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                out[0] = 6;
                out[1] = bits as u8;
                out[2..18].copy_from_slice(&(u128::from(v6) & mask).to_be_bytes());
            }
        }
        if self.user_agent {
            let hash = Sha256::digest(user_agent);
            out[18..34].copy_from_slice(&hash[..16]);
        }
        Binding(out)
    }
}

/// One signing key, its HMAC state keyed once (verification clones it, no re-keying).
#[derive(Clone)]
struct Key {
    id: [u8; 4],
    mac: HmacSha256,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        write!(f, "Key({:02x?})", self.id)
    }
}

/// The keys tokens are signed with: the last one signs, any verifies.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why a key ring cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// No key at all.
    #[error("no challenge key")]
    Empty,
}

/// A token's contents once its signature and binding check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// Seconds since the Unix epoch it was issued at.
    pub issued: u64,
    /// Seconds since the Unix epoch it expires at.
    pub expiry: u64,
    /// The kind's extra bytes.
    pub extra: &'a [u8],
}

impl Keyring {
    /// A ring of `keys`, oldest first.
    pub fn new(keys: &[[u8; KEY_BYTES]]) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        let keys = keys
            .iter()
            .map(|key| {
                let hash = Sha256::digest(key);
                // HMAC pads a key shorter than the block with zeros (RFC 2104), so the padded
                // block is the same key, taken by the infallible constructor.
                let mut block = [0u8; 64];
                block[..KEY_BYTES].copy_from_slice(key);
                let mac = <HmacSha256 as KeyInit>::new(&block.into());
                Key { id: [hash[0], hash[1], hash[2], hash[3]], mac }
            })
            .collect();
        Ok(Keyring { keys })
    }

    fn signing(&self) -> &Key {
        // `new` refuses an empty ring.
        &self.keys[self.keys.len() - 1]
    }

    /// A token of `kind` for `binding`, valid from `issued` until `expiry` (Unix seconds).
    pub fn sign(&self, kind: Kind, binding: &Binding, issued: u64, expiry: u64, extra: &[u8]) -> String {
        let extra = &extra[..extra.len().min(MAX_EXTRA)];
        let key = self.signing();
        let mut bytes = Vec::with_capacity(HEADER_BYTES + extra.len() + MAC_BYTES);
        bytes.push(VERSION);
        bytes.push(kind as u8);
        bytes.extend_from_slice(&key.id);
        bytes.extend_from_slice(&issued.to_be_bytes());
        bytes.extend_from_slice(&expiry.to_be_bytes());
        bytes.extend_from_slice(extra);
        let mut mac = key.mac.clone();
        mac.update(&bytes);
        mac.update(&binding.0);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Check `token`: its kind, its signature over `binding` (constant time), and that `now`
    /// (Unix seconds) is within its validity. Returns its contents into `buffer`.
    pub fn verify<'a>(
        &self,
        token: &[u8],
        kind: Kind,
        binding: &Binding,
        now: u64,
        buffer: &'a mut [u8; MAX_TOKEN_BYTES],
    ) -> Option<Verified<'a>> {
        // Refuse oversized input before decoding: a cookie costs at most one small decode.
        if token.len() > MAX_TOKEN_BYTES.div_ceil(3) * 4 {
            return None;
        }
        let length = URL_SAFE_NO_PAD.decode_slice(token, buffer).ok()?;
        let bytes = &buffer[..length];
        if length < HEADER_BYTES + MAC_BYTES || bytes[0] != VERSION || Kind::from_byte(bytes[1]) != Some(kind)
        {
            return None;
        }
        let (signed, tag) = bytes.split_at(length - MAC_BYTES);
        let key = self.keys.iter().find(|k| k.id == signed[2..6])?;
        let mut mac = key.mac.clone();
        mac.update(signed);
        mac.update(&binding.0);
        // `verify_slice` compares in constant time.
        mac.verify_slice(tag).ok()?;
        let issued = u64::from_be_bytes(signed[6..14].try_into().ok()?);
        let expiry = u64::from_be_bytes(signed[14..22].try_into().ok()?);
        // A token from the future (beyond a minute of clock skew between shields) is refused.
        if now >= expiry || issued > now.saturating_add(60) {
            return None;
        }
        Some(Verified { issued, expiry, extra: &bytes[HEADER_BYTES..length - MAC_BYTES] })
    }
}

/// A buffer large enough for any token [`Keyring::verify`] accepts.
pub fn buffer() -> [u8; MAX_TOKEN_BYTES] {
    [0u8; MAX_TOKEN_BYTES]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring() -> Keyring {
        Keyring::new(&[[7u8; KEY_BYTES]]).unwrap()
    }

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_padded_key_is_the_key() {
        let key = [9u8; KEY_BYTES];
        let ring = Keyring::new(&[key]).unwrap();
        let mut mac = ring.keys[0].mac.clone();
        mac.update(b"x");
        let mut plain = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
        plain.update(b"x");
        assert_eq!(mac.finalize().into_bytes(), plain.finalize().into_bytes());
    }

    #[test]
    fn binding_follows_the_prefix_and_user_agent() {
        let rule = BindingRule::default();
        let a = rule.bind(addr("198.51.100.7"), b"Firefox");
        assert_eq!(a, rule.bind(addr("198.51.100.200"), b"Firefox"));
        assert_ne!(a, rule.bind(addr("198.51.101.7"), b"Firefox"));
        assert_ne!(a, rule.bind(addr("198.51.100.7"), b"Chrome"));
        assert_eq!(rule.bind(addr("2001:db8:1:2::1"), b""), rule.bind(addr("2001:db8:1:ffff::9"), b""));
        assert_ne!(rule.bind(addr("2001:db8:1::1"), b""), rule.bind(addr("2001:db8:2::1"), b""));
        let exact = BindingRule { ipv4_prefix: 32, ipv6_prefix: 128, user_agent: false };
        assert_ne!(exact.bind(addr("198.51.100.7"), b""), exact.bind(addr("198.51.100.8"), b""));
        assert_eq!(exact.bind(addr("198.51.100.7"), b"A"), exact.bind(addr("198.51.100.7"), b"B"));
        let none = BindingRule { ipv4_prefix: 0, ipv6_prefix: 0, user_agent: false };
        assert_eq!(none.bind(addr("192.0.2.1"), b""), none.bind(addr("203.0.113.1"), b""));
    }

    #[test]
    fn a_token_verifies_with_its_kind_binding_and_time() {
        let rule = BindingRule::default();
        let binding = rule.bind(addr("192.0.2.1"), b"UA");
        let token = ring().sign(Kind::Clearance, &binding, 1000, 4600, b"");
        let mut buf = buffer();
        let ok = ring().verify(token.as_bytes(), Kind::Clearance, &binding, 1000, &mut buf).unwrap();
        assert_eq!((ok.issued, ok.expiry), (1000, 4600));
        assert!(ring().verify(token.as_bytes(), Kind::Clearance, &binding, 4600, &mut buf).is_none());
        assert!(ring().verify(token.as_bytes(), Kind::Probe, &binding, 2000, &mut buf).is_none());
        let other = rule.bind(addr("192.0.3.1"), b"UA");
        assert!(ring().verify(token.as_bytes(), Kind::Clearance, &other, 2000, &mut buf).is_none());
        // Issued in the future beyond the skew allowance.
        let early = ring().sign(Kind::Clearance, &binding, 5000, 9000, b"");
        assert!(ring().verify(early.as_bytes(), Kind::Clearance, &binding, 1000, &mut buf).is_none());
        let work = ring().sign(Kind::Work, &binding, 1000, 1300, &[1, 2, 3]);
        let ok = ring().verify(work.as_bytes(), Kind::Work, &binding, 1100, &mut buf).unwrap();
        assert_eq!(ok.extra, &[1, 2, 3]);
    }

    #[test]
    fn rotation_signs_with_the_newest_and_verifies_with_any() {
        let binding = BindingRule::default().bind(addr("192.0.2.1"), b"UA");
        let old = Keyring::new(&[[1u8; KEY_BYTES]]).unwrap();
        let rotated = Keyring::new(&[[1u8; KEY_BYTES], [2u8; KEY_BYTES]]).unwrap();
        let new_only = Keyring::new(&[[2u8; KEY_BYTES]]).unwrap();
        let mut buf = buffer();
        let from_old = old.sign(Kind::Clearance, &binding, 0, 100, b"");
        assert!(rotated.verify(from_old.as_bytes(), Kind::Clearance, &binding, 1, &mut buf).is_some());
        let from_rotated = rotated.sign(Kind::Clearance, &binding, 0, 100, b"");
        assert!(new_only.verify(from_rotated.as_bytes(), Kind::Clearance, &binding, 1, &mut buf).is_some());
        assert!(old.verify(from_rotated.as_bytes(), Kind::Clearance, &binding, 1, &mut buf).is_none());
        assert_eq!(Keyring::new(&[]).unwrap_err(), KeyringError::Empty);
        assert!(!format!("{rotated:?}").contains("0101"), "the key must not be printed");
    }

    proptest! {
        #[test]
        fn random_cookies_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let binding = BindingRule::default().bind(addr("192.0.2.1"), b"UA");
            let mut buf = buffer();
            for kind in [Kind::Clearance, Kind::Probe, Kind::Work] {
                prop_assert!(ring().verify(&bytes, kind, &binding, 10, &mut buf).is_none());
                let text = URL_SAFE_NO_PAD.encode(&bytes);
                prop_assert!(ring().verify(text.as_bytes(), kind, &binding, 10, &mut buf).is_none());
            }
        }

        #[test]
        fn mutated_cookies_never_verify(
            position in 0usize..200,
            flip in 1u8..=255,
            cut in 0usize..200,
            issued in 0u64..1_000_000,
            life in 1u64..100_000,
            v4 in any::<u32>(),
            ua in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let rule = BindingRule::default();
            let client = IpAddr::V4(v4.into());
            let binding = rule.bind(client, &ua);
            let token = ring().sign(Kind::Clearance, &binding, issued, issued + life, b"");
            let mut buf = buffer();
            // The untouched token verifies only before expiry and with the right binding.
            prop_assert!(ring().verify(token.as_bytes(), Kind::Clearance, &binding, issued, &mut buf).is_some());
            prop_assert!(ring().verify(token.as_bytes(), Kind::Clearance, &binding, issued + life, &mut buf).is_none());
            let elsewhere = rule.bind(IpAddr::V4((v4 ^ 0x100).into()), &ua);
            prop_assert!(ring().verify(token.as_bytes(), Kind::Clearance, &elsewhere, issued, &mut buf).is_none());
            // Any decoded-byte flip or truncation breaks it.
            let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
            let at = position % raw.len();
            raw[at] ^= flip;
            let flipped = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(ring().verify(flipped.as_bytes(), Kind::Clearance, &binding, issued, &mut buf).is_none());
            let cut = cut % token.len();
            prop_assert!(ring().verify(&token.as_bytes()[..cut], Kind::Clearance, &binding, issued, &mut buf).is_none());
        }
    }
}
