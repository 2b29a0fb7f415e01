//! Templates shared by NetFlow v9 and IPFIX: the information elements we understand, a compiled
//! template (a short program of field reads), and the per-record field accumulator.
//!
//! NetFlow v9 field types 1..=127 and IPFIX information elements share one numbering (IPFIX took
//! v9's), so one table serves both.

use super::FlowError;

/// What a template field means to us. Anything else is [`Field::Skip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Field {
    Skip = 0,
    Octets,
    Packets,
    PostOctets,
    PostPackets,
    TotalOctets,
    TotalPackets,
    Protocol,
    TcpFlags,
    SrcPort,
    DstPort,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    InputIf,
    OutputIf,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    MinTtl,
    MaxTtl,
    Ttl,
    FragmentOffset,
    FragmentFlags,
    StartUptime,
    EndUptime,
    StartSecs,
    EndSecs,
    StartMillis,
    EndMillis,
    StartMicrosNtp,
    EndMicrosNtp,
    StartNanosNtp,
    EndNanosNtp,
    StartDeltaMicros,
    EndDeltaMicros,
    SystemInitMillis,
    SamplingInterval,
    SamplerId,
    PacketInterval,
    PacketSpace,
    SamplingSize,
    SamplingPopulation,
    SamplingProbability,
    ReverseOctets,
    ReversePackets,
    ReverseTcpFlags,
    ReverseIcmpTypeCode,
}

/// Number of [`Field`] variants (they index [`FlowFields::vals`]).
pub(crate) const FIELD_COUNT: usize = Field::ReverseIcmpTypeCode as usize + 1;

/// RFC 5103 reverse information elements: the forward element's id under this enterprise.
pub(crate) const REVERSE_PEN: u32 = 29305;
const _: () = assert!(FIELD_COUNT <= 64, "FlowFields::seen is a u64 bitmask");

/// IPFIX's marker for a variable-length field (RFC 7011 7).
pub(crate) const VARIABLE_LENGTH: u16 = 0xFFFF;

impl Field {
    /// Maps a NetFlow v9 field type / IPFIX information element id (IANA registry, enterprise
    /// bit clear) to what we extract from it.
    pub(crate) fn from_element(id: u16) -> Field {
        match id {
            1 => Field::Octets,
            2 => Field::Packets,
            4 | 193 => Field::Protocol, // protocolIdentifier, nextHeaderIPv6
            6 => Field::TcpFlags,
            7 => Field::SrcPort,
            8 => Field::SrcV4,
            10 => Field::InputIf,
            11 => Field::DstPort,
            12 => Field::DstV4,
            14 => Field::OutputIf,
            21 => Field::EndUptime,
            22 => Field::StartUptime,
            23 => Field::PostOctets,
            24 => Field::PostPackets,
            27 => Field::SrcV6,
            28 => Field::DstV6,
            32 | 139 => Field::IcmpTypeCode,
            34 | 50 => Field::SamplingInterval, // samplingInterval, samplerRandomInterval
            48 | 302 => Field::SamplerId,       // samplerId / FLOW_SAMPLER_ID, selectorId
            52 => Field::MinTtl,
            53 => Field::MaxTtl,
            85 => Field::TotalOctets,
            86 => Field::TotalPackets,
            88 => Field::FragmentOffset,
            150 => Field::StartSecs,
            151 => Field::EndSecs,
            152 => Field::StartMillis,
            153 => Field::EndMillis,
            154 => Field::StartMicrosNtp,
            155 => Field::EndMicrosNtp,
            156 => Field::StartNanosNtp,
            157 => Field::EndNanosNtp,
            158 => Field::StartDeltaMicros,
            159 => Field::EndDeltaMicros,
            160 => Field::SystemInitMillis,
            176 | 178 => Field::IcmpType,
            177 | 179 => Field::IcmpCode,
            192 => Field::Ttl,
            197 => Field::FragmentFlags,
            305 => Field::PacketInterval,
            306 => Field::PacketSpace,
            309 => Field::SamplingSize,
            310 => Field::SamplingPopulation,
            311 => Field::SamplingProbability,
            _ => Field::Skip,
        }
    }

    /// Maps an RFC 5103 reverse element (PEN 29305) to what we extract from it: enough to
    /// report a biflow's reverse direction.
    pub(crate) fn from_reverse_element(id: u16) -> Field {
        match id {
            1 => Field::ReverseOctets,
            2 => Field::ReversePackets,
            6 => Field::ReverseTcpFlags,
            32 | 139 => Field::ReverseIcmpTypeCode,
            _ => Field::Skip,
        }
    }

    /// Whether a field of this kind can be read from `len` bytes; a field we cannot read is
    /// skipped rather than misread (RFC 7011 6.2 reduced-size encoding allows any integer
    /// length up to the type's size).
    fn accepts_len(self, len: u16) -> bool {
        match self {
            Field::Skip => true,
            Field::SrcV4 | Field::DstV4 => len == 4,
            Field::SrcV6 | Field::DstV6 => len == 16,
            Field::SamplingProbability => len == 4 || len == 8,
            _ => (1..=8).contains(&len),
        }
    }

    fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

/// One field as a template announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    pub id: u16,
    pub len: u16,
    /// Enterprise number of an enterprise-specific element (IPFIX id with the high bit set):
    /// skipped unless it is an RFC 5103 reverse element.
    pub enterprise: Option<u32>,
    /// NetFlow v9 options scope field: its type numbers are a separate space (1 = system,
    /// 2 = interface, ...), so it is skipped.
    pub v9_scope: bool,
}

/// One compiled read: `len` bytes at `offset` (fixed-layout templates), or the next field in
/// order (variable-layout templates, where `len` may be [`VARIABLE_LENGTH`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Op {
    pub field: Field,
    pub len: u16,
    pub offset: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemplateKind {
    Data,
    Options,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub kind: TemplateKind,
    /// Fixed layout: only the fields we read, each with its offset. Variable layout: every field
    /// in order (consecutive fixed skips merged).
    pub ops: Box<[Op]>,
    /// Fixed layout: the record length. Variable layout: the shortest possible record.
    pub record_len: u16,
    pub variable: bool,
    /// Fields as announced on the wire (what the memory budget counts).
    pub wire_fields: u16,
}

impl Template {
    /// Compiles a template from its field specifiers. `max_len` is the largest record that can
    /// appear in a set (longer templates can never match data and are refused).
    /// `ipfix` enables variable-length fields (in NetFlow v9, 65535 is just a length).
    pub(crate) fn compile(
        template_id: u16,
        kind: TemplateKind,
        specs: &[FieldSpec],
        max_len: usize,
        ipfix: bool,
    ) -> Result<Template, FlowError> {
        let variable = ipfix && specs.iter().any(|s| s.len == VARIABLE_LENGTH);
        let mut ops = Vec::with_capacity(specs.len());
        let mut offset: usize = 0;
        for spec in specs {
            let mut field = match spec.enterprise {
                _ if spec.v9_scope => Field::Skip,
                None => Field::from_element(spec.id),
                Some(REVERSE_PEN) => Field::from_reverse_element(spec.id),
                Some(_) => Field::Skip,
            };
            if spec.len == VARIABLE_LENGTH && variable {
                // A variable-length integer or address is not a thing: skip it.
                field = Field::Skip;
            } else if !field.accepts_len(spec.len) {
                field = Field::Skip;
            }
            if variable {
                let min = if spec.len == VARIABLE_LENGTH { 1 } else { usize::from(spec.len) };
                let merge = field == Field::Skip && spec.len != VARIABLE_LENGTH;
                match ops.last_mut() {
                    Some(Op { field: Field::Skip, len, .. })
                        if merge
                            && *len != VARIABLE_LENGTH
                            && usize::from(*len) + min < usize::from(VARIABLE_LENGTH) =>
                    {
                        *len += spec.len;
                    }
                    _ => ops.push(Op { field, len: spec.len, offset: 0 }),
                }
                offset += min;
            } else {
                if field != Field::Skip {
                    let at =
                        u16::try_from(offset).map_err(|_| FlowError::UnusableTemplate { template_id })?;
                    ops.push(Op { field, len: spec.len, offset: at });
                }
                offset += usize::from(spec.len);
            }
            if offset > max_len {
                return Err(FlowError::UnusableTemplate { template_id });
            }
        }
        if offset == 0 {
            // A zero-length record would let one set yield unlimited records.
            return Err(FlowError::UnusableTemplate { template_id });
        }
        Ok(Template {
            kind,
            ops: ops.into_boxed_slice(),
            record_len: u16::try_from(offset).map_err(|_| FlowError::UnusableTemplate { template_id })?,
            variable,
            wire_fields: u16::try_from(specs.len()).unwrap_or(u16::MAX),
        })
    }
}

/// Values read from one record. Only `seen` is reset between records: a value is meaningful
/// only when its bit is set.
#[derive(Debug, Clone)]
pub(crate) struct FlowFields {
    pub seen: u64,
    pub vals: [u64; FIELD_COUNT],
    pub src6: [u8; 16],
    pub dst6: [u8; 16],
}

impl Default for FlowFields {
    fn default() -> Self {
        FlowFields { seen: 0, vals: [0; FIELD_COUNT], src6: [0; 16], dst6: [0; 16] }
    }
}

/// Big-endian unsigned integer of 1..=8 bytes (longer input keeps the low 8 bytes).
#[inline]
pub(crate) fn be_uint(bytes: &[u8]) -> u64 {
    match bytes.len() {
        1 => u64::from(bytes[0]),
        2 => u64::from(u16::from_be_bytes([bytes[0], bytes[1]])),
        4 => u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        8 => u64::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ]),
        _ => bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    }
}

impl FlowFields {
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.seen = 0;
    }

    #[inline]
    pub(crate) fn has(&self, field: Field) -> bool {
        self.seen & field.bit() != 0
    }

    #[inline]
    pub(crate) fn get(&self, field: Field) -> Option<u64> {
        if self.has(field) { self.vals.get(field as usize).copied() } else { None }
    }

    /// Stores one field's bytes (whose length the template compiler already checked).
    #[inline]
    pub(crate) fn set(&mut self, field: Field, bytes: &[u8]) {
        match field {
            Field::Skip => return,
            Field::SrcV6 => {
                if let Ok(a) = <[u8; 16]>::try_from(bytes) {
                    self.src6 = a;
                }
            }
            Field::DstV6 => {
                if let Ok(a) = <[u8; 16]>::try_from(bytes) {
                    self.dst6 = a;
                }
            }
            Field::SamplingProbability => {
                let p = match bytes.len() {
                    4 => f64::from(f32::from_bits(be_uint(bytes) as u32)),
                    _ => f64::from_bits(be_uint(bytes)),
                };
                if let Some(slot) = self.vals.get_mut(field as usize) {
                    *slot = p.to_bits();
                }
            }
            _ => {
                if let Some(slot) = self.vals.get_mut(field as usize) {
                    *slot = be_uint(bytes);
                }
            }
        }
        self.seen |= field.bit();
    }

    /// Reads one fixed-layout record.
    #[inline]
    pub(crate) fn read_fixed(&mut self, ops: &[Op], record: &[u8]) {
        self.clear();
        for op in ops {
            let start = usize::from(op.offset);
            if let Some(bytes) = record.get(start..start + usize::from(op.len)) {
                self.set(op.field, bytes);
            }
        }
    }

    /// Reads one variable-layout record from the front of `data`; returns the bytes consumed,
    /// or `None` when the record runs past the end.
    pub(crate) fn read_variable(&mut self, ops: &[Op], data: &[u8]) -> Option<usize> {
        self.clear();
        let mut at = 0usize;
        for op in ops {
            let len = if op.len == VARIABLE_LENGTH {
                // RFC 7011 7: one length byte, or 255 followed by a two-byte length.
                let first = *data.get(at)?;
                at += 1;
                if first == 255 {
                    let pair = data.get(at..at + 2)?;
                    at += 2;
                    usize::from(u16::from_be_bytes([pair[0], pair[1]]))
                } else {
                    usize::from(first)
                }
            } else {
                usize::from(op.len)
            };
            let bytes = data.get(at..at.checked_add(len)?)?;
            if op.len != VARIABLE_LENGTH {
                self.set(op.field, bytes);
            }
            at += len;
        }
        Some(at)
    }

    /// Sampling rate stated by this record's own fields, if any.
    pub(crate) fn stated_rate(&self) -> Option<u32> {
        let rate = if let Some(interval) = self.get(Field::SamplingInterval).filter(|&v| v > 0) {
            interval
        } else if let Some(selected) = self.get(Field::PacketInterval).filter(|&v| v > 0) {
            // samplingPacketInterval packets taken, then samplingPacketSpace skipped.
            let space = self.get(Field::PacketSpace).unwrap_or(0);
            selected.saturating_add(space) / selected
        } else if let Some(size) = self.get(Field::SamplingSize).filter(|&v| v > 0) {
            self.get(Field::SamplingPopulation).map_or(1, |population| population / size)
        } else if let Some(bits) = self.get(Field::SamplingProbability) {
            let p = f64::from_bits(bits);
            if !(p > 0.0 && p <= 1.0) {
                return None;
            }
            (1.0 / p).round() as u64
        } else {
            return None;
        };
        Some(u32::try_from(rate.max(1)).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u16, len: u16) -> FieldSpec {
        FieldSpec { id, len, enterprise: None, v9_scope: false }
    }

    #[test]
    fn be_uint_reads_any_length() {
        assert_eq!(be_uint(&[1]), 1);
        assert_eq!(be_uint(&[1, 2]), 0x0102);
        assert_eq!(be_uint(&[1, 2, 3]), 0x010203);
        assert_eq!(be_uint(&[1, 2, 3, 4]), 0x01020304);
        assert_eq!(be_uint(&[0, 0, 0, 0, 0, 1, 0, 0]), 0x10000);
        assert_eq!(be_uint(&[]), 0);
    }

    #[test]
    fn fixed_template_keeps_known_fields_with_offsets() {
        let specs = [spec(8, 4), spec(999, 3), spec(1, 8), spec(12, 4), spec(7, 2)];
        let t = Template::compile(256, TemplateKind::Data, &specs, 65535, true).unwrap();
        assert!(!t.variable);
        assert_eq!(t.record_len, 21);
        assert_eq!(
            &*t.ops,
            &[
                Op { field: Field::SrcV4, len: 4, offset: 0 },
                Op { field: Field::Octets, len: 8, offset: 7 },
                Op { field: Field::DstV4, len: 4, offset: 15 },
                Op { field: Field::SrcPort, len: 2, offset: 19 },
            ]
        );
    }

    #[test]
    fn wrong_sized_fields_are_skipped_not_misread() {
        let specs = [spec(8, 3), spec(27, 4), spec(1, 9), spec(1, 0)];
        let t = Template::compile(256, TemplateKind::Data, &specs, 65535, true).unwrap();
        assert!(t.ops.is_empty());
        assert_eq!(t.record_len, 16);
    }

    #[test]
    fn zero_length_and_oversized_templates_are_refused() {
        let refused = Some(FlowError::UnusableTemplate { template_id: 256 });
        assert_eq!(Template::compile(256, TemplateKind::Data, &[spec(1, 0)], 65535, true).err(), refused);
        assert_eq!(Template::compile(256, TemplateKind::Data, &[], 65535, true).err(), refused);
        assert_eq!(
            Template::compile(256, TemplateKind::Data, &[spec(1, 60000), spec(2, 60000)], 65535, true).err(),
            refused
        );
    }

    #[test]
    fn variable_record_lengths_follow_rfc7011() {
        let specs = [spec(1, 4), spec(82, VARIABLE_LENGTH), spec(2, 4), spec(83, VARIABLE_LENGTH)];
        let t = Template::compile(256, TemplateKind::Data, &specs, 65535, true).unwrap();
        assert!(t.variable);
        assert_eq!(t.record_len, 10);
        let mut f = FlowFields::default();
        let mut rec = vec![0, 0, 0, 7, 3, b'a', b'b', b'c', 0, 0, 0, 9, 255, 0, 2, b'x', b'y'];
        assert_eq!(f.read_variable(&t.ops, &rec), Some(rec.len()));
        assert_eq!(f.get(Field::Octets), Some(7));
        assert_eq!(f.get(Field::Packets), Some(9));
        rec.pop();
        assert_eq!(f.read_variable(&t.ops, &rec), None);
    }

    #[test]
    fn stated_rates() {
        let mut f = FlowFields::default();
        f.set(Field::PacketInterval, &[0, 0, 0, 1]);
        f.set(Field::PacketSpace, &[0, 0, 0, 99]);
        assert_eq!(f.stated_rate(), Some(100));
        f.clear();
        f.set(Field::SamplingSize, &[10]);
        f.set(Field::SamplingPopulation, &[0, 100]);
        assert_eq!(f.stated_rate(), Some(10));
        f.clear();
        f.set(Field::SamplingProbability, &0.001f64.to_be_bytes());
        assert_eq!(f.stated_rate(), Some(1000));
        f.clear();
        f.set(Field::SamplingProbability, &0.0f32.to_be_bytes());
        assert_eq!(f.stated_rate(), None);
        f.clear();
        f.set(Field::SamplingInterval, &[0, 0, 0, 0]);
        assert_eq!(f.stated_rate(), None);
    }
}
