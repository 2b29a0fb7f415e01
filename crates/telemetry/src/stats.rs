//! Decoder statistics, kept per exporter so an operator can tell a broken router from a lossy
//! network.

use serde::Serialize;

/// Counters for one exporter (an sFlow agent + sub-agent, a NetFlow/IPFIX exporter address +
/// source/observation-domain id, or a capture file / interface).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExporterStats {
    /// Export datagrams received (for captures: frames read).
    pub datagrams: u64,
    /// Traffic records produced.
    pub records: u64,
    /// Datagrams, samples, records or frames that could not be decoded (malformed, truncated,
    /// unsupported); whatever could be salvaged around them was kept.
    pub decode_errors: u64,
    /// Flow records dropped because their template was not (yet) known.
    pub unknown_template_records: u64,
    /// Sequence units missing between consecutive export datagrams: lost datagrams for sFlow and
    /// NetFlow v9, lost flow records for NetFlow v5 and IPFIX (whose sequence counts records).
    pub sequence_gaps: u64,
    /// Packets the sampler itself reported dropping (sFlow `drops`), and for live inputs the
    /// socket or kernel ring drops the OS reported.
    pub drops: u64,
    /// Templates currently cached (NetFlow v9, IPFIX).
    pub templates: u64,
    /// Templates refused because the per-exporter template limit was reached.
    pub templates_rejected: u64,
}

impl ExporterStats {
    /// Adds every counter of `other` into `self` (templates included, as a sum over exporters).
    pub fn absorb(&mut self, other: &ExporterStats) {
        self.datagrams += other.datagrams;
        self.records += other.records;
        self.decode_errors += other.decode_errors;
        self.unknown_template_records += other.unknown_template_records;
        self.sequence_gaps += other.sequence_gaps;
        self.drops += other.drops;
        self.templates += other.templates;
        self.templates_rejected += other.templates_rejected;
    }
}
