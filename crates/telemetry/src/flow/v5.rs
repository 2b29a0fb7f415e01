//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte IPv4 flow records.

use std::net::{IpAddr, Ipv4Addr};

use super::record::{DatagramContext, has_ports, is_icmp, uptime_to_ns};
use super::seq::{SeqObservation, V5_MODES};
use super::{DecodeOutcome, ExporterState, FlowError, VersionContext, read_u16, read_u32};
use crate::record::{Fragment, IcmpTypeCode, RecordSource, TrafficRecord, UnixNanos};

pub(crate) const HEADER_LEN: usize = 24;
pub(crate) const RECORD_LEN: usize = 48;

pub(crate) fn decode(
    state: &mut ExporterState,
    version: &VersionContext,
    datagram: &[u8],
    out: &mut Vec<TrafficRecord>,
    outcome: &mut DecodeOutcome,
) {
    let field = |at| read_u32(datagram, at).unwrap_or(0);
    let count = usize::from(read_u16(datagram, 2).unwrap_or(0));
    let uptime_ms = field(4);
    let export_ns = i64::from(field(8)) * 1_000_000_000 + i64::from(field(12).min(999_999_999));
    let sequence = field(16);
    // Top two bits: sampling mode; low 14: the interval. Exporters disagree on the mode bits,
    // so any non-zero interval counts.
    let interval = u32::from(read_u16(datagram, 22).unwrap_or(0) & 0x3FFF);
    let context = DatagramContext {
        exporter: version.exporter,
        source: RecordSource::NetflowV5,
        export_ns,
        boot_ns: Some(export_ns - i64::from(uptime_ms) * 1_000_000),
        configured_rate: version.configured_rate,
        default_rate: (interval > 0).then_some(interval),
        exporter_slot: version.exporter_slot,
    };
    let body = datagram.get(HEADER_LEN..).unwrap_or(&[]);
    let available = body.len() / RECORD_LEN;
    if count > available {
        // Salvage the records that are there.
        outcome.error(FlowError::LengthMismatch { announced: count, available });
    }
    out.reserve(count.min(available));
    for rec in body.chunks_exact(RECORD_LEN).take(count) {
        out.push(record(rec, &context));
    }
    if state.tracked {
        let observation =
            SeqObservation { seq: sequence, all: count as u32, flows: count as u32, counts_known: true };
        state.stats.sequence_gaps += state.v5_seq.observe(observation, V5_MODES);
    }
}

fn record(rec: &[u8], context: &DatagramContext) -> TrafficRecord {
    let word = |at| read_u32(rec, at).unwrap_or(0);
    let half = |at| read_u16(rec, at).unwrap_or(0);
    let byte = |at: usize| rec.get(at).copied().unwrap_or(0);
    let protocol = byte(38);
    let boot = context.boot_ns.unwrap_or(context.export_ns);
    let start = uptime_to_ns(boot, context.export_ns, u64::from(word(24)));
    let end = uptime_to_ns(boot, context.export_ns, u64::from(word(28))).max(start);
    let (src_port, dst_port, icmp) = if has_ports(protocol) {
        (Some(half(32)), Some(half(34)), None)
    } else if is_icmp(protocol) {
        // type * 256 + code in the destination port.
        let tc = half(34);
        (None, None, Some(IcmpTypeCode { kind: (tc >> 8) as u8, code: tc as u8 }))
    } else {
        (None, None, None)
    };
    TrafficRecord {
        start: UnixNanos(u64::try_from(start).unwrap_or(0)),
        end: UnixNanos(u64::try_from(end).unwrap_or(0)),
        src: IpAddr::V4(Ipv4Addr::from(word(0))),
        dst: IpAddr::V4(Ipv4Addr::from(word(4))),
        protocol,
        src_port,
        dst_port,
        tcp_flags: if protocol == 6 { byte(37) } else { 0 },
        icmp,
        fragment: Fragment::None,
        packets: u64::from(word(16)),
        // dOctets: layer-3 bytes already.
        bytes: u64::from(word(20)),
        sampling_rate: context.configured_rate.or(context.default_rate).unwrap_or(1).max(1),
        ttl: None,
        packet_len: None,
        exporter: context.exporter,
        input_if: Some(u32::from(half(12))),
        output_if: Some(u32::from(half(14))),
        source: RecordSource::NetflowV5,
    }
}
