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
use std::net::IpAddr;

use serde::Serialize;

use crate::packet::PacketError;
use crate::record::{Exporter, RecordSource, TrafficRecord, UnixNanos};
use crate::stats::ExporterStats;

mod wire;
use wire::{
    COUNTERS_GENERIC_INTERFACE, DatagramHeader, FLOW_RAW_HEADER, FLOW_SAMPLED_IPV4, FLOW_SAMPLED_IPV6,
    FlowSampleHeader, Reader, SAMPLE_COUNTERS, SAMPLE_COUNTERS_EXPANDED, SAMPLE_FLOW, SAMPLE_FLOW_EXPANDED,
    decode_raw_header, decode_sampled_ip, parse_generic_interface,
};

/// Maps keyed by wire values; foldhash is fast and randomly seeded per process, and the limits
/// bound every map's size anyway.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

#[cfg(test)]
mod tests;
