//! From decoded template fields to a [`TrafficRecord`]: times, addresses, counters, sampling.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::template::{Field, FlowFields};
use super::totals::Totals;
use crate::record::{Exporter, Fragment, IcmpTypeCode, RecordSource, TrafficRecord, UnixNanos};

const NANOS_PER_MILLI: i64 = 1_000_000;
/// sysUpTime is an unsigned 32-bit millisecond counter: it wraps every 49.7 days.
const UPTIME_WRAP_NS: i64 = (1i64 << 32) * NANOS_PER_MILLI;
/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Per-datagram context for turning records into [`TrafficRecord`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatagramContext {
    pub exporter: Exporter,
    pub source: RecordSource,
    /// Export time of the datagram, Unix nanoseconds (best estimate).
    pub export_ns: i64,
    /// When sysUpTime was 0, Unix nanoseconds, if known (v5/v9 header; IPFIX
    /// systemInitTimeMilliseconds).
    pub boot_ns: Option<i64>,
    /// Operator-configured rate: wins over everything the exporter says.
    pub configured_rate: Option<u32>,
    /// Rate from the exporter's options records, used when a record says nothing itself.
    pub default_rate: Option<u32>,
    /// Index of the exporter (keys the total-counter table).
    pub exporter_slot: u32,
}

/// Places a sysUpTime value (milliseconds since `boot`) on the Unix time line, taking the
/// representative (modulo 2^32 ms) nearest the export time: right across uptime wraparounds.
pub(crate) fn uptime_to_ns(boot_ns: i64, export_ns: i64, uptime_ms: u64) -> i64 {
    let offset = i64::try_from(uptime_ms).unwrap_or(i64::MAX).saturating_mul(NANOS_PER_MILLI);
    let base = boot_ns.saturating_add(offset);
    let diff = export_ns.saturating_sub(base);
    if diff.unsigned_abs() < (UPTIME_WRAP_NS / 2) as u64 {
        return base; // the common case: no wrap between the flow and the export
    }
    let wraps = diff.saturating_add(UPTIME_WRAP_NS / 2).div_euclid(UPTIME_WRAP_NS);
    base.saturating_add(wraps.saturating_mul(UPTIME_WRAP_NS))
}

/// NTP 64-bit timestamp (RFC 7011 6.1.9/6.1.10) to Unix nanoseconds. Seconds before 1968 are
/// read as NTP era 1 (after February 2036).
pub(crate) fn ntp_to_ns(ntp: u64) -> i64 {
    let secs = ntp >> 32;
    let frac = ntp & 0xFFFF_FFFF;
    let unix_secs =
        if secs >= NTP_UNIX_OFFSET { secs - NTP_UNIX_OFFSET } else { secs + (1 << 32) - NTP_UNIX_OFFSET };
    let nanos = (frac * 1_000_000_000) >> 32;
    i64::try_from(unix_secs.saturating_mul(1_000_000_000).saturating_add(nanos)).unwrap_or(i64::MAX)
}

fn secs_to_ns(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX)
}

fn millis_to_ns(millis: u64) -> i64 {
    i64::try_from(millis.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

fn to_unix(ns: i64) -> UnixNanos {
    UnixNanos(u64::try_from(ns).unwrap_or(0))
}

/// Protocols whose first four transport bytes are the ports.
pub(crate) fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

pub(crate) fn is_icmp(protocol: u8) -> bool {
    matches!(protocol, 1 | 58)
}

/// The fields that can state one end of a flow, most precise first.
#[derive(Debug, Clone, Copy)]
struct TimeFields {
    nanos: Field,
    micros: Field,
    millis: Field,
    secs: Field,
    uptime: Field,
    delta: Field,
}

const START: TimeFields = TimeFields {
    nanos: Field::StartNanosNtp,
    micros: Field::StartMicrosNtp,
    millis: Field::StartMillis,
    secs: Field::StartSecs,
    uptime: Field::StartUptime,
    delta: Field::StartDeltaMicros,
};

const END: TimeFields = TimeFields {
    nanos: Field::EndNanosNtp,
    micros: Field::EndMicrosNtp,
    millis: Field::EndMillis,
    secs: Field::EndSecs,
    uptime: Field::EndUptime,
    delta: Field::EndDeltaMicros,
};

impl FlowFields {
    /// One end of the flow, from the most precise encoding present.
    fn time(&self, ctx: &DatagramContext, which: &TimeFields) -> Option<i64> {
        let TimeFields { nanos, micros, millis, secs, uptime, delta } = *which;
        if let Some(v) = self.get(nanos) {
            return Some(ntp_to_ns(v));
        }
        if let Some(v) = self.get(micros) {
            return Some(ntp_to_ns(v));
        }
        if let Some(v) = self.get(millis) {
            return Some(millis_to_ns(v));
        }
        if let Some(v) = self.get(secs) {
            return Some(secs_to_ns(v));
        }
        if let Some(v) = self.get(uptime) {
            // A systemInitTimeMilliseconds in the record itself beats the options' one.
            let boot = self.get(Field::SystemInitMillis).map(millis_to_ns).or(ctx.boot_ns);
            if let Some(boot) = boot {
                return Some(uptime_to_ns(boot, ctx.export_ns, v));
            }
        }
        if let Some(v) = self.get(delta) {
            let ns = i64::try_from(v.saturating_mul(1_000)).unwrap_or(i64::MAX);
            return Some(ctx.export_ns.saturating_sub(ns));
        }
        None
    }

    /// The flow's start and end as the record states them.
    fn stated_period(&self, ctx: &DatagramContext) -> (Option<i64>, Option<i64>) {
        (self.time(ctx, &START), self.time(ctx, &END))
    }

    /// The flow's active period; the export time when the record has none, `end` clamped to be
    /// no earlier than `start`.
    pub(crate) fn period(&self, ctx: &DatagramContext) -> (i64, i64) {
        let (start, end) = match self.stated_period(ctx) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s),
            (None, Some(e)) => (e, e),
            (None, None) => (ctx.export_ns, ctx.export_ns),
        };
        (start, end.max(start))
    }

    fn addresses(&self) -> Option<(IpAddr, IpAddr)> {
        let v4 = self.has(Field::SrcV4) || self.has(Field::DstV4);
        let v6 = self.has(Field::SrcV6) || self.has(Field::DstV6);
        let src4 = self.get(Field::SrcV4).unwrap_or(0) as u32;
        let dst4 = self.get(Field::DstV4).unwrap_or(0) as u32;
        // Templates carrying both families fill the unused one with zeros.
        if v6 && (!v4 || (src4 == 0 && dst4 == 0)) {
            let src = if self.has(Field::SrcV6) { self.src6 } else { [0; 16] };
            let dst = if self.has(Field::DstV6) { self.dst6 } else { [0; 16] };
            return Some((IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst))));
        }
        if v4 {
            return Some((IpAddr::V4(Ipv4Addr::from(src4)), IpAddr::V4(Ipv4Addr::from(dst4))));
        }
        None
    }

    /// Builds the traffic record, or `None` for records that describe no IP traffic (no
    /// addresses, or no packet or byte counter).
    pub(crate) fn to_record(
        &self,
        ctx: &DatagramContext,
        sampler_rate: impl Fn(u64) -> Option<u32>,
        totals: &mut Totals,
    ) -> Option<TrafficRecord> {
        let (src, dst) = self.addresses()?;
        let protocol = self.get(Field::Protocol).unwrap_or(0) as u8;
        let (mut start, end) = self.period(ctx);

        let fragment = match (self.get(Field::FragmentOffset), self.get(Field::FragmentFlags)) {
            (Some(offset), _) if offset & 0x1FFF != 0 => Fragment::NonInitial,
            // fragmentFlags bit 2 (0x20): more fragments.
            (_, Some(flags)) if flags & 0x20 != 0 => Fragment::Initial,
            _ => Fragment::None,
        };

        let src_port = self.get(Field::SrcPort).map(|p| p as u16);
        let dst_port = self.get(Field::DstPort).map(|p| p as u16);
        let mut icmp = None;
        let (src_port, dst_port) = if fragment == Fragment::NonInitial {
            (None, None)
        } else if is_icmp(protocol) {
            let code = if let Some(tc) = self.get(Field::IcmpTypeCode) {
                Some(tc as u16)
            } else if let Some(kind) = self.get(Field::IcmpType) {
                Some(((kind as u16) << 8) | (self.get(Field::IcmpCode).unwrap_or(0) as u16 & 0xFF))
            } else {
                // Cisco convention: type * 256 + code in the destination port.
                dst_port
            };
            icmp = code.map(|tc| IcmpTypeCode { kind: (tc >> 8) as u8, code: tc as u8 });
            (None, None)
        } else if has_ports(protocol) || !self.has(Field::Protocol) {
            (src_port, dst_port)
        } else {
            (None, None)
        };

        let delta_packets = self.get(Field::Packets).or_else(|| self.get(Field::PostPackets));
        let delta_bytes = self.get(Field::Octets).or_else(|| self.get(Field::PostOctets));
        let (packets, bytes) = if delta_packets.is_some() || delta_bytes.is_some() {
            (delta_packets.unwrap_or(0), delta_bytes.unwrap_or(0))
        } else {
            let total_packets = self.get(Field::TotalPackets);
            let total_bytes = self.get(Field::TotalOctets);
            if total_packets.is_none() && total_bytes.is_none() {
                return None;
            }
            let input_if = self.get(Field::InputIf).unwrap_or(0) as u32;
            let key = (ctx.exporter_slot, src, dst, protocol, src_port, dst_port, input_if);
            let delta = totals.delta(key, total_packets.unwrap_or(0), total_bytes.unwrap_or(0), end);
            if let Some(previous_end) = delta.previous_end {
                // The delta covers the time since the previous report.
                start = self.stated_period(ctx).0.map_or(previous_end, |s| s.max(previous_end)).min(end);
            }
            (delta.packets, delta.bytes)
        };

        let sampling_rate = ctx
            .configured_rate
            .or_else(|| self.stated_rate())
            .or_else(|| self.get(Field::SamplerId).and_then(&sampler_rate))
            .or(ctx.default_rate)
            .unwrap_or(1)
            .max(1);

        let ttl =
            self.get(Field::MinTtl).or_else(|| self.get(Field::Ttl)).or_else(|| self.get(Field::MaxTtl));

        Some(TrafficRecord {
            start: to_unix(start),
            end: to_unix(end),
            src,
            dst,
            protocol,
            src_port,
            dst_port,
            tcp_flags: if protocol == 6 { self.get(Field::TcpFlags).unwrap_or(0) as u8 } else { 0 },
            icmp,
            fragment,
            packets,
            bytes,
            sampling_rate,
            ttl: ttl.map(|t| t as u8),
            packet_len: None,
            exporter: ctx.exporter,
            input_if: self.get(Field::InputIf).map(|i| i as u32),
            output_if: self.get(Field::OutputIf).map(|i| i as u32),
            source: ctx.source,
        })
    }
}

impl FlowFields {
    /// The reverse direction of an RFC 5103 biflow (`forward` is this record's forward
    /// direction), when the record carries reverse counters that are not zero.
    #[inline]
    pub(crate) fn reverse(&self, forward: &TrafficRecord) -> Option<TrafficRecord> {
        let packets = self.get(Field::ReversePackets);
        let bytes = self.get(Field::ReverseOctets);
        if packets.unwrap_or(0) == 0 && bytes.unwrap_or(0) == 0 {
            return None;
        }
        let protocol = forward.protocol;
        let icmp = if is_icmp(protocol) {
            self.get(Field::ReverseIcmpTypeCode)
                .map(|tc| IcmpTypeCode { kind: (tc >> 8) as u8, code: tc as u8 })
        } else {
            None
        };
        Some(TrafficRecord {
            src: forward.dst,
            dst: forward.src,
            src_port: forward.dst_port,
            dst_port: forward.src_port,
            tcp_flags: if protocol == 6 { self.get(Field::ReverseTcpFlags).unwrap_or(0) as u8 } else { 0 },
            icmp,
            packets: packets.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
            ttl: None,
            input_if: forward.output_if,
            output_if: forward.input_if,
            ..*forward
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn uptime_is_placed_relative_to_boot_across_wraps() {
        let boot = 1_700_000_000 * SEC;
        let export = boot + 10 * SEC;
        assert_eq!(uptime_to_ns(boot, export, 4_000), boot + 4 * SEC);
        // Exporter up for 60 days: uptime wrapped once; export at uptime 1000 ms (mod 2^32).
        let boot = 1_700_000_000 * SEC;
        let export = boot + UPTIME_WRAP_NS + SEC;
        // A flow that started 2 s before export, i.e. before the wrap.
        let first = (1u64 << 32) - 1_000;
        assert_eq!(uptime_to_ns(boot, export, first), export - 2 * SEC);
        // Hostile values saturate instead of overflowing.
        let _ = uptime_to_ns(i64::MAX, i64::MIN, u64::MAX);
        let _ = uptime_to_ns(i64::MIN, i64::MAX, u64::MAX);
    }

    #[test]
    fn ntp_timestamps() {
        // 2023-11-14T22:13:20.5Z
        let ntp = ((1_700_000_000u64 + NTP_UNIX_OFFSET) << 32) | 0x8000_0000;
        assert_eq!(ntp_to_ns(ntp), 1_700_000_000 * SEC + SEC / 2);
        // Era 1: NTP seconds 10 = 2036-02-07T06:28:26Z.
        assert_eq!(ntp_to_ns(10 << 32), ((1u64 << 32) + 10 - NTP_UNIX_OFFSET) as i64 * SEC);
        // The last instant of era 0: 2036-02-07T06:28:15.999999999Z.
        assert_eq!(ntp_to_ns(u64::MAX), ((1i64 << 32) - 1 - NTP_UNIX_OFFSET as i64) * SEC + 999_999_999);
    }
}
