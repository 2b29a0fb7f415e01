//! NetFlow v9 (RFC 3954): a 20-byte header, then template FlowSets (id 0), options template
//! FlowSets (id 1) and data FlowSets (id >= 256).

use super::record::DatagramContext;
use super::seq::{SeqObservation, V9_MODES};
use super::template::{FieldSpec, Template, TemplateKind};
use super::{
    DecodeOutcome, ExporterState, FlowError, MAX_RECORD_LEN, RecordCounts, Shared, VersionContext,
    decode_data_set, for_each_set, read_u16, read_u32,
};
use crate::record::{RecordSource, TrafficRecord};

pub(crate) const HEADER_LEN: usize = 20;

pub(crate) fn decode(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    version: &VersionContext,
    datagram: &[u8],
    out: &mut Vec<TrafficRecord>,
    outcome: &mut DecodeOutcome,
) {
    let uptime_ms = read_u32(datagram, 4).unwrap_or(0);
    let export_secs = read_u32(datagram, 8).unwrap_or(0);
    let sequence = read_u32(datagram, 12).unwrap_or(0);
    let boot_ns = state.v9.boot.observe(export_secs, uptime_ms) * 1_000_000;
    let context = DatagramContext {
        exporter: version.exporter,
        source: RecordSource::NetflowV9,
        export_ns: boot_ns + i64::from(uptime_ms) * 1_000_000,
        boot_ns: Some(boot_ns),
        configured_rate: version.configured_rate,
        default_rate: None,
        exporter_slot: version.exporter_slot,
    };
    let mut counts = RecordCounts::default();
    let body = datagram.get(HEADER_LEN..).unwrap_or(&[]);
    for_each_set(body, outcome, |id, set, outcome| match id {
        0 => template_set(state, shared, set, outcome),
        1 => options_template_set(state, shared, set, outcome),
        2..=255 => {}
        _ => decode_data_set(state, shared, false, id, set, &context, &mut counts, out, outcome),
    });
    if state.tracked {
        let observation = SeqObservation {
            seq: sequence,
            all: counts.all,
            flows: counts.flows,
            counts_known: counts.known,
        };
        state.stats.sequence_gaps += state.v9.seq.observe(observation, V9_MODES);
    }
}

fn template_set(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    mut set: &[u8],
    outcome: &mut DecodeOutcome,
) {
    while set.len() >= 4 {
        let template_id = read_u16(set, 0).unwrap_or(0);
        let count = usize::from(read_u16(set, 2).unwrap_or(0));
        if template_id == 0 && count == 0 {
            break; // padding
        }
        let Some(field_bytes) = set.get(4..4 + count * 4).filter(|_| template_id >= 256 && count > 0) else {
            outcome.error(FlowError::BadTemplate { template_id });
            return;
        };
        set = set.get(4 + count * 4..).unwrap_or(&[]);
        if count > shared.limits.max_template_fields {
            state.stats.templates_rejected += 1;
            continue;
        }
        shared.specs.clear();
        shared.specs.extend(field_bytes.chunks_exact(4).map(|f| FieldSpec {
            id: read_u16(f, 0).unwrap_or(0),
            len: read_u16(f, 2).unwrap_or(0),
            enterprise: None,
            v9_scope: false,
        }));
        match Template::compile(template_id, TemplateKind::Data, shared.specs, MAX_RECORD_LEN, false) {
            Ok(template) => shared.store_template(state, false, template_id, template),
            Err(error) => outcome.error(error),
        }
    }
}

fn options_template_set(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    mut set: &[u8],
    outcome: &mut DecodeOutcome,
) {
    while set.len() >= 6 {
        let template_id = read_u16(set, 0).unwrap_or(0);
        if template_id == 0 {
            break; // padding
        }
        // Scope and option lengths are in bytes, four per field specifier.
        let scope_len = usize::from(read_u16(set, 2).unwrap_or(0));
        let option_len = usize::from(read_u16(set, 4).unwrap_or(0));
        let well_formed = template_id >= 256 && scope_len % 4 == 0 && option_len % 4 == 0;
        let Some(field_bytes) = set.get(6..6 + scope_len + option_len).filter(|_| well_formed) else {
            outcome.error(FlowError::BadTemplate { template_id });
            return;
        };
        set = set.get(6 + scope_len + option_len..).unwrap_or(&[]);
        if (scope_len + option_len) / 4 > shared.limits.max_template_fields {
            state.stats.templates_rejected += 1;
            continue;
        }
        shared.specs.clear();
        shared.specs.extend(field_bytes.chunks_exact(4).enumerate().map(|(i, f)| FieldSpec {
            id: read_u16(f, 0).unwrap_or(0),
            len: read_u16(f, 2).unwrap_or(0),
            enterprise: None,
            v9_scope: i < scope_len / 4,
        }));
        match Template::compile(template_id, TemplateKind::Options, shared.specs, MAX_RECORD_LEN, false) {
            Ok(template) => shared.store_template(state, false, template_id, template),
            Err(error) => outcome.error(error),
        }
    }
}
