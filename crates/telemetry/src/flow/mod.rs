//! NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) export decoding into
//! [`TrafficRecord`]s.
//!
//! One [`FlowDecoder`] serves a collector: it keeps templates, sequence numbers and sampling
//! state per exporter (UDP source address + source id / observation domain), within
//! [`FlowLimits`]. It is sans-IO: the caller hands it datagrams with their source address.
//!
//! Exporter identity: [`Exporter::addr`] is the datagram's source address; [`Exporter::sub_id`]
//! is the v9 source id, the IPFIX observation domain id, or for v5 `engine_type << 8 |
//! engine_id` (engines keep separate flow sequences).
//!
//! Choices worth knowing:
//! - Sampling: a rate set with [`FlowDecoder::set_sampling`] wins; otherwise a record's own
//!   sampling fields, then the rate of the sampler it names (v9 FLOW_SAMPLER_ID / IPFIX
//!   selectorId, learnt from options data), then the exporter's rate from options data
//!   (or the v5 header), else 1.
//! - Times: sysUpTime-relative times are placed on the Unix time line nearest the export time,
//!   so 49.7-day uptime wraps are harmless. NetFlow v9 headers carry whole seconds only; the
//!   decoder narrows the exporter's boot time across datagrams (each bounds it within a
//!   second) and uses the middle of what remains. IPFIX flowStart/EndSysUpTime need
//!   systemInitTimeMilliseconds (options data or the record); without it the export time is
//!   used. A record without times gets the export time; `end` is clamped to `start`.
//! - Records with no IP addresses or no packet/byte counter (e.g. NAT events) are skipped
//!   silently; data sets for templates not (yet) known count one `unknown_template_records`
//!   each (the record count cannot be known without the template).
//! - octetTotalCount/packetTotalCount (used only without delta counters) become deltas per flow
//!   key over a bounded table ([`FlowLimits::max_total_counter_flows`]).
//! - RFC 5103 biflows (reverse elements under enterprise 29305, e.g. softflowd `-b`) yield one
//!   record per direction with traffic; other enterprise-specific elements are skipped.
//! - flowDirection (61) is not represented: [`TrafficRecord`] has no direction.

mod ipfix;
mod record;
mod seq;
mod template;
mod totals;
mod v5;
mod v9;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::record::{Exporter, TrafficRecord, UnixNanos};
use crate::stats::ExporterStats;

use seq::SeqTracker;
use template::{FieldSpec, FlowFields, Template, TemplateKind};
use totals::Totals;

/// Largest record a set can hold: a 65535-byte datagram less the IPFIX message header and the
/// set header (v9's is longer, so this bounds both).
const MAX_RECORD_LEN: usize = 65_535 - 16 - 4;

/// Why (part of) a datagram was not decoded. Everything decodable around the problem is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The datagram is shorter than its version's header.
    #[error("datagram of {0} bytes is shorter than its export header")]
    TruncatedHeader(usize),
    /// The version field is not 5, 9 or 10.
    #[error("unsupported export version {0}")]
    UnsupportedVersion(u16),
    /// The header's record count or message length disagrees with the datagram's size.
    #[error("header announces {announced} (records or bytes) but the datagram holds {available}")]
    LengthMismatch {
        /// Count or length the header states.
        announced: usize,
        /// What the datagram actually holds.
        available: usize,
    },
    /// A FlowSet/Set length is shorter than its own header or runs past the end of the message.
    #[error("set {set_id} has bad length {length}")]
    BadSetLength {
        /// The set's id.
        set_id: u16,
        /// Its announced length.
        length: u16,
    },
    /// A template record is malformed: reserved id, no fields (v9), bad scope, truncated.
    #[error("malformed template record (id {template_id})")]
    BadTemplate {
        /// The template id as read (may be meaningless).
        template_id: u16,
    },
    /// A template's records would be empty or longer than any datagram can carry.
    #[error("template {template_id} describes records of unusable length")]
    UnusableTemplate {
        /// The template id.
        template_id: u16,
    },
    /// A data record with variable-length fields runs past the end of its set.
    #[error("record of template {template_id} truncated")]
    TruncatedRecord {
        /// The template id.
        template_id: u16,
    },
}

/// Resource limits of one [`FlowDecoder`]. Memory is bounded by roughly
/// `max_exporters * 1 KiB + max_total_template_fields * 8 B + max_total_counter_flows * 100 B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLimits {
    /// Exporters (address + source id) tracked; datagrams of further exporters are still
    /// decoded where no state is needed (v5) and counted in
    /// [`FlowDecoder::unattributed_stats`].
    pub max_exporters: usize,
    /// Templates (data + options, v9 + IPFIX) cached per exporter; more are rejected and counted
    /// in `templates_rejected`.
    pub max_templates_per_exporter: usize,
    /// Fields one template may have; longer templates are rejected.
    pub max_template_fields: usize,
    /// Template fields cached over all exporters.
    pub max_total_template_fields: usize,
    /// Samplers (v9 FLOW_SAMPLER_ID / IPFIX selectorId) remembered per exporter.
    pub max_samplers_per_exporter: usize,
    /// Flows whose last running totals are kept to turn total counters into deltas (0: treat
    /// totals as deltas).
    pub max_total_counter_flows: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_exporters: 1024,
            max_templates_per_exporter: 256,
            max_template_fields: 128,
            max_total_template_fields: 512 * 1024,
            max_samplers_per_exporter: 64,
            max_total_counter_flows: 65_536,
        }
    }
}

/// What one [`FlowDecoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOutcome {
    /// Records appended to `out`.
    pub records: usize,
    /// Problems found (each also counted in `decode_errors`).
    pub errors: u32,
    /// The first problem, for logging.
    pub first_error: Option<FlowError>,
}

impl DecodeOutcome {
    pub(crate) fn error(&mut self, error: FlowError) {
        self.errors = self.errors.saturating_add(1);
        self.first_error.get_or_insert(error);
    }
}

/// Sampling rates an exporter announced in options data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sampling {
    default_rate: Option<u32>,
    samplers: Vec<(u64, u32)>,
}

impl Sampling {
    pub(crate) fn rate_of(&self, sampler: u64) -> Option<u32> {
        self.samplers.iter().find(|(id, _)| *id == sampler).map(|&(_, rate)| rate)
    }

    /// The rate for records that name no sampler: the exporter-wide one, or the only sampler's.
    pub(crate) fn default_rate(&self) -> Option<u32> {
        self.default_rate.or(match self.samplers.as_slice() {
            [(_, rate)] => Some(*rate),
            _ => None,
        })
    }

    pub(crate) fn learn(&mut self, sampler: Option<u64>, rate: u32, max_samplers: usize) {
        match sampler {
            None => self.default_rate = Some(rate),
            Some(id) => {
                if let Some(entry) = self.samplers.iter_mut().find(|(known, _)| *known == id) {
                    entry.1 = rate;
                } else if self.samplers.len() < max_samplers {
                    self.samplers.push((id, rate));
                }
            }
        }
    }
}

/// NetFlow v9 exporters' boot time, narrowed across datagrams: each header's whole-second
/// export time minus its sysUpTime bounds it within one second.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BootClock {
    bounds: Option<(i64, i64)>,
}

impl BootClock {
    /// Returns the boot time estimate (Unix ms) after a header with these values.
    pub(crate) fn observe(&mut self, export_secs: u32, uptime_ms: u32) -> i64 {
        let low = i64::from(export_secs) * 1000 - i64::from(uptime_ms);
        let high = low + 999;
        let (low, high) = match self.bounds {
            Some((l, h)) if low <= h && high >= l => (low.max(l), high.min(h)),
            // Inconsistent with what we knew: the exporter rebooted or its clock was set.
            _ => (low, high),
        };
        self.bounds = Some((low, high));
        low + (high - low) / 2
    }
}

/// Per-protocol state of one exporter.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub templates: HashMap<u16, Template>,
    pub seq: SeqTracker,
    pub sampling: Sampling,
    pub boot: BootClock,
    /// IPFIX systemInitTimeMilliseconds from options data, as Unix ns.
    pub system_init_ns: Option<i64>,
}

impl Session {
    fn template_fields(&self) -> usize {
        self.templates.values().map(|t| usize::from(t.wire_fields)).sum()
    }
}

#[derive(Debug)]
pub(crate) struct ExporterState {
    exporter: Exporter,
    stats: ExporterStats,
    last_seen: UnixNanos,
    /// False for the catch-all state of exporters beyond the limit: nothing is remembered.
    tracked: bool,
    v5_seq: SeqTracker,
    v9: Session,
    ipfix: Session,
}

impl ExporterState {
    fn new(exporter: Exporter, tracked: bool) -> Self {
        ExporterState {
            exporter,
            stats: ExporterStats::default(),
            last_seen: UnixNanos(0),
            tracked,
            v5_seq: SeqTracker::default(),
            v9: Session::default(),
            ipfix: Session::default(),
        }
    }

    fn session(&mut self, ipfix: bool) -> &mut Session {
        if ipfix { &mut self.ipfix } else { &mut self.v9 }
    }

    fn sync_template_count(&mut self) {
        self.stats.templates = (self.v9.templates.len() + self.ipfix.templates.len()) as u64;
    }
}

/// State shared by all exporters, lent to the per-version decoders.
#[derive(Debug)]
pub(crate) struct Shared<'a> {
    pub limits: &'a FlowLimits,
    pub template_fields: &'a mut usize,
    pub totals: &'a mut Totals,
    pub fields: &'a mut FlowFields,
    pub specs: &'a mut Vec<FieldSpec>,
}

impl Shared<'_> {
    /// Caches (or refreshes) a template, within the limits.
    pub(crate) fn store_template(
        &mut self,
        state: &mut ExporterState,
        ipfix: bool,
        id: u16,
        template: Template,
    ) {
        if !state.tracked {
            state.stats.templates_rejected += 1;
            return;
        }
        let count = state.v9.templates.len() + state.ipfix.templates.len();
        let session = state.session(ipfix);
        let replaced = session.templates.get(&id).map_or(0, |t| usize::from(t.wire_fields));
        let fields_after =
            self.template_fields.saturating_sub(replaced).saturating_add(usize::from(template.wire_fields));
        let fits = fields_after <= self.limits.max_total_template_fields
            && (session.templates.contains_key(&id) || count < self.limits.max_templates_per_exporter);
        if fits {
            session.templates.insert(id, template);
            *self.template_fields = fields_after;
        } else {
            state.stats.templates_rejected += 1;
        }
        state.sync_template_count();
    }

    /// Withdraws one template, or all of one kind (IPFIX template withdrawal).
    pub(crate) fn withdraw(
        &mut self,
        state: &mut ExporterState,
        ipfix: bool,
        id: Option<u16>,
        kind: TemplateKind,
    ) {
        let session = state.session(ipfix);
        let before = session.template_fields();
        match id {
            Some(id) => {
                session.templates.remove(&id);
            }
            None => session.templates.retain(|_, t| t.kind != kind),
        }
        let after = session.template_fields();
        *self.template_fields = self.template_fields.saturating_sub(before - after);
        state.sync_template_count();
    }
}

/// Decoder for one collector's NetFlow v5 / v9 and IPFIX datagrams.
#[derive(Debug)]
pub struct FlowDecoder {
    limits: FlowLimits,
    exporters: Vec<ExporterState>,
    index: HashMap<(IpAddr, u32), usize>,
    /// Datagrams not attributable to a tracked exporter.
    unattributed: ExporterState,
    configured_rates: HashMap<IpAddr, u32>,
    template_fields: usize,
    totals: Totals,
    fields: FlowFields,
    specs: Vec<FieldSpec>,
}

impl Default for FlowDecoder {
    fn default() -> Self {
        FlowDecoder::new(FlowLimits::default())
    }
}

impl FlowDecoder {
    pub fn new(limits: FlowLimits) -> Self {
        FlowDecoder {
            totals: Totals::new(limits.max_total_counter_flows),
            limits,
            exporters: Vec::new(),
            index: HashMap::new(),
            unattributed: ExporterState::new(Exporter { addr: None, sub_id: 0 }, false),
            configured_rates: HashMap::new(),
            template_fields: 0,
            fields: FlowFields::default(),
            specs: Vec::new(),
        }
    }

    pub fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// Sets the sampling rate of every exporter at `exporter` (all source ids); it wins over
    /// whatever the exporter announces. A rate of 0 removes the setting.
    pub fn set_sampling(&mut self, exporter: IpAddr, rate: u32) {
        if rate == 0 {
            self.configured_rates.remove(&exporter);
        } else {
            self.configured_rates.insert(exporter, rate);
        }
    }

    /// Decodes one export datagram received from `from` at `received`, appending its flow
    /// records to `out`. The version (5, 9 or 10) comes from the header. Never panics; problems
    /// are counted in the exporter's statistics and summarized in the outcome.
    pub fn decode(
        &mut self,
        from: IpAddr,
        datagram: &[u8],
        received: UnixNanos,
        out: &mut Vec<TrafficRecord>,
    ) -> DecodeOutcome {
        let mut outcome = DecodeOutcome::default();
        let identity = match header_identity(datagram) {
            Ok(identity) => identity,
            Err(error) => {
                self.unattributed.stats.datagrams += 1;
                self.unattributed.stats.decode_errors += 1;
                outcome.error(error);
                return outcome;
            }
        };
        let (version, sub_id) = identity;
        let exporter = Exporter { addr: Some(from), sub_id };
        let slot = self.slot(from, sub_id);
        let configured_rate = self.configured_rates.get(&from).copied();
        let state = match slot {
            Some(slot) => match self.exporters.get_mut(slot) {
                Some(state) => state,
                None => &mut self.unattributed,
            },
            None => &mut self.unattributed,
        };
        state.stats.datagrams += 1;
        state.last_seen = state.last_seen.max(received);
        let mut shared = Shared {
            limits: &self.limits,
            template_fields: &mut self.template_fields,
            totals: &mut self.totals,
            fields: &mut self.fields,
            specs: &mut self.specs,
        };
        let context =
            VersionContext { exporter, exporter_slot: slot.map_or(u32::MAX, |s| s as u32), configured_rate };
        let before = out.len();
        match version {
            5 => v5::decode(state, &context, datagram, out, &mut outcome),
            9 => v9::decode(state, &mut shared, &context, datagram, out, &mut outcome),
            _ => ipfix::decode(state, &mut shared, &context, datagram, out, &mut outcome),
        }
        outcome.records = out.len() - before;
        state.stats.records += outcome.records as u64;
        state.stats.decode_errors += u64::from(outcome.errors);
        outcome
    }

    /// Statistics per tracked exporter.
    pub fn stats(&self) -> impl Iterator<Item = (&Exporter, &ExporterStats)> {
        self.exporters.iter().map(|e| (&e.exporter, &e.stats))
    }

    /// Datagrams not attributed to a tracked exporter: unreadable headers, unknown versions, and
    /// exporters beyond [`FlowLimits::max_exporters`].
    pub fn unattributed_stats(&self) -> &ExporterStats {
        &self.unattributed.stats
    }

    /// Forgets exporters not heard from since `cutoff` (their templates, sequence state and
    /// statistics); returns how many. Lets a long-running collector make room for new
    /// exporters.
    pub fn forget_idle(&mut self, cutoff: UnixNanos) -> usize {
        let before = self.exporters.len();
        self.exporters.retain(|e| e.last_seen >= cutoff);
        let forgotten = before - self.exporters.len();
        if forgotten > 0 {
            self.index = self
                .exporters
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some(((e.exporter.addr?, e.exporter.sub_id), i)))
                .collect();
            self.template_fields =
                self.exporters.iter().map(|e| e.v9.template_fields() + e.ipfix.template_fields()).sum();
            // Slots were renumbered: running totals keyed by slot are no longer valid.
            self.totals.clear();
        }
        forgotten
    }

    /// The exporter's slot, created if there is room.
    fn slot(&mut self, addr: IpAddr, sub_id: u32) -> Option<usize> {
        if let Some(&slot) = self.index.get(&(addr, sub_id)) {
            return Some(slot);
        }
        if self.exporters.len() >= self.limits.max_exporters {
            return None;
        }
        let slot = self.exporters.len();
        self.exporters.push(ExporterState::new(Exporter { addr: Some(addr), sub_id }, true));
        self.index.insert((addr, sub_id), slot);
        Some(slot)
    }
}

/// What the version decoders need to know about the datagram's origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionContext {
    pub exporter: Exporter,
    pub exporter_slot: u32,
    pub configured_rate: Option<u32>,
}

/// Version and sub-id (v5: engine type << 8 | engine id; v9: source id; IPFIX: observation
/// domain id) from the header.
fn header_identity(datagram: &[u8]) -> Result<(u16, u32), FlowError> {
    let version = read_u16(datagram, 0).ok_or(FlowError::TruncatedHeader(datagram.len()))?;
    let sub_id = match version {
        5 => datagram.get(20..22).map(|e| u32::from(e[0]) << 8 | u32::from(e[1])),
        9 => read_u32(datagram, 16),
        10 => read_u32(datagram, 12),
        other => return Err(FlowError::UnsupportedVersion(other)),
    };
    let min_len = match version {
        5 => v5::HEADER_LEN,
        9 => v9::HEADER_LEN,
        _ => ipfix::HEADER_LEN,
    };
    match sub_id {
        Some(sub_id) if datagram.len() >= min_len => Ok((version, sub_id)),
        _ => Err(FlowError::TruncatedHeader(datagram.len())),
    }
}

pub(crate) fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

pub(crate) fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Walks the sets (v9: FlowSets) of a message body: `(set id, set body)` until the body ends;
/// a bad set length ends the walk (nothing after it can be located).
pub(crate) fn for_each_set(
    mut body: &[u8],
    outcome: &mut DecodeOutcome,
    mut visit: impl FnMut(u16, &[u8], &mut DecodeOutcome),
) {
    while body.len() >= 4 {
        let (Some(id), Some(length)) = (read_u16(body, 0), read_u16(body, 2)) else { break };
        let len = usize::from(length);
        if len < 4 {
            outcome.error(FlowError::BadSetLength { set_id: id, length });
            return;
        }
        let Some(set) = body.get(4..len) else {
            // Runs past the end: decode what is there, then stop.
            outcome.error(FlowError::BadSetLength { set_id: id, length });
            visit(id, body.get(4..).unwrap_or(&[]), outcome);
            return;
        };
        visit(id, set, outcome);
        body = body.get(len..).unwrap_or(&[]);
    }
}

/// Counts of data records in one message, for sequence tracking.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordCounts {
    pub all: u32,
    pub flows: u32,
    pub known: bool,
}

impl Default for RecordCounts {
    fn default() -> Self {
        RecordCounts { all: 0, flows: 0, known: true }
    }
}

/// Pushes a data record's traffic: its forward direction and, for a biflow, the reverse one
/// (a biflow's empty forward direction is left out).
#[inline]
fn push_records(
    fields: &FlowFields,
    context: &record::DatagramContext,
    sampler_rate: impl Fn(u64) -> Option<u32>,
    totals: &mut Totals,
    out: &mut Vec<TrafficRecord>,
) {
    let Some(forward) = fields.to_record(context, sampler_rate, totals) else { return };
    match fields.reverse(&forward) {
        None => out.push(forward),
        Some(reverse) => {
            if forward.packets != 0 || forward.bytes != 0 {
                out.push(forward);
            }
            out.push(reverse);
        }
    }
}

/// Decodes the records of one data set (v9 FlowSet id >= 256, IPFIX set id >= 256).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_data_set(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    ipfix: bool,
    template_id: u16,
    set: &[u8],
    context: &record::DatagramContext,
    counts: &mut RecordCounts,
    out: &mut Vec<TrafficRecord>,
    outcome: &mut DecodeOutcome,
) {
    let max_samplers = shared.limits.max_samplers_per_exporter;
    let tracked = state.tracked;
    let Session { templates, sampling, system_init_ns, .. } = state.session(ipfix);
    let Some(template) = templates.get(&template_id) else {
        state.stats.unknown_template_records += 1;
        counts.known = false;
        return;
    };
    let fields = &mut *shared.fields;
    let record_len = usize::from(template.record_len);
    let mut n = 0u32;
    let mut rest = set;
    match template.kind {
        TemplateKind::Data => {
            let context = record::DatagramContext {
                boot_ns: if ipfix { *system_init_ns } else { context.boot_ns },
                default_rate: sampling.default_rate(),
                ..*context
            };
            let sampler_rate = |id: u64| sampling.rate_of(id);
            if !template.variable {
                out.reserve(set.len() / record_len.max(1));
                for rec in set.chunks_exact(record_len.max(1)) {
                    fields.read_fixed(&template.ops, rec);
                    push_records(fields, &context, sampler_rate, shared.totals, out);
                    n += 1;
                }
            } else {
                while rest.len() >= record_len.max(1) {
                    let Some(used) = fields.read_variable(&template.ops, rest).filter(|&u| u > 0) else {
                        outcome.error(FlowError::TruncatedRecord { template_id });
                        break;
                    };
                    rest = rest.get(used..).unwrap_or(&[]);
                    push_records(fields, &context, sampler_rate, shared.totals, out);
                    n += 1;
                }
            }
            counts.flows = counts.flows.saturating_add(n);
        }
        TemplateKind::Options => loop {
            if template.variable {
                if rest.len() < record_len.max(1) {
                    break;
                }
                let Some(used) = fields.read_variable(&template.ops, rest).filter(|&u| u > 0) else {
                    outcome.error(FlowError::TruncatedRecord { template_id });
                    break;
                };
                rest = rest.get(used..).unwrap_or(&[]);
            } else {
                let Some(rec) = rest.get(..record_len.max(1)) else { break };
                fields.read_fixed(&template.ops, rec);
                rest = rest.get(record_len.max(1)..).unwrap_or(&[]);
            }
            n += 1;
            if !tracked {
                continue;
            }
            if let Some(rate) = fields.stated_rate() {
                sampling.learn(fields.get(template::Field::SamplerId), rate, max_samplers);
            }
            if let Some(init) = fields.get(template::Field::SystemInitMillis) {
                *system_init_ns = Some(i64::try_from(init.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
            }
        },
    }
    counts.all = counts.all.saturating_add(n);
}

#[cfg(test)]
mod tests;
