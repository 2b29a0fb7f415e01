//! The XDP program's map keys and values, byte for byte as `bpf/rampart.h` lays them out
//! (native byte order, C alignment). Encoding by hand keeps the crate free of `unsafe`
//! transmutes; the sizes are checked against the header's by a test.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::plan::{MAX_PORT_RANGES, MAX_SIGNATURES_PER_DESTINATION, Match, RuleAction};
use rampart_contract::FragmentMatch;

/// `struct rule`.
pub const RULE_SIZE: usize = 24;
/// `struct counters`.
pub const COUNTERS_SIZE: usize = 16;
/// `struct prefix_key`.
pub const PREFIX_KEY_SIZE: usize = 20;
/// `struct lengths`.
pub const LENGTHS_SIZE: usize = 136;
/// `struct sig_match`.
pub const SIG_MATCH_SIZE: usize = 96;
/// `struct dst_entry`.
pub const DST_ENTRY_SIZE: usize = 44;
/// `struct tbl24_block`.
pub const BLOCK_SIZE: usize = 64;
/// `struct tbl8_group`.
pub const GROUP_SIZE: usize = 1024;
/// `struct lpm_v4_key`, `struct lpm_v6_key`.
pub const LPM_V4_KEY_SIZE: usize = 8;
pub const LPM_V6_KEY_SIZE: usize = 20;

/// Words of the IPv6 /32 Bloom filter (`V6_FILTER_WORDS`).
pub const V6_FILTER_WORDS: usize = 1 << (24 - 6);

/// The filter bit of an IPv6 /32 (its top 32 bits), as the program computes it.
pub fn v6_filter_bit(top32: u32) -> u32 {
    top32.wrapping_mul(0x9E37_79B1) >> 8
}

/// Slots of the IPv6 length masks (`V6_MASK_SLOTS`), two words each.
pub const V6_MASK_SLOTS: usize = 1 << 18;

/// The word (of the masks array, two per slot) and bit of IPv6 prefix length `len` (/32 or
/// longer) under the /32 `top32`, as the program computes them.
pub fn v6_mask_bit(top32: u32, len: u8) -> (usize, u32) {
    let slot = (top32.wrapping_mul(0x85EB_CA77) >> (32 - 18)) as usize;
    let bit = u32::from(len.saturating_sub(V6_LONG_FROM)).min(127);
    (2 * slot + (bit / 64) as usize, bit % 64)
}

/// The IPv6 source lengths searched always (below /32) and behind the Bloom filter.
pub const V6_LONG_FROM: u8 = 32;

/// `ACTION_*` in the header.
pub const ACTION_NONE: u32 = 0;
const ACTION_DROP: u32 = 1;
const ACTION_RATE_PACKETS: u32 = 2;
const ACTION_RATE_BYTES: u32 = 3;

/// A rule as the program reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleValue {
    /// CLOCK_BOOTTIME nanoseconds; 0: never.
    pub expires_ns: u64,
    pub decision: u64,
    pub action: u32,
    pub rate: u32,
}

impl RuleValue {
    pub fn new(action: RuleAction, decision: u64, expires_ns: u64) -> Self {
        let (action, rate) = match action {
            RuleAction::Drop => (ACTION_DROP, 0),
            RuleAction::RatePackets(r) => (ACTION_RATE_PACKETS, r),
            RuleAction::RateBytes(r) => (ACTION_RATE_BYTES, r),
        };
        RuleValue { expires_ns, decision, action, rate }
    }

    /// The same rule, its expiry within `slack_ns` of `other`'s (both expiring, or neither).
    pub fn same_within(&self, other: &RuleValue, slack_ns: u64) -> bool {
        let expiry = match (self.expires_ns, other.expires_ns) {
            (0, 0) => true,
            (0, _) | (_, 0) => false,
            (a, b) => a.abs_diff(b) <= slack_ns,
        };
        expiry && (self.decision, self.action, self.rate) == (other.decision, other.action, other.rate)
    }

    pub fn encode(&self) -> [u8; RULE_SIZE] {
        let mut b = [0u8; RULE_SIZE];
        b[0..8].copy_from_slice(&self.expires_ns.to_ne_bytes());
        b[8..16].copy_from_slice(&self.decision.to_ne_bytes());
        b[16..20].copy_from_slice(&self.action.to_ne_bytes());
        b[20..24].copy_from_slice(&self.rate.to_ne_bytes());
        b
    }

    /// `None` when `bytes` is not a whole rule.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; RULE_SIZE] = bytes.get(..RULE_SIZE)?.try_into().ok()?;
        Some(RuleValue {
            expires_ns: u64_at(b, 0),
            decision: u64_at(b, 8),
            action: u32_at(b, 16),
            rate: u32_at(b, 20),
        })
    }

    /// The action in plan terms (`None` for a free slot or an unknown value).
    pub fn action(&self) -> Option<RuleAction> {
        match self.action {
            ACTION_DROP => Some(RuleAction::Drop),
            ACTION_RATE_PACKETS => Some(RuleAction::RatePackets(self.rate)),
            ACTION_RATE_BYTES => Some(RuleAction::RateBytes(self.rate)),
            _ => None,
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(a)
}

/// Packets and bytes a rule dropped, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

impl Counters {
    /// Sums per-CPU values (entries too short are ignored).
    pub fn sum<B: AsRef<[u8]>>(per_cpu: &[B]) -> Self {
        per_cpu.iter().filter(|v| v.as_ref().len() >= COUNTERS_SIZE).fold(Counters::default(), |acc, v| {
            let v = v.as_ref();
            Counters { packets: acc.packets + u64_at(v, 0), bytes: acc.bytes + u64_at(v, 8) }
        })
    }
}

/// The address words of `ip` in network order, IPv4 in the first word.
fn words(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// `struct prefix_key` for a (truncated) prefix.
pub fn prefix_key(net: IpNet) -> [u8; PREFIX_KEY_SIZE] {
    let net = net.trunc();
    let mut b = [0u8; PREFIX_KEY_SIZE];
    b[0] = if net.addr().is_ipv4() { 4 } else { 6 };
    b[1] = net.prefix_len();
    b[4..20].copy_from_slice(&words(net.addr()));
    b
}

/// `struct lengths`: the lengths in use, longest first, deduplicated.
pub fn lengths(lens: impl IntoIterator<Item = u8>) -> [u8; LENGTHS_SIZE] {
    let mut v: Vec<u8> = lens.into_iter().filter(|&l| l <= 128).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.dedup();
    let mut b = [0u8; LENGTHS_SIZE];
    b[0..4].copy_from_slice(&(v.len() as u32).to_ne_bytes());
    b[4..4 + v.len()].copy_from_slice(&v);
    b
}

/// `struct sig_match` (its token bucket zeroed: full on first use).
pub fn sig_match(rule: u32, m: &Match) -> [u8; SIG_MATCH_SIZE] {
    let mut b = [0u8; SIG_MATCH_SIZE];
    b[0..4].copy_from_slice(&rule.to_ne_bytes());
    b[4] = m.protocol.unwrap_or(0);
    b[5] = u8::from(m.protocol.is_some());
    if let Some(f) = m.tcp_flags {
        b[6] = f.value;
        b[7] = f.mask;
    }
    b[8] = match m.fragment {
        None => 0,
        Some(FragmentMatch::NonInitial) => 1,
        Some(FragmentMatch::NotNonInitial) => 2,
    };
    let src = &m.src_ports[..m.src_ports.len().min(MAX_PORT_RANGES)];
    let dst = &m.dst_ports[..m.dst_ports.len().min(MAX_PORT_RANGES)];
    b[9] = src.len() as u8;
    b[10] = dst.len() as u8;
    let (min, max) = m.packet_len.map_or((0, u16::MAX), |r| (r.min, r.max));
    b[12..14].copy_from_slice(&min.to_ne_bytes());
    b[14..16].copy_from_slice(&max.to_ne_bytes());
    for (i, r) in src.iter().enumerate() {
        b[16 + 4 * i..18 + 4 * i].copy_from_slice(&r.first.to_ne_bytes());
        b[18 + 4 * i..20 + 4 * i].copy_from_slice(&r.last.to_ne_bytes());
    }
    for (i, r) in dst.iter().enumerate() {
        b[48 + 4 * i..50 + 4 * i].copy_from_slice(&r.first.to_ne_bytes());
        b[50 + 4 * i..52 + 4 * i].copy_from_slice(&r.last.to_ne_bytes());
    }
    b
}

/// `struct dst_entry`: signature slots (at most [`MAX_SIGNATURES_PER_DESTINATION`]) and the
/// SYN guard's rule (0: none), answering SYNs with cookies or not.
pub fn dst_entry(sigs: &[u32], syn_rule: u32, syn_cookies: bool) -> [u8; DST_ENTRY_SIZE] {
    let sigs = &sigs[..sigs.len().min(MAX_SIGNATURES_PER_DESTINATION)];
    let mut b = [0u8; DST_ENTRY_SIZE];
    b[0..4].copy_from_slice(&(sigs.len() as u32).to_ne_bytes());
    for (i, s) in sigs.iter().enumerate() {
        b[4 + 4 * i..8 + 4 * i].copy_from_slice(&s.to_ne_bytes());
    }
    b[36..40].copy_from_slice(&syn_rule.to_ne_bytes());
    b[40..44].copy_from_slice(&u32::from(syn_cookies).to_ne_bytes());
    b
}

/// `struct tbl24_block` or `struct tbl8_group` from its slots.
pub fn slots(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// `struct lpm_v4_key` / `struct lpm_v6_key` for a (truncated) prefix.
pub fn lpm_key(net: IpNet) -> Vec<u8> {
    let net = net.trunc();
    let mut b = u32::from(net.prefix_len()).to_ne_bytes().to_vec();
    match net.addr() {
        IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{LengthRange, PortRange, TcpFlags};

    #[test]
    fn a_rule_read_again_with_clock_jitter_is_the_same_rule() {
        let rule = RuleValue::new(RuleAction::Drop, 7, 5_000_000_000);
        assert!(rule.same_within(&RuleValue { expires_ns: 5_010_000_000, ..rule }, 100_000_000));
        assert!(!rule.same_within(&RuleValue { expires_ns: 6_000_000_000, ..rule }, 100_000_000));
        assert!(!rule.same_within(&RuleValue { expires_ns: 0, ..rule }, u64::MAX));
        assert!(!rule.same_within(&RuleValue::new(RuleAction::RatePackets(5), 7, 5_000_000_000), 0));
        assert!(
            RuleValue::new(RuleAction::Drop, 7, 0).same_within(&RuleValue::new(RuleAction::Drop, 7, 0), 0)
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_and_encoding_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                                             ports in proptest::collection::vec((0u16.., 0u16..), 0..12),
                                             len in 0u8..=255) {
            if let Some(r) = RuleValue::decode(&bytes) {
                proptest::prop_assert_eq!(RuleValue::decode(&r.encode()), Some(r));
            }
            let ranges: Vec<PortRange> = ports.iter().map(|&(a, b)| PortRange { first: a.min(b), last: a.max(b) }).collect();
            let m = Match { src_ports: ranges.clone(), dst_ports: ranges, ..Match::default() };
            let _ = sig_match(1, &m);
            let _ = lengths(bytes.iter().copied().chain([len]));
            let _ = Counters::sum(std::slice::from_ref(&bytes));
            let _ = dst_entry(&ports.iter().map(|p| u32::from(p.0)).collect::<Vec<_>>(), 1, len % 2 == 0);
        }
    }

    /// The sizes `bpf/rampart.h` declares, read from the header so the two cannot drift
    /// silently: every struct's size is recomputed from its field list.
    #[test]
    fn encodings_have_the_header_sizes() {
        let header = include_str!("../bpf/rampart.h");
        for name in
            ["rule", "counters", "prefix_key", "lengths", "sig_match", "dst_entry", "bucket_key", "bucket"]
        {
            assert!(header.contains(&format!("struct {name} {{")), "{name} missing from rampart.h");
        }
        assert_eq!(RuleValue::default().encode().len(), RULE_SIZE);
        let m = Match {
            protocol: Some(6),
            src_ports: vec![PortRange::single(53)],
            dst_ports: (0..10).map(PortRange::single).collect(),
            tcp_flags: Some(TcpFlags { value: 2, mask: 0x12 }),
            fragment: Some(FragmentMatch::NotNonInitial),
            packet_len: Some(LengthRange { min: 40, max: 60 }),
        };
        let b = sig_match(7, &m);
        assert_eq!(&b[..12], &[7, 0, 0, 0, 6, 1, 2, 0x12, 2, 1, 8, 0]);
        assert_eq!(u32_at(&b, 16), u32::from_ne_bytes([53, 0, 53, 0]));
        let rule = RuleValue::new(RuleAction::RateBytes(9), 42, 5);
        assert_eq!(RuleValue::decode(&rule.encode()), Some(rule));
        assert_eq!(rule.action(), Some(RuleAction::RateBytes(9)));
        assert_eq!(RuleValue::decode(&[0u8; 3]), None);
        let key = prefix_key("203.0.113.77/24".parse().unwrap());
        assert_eq!(&key[..8], &[4, 24, 0, 0, 203, 0, 113, 0]);
        let l = lengths([64, 128, 64, 48]);
        assert_eq!(&l[..7], &[3, 0, 0, 0, 128, 64, 48]);
        assert_eq!(dst_entry(&[1, 2], 9, false)[36..44], [9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(dst_entry(&[], 9, true)[40], 1);
        assert_eq!(lpm_key("2001:db8::/32".parse().unwrap()).len(), LPM_V6_KEY_SIZE);
        let (w32, b32) = v6_mask_bit(0x2001_0db8, 32);
        assert_eq!((w32 % 2, b32), (0, 0));
        assert_eq!(v6_mask_bit(0x2001_0db8, 128), (w32 + 1, 32));
        assert_eq!(v6_mask_bit(0x2001_0db8, 95), (w32, 63));
        let two = [
            [1u8, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0],
            [2, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0],
        ];
        assert_eq!(Counters::sum(&two), Counters { packets: 3, bytes: 30 });
    }
}
