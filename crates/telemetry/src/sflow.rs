//! sFlow version 5 decoder (sflow.org "sFlow Version 5", July 2004): UDP datagrams from sFlow
//! agents to [`TrafficRecord`]s, one per packet sample, plus per-agent statistics and the latest
//! generic interface counters.
//!
//! Sans-IO: the caller hands in each datagram with its UDP source and arrival time. sFlow carries
//! no per-sample timestamp, so every record gets the arrival time as `start` and `end`.
//!
//! Hostile input is expected: every count and length from the wire is checked against the bytes
//! actually present, all per-agent state is bounded by [`SflowLimits`], and a corrupt sample
//! never discards the good samples decoded before it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::packet::{self, PacketError};
use crate::record::{Exporter, Fragment, LinkType, RecordSource, TrafficRecord, UnixNanos};
use crate::stats::ExporterStats;

/// Maps keyed by wire values; foldhash is fast and randomly seeded per process, and the limits
/// bound every map's size anyway.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The only datagram version this decoder accepts.
const SFLOW_VERSION: u32 = 5;

/// Sample and record formats (`data_format` = enterprise << 12 | format; enterprise 0 only).
const SAMPLE_FLOW: u32 = 1;
const SAMPLE_COUNTERS: u32 = 2;
const SAMPLE_FLOW_EXPANDED: u32 = 3;
const SAMPLE_COUNTERS_EXPANDED: u32 = 4;
const FLOW_RAW_HEADER: u32 = 1;
const FLOW_SAMPLED_IPV4: u32 = 3;
const FLOW_SAMPLED_IPV6: u32 = 4;
const COUNTERS_GENERIC_INTERFACE: u32 = 1;

/// Raw packet header protocols (`header_protocol`) that map onto a [`LinkType`].
const HEADER_ETHERNET: u32 = 1;
const HEADER_IPV4: u32 = 11;
const HEADER_IPV6: u32 = 12;

/// Fixed sizes of the structures decoded here, in bytes.
const SAMPLED_IPV4_LEN: usize = 32;
const SAMPLED_IPV6_LEN: usize = 56;
const GENERIC_INTERFACE_LEN: usize = 88;

/// Compact interface encoding: the top 2 bits are the format, the low 30 bits the value.
const COMPACT_FORMAT_SHIFT: u32 = 30;
const COMPACT_VALUE_MASK: u32 = 0x3FFF_FFFF;
/// The interface value meaning "the device itself" (compact and expanded encodings).
const COMPACT_INTERNAL: u32 = 0x3FFF_FFFF;
const EXPANDED_INTERNAL: u32 = u32::MAX;

/// Sequence numbers at most this far behind the last one are late (reordered) datagrams, not an
/// agent restart.
const REORDER_WINDOW: u32 = 256;
/// Uptime going back by more than this (ms) means the agent restarted, not a reordering.
const RESTART_UPTIME_SLACK_MS: u32 = 10_000;

/// Bounds on the state kept and the work done per datagram. Every limit protects against a
/// hostile or broken agent; the defaults fit large networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SflowLimits {
    /// (agent address, sub-agent id) pairs tracked with their own statistics and sequence state.
    /// Datagrams from further agents are still decoded, but counted in
    /// [`SflowDecoder::unattributed`].
    pub max_agents: usize,
    /// Samples decoded per datagram; further ones are skipped and counted as an error.
    pub max_samples_per_datagram: u32,
    /// Flow or counter records examined per sample; further ones are skipped and counted as an
    /// error.
    pub max_records_per_sample: u32,
    /// Data sources (sampler `drops` baselines) tracked per agent.
    pub max_sources_per_agent: usize,
    /// Interface counter sets kept, over all agents.
    pub max_interface_counters: usize,
    /// A forward jump of the datagram sequence number larger than this is a resynchronisation
    /// (counted as no loss) rather than that many lost datagrams.
    pub max_sequence_gap: u32,
}

impl Default for SflowLimits {
    fn default() -> Self {
        Self {
            max_agents: 4096,
            max_samples_per_datagram: 1024,
            max_records_per_sample: 64,
            max_sources_per_agent: 4096,
            max_interface_counters: 65_536,
            max_sequence_gap: 1_000_000,
        }
    }
}

/// Why part of a datagram could not be decoded. Decoding goes on with whatever can be salvaged;
/// each occurrence adds one to the exporter's `decode_errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SflowError {
    /// The datagram ends inside its fixed header.
    #[error("datagram shorter than the sFlow header")]
    TruncatedHeader,
    /// The datagram is not sFlow version 5.
    #[error("unsupported sFlow version {0}")]
    UnsupportedVersion(u32),
    /// The agent address type is neither unknown (0), IPv4 (1) nor IPv6 (2).
    #[error("unknown agent address type {0}")]
    UnknownAddressType(u32),
    /// The datagram ends before the number of samples its header claims.
    #[error("datagram ends after {found} of {claimed} samples")]
    MissingSamples {
        /// Samples the header claimed.
        claimed: u32,
        /// Samples actually framed before the end of the datagram.
        found: u32,
    },
    /// The header claims more samples than [`SflowLimits::max_samples_per_datagram`].
    #[error("{0} samples claimed, more than the limit")]
    TooManySamples(u32),
    /// Bytes remain after the last sample (or record) the header announced.
    #[error("{0} trailing bytes after the last sample or record")]
    TrailingBytes(usize),
    /// A sample or record header (format + length) is cut off by the end of its container.
    #[error("sample or record header truncated")]
    TruncatedFraming,
    /// A sample or record length runs past the end of its container.
    #[error("length {0} runs past the end of its container")]
    LengthOverrun(u32),
    /// A sample or record length is not a multiple of 4 (XDR), so the framing is corrupt.
    #[error("length {0} is not a multiple of 4")]
    MisalignedLength(u32),
    /// A sample is shorter than its fixed fields.
    #[error("sample shorter than its fixed fields")]
    TruncatedSample,
    /// A flow or counter record is shorter than its fixed fields.
    #[error("record shorter than its fixed fields")]
    TruncatedRecord,
    /// A sample claims more records than [`SflowLimits::max_records_per_sample`].
    #[error("{0} records claimed in one sample, more than the limit")]
    TooManyRecords(u32),
    /// The sample ends before the number of records it claims.
    #[error("sample ends after {found} of {claimed} records")]
    MissingRecords {
        /// Records the sample claimed.
        claimed: u32,
        /// Records actually framed before the end of the sample.
        found: u32,
    },
    /// A raw packet header record uses a header protocol this decoder does not parse.
    #[error("unsupported raw header protocol {0}")]
    UnsupportedHeaderProtocol(u32),
    /// A raw packet header's bytes run past the end of its record.
    #[error("raw header length {0} runs past the end of its record")]
    HeaderOverrun(u32),
    /// A sampled IPv4/IPv6 record carries an IP protocol number above 255.
    #[error("sampled IP protocol {0} out of range")]
    BadIpProtocol(u32),
    /// The packet decoder rejected a raw packet header.
    #[error("raw packet header: {0}")]
    Packet(#[from] PacketError),
}

/// What one call to [`SflowDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramSummary {
    /// Samples framed (of any type, including skipped ones).
    pub samples: u32,
    /// Records appended to the output.
    pub records: u32,
    /// Errors counted (each one is also in the exporter's `decode_errors`).
    pub errors: u32,
    /// The first error met, if any.
    pub first_error: Option<SflowError>,
}

impl DatagramSummary {
    fn error(&mut self, error: SflowError) {
        self.errors = self.errors.saturating_add(1);
        self.first_error.get_or_insert(error);
    }
}

/// Items refused because a [`SflowLimits`] bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CapacityRejections {
    /// Datagrams from agents beyond `max_agents` (decoded, but not tracked).
    pub agent_datagrams: u64,
    /// Flow samples whose data source was not tracked (its `drops` are not accumulated).
    pub source_samples: u64,
    /// Generic interface counter records not kept because `max_interface_counters` was reached
    /// or their agent is not tracked.
    pub interface_counters: u64,
}

/// The latest generic interface counters (sFlow counter record format 1, RFC 2233 ifTable /
/// ifXTable) an agent reported for one ifIndex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InterfaceCounters {
    pub if_index: u32,
    pub if_type: u32,
    /// Bits per second.
    pub if_speed: u64,
    /// 0 unknown, 1 full duplex, 2 half duplex, 3 in, 4 out.
    pub if_direction: u32,
    /// Bit 0 admin up, bit 1 operationally up.
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast_pkts: u32,
    pub in_multicast_pkts: u32,
    pub in_broadcast_pkts: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast_pkts: u32,
    pub out_multicast_pkts: u32,
    pub out_broadcast_pkts: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous_mode: u32,
    /// Sequence number of the counter sample that carried these counters.
    pub sample_sequence: u32,
    /// Agent uptime (ms) in the datagram that carried them.
    pub agent_uptime_ms: u32,
    /// When that datagram arrived.
    pub received: UnixNanos,
}

/// Datagram sequence state of one (agent, sub-agent).
#[derive(Debug, Clone, Copy)]
struct SequenceState {
    last_sequence: u32,
    last_uptime_ms: u32,
}

/// Sampler state of one data source, to turn its cumulative `drops` into deltas.
#[derive(Debug, Clone, Copy)]
struct SourceState {
    last_sequence: u32,
    last_drops: u32,
}

#[derive(Debug, Default)]
struct AgentTracking {
    sequence: Option<SequenceState>,
    sources: Map<u64, SourceState>,
    interfaces: Map<u32, InterfaceCounters>,
}

#[derive(Debug, Default)]
struct AgentState {
    stats: ExporterStats,
    tracking: AgentTracking,
}

/// sFlow v5 decoder with per-agent state (datagram sequence numbers, sampler drop counters,
/// interface counters, statistics), bounded by [`SflowLimits`].
#[derive(Debug)]
pub struct SflowDecoder {
    limits: SflowLimits,
    agents: Map<Exporter, AgentState>,
    unattributed: ExporterStats,
    rejections: CapacityRejections,
    interface_total: usize,
}

impl Default for SflowDecoder {
    fn default() -> Self {
        Self::new(SflowLimits::default())
    }
}

impl SflowDecoder {
    pub fn new(limits: SflowLimits) -> Self {
        Self {
            limits,
            agents: Map::default(),
            unattributed: ExporterStats::default(),
            rejections: CapacityRejections::default(),
            interface_total: 0,
        }
    }

    pub fn limits(&self) -> &SflowLimits {
        &self.limits
    }

    /// Decodes one UDP datagram received from `from` at `received`, appending one record per
    /// decodable packet sample to `out`.
    ///
    /// Records and statistics are attributed to the agent address inside the datagram, not to
    /// `from`, which is used only when the agent address type is "unknown" (0).
    pub fn decode(
        &mut self,
        from: IpAddr,
        datagram: &[u8],
        received: UnixNanos,
        out: &mut Vec<TrafficRecord>,
    ) -> DatagramSummary {
        let mut summary = DatagramSummary::default();
        let (header, samples) = match DatagramHeader::parse(datagram, from) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.unattributed.datagrams += 1;
                self.unattributed.decode_errors += 1;
                summary.error(error);
                return summary;
            }
        };
        let exporter = Exporter { addr: Some(header.agent), sub_id: header.sub_agent_id };

        let Self { limits, agents, unattributed, rejections, interface_total } = self;
        let tracked_agents = agents.len();
        let agent = match agents.entry(exporter) {
            Entry::Occupied(entry) => Some(entry.into_mut()),
            Entry::Vacant(entry) if tracked_agents < limits.max_agents => {
                Some(entry.insert(AgentState::default()))
            }
            Entry::Vacant(_) => {
                rejections.agent_datagrams += 1;
                None
            }
        };
        let (stats, tracking) = match agent {
            Some(agent) => (&mut agent.stats, Some(&mut agent.tracking)),
            None => (unattributed, None),
        };
        stats.datagrams += 1;

        let mut ctx = DatagramContext {
            limits,
            stats,
            tracking,
            rejections,
            interface_total,
            exporter,
            received,
            uptime_ms: header.uptime_ms,
            out,
            summary: &mut summary,
        };
        ctx.observe_sequence(header.sequence);
        ctx.decode_samples(header.sample_count, samples);
        summary
    }

    /// Statistics per tracked (agent, sub-agent).
    pub fn stats(&self) -> impl Iterator<Item = (&Exporter, &ExporterStats)> {
        self.agents.iter().map(|(exporter, agent)| (exporter, &agent.stats))
    }

    /// Statistics of the datagrams not attributed to a tracked agent: those whose header could
    /// not be decoded, and those from agents beyond [`SflowLimits::max_agents`].
    pub fn unattributed_stats(&self) -> &ExporterStats {
        &self.unattributed
    }

    /// How many items were refused because a limit was reached.
    pub fn rejections(&self) -> &CapacityRejections {
        &self.rejections
    }

    /// The latest generic interface counters per (agent, ifIndex).
    pub fn interface_counters(&self) -> impl Iterator<Item = (&Exporter, &InterfaceCounters)> {
        self.agents.iter().flat_map(|(exporter, agent)| {
            agent.tracking.interfaces.values().map(move |counters| (exporter, counters))
        })
    }

    /// Forgets an agent (statistics, sequence state, interface counters), freeing its slot.
    pub fn forget(&mut self, exporter: &Exporter) -> Option<ExporterStats> {
        let agent = self.agents.remove(exporter)?;
        self.interface_total = self.interface_total.saturating_sub(agent.tracking.interfaces.len());
        Some(agent.stats)
    }
}

/// Big-endian XDR reader over a byte slice; every read is checked.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_first_chunk::<N>()?;
        self.buf = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(head)
    }

    /// One XDR `data_format` + `opaque<>` element (sample or record): its format and body.
    fn framed(&mut self) -> Result<(u32, &'a [u8]), SflowError> {
        let (Some(format), Some(len)) = (self.u32(), self.u32()) else {
            return Err(SflowError::TruncatedFraming);
        };
        if len % 4 != 0 {
            return Err(SflowError::MisalignedLength(len));
        }
        let body = usize::try_from(len).ok().and_then(|len| self.take(len));
        body.map(|body| (format, body)).ok_or(SflowError::LengthOverrun(len))
    }
}

#[derive(Debug, Clone, Copy)]
struct DatagramHeader {
    agent: IpAddr,
    sub_agent_id: u32,
    sequence: u32,
    uptime_ms: u32,
    sample_count: u32,
}

impl DatagramHeader {
    /// The fixed datagram header, and the bytes holding the samples.
    fn parse(datagram: &[u8], from: IpAddr) -> Result<(Self, &[u8]), SflowError> {
        let mut r = Reader::new(datagram);
        let version = r.u32().ok_or(SflowError::TruncatedHeader)?;
        if version != SFLOW_VERSION {
            return Err(SflowError::UnsupportedVersion(version));
        }
        let agent = match r.u32().ok_or(SflowError::TruncatedHeader)? {
            0 => from,
            1 => IpAddr::V4(Ipv4Addr::from(r.array::<4>().ok_or(SflowError::TruncatedHeader)?)),
            2 => IpAddr::V6(Ipv6Addr::from(r.array::<16>().ok_or(SflowError::TruncatedHeader)?)),
            other => return Err(SflowError::UnknownAddressType(other)),
        };
        let (Some(sub_agent_id), Some(sequence), Some(uptime_ms), Some(sample_count)) =
            (r.u32(), r.u32(), r.u32(), r.u32())
        else {
            return Err(SflowError::TruncatedHeader);
        };
        Ok((Self { agent, sub_agent_id, sequence, uptime_ms, sample_count }, r.buf))
    }
}

/// Sampler fields shared by compact and expanded flow samples.
#[derive(Debug, Clone, Copy)]
struct FlowSampleHeader {
    sequence: u32,
    /// Source id type << 32 | source id index.
    source: u64,
    sampling_rate: u32,
    drops: u32,
    input_if: Option<u32>,
    output_if: Option<u32>,
}

impl FlowSampleHeader {
    fn parse(r: &mut Reader<'_>, expanded: bool) -> Option<Self> {
        let sequence = r.u32()?;
        let source = if expanded {
            let (kind, index) = (r.u32()?, r.u32()?);
            u64::from(kind) << 32 | u64::from(index)
        } else {
            let id = r.u32()?;
            u64::from(id >> 24) << 32 | u64::from(id & 0x00FF_FFFF)
        };
        let sampling_rate = r.u32()?;
        let _sample_pool = r.u32()?;
        let drops = r.u32()?;
        let (input_if, output_if) = if expanded {
            let input = interface_expanded(r.u32()?, r.u32()?);
            (input, interface_expanded(r.u32()?, r.u32()?))
        } else {
            let input = interface_compact(r.u32()?);
            (input, interface_compact(r.u32()?))
        };
        Some(Self { sequence, source, sampling_rate, drops, input_if, output_if })
    }
}

/// A single ifIndex from a compact interface field; `None` when unknown (0), the device itself,
/// a discard reason (format 1) or several interfaces (format 2).
fn interface_compact(raw: u32) -> Option<u32> {
    let value = raw & COMPACT_VALUE_MASK;
    (raw >> COMPACT_FORMAT_SHIFT == 0 && value != 0 && value != COMPACT_INTERNAL).then_some(value)
}

/// A single ifIndex from an expanded interface field (same rules as the compact one).
fn interface_expanded(format: u32, value: u32) -> Option<u32> {
    (format == 0 && value != 0 && value != EXPANDED_INTERNAL).then_some(value)
}

/// The records of one flow sample worth decoding; only one becomes a record.
#[derive(Debug, Default, Clone, Copy)]
struct FlowCandidates<'a> {
    raw_header: Option<&'a [u8]>,
    sampled_ip: Option<(u32, &'a [u8])>,
}

/// Everything one datagram's decoding needs, borrowed from the decoder.
struct DatagramContext<'a> {
    limits: &'a SflowLimits,
    stats: &'a mut ExporterStats,
    tracking: Option<&'a mut AgentTracking>,
    rejections: &'a mut CapacityRejections,
    interface_total: &'a mut usize,
    exporter: Exporter,
    received: UnixNanos,
    uptime_ms: u32,
    out: &'a mut Vec<TrafficRecord>,
    summary: &'a mut DatagramSummary,
}

impl DatagramContext<'_> {
    fn error(&mut self, error: SflowError) {
        self.stats.decode_errors += 1;
        self.summary.error(error);
    }

    fn emit(&mut self, record: TrafficRecord) {
        self.stats.records += 1;
        self.summary.records = self.summary.records.saturating_add(1);
        self.out.push(record);
    }

    /// Counts lost datagrams from the sequence number, tolerating reordering, duplicates,
    /// wrap-around and agent restarts.
    fn observe_sequence(&mut self, sequence: u32) {
        let Some(tracking) = self.tracking.as_deref_mut() else { return };
        let uptime_ms = self.uptime_ms;
        let current = SequenceState { last_sequence: sequence, last_uptime_ms: uptime_ms };
        let Some(last) = tracking.sequence else {
            tracking.sequence = Some(current);
            return;
        };
        let ahead = sequence.wrapping_sub(last.last_sequence);
        let uptime_went_back = last.last_uptime_ms.saturating_sub(uptime_ms) > RESTART_UPTIME_SLACK_MS;
        if uptime_went_back && !(1..=REORDER_WINDOW).contains(&ahead) {
            // A restart (a small forward step with the uptime going back is the uptime wrapping
            // around after 49.7 days, handled as normal progress below).
            tracking.restart();
            tracking.sequence = Some(current);
        } else if ahead == 0 {
            // Duplicate datagram: nothing lost.
        } else if ahead <= i32::MAX as u32 {
            let missing = ahead - 1;
            if missing <= self.limits.max_sequence_gap {
                self.stats.sequence_gaps += u64::from(missing);
            }
            tracking.sequence = Some(current);
        } else if last.last_sequence.wrapping_sub(sequence) > REORDER_WINDOW {
            // Far behind: the agent restarted (its uptime may not say so).
            tracking.restart();
            tracking.sequence = Some(current);
        }
        // Otherwise slightly behind: a late datagram, already counted as lost; keep the baseline.
    }

    fn decode_samples(&mut self, claimed: u32, samples: &[u8]) {
        let mut r = Reader::new(samples);
        let to_decode = claimed.min(self.limits.max_samples_per_datagram);
        for found in 0..to_decode {
            if r.remaining() == 0 {
                self.error(SflowError::MissingSamples { claimed, found });
                return;
            }
            let (format, body) = match r.framed() {
                Ok(framed) => framed,
                Err(error) => {
                    // The framing is lost: nothing after this point can be trusted.
                    self.error(error);
                    return;
                }
            };
            self.summary.samples = self.summary.samples.saturating_add(1);
            let result = match format {
                SAMPLE_FLOW => self.flow_sample(body, false),
                SAMPLE_FLOW_EXPANDED => self.flow_sample(body, true),
                SAMPLE_COUNTERS => self.counter_sample(body, false),
                SAMPLE_COUNTERS_EXPANDED => self.counter_sample(body, true),
                // Other formats and enterprises are skipped by their length.
                _ => Ok(()),
            };
            if let Err(error) = result {
                self.error(error);
            }
        }
        if claimed > to_decode {
            self.error(SflowError::TooManySamples(claimed));
        } else if r.remaining() != 0 {
            self.error(SflowError::TrailingBytes(r.remaining()));
        }
    }

    /// Frames the records of a sample, handing each (format, body) to `visit`. Framing errors
    /// stop the walk; what was visited before them stands.
    fn walk_records<'b>(
        &mut self,
        r: &mut Reader<'b>,
        mut visit: impl FnMut(&mut Self, u32, &'b [u8]),
    ) -> Result<(), SflowError> {
        let claimed = r.u32().ok_or(SflowError::TruncatedSample)?;
        let to_walk = claimed.min(self.limits.max_records_per_sample);
        for found in 0..to_walk {
            if r.remaining() == 0 {
                return Err(SflowError::MissingRecords { claimed, found });
            }
            let (format, body) = r.framed()?;
            visit(self, format, body);
        }
        if claimed > to_walk {
            Err(SflowError::TooManyRecords(claimed))
        } else if r.remaining() != 0 {
            Err(SflowError::TrailingBytes(r.remaining()))
        } else {
            Ok(())
        }
    }

    fn flow_sample(&mut self, body: &[u8], expanded: bool) -> Result<(), SflowError> {
        let mut r = Reader::new(body);
        let header = FlowSampleHeader::parse(&mut r, expanded).ok_or(SflowError::TruncatedSample)?;
        self.observe_drops(&header);

        let mut candidates = FlowCandidates::default();
        let walked = self.walk_records(&mut r, |_, format, body| match format {
            FLOW_RAW_HEADER => {
                candidates.raw_header.get_or_insert(body);
            }
            FLOW_SAMPLED_IPV4 | FLOW_SAMPLED_IPV6 => {
                candidates.sampled_ip.get_or_insert((format, body));
            }
            // Sampled ethernet, extended records, other enterprises: not needed.
            _ => {}
        });
        // Even when a later record was corrupt, the sample's earlier records still describe the
        // packet: salvage them.
        if let Some(record) = self.flow_record(&header, candidates) {
            self.emit(record);
        }
        walked
    }

    /// The one record a flow sample yields: from its raw header if that decodes, else from its
    /// sampled IPv4/IPv6 record.
    fn flow_record(
        &mut self,
        header: &FlowSampleHeader,
        candidates: FlowCandidates<'_>,
    ) -> Option<TrafficRecord> {
        let mut record = None;
        if let Some(body) = candidates.raw_header {
            match decode_raw_header(body) {
                Ok(Some(headers)) => {
                    record = Some(headers.into_record(self.received, self.exporter, RecordSource::Sflow));
                }
                Ok(None) => {}
                Err(error) => self.error(error),
            }
        }
        if record.is_none()
            && let Some((format, body)) = candidates.sampled_ip
        {
            match decode_sampled_ip(format, body, self.received, self.exporter) {
                Ok(ip_record) => record = Some(ip_record),
                Err(error) => self.error(error),
            }
        }
        record.map(|record| TrafficRecord {
            sampling_rate: header.sampling_rate.max(1),
            input_if: header.input_if,
            output_if: header.output_if,
            ..record
        })
    }

    /// Accumulates the sampler's cumulative `drops` counter of this data source as deltas.
    fn observe_drops(&mut self, header: &FlowSampleHeader) {
        let Some(tracking) = self.tracking.as_deref_mut() else { return };
        let tracked = tracking.sources.len();
        let state = match tracking.sources.entry(header.source) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) if tracked < self.limits.max_sources_per_agent => {
                // First sight: the counter's history is unknown, its value is only a baseline.
                entry.insert(SourceState { last_sequence: header.sequence, last_drops: header.drops })
            }
            Entry::Vacant(_) => {
                self.rejections.source_samples += 1;
                return;
            }
        };
        let ahead = header.sequence.wrapping_sub(state.last_sequence);
        if ahead > i32::MAX as u32 {
            // A late sample: its counter is older than the baseline.
            return;
        }
        // A counter going back was reset (sampler restarted): it counts from zero again.
        let delta = header.drops.checked_sub(state.last_drops).unwrap_or(header.drops);
        self.stats.drops = self.stats.drops.saturating_add(u64::from(delta));
        *state = SourceState { last_sequence: header.sequence, last_drops: header.drops };
    }

    fn counter_sample(&mut self, body: &[u8], expanded: bool) -> Result<(), SflowError> {
        let mut r = Reader::new(body);
        let sequence = r.u32().ok_or(SflowError::TruncatedSample)?;
        let skip = if expanded { 8 } else { 4 };
        r.take(skip).ok_or(SflowError::TruncatedSample)?;
        self.walk_records(&mut r, |ctx, format, body| {
            if format == COUNTERS_GENERIC_INTERFACE {
                match parse_generic_interface(body, sequence, ctx.uptime_ms, ctx.received) {
                    Some(counters) => ctx.store_interface_counters(counters),
                    None => ctx.error(SflowError::TruncatedRecord),
                }
            }
        })
    }

    fn store_interface_counters(&mut self, counters: InterfaceCounters) {
        let Some(tracking) = self.tracking.as_deref_mut() else {
            self.rejections.interface_counters += 1;
            return;
        };
        match tracking.interfaces.entry(counters.if_index) {
            Entry::Occupied(mut entry) => {
                entry.insert(counters);
            }
            Entry::Vacant(entry) if *self.interface_total < self.limits.max_interface_counters => {
                entry.insert(counters);
                *self.interface_total += 1;
            }
            Entry::Vacant(_) => self.rejections.interface_counters += 1,
        }
    }
}

impl AgentTracking {
    /// The agent restarted: the sequence numbers and `drops` counters of its known sources start
    /// over from zero.
    fn restart(&mut self) {
        for source in self.sources.values_mut() {
            *source = SourceState { last_sequence: 0, last_drops: 0 };
        }
    }
}

/// A raw packet header record through the shared packet decoder. `Ok(None)`: not an IP packet
/// (ARP, LLDP, ...), a valid sample with nothing to report.
fn decode_raw_header(body: &[u8]) -> Result<Option<packet::PacketHeaders>, SflowError> {
    let mut r = Reader::new(body);
    let (Some(protocol), Some(frame_length), Some(stripped), Some(header_length)) =
        (r.u32(), r.u32(), r.u32(), r.u32())
    else {
        return Err(SflowError::TruncatedRecord);
    };
    let link = match protocol {
        HEADER_ETHERNET => LinkType::Ethernet,
        HEADER_IPV4 => LinkType::Ipv4,
        HEADER_IPV6 => LinkType::Ipv6,
        other => return Err(SflowError::UnsupportedHeaderProtocol(other)),
    };
    // The header bytes are XDR-padded to 4; the record length already covers the padding.
    let frame = usize::try_from(header_length)
        .ok()
        .and_then(|len| r.take(len))
        .ok_or(SflowError::HeaderOverrun(header_length))?;
    // frame_length counts the bytes `stripped` off before the header was taken (FCS, outer
    // encapsulations); the header starts after them.
    let wire_len = frame_length.saturating_sub(stripped);
    match packet::decode(link, frame, wire_len) {
        Ok(headers) => Ok(Some(headers)),
        Err(PacketError::NotIp(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Protocols whose sampled IP records carry meaningful ports.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

/// A sampled IPv4 (format 3) or IPv6 (format 4) record: the packet's IP length, protocol,
/// addresses, ports and TCP flags, without a TTL or fragment information.
fn decode_sampled_ip(
    format: u32,
    body: &[u8],
    received: UnixNanos,
    exporter: Exporter,
) -> Result<TrafficRecord, SflowError> {
    let ipv6 = format == FLOW_SAMPLED_IPV6;
    let min_len = if ipv6 { SAMPLED_IPV6_LEN } else { SAMPLED_IPV4_LEN };
    if body.len() < min_len {
        return Err(SflowError::TruncatedRecord);
    }
    let mut r = Reader::new(body);
    let truncated = SflowError::TruncatedRecord;
    let length = r.u32().ok_or(truncated)?;
    let protocol_raw = r.u32().ok_or(truncated)?;
    let protocol = u8::try_from(protocol_raw).map_err(|_| SflowError::BadIpProtocol(protocol_raw))?;
    let (src, dst) = if ipv6 {
        let src = Ipv6Addr::from(r.array::<16>().ok_or(truncated)?);
        (IpAddr::V6(src), IpAddr::V6(Ipv6Addr::from(r.array::<16>().ok_or(truncated)?)))
    } else {
        let src = Ipv4Addr::from(r.array::<4>().ok_or(truncated)?);
        (IpAddr::V4(src), IpAddr::V4(Ipv4Addr::from(r.array::<4>().ok_or(truncated)?)))
    };
    let (src_port, dst_port, tcp_flags) = (r.u32().ok_or(truncated)?, r.u32().ok_or(truncated)?, r.u32());
    let port = |value: u32| if has_ports(protocol) { u16::try_from(value).ok() } else { None };
    Ok(TrafficRecord {
        start: received,
        end: received,
        src,
        dst,
        protocol,
        src_port: port(src_port),
        dst_port: port(dst_port),
        tcp_flags: if protocol == 6 { tcp_flags.unwrap_or(0) as u8 } else { 0 },
        icmp: None,
        fragment: Fragment::None,
        packets: 1,
        bytes: u64::from(length),
        sampling_rate: 1,
        ttl: None,
        packet_len: Some(length),
        exporter,
        input_if: None,
        output_if: None,
        source: RecordSource::Sflow,
    })
}

/// A generic interface counters record (format 1, 88 bytes).
fn parse_generic_interface(
    body: &[u8],
    sample_sequence: u32,
    agent_uptime_ms: u32,
    received: UnixNanos,
) -> Option<InterfaceCounters> {
    if body.len() < GENERIC_INTERFACE_LEN {
        return None;
    }
    let mut r = Reader::new(body);
    Some(InterfaceCounters {
        if_index: r.u32()?,
        if_type: r.u32()?,
        if_speed: r.u64()?,
        if_direction: r.u32()?,
        if_status: r.u32()?,
        in_octets: r.u64()?,
        in_ucast_pkts: r.u32()?,
        in_multicast_pkts: r.u32()?,
        in_broadcast_pkts: r.u32()?,
        in_discards: r.u32()?,
        in_errors: r.u32()?,
        in_unknown_protos: r.u32()?,
        out_octets: r.u64()?,
        out_ucast_pkts: r.u32()?,
        out_multicast_pkts: r.u32()?,
        out_broadcast_pkts: r.u32()?,
        out_discards: r.u32()?,
        out_errors: r.u32()?,
        promiscuous_mode: r.u32()?,
        sample_sequence,
        agent_uptime_ms,
        received,
    })
}

#[cfg(test)]
mod tests;
