//! The common face of the export-datagram decoders (sFlow, NetFlow/IPFIX), so one UDP driver
//! serves them all.

use std::net::IpAddr;

use crate::flow::FlowDecoder;
use crate::record::{Exporter, TrafficRecord, UnixNanos};
use crate::sflow::SflowDecoder;
use crate::stats::ExporterStats;

/// A sans-IO decoder of export datagrams.
pub trait DatagramDecoder: Send + 'static {
    /// Decodes one datagram from `from` received at `received`, appending records to `out`.
    /// Never panics; errors are counted in the statistics.
    fn decode_datagram(
        &mut self,
        from: IpAddr,
        datagram: &[u8],
        received: UnixNanos,
        out: &mut Vec<TrafficRecord>,
    );
    /// Per-exporter statistics so far.
    fn exporter_stats(&self) -> Vec<(Exporter, ExporterStats)>;
    /// Datagrams that could not be tied to an exporter (unreadable header, exporter cap reached).
    fn unattributed_stats(&self) -> ExporterStats;
}

/// Both decoders expose the same inherent `decode`, `stats` and `unattributed_stats`; the trait
/// only forwards to them.
macro_rules! forward_datagram_decoder {
    ($decoder:ty) => {
        impl DatagramDecoder for $decoder {
            fn decode_datagram(
                &mut self,
                from: IpAddr,
                datagram: &[u8],
                received: UnixNanos,
                out: &mut Vec<TrafficRecord>,
            ) {
                self.decode(from, datagram, received, out);
            }

            fn exporter_stats(&self) -> Vec<(Exporter, ExporterStats)> {
                self.stats().map(|(exporter, stats)| (*exporter, stats.clone())).collect()
            }

            fn unattributed_stats(&self) -> ExporterStats {
                <$decoder>::unattributed_stats(self).clone()
            }
        }
    };
}

forward_datagram_decoder!(SflowDecoder);
forward_datagram_decoder!(FlowDecoder);
