//! IPFIX (RFC 7011): a 16-byte message header, then template sets (id 2), options template sets
//! (id 3) and data sets (id >= 256).

use super::record::DatagramContext;
use super::seq::{IPFIX_MODES, SeqObservation};
use super::template::{FieldSpec, Template, TemplateKind};
use super::{
    DecodeOutcome, ExporterState, FlowError, MAX_RECORD_LEN, RecordCounts, Shared, VersionContext,
    decode_data_set, for_each_set, read_u16, read_u32,
};
use crate::record::{RecordSource, TrafficRecord};

pub(crate) const HEADER_LEN: usize = 16;
const TEMPLATE_SET: u16 = 2;
const OPTIONS_TEMPLATE_SET: u16 = 3;

pub(crate) fn decode(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    version: &VersionContext,
    datagram: &[u8],
    out: &mut Vec<TrafficRecord>,
    outcome: &mut DecodeOutcome,
) {
    let length = usize::from(read_u16(datagram, 2).unwrap_or(0));
    let export_secs = read_u32(datagram, 4).unwrap_or(0);
    let sequence = read_u32(datagram, 8).unwrap_or(0);
    if length < HEADER_LEN {
        outcome.error(FlowError::LengthMismatch { announced: length, available: datagram.len() });
        return;
    }
    if length > datagram.len() {
        // Decode what arrived.
        outcome.error(FlowError::LengthMismatch { announced: length, available: datagram.len() });
    }
    let message = datagram.get(..length).unwrap_or(datagram);
    let context = DatagramContext {
        exporter: version.exporter,
        source: RecordSource::Ipfix,
        export_ns: i64::from(export_secs) * 1_000_000_000,
        boot_ns: None, // systemInitTimeMilliseconds, per set
        configured_rate: version.configured_rate,
        default_rate: None,
        exporter_slot: version.exporter_slot,
    };
    let mut counts = RecordCounts::default();
    let body = message.get(HEADER_LEN..).unwrap_or(&[]);
    for_each_set(body, outcome, |id, set, outcome| match id {
        TEMPLATE_SET | OPTIONS_TEMPLATE_SET => template_set(state, shared, id, set, outcome),
        0..=255 => {}
        _ => decode_data_set(state, shared, true, id, set, &context, &mut counts, out, outcome),
    });
    if state.tracked {
        let observation = SeqObservation {
            seq: sequence,
            all: counts.all,
            flows: counts.flows,
            counts_known: counts.known,
        };
        state.stats.sequence_gaps += state.ipfix.seq.observe(observation, IPFIX_MODES);
    }
}

fn template_set(
    state: &mut ExporterState,
    shared: &mut Shared<'_>,
    set_id: u16,
    mut set: &[u8],
    outcome: &mut DecodeOutcome,
) {
    let options = set_id == OPTIONS_TEMPLATE_SET;
    let kind = if options { TemplateKind::Options } else { TemplateKind::Data };
    while set.len() >= 4 {
        let template_id = read_u16(set, 0).unwrap_or(0);
        let count = usize::from(read_u16(set, 2).unwrap_or(0));
        if template_id == 0 && count == 0 {
            break; // padding
        }
        if count == 0 {
            // Withdrawal (RFC 7011 8.1): one template, or all of this set's kind.
            match template_id {
                id if id == set_id => shared.withdraw(state, true, None, kind),
                id if id >= 256 => shared.withdraw(state, true, Some(id), kind),
                _ => {
                    outcome.error(FlowError::BadTemplate { template_id });
                    return;
                }
            }
            set = set.get(4..).unwrap_or(&[]);
            continue;
        }
        let (header_len, scope_count) =
            if options { (6, usize::from(read_u16(set, 4).unwrap_or(0))) } else { (4, 0) };
        if template_id < 256
            || set.len() < header_len
            || (options && (scope_count == 0 || scope_count > count))
        {
            outcome.error(FlowError::BadTemplate { template_id });
            return;
        }
        // Field specifiers: id (high bit: enterprise, then a 4-byte PEN) and length. Walk them
        // all even when the template will be refused, to find the next record.
        let keep = count <= shared.limits.max_template_fields;
        shared.specs.clear();
        let mut at = header_len;
        for _ in 0..count {
            let (Some(element), Some(len)) = (read_u16(set, at), read_u16(set, at + 2)) else {
                outcome.error(FlowError::BadTemplate { template_id });
                return;
            };
            let enterprise = if element & 0x8000 != 0 {
                let pen = read_u32(set, at + 4);
                at += 8;
                Some(pen.unwrap_or(0))
            } else {
                at += 4;
                None
            };
            if keep {
                shared.specs.push(FieldSpec { id: element & 0x7FFF, len, enterprise, v9_scope: false });
            }
        }
        if at > set.len() {
            outcome.error(FlowError::BadTemplate { template_id });
            return;
        }
        set = set.get(at..).unwrap_or(&[]);
        if !keep {
            state.stats.templates_rejected += 1;
            continue;
        }
        match Template::compile(template_id, kind, shared.specs, MAX_RECORD_LEN, true) {
            Ok(template) => shared.store_template(state, true, template_id, template),
            Err(error) => outcome.error(error),
        }
    }
}
