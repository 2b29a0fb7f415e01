//! Generation parameters, their defaults and validation.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::GenError;
use crate::scenario::Scenario;
use crate::wire;

/// Default capture start: 2026-01-01T00:00:00Z, so files are reproducible.
pub const DEFAULT_START_UNIX: u64 = 1_767_225_600;
/// Default IPv4 attack target (also one of the benign web servers).
pub const DEFAULT_TARGET_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 10);
/// Default IPv6 attack target (also one of the benign web servers).
pub const DEFAULT_TARGET_V6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
/// Default protected server of the `bulk_outbound` transfer.
pub const DEFAULT_BULK_SERVER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 20);
/// Default compromised protected host sending the `outbound_syn_flood` (no web server lives
/// there, so its outbound traffic is the attack alone).
pub const DEFAULT_COMPROMISED_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 66);
/// Outside victim of `outbound_syn_flood` (port 443).
pub const OUTBOUND_SYN_VICTIM: std::net::Ipv4Addr = std::net::Ipv4Addr::new(203, 0, 113, 10);
/// Default protected DNS server abused as a reflector by `dns_reflector_abuse`.
pub const DEFAULT_DNS_SERVER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 100, 53);
/// Outside victim of `dns_reflector_abuse`: the spoofed source of the queries, so the receiver
/// of the answers.
pub const DNS_ABUSE_VICTIM: std::net::Ipv4Addr = std::net::Ipv4Addr::new(203, 0, 113, 77);

/// Longest capture accepted (30 days); keeps every nanosecond timestamp far from overflow.
pub const MAX_DURATION_SECS: f64 = 30.0 * 86_400.0;
/// Highest accepted rate for any source, packets per second.
pub const MAX_PPS: u64 = 1_000_000_000;

/// Parameters of a generation run. Every field has a default (`GenParams::default()`), and
/// [`GenParams::for_scenario`] adjusts durations for scenarios that need longer captures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GenParams {
    /// Seed of every random choice; same seed and parameters give a byte-identical capture.
    pub seed: u64,
    /// Capture length in seconds; no packet is stamped at or after `start + duration`.
    pub duration_secs: f64,
    /// Capture start, Unix seconds (must keep the capture before 2106 for pcap's 32-bit field).
    pub start_unix: u64,
    /// Mean packet rate of the benign web background (0 disables it).
    pub background_pps: u64,
    /// Mean packet rate of the attack (for `bulk_outbound`: of the transfer, ACKs included; for
    /// `dns_reflector_abuse`: of the spoofed queries, each answered once, so the answers leave
    /// at the same rate).
    pub attack_pps: u64,
    /// Attack start, seconds after the capture start.
    pub attack_start_secs: f64,
    /// Attack length in seconds; `None` runs it to the end of the capture.
    pub attack_duration_secs: Option<f64>,
    /// Attack target (or bulk-transfer server); `None` = 198.51.100.10 / 2001:db8:100::10
    /// (198.51.100.20 for `bulk_outbound`). Carpet bombing uses the prefix containing it. For the
    /// outbound attacks it is the protected host sending them, and must lie in 198.51.100.0/24:
    /// `None` = 198.51.100.66 (`outbound_syn_flood`), 198.51.100.53 (`dns_reflector_abuse`).
    pub target: Option<IpAddr>,
    /// Stop after this many packets (the truth then describes the truncated capture).
    pub max_packets: Option<u64>,
    /// Nanosecond timestamps (pcap magic 0xa1b23c4d) instead of microseconds.
    pub nanosecond: bool,
    /// Smallest payload of UDP/ICMP flood packets and fragment-flood fragments, bytes.
    pub flood_payload_min: u16,
    /// Largest such payload (clamped to what fits a 1500-byte MTU); equal to min for fixed sizes.
    pub flood_payload_max: u16,
    /// Number of distinct reflectors in amplification attacks (`dns_reflector_abuse` has one:
    /// the protected DNS server).
    pub reflectors: u32,
    /// Carpet-bombing prefix length: default 24 for IPv4 (16..=30), 120 for IPv6 (112..=126).
    pub carpet_prefix_len: Option<u8>,
    /// Pulse-wave burst length, seconds.
    pub pulse_on_secs: f64,
    /// Pulse-wave quiet gap between bursts, seconds.
    pub pulse_off_secs: f64,
    /// Share of benign sessions that are IPv6, percent; default 50 for IPv6 scenarios and
    /// `mixed`, 0 otherwise.
    pub ipv6_background_percent: Option<u8>,
    /// Store at most this many bytes of each frame (the true length stays in the record
    /// header), as a capture taken with `tcpdump -s N` does; `None` stores frames whole.
    pub snaplen: Option<u32>,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            seed: 1,
            duration_secs: 5.0,
            start_unix: DEFAULT_START_UNIX,
            background_pps: 5_000,
            attack_pps: 50_000,
            attack_start_secs: 1.0,
            attack_duration_secs: Some(3.0),
            target: None,
            max_packets: None,
            nanosecond: false,
            flood_payload_min: 32,
            flood_payload_max: 1200,
            reflectors: 64,
            carpet_prefix_len: None,
            pulse_on_secs: 3.0,
            pulse_off_secs: 5.0,
            ipv6_background_percent: None,
            snaplen: None,
        }
    }
}

impl GenParams {
    /// Defaults suited to `scenario`: `pulse_wave` gets 20 s so several bursts fit, `mixed` gets
    /// 20 s at 20 kpps per phase; every other scenario uses [`GenParams::default`].
    pub fn for_scenario(scenario: Scenario) -> Self {
        let base = Self::default();
        match scenario {
            Scenario::PulseWave => {
                Self { duration_secs: 20.0, attack_start_secs: 1.0, attack_duration_secs: None, ..base }
            }
            Scenario::Mixed => Self {
                duration_secs: 20.0,
                attack_start_secs: 1.0,
                attack_duration_secs: Some(18.0),
                attack_pps: 20_000,
                ..base
            },
            _ => base,
        }
    }
}

/// Parameters converted to nanoseconds and checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) capture_start: u64,
    pub(crate) capture_end: u64,
    pub(crate) attack_start: u64,
    pub(crate) attack_end: u64,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> GenError {
    GenError::InvalidParam { name, reason: reason.into() }
}

/// Seconds to nanoseconds for a finite value in `0..=MAX_DURATION_SECS`.
pub(crate) fn secs_to_ns(name: &'static str, secs: f64) -> Result<u64, GenError> {
    if !secs.is_finite() || !(0.0..=MAX_DURATION_SECS).contains(&secs) {
        return Err(invalid(name, format!("{secs} is not within 0..={MAX_DURATION_SECS} seconds")));
    }
    Ok((secs * 1e9).round() as u64)
}

impl GenParams {
    /// Checks every field against `scenario` and returns the time window in nanoseconds.
    pub(crate) fn validate(&self, scenario: Scenario) -> Result<Window, GenError> {
        let duration = secs_to_ns("duration_secs", self.duration_secs)?;
        if duration == 0 {
            return Err(invalid("duration_secs", "must be positive"));
        }
        let capture_start =
            self.start_unix.checked_mul(1_000_000_000).ok_or_else(|| invalid("start_unix", "too large"))?;
        let capture_end = capture_start + duration;
        if capture_end / 1_000_000_000 > u64::from(u32::MAX) {
            return Err(invalid("start_unix", "capture must end before 2106 (pcap 32-bit seconds)"));
        }
        let offset = secs_to_ns("attack_start_secs", self.attack_start_secs)?;
        let attack_start = (capture_start + offset).min(capture_end);
        let attack_end = match self.attack_duration_secs {
            Some(d) => {
                let d = secs_to_ns("attack_duration_secs", d)?;
                if d == 0 {
                    return Err(invalid("attack_duration_secs", "must be positive"));
                }
                (attack_start + d).min(capture_end)
            }
            None => capture_end,
        };
        for (name, pps) in [("background_pps", self.background_pps), ("attack_pps", self.attack_pps)] {
            if pps > MAX_PPS {
                return Err(invalid(name, format!("{pps} exceeds {MAX_PPS}")));
            }
        }
        if self.flood_payload_min > self.flood_payload_max {
            return Err(invalid("flood_payload_min", "greater than flood_payload_max"));
        }
        if !(1..=65_536).contains(&self.reflectors) {
            return Err(invalid("reflectors", "must be within 1..=65536"));
        }
        let on = secs_to_ns("pulse_on_secs", self.pulse_on_secs)?;
        secs_to_ns("pulse_off_secs", self.pulse_off_secs)?;
        if on == 0 {
            return Err(invalid("pulse_on_secs", "must be positive"));
        }
        if let Some(snaplen) = self.snaplen
            && !(64..=crate::pcap::SNAPLEN).contains(&snaplen)
        {
            return Err(invalid("snaplen", format!("{snaplen} is not within 64..={}", crate::pcap::SNAPLEN)));
        }
        if let Some(p) = self.ipv6_background_percent
            && p > 100
        {
            return Err(invalid("ipv6_background_percent", "must be within 0..=100"));
        }
        if let Some(t) = self.target {
            match scenario {
                // mixed uses the IPv4 target as the base of its IPv4 phases.
                s if s.is_ipv6() && t.is_ipv4() => {
                    return Err(invalid("target", format!("{s} needs an IPv6 target")));
                }
                s if !s.is_ipv6() && t.is_ipv6() => {
                    return Err(invalid("target", format!("{s} needs an IPv4 target")));
                }
                // The truth says "outbound": the sender must be protected.
                s if s.is_outbound() && !matches!(t, IpAddr::V4(a) if wire::is_protected_v4(a.into())) => {
                    return Err(invalid(
                        "target",
                        format!("{s} sends from a host in 198.51.100.0/24, not {t}"),
                    ));
                }
                _ => {}
            }
        }
        if let Some(len) = self.carpet_prefix_len {
            let ok = if scenario.is_ipv6() { (112..=126).contains(&len) } else { (16..=30).contains(&len) };
            if !ok {
                return Err(invalid("carpet_prefix_len", "must be 16..=30 (IPv4) or 112..=126 (IPv6)"));
            }
        }
        Ok(Window { capture_start, capture_end, attack_start, attack_end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_for_every_scenario() {
        for &s in Scenario::ALL {
            let w = GenParams::for_scenario(s).validate(s).unwrap();
            assert!(w.capture_start < w.attack_start && w.attack_start < w.attack_end);
            assert!(w.attack_end <= w.capture_end);
        }
    }

    #[test]
    fn rejects_bad_values() {
        let s = Scenario::SynFlood;
        let bad = [
            GenParams { duration_secs: f64::NAN, ..Default::default() },
            GenParams { duration_secs: 0.0, ..Default::default() },
            GenParams { duration_secs: -1.0, ..Default::default() },
            GenParams { duration_secs: 1e12, ..Default::default() },
            GenParams { start_unix: u64::MAX, ..Default::default() },
            GenParams { start_unix: 5_000_000_000, ..Default::default() },
            GenParams { attack_pps: MAX_PPS + 1, ..Default::default() },
            GenParams { flood_payload_min: 10, flood_payload_max: 9, ..Default::default() },
            GenParams { reflectors: 0, ..Default::default() },
            GenParams { pulse_on_secs: 0.0, ..Default::default() },
            GenParams { attack_duration_secs: Some(0.0), ..Default::default() },
            GenParams { target: Some(DEFAULT_TARGET_V6.into()), ..Default::default() },
            GenParams { carpet_prefix_len: Some(8), ..Default::default() },
            GenParams { ipv6_background_percent: Some(101), ..Default::default() },
        ];
        for p in bad {
            assert!(p.validate(s).is_err(), "{p:?}");
        }
        let v6 = GenParams { target: Some(DEFAULT_TARGET_V4.into()), ..Default::default() };
        assert!(matches!(
            v6.validate(Scenario::SynFloodV6),
            Err(GenError::InvalidParam { name: "target", .. })
        ));
        // Outbound attacks leave from a protected host.
        for s in [Scenario::OutboundSynFlood, Scenario::DnsReflectorAbuse] {
            let outside = GenParams { target: Some(OUTBOUND_SYN_VICTIM.into()), ..Default::default() };
            assert!(outside.validate(s).is_err(), "{s}");
            let inside = GenParams { target: Some(DEFAULT_TARGET_V4.into()), ..Default::default() };
            assert!(inside.validate(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn params_round_trip_through_json() {
        let p =
            GenParams { target: Some(DEFAULT_TARGET_V6.into()), max_packets: Some(9), ..Default::default() };
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<GenParams>(&s).unwrap(), p);
        // Partial objects take defaults for the rest.
        let q: GenParams = serde_json::from_str(r#"{"seed": 42}"#).unwrap();
        assert_eq!(q.seed, 42);
        assert_eq!(q.duration_secs, 5.0);
    }
}
