//! Ground truth: what the capture contains, counted while it is written.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::params::GenParams;
use crate::wire::{self, Dir, Meta};

/// Attack vector vocabulary shared with the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttackVector {
    /// TCP packets with only SYN set.
    SynFlood,
    /// TCP packets with only ACK set.
    AckFlood,
    /// TCP packets with RST set.
    RstFlood,
    /// Other TCP floods.
    TcpFlood,
    /// UDP flood.
    UdpFlood,
    /// ICMP / ICMPv6 flood.
    IcmpFlood,
    /// Flood of IP fragments.
    IpFragmentFlood,
    /// DNS reflection (source port 53).
    DnsAmplification,
    /// NTP reflection (source port 123).
    NtpAmplification,
    /// SSDP reflection (source port 1900).
    SsdpAmplification,
    /// memcached reflection (source port 11211).
    MemcachedAmplification,
    /// CLDAP reflection (source port 389).
    CldapAmplification,
    /// chargen reflection (source port 19).
    ChargenAmplification,
    /// Low per-host, high per-prefix flood over a whole prefix.
    CarpetBombing,
    /// Anything else.
    Other,
    /// IPsec NAT-T reflection (source port 4500).
    NatTAmplification,
    /// BACnet reflection (source port 47808).
    BacnetAmplification,
    /// DHDiscover reflection (source port 37810).
    DhdiscoverAmplification,
    /// Reflection from a source port no reflector table knows.
    UdpReflection,
    /// TCP SYN-ACKs reflected by servers from many sources.
    SynAckReflection,
    /// TCP carrying an HTTP request to port 80 from many middleboxes (middlebox reflection).
    TcpMiddleboxReflection,
}

impl AttackVector {
    /// Every vector the generator writes into ground truth.
    pub const ALL: [AttackVector; 21] = [
        AttackVector::SynFlood,
        AttackVector::AckFlood,
        AttackVector::RstFlood,
        AttackVector::TcpFlood,
        AttackVector::UdpFlood,
        AttackVector::IcmpFlood,
        AttackVector::IpFragmentFlood,
        AttackVector::DnsAmplification,
        AttackVector::NtpAmplification,
        AttackVector::SsdpAmplification,
        AttackVector::MemcachedAmplification,
        AttackVector::CldapAmplification,
        AttackVector::ChargenAmplification,
        AttackVector::CarpetBombing,
        AttackVector::Other,
        AttackVector::NatTAmplification,
        AttackVector::BacnetAmplification,
        AttackVector::DhdiscoverAmplification,
        AttackVector::UdpReflection,
        AttackVector::SynAckReflection,
        AttackVector::TcpMiddleboxReflection,
    ];

    /// The snake_case name used in JSON.
    pub const fn name(self) -> &'static str {
        match self {
            AttackVector::SynFlood => "syn_flood",
            AttackVector::AckFlood => "ack_flood",
            AttackVector::RstFlood => "rst_flood",
            AttackVector::TcpFlood => "tcp_flood",
            AttackVector::UdpFlood => "udp_flood",
            AttackVector::IcmpFlood => "icmp_flood",
            AttackVector::IpFragmentFlood => "ip_fragment_flood",
            AttackVector::DnsAmplification => "dns_amplification",
            AttackVector::NtpAmplification => "ntp_amplification",
            AttackVector::SsdpAmplification => "ssdp_amplification",
            AttackVector::MemcachedAmplification => "memcached_amplification",
            AttackVector::CldapAmplification => "cldap_amplification",
            AttackVector::ChargenAmplification => "chargen_amplification",
            AttackVector::CarpetBombing => "carpet_bombing",
            AttackVector::Other => "other",
            AttackVector::NatTAmplification => "nat_t_amplification",
            AttackVector::BacnetAmplification => "bacnet_amplification",
            AttackVector::DhdiscoverAmplification => "dhdiscover_amplification",
            AttackVector::UdpReflection => "udp_reflection",
            AttackVector::SynAckReflection => "syn_ack_reflection",
            AttackVector::TcpMiddleboxReflection => "tcp_middlebox_reflection",
        }
    }
}

/// Traffic direction relative to the protected networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards the protected networks.
    Inbound,
    /// From the protected networks.
    Outbound,
}

/// Packet and IP-layer byte counts (IPv4 total length; 40 + payload length for IPv6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    /// Packets (IP fragments count individually).
    pub packets: u64,
    /// Sum of IP total lengths.
    pub bytes: u64,
}

impl Totals {
    #[inline]
    fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }

    fn merge(&mut self, other: Totals) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// One attack as written. Attacks that ended up with no packet (e.g. cut by `max_packets`) are
/// omitted; `pulse_wave` lists one entry per burst.
///
/// `target` is always the protected side: the host (or prefix) under attack for an inbound
/// attack, the protected host sending the attack for an outbound one, whose outside
/// destination is then `victim`. `victim` and `outbound` are left out of the JSON of inbound
/// attacks (and default to `None` when read), so truth files written before they existed parse
/// unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttackTruth {
    /// Vector name.
    pub vector: AttackVector,
    /// Inbound: the attack comes at `target`. Outbound: `target` (protected) sends it to
    /// `victim` (outside); `outbound_syn_flood` and `dns_reflector_abuse`.
    pub direction: Direction,
    /// Protected address: the host attacked (inbound), or the host sending the attack
    /// (outbound: the compromised host, or the abused reflector); a prefix (`198.51.100.0/24`)
    /// for carpet bombing.
    pub target: String,
    /// Outbound attacks: the outside address the attack is aimed at. `None` for inbound attacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim: Option<String>,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol number of the attack packets (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub ip_protocol: u8,
    /// Reflector service port (amplification only).
    pub source_port: Option<u16>,
    /// Number of distinct reflectors (amplification only).
    pub reflectors: Option<u32>,
    /// True when sources are random spoofed addresses (false for the outbound attacks: the
    /// sender is `target`; the queries reflected by `dns_reflector_abuse` all carry the
    /// victim's address).
    pub spoofed_sources: bool,
    /// Timestamp of the first packet, Unix seconds.
    pub start: f64,
    /// Timestamp of the last packet, Unix seconds.
    pub end: f64,
    /// Exact first timestamp in nanoseconds (as stored in the file).
    pub start_ns: u64,
    /// Exact last timestamp in nanoseconds (as stored in the file).
    pub end_ns: u64,
    /// Packets of this attack (for `dns_reflector_abuse` the inbound spoofed queries as well as
    /// the outbound answers).
    pub packets: u64,
    /// Sum of IP total lengths of this attack.
    pub bytes: u64,
    /// Outbound attacks: the part of `packets` and `bytes` leaving the protected networks (the
    /// rest entered them: the queries a reflector answers). `None` for inbound attacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<Totals>,
}

/// A large legitimate transfer (`bulk_outbound`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BulkTransferTruth {
    /// Protected server sending the data.
    pub server: IpAddr,
    /// Outside client receiving it.
    pub client: IpAddr,
    /// Server TCP port.
    pub server_port: u16,
    /// Client TCP port.
    pub client_port: u16,
    /// Direction of the bulk data (outbound).
    pub direction: Direction,
    /// First packet, Unix seconds.
    pub start: f64,
    /// Last packet, Unix seconds.
    pub end: f64,
    /// Packets in both directions.
    pub packets: u64,
    /// IP bytes in both directions.
    pub bytes: u64,
    /// Server -> client packets and bytes.
    pub outbound: Totals,
    /// Client -> server packets (ACKs, handshake) and bytes.
    pub inbound: Totals,
}

/// Summary of the benign traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenignSummary {
    /// Client prefixes of the web background.
    pub client_prefixes: Vec<String>,
    /// Server prefixes (protected networks).
    pub server_prefixes: Vec<String>,
    /// Server ports used.
    pub server_ports: Vec<u16>,
    /// TCP sessions whose SYN was written.
    pub web_sessions: u64,
    /// Sessions whose final ACK was written (the rest were cut by the capture end or the cap).
    pub web_sessions_completed: u64,
    /// Distinct clients that opened a session.
    pub web_clients: u64,
    /// Distinct servers that received a session.
    pub web_servers: u64,
    /// Web packets and bytes.
    pub web: Totals,
    /// Large transfers.
    pub bulk_transfers: Vec<BulkTransferTruth>,
    /// All benign packets (web + bulk).
    pub total: Totals,
}

/// Capture-level facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaptureTruth {
    /// pcap link type (1 = Ethernet).
    pub link_type: u32,
    /// "microsecond" or "nanosecond".
    pub timestamp_precision: String,
    /// Requested window start, Unix seconds.
    pub window_start: f64,
    /// Requested window end, Unix seconds (exclusive).
    pub window_end: f64,
    /// First packet timestamp (0 if empty), Unix seconds.
    pub first_packet: f64,
    /// Last packet timestamp (0 if empty), Unix seconds.
    pub last_packet: f64,
    /// Packets written.
    pub packets: u64,
    /// Sum of IP total lengths.
    pub ip_bytes: u64,
    /// Sum of frame lengths (Ethernet header and padding included).
    pub frame_bytes: u64,
    /// Size of the pcap file in bytes.
    pub file_bytes: u64,
    /// True when `max_packets` stopped the generation early.
    pub truncated_by_max_packets: bool,
}

/// The version of the ground-truth JSON this generator writes.
pub const TRUTH_SCHEMA_VERSION: u32 = 1;

/// Everything a test or an evaluation needs to know about a generated capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroundTruth {
    /// [`TRUTH_SCHEMA_VERSION`]; the schema is published as `docs/schema/truth.schema.json`.
    pub schema_version: u32,
    /// Always "rampart-trafficgen".
    pub generator: String,
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// All parameters as given.
    pub params: GenParams,
    /// Capture facts.
    pub capture: CaptureTruth,
    /// Attacks, in start order.
    pub attacks: Vec<AttackTruth>,
    /// Benign traffic summary.
    pub benign: BenignSummary,
    /// Exact totals per destination address.
    pub per_destination: BTreeMap<IpAddr, Totals>,
    /// Exact totals per IP protocol ("tcp", "udp", "icmp", "icmpv6", else "ip_proto_N").
    pub per_protocol: BTreeMap<String, Totals>,
    /// Exact totals per direction ("inbound", "outbound", "other").
    pub per_direction: BTreeMap<String, Totals>,
    /// Exact totals of the whole capture.
    pub totals: Totals,
}

impl GroundTruth {
    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Parses JSON written by [`GroundTruth::to_json`].
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// Name used in `per_protocol`.
pub fn protocol_name(proto: u8) -> String {
    match proto {
        wire::PROTO_TCP => "tcp".into(),
        wire::PROTO_UDP => "udp".into(),
        wire::PROTO_ICMP => "icmp".into(),
        wire::PROTO_ICMPV6 => "icmpv6".into(),
        n => format!("ip_proto_{n}"),
    }
}

/// FxHash-style hasher for the u128 destination keys (no DoS concern: we choose the keys).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.mix(u64::from(b));
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Per-tag (attack, web, bulk) counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TagCounter {
    pub(crate) totals: Totals,
    pub(crate) inbound: Totals,
    pub(crate) outbound: Totals,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
}

/// Hot-path accounting of every written packet.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) total: Totals,
    pub(crate) frame_bytes: u64,
    pub(crate) first_ns: Option<u64>,
    pub(crate) last_ns: u64,
    pub(crate) per_proto: [Totals; 256],
    pub(crate) per_dir: [Totals; 3],
    per_dst: HashMap<u128, Totals, BuildHasherDefault<KeyHasher>>,
    // Floods hit one destination back to back: batch those before touching the map.
    cur_key: u128,
    cur: Totals,
    pub(crate) tags: Vec<TagCounter>,
}

impl Counters {
    pub(crate) fn new(tags: usize) -> Self {
        Self {
            total: Totals::default(),
            frame_bytes: 0,
            first_ns: None,
            last_ns: 0,
            per_proto: [Totals::default(); 256],
            per_dir: [Totals::default(); 3],
            per_dst: HashMap::default(),
            cur_key: 0,
            cur: Totals::default(),
            tags: vec![TagCounter::default(); tags],
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, ts: u64, frame_len: usize, meta: &Meta, tag: usize) {
        let bytes = u64::from(meta.ip_len);
        self.total.add(bytes);
        self.frame_bytes += frame_len as u64;
        if self.first_ns.is_none() {
            self.first_ns = Some(ts);
        }
        self.last_ns = ts;
        self.per_proto[usize::from(meta.proto)].add(bytes);
        let dir_idx = match meta.dir {
            Dir::Inbound => 0,
            Dir::Outbound => 1,
            Dir::Other => 2,
        };
        self.per_dir[dir_idx].add(bytes);
        if meta.dst_key != self.cur_key {
            self.flush_dst();
            self.cur_key = meta.dst_key;
        }
        self.cur.add(bytes);
        if let Some(t) = self.tags.get_mut(tag) {
            if t.totals.packets == 0 {
                t.first_ns = ts;
            }
            t.last_ns = ts;
            t.totals.add(bytes);
            match meta.dir {
                Dir::Inbound => t.inbound.add(bytes),
                Dir::Outbound => t.outbound.add(bytes),
                Dir::Other => {}
            }
        }
    }

    fn flush_dst(&mut self) {
        if self.cur.packets > 0 {
            self.per_dst.entry(self.cur_key).or_default().merge(self.cur);
            self.cur = Totals::default();
        }
    }

    pub(crate) fn per_destination(&mut self) -> BTreeMap<IpAddr, Totals> {
        self.flush_dst();
        self.per_dst.iter().map(|(&k, &v)| (wire::key_to_ip(k), v)).collect()
    }

    pub(crate) fn per_protocol(&self) -> BTreeMap<String, Totals> {
        (0..=255u8)
            .filter_map(|p| {
                let t = self.per_proto[usize::from(p)];
                (t.packets > 0).then(|| (protocol_name(p), t))
            })
            .collect()
    }

    pub(crate) fn per_direction(&self) -> BTreeMap<String, Totals> {
        ["inbound", "outbound", "other"]
            .iter()
            .zip(self.per_dir)
            .filter(|(_, t)| t.packets > 0)
            .map(|(n, t)| ((*n).to_owned(), t))
            .collect()
    }
}

/// Nanoseconds to fractional Unix seconds.
pub(crate) fn ns_to_secs(ns: u64) -> f64 {
    (ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_names_match_serde() {
        for v in AttackVector::ALL {
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{}\"", v.name()));
        }
    }

    #[test]
    fn counters_batch_destinations() {
        let mut c = Counters::new(1);
        let m = |k: u128, len: u16| Meta { dst_key: k, ip_len: len, proto: 6, dir: Dir::Inbound };
        c.record(1, 60, &m(wire::v4_key(1), 40), 0);
        c.record(2, 60, &m(wire::v4_key(1), 44), 0);
        c.record(3, 60, &m(wire::v4_key(2), 40), 7);
        c.record(4, 60, &m(wire::v4_key(1), 40), 0);
        let d = c.per_destination();
        assert_eq!(d[&"0.0.0.1".parse::<IpAddr>().unwrap()], Totals { packets: 3, bytes: 124 });
        assert_eq!(d[&"0.0.0.2".parse::<IpAddr>().unwrap()], Totals { packets: 1, bytes: 40 });
        assert_eq!(c.tags[0].totals.packets, 3);
        assert_eq!((c.tags[0].first_ns, c.tags[0].last_ns), (1, 4));
        assert_eq!(c.per_protocol()["tcp"].packets, 4);
        assert_eq!(c.per_direction()["inbound"].bytes, 164);
    }

    #[test]
    fn ns_to_secs_keeps_precision_of_the_second() {
        assert_eq!(ns_to_secs(1_767_225_600_500_000_000), 1_767_225_600.5);
    }
}
