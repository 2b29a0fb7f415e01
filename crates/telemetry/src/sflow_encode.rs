//! sFlow v5 encoder: packet samples with raw packet headers, as a switch agent would send them.
//!
//! Used by `rampart replay` (a capture replayed as sFlow, for tests and side-by-side runs) and
//! by tests of the decoder. Pure: frames in, datagrams out.

use std::net::IpAddr;

use crate::record::LinkType;

/// Bytes of each frame copied into a sample, as agents do by default.
pub const DEFAULT_HEADER_BYTES: usize = 128;
/// Datagrams stay under a 1500-byte MTU.
const MAX_DATAGRAM: usize = 1400;
const DATAGRAM_HEADER_V4: usize = 28;
const DATAGRAM_HEADER_V6: usize = 40;

/// Builds sFlow v5 datagrams, one flow sample (raw packet header record) per sampled frame.
#[derive(Debug, Clone)]
pub struct SflowEncoder {
    agent: IpAddr,
    sub_agent: u32,
    header_bytes: usize,
    sequence: u32,
    sample_sequence: u32,
    samples: u32,
    body: Vec<u8>,
}

impl SflowEncoder {
    pub fn new(agent: IpAddr, sub_agent: u32) -> Self {
        Self {
            agent,
            sub_agent,
            header_bytes: DEFAULT_HEADER_BYTES,
            sequence: 1,
            sample_sequence: 1,
            samples: 0,
            body: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    /// Bytes of each frame to copy (at least 64, at most 256).
    pub fn with_header_bytes(mut self, bytes: usize) -> Self {
        self.header_bytes = bytes.clamp(64, 256);
        self
    }

    /// Samples waiting in the current datagram.
    pub fn pending_samples(&self) -> u32 {
        self.samples
    }

    /// Adds a sample of `frame` (its first bytes are copied; `wire_len` is its length on the
    /// wire). Returns a finished datagram when the current one had no room left for it.
    /// Frames of link types sFlow cannot name (anything but Ethernet, IPv4, IPv6 / raw) are
    /// skipped and `None` returned.
    #[allow(clippy::too_many_arguments)]
    pub fn push_sample(
        &mut self,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
        sampling_rate: u32,
        input_if: u32,
        output_if: u32,
        uptime_ms: u32,
    ) -> Option<Vec<u8>> {
        let header_protocol = match (link, frame.first().map(|b| b >> 4)) {
            (LinkType::Ethernet, _) => 1,
            (LinkType::Ipv4, _) | (LinkType::Raw, Some(4)) => 11,
            (LinkType::Ipv6, _) | (LinkType::Raw, Some(6)) => 12,
            _ => return None,
        };
        let captured = frame.len().min(self.header_bytes);
        let padded = captured.div_ceil(4) * 4;
        let record_len = 16 + padded;
        let sample_len = 32 + 8 + record_len;
        let header_len = if self.agent.is_ipv4() { DATAGRAM_HEADER_V4 } else { DATAGRAM_HEADER_V6 };
        let mut finished = None;
        if self.samples > 0 && header_len + self.body.len() + 8 + sample_len > MAX_DATAGRAM {
            finished = self.flush(uptime_ms);
        }
        let body = &mut self.body;
        put(body, 1); // flow sample, enterprise 0
        put(body, sample_len as u32);
        put(body, self.sample_sequence);
        put(body, input_if & 0x00ff_ffff); // source id: type 0 (ifIndex)
        put(body, sampling_rate.max(1));
        put(body, self.sample_sequence.wrapping_mul(sampling_rate.max(1))); // sample pool
        put(body, 0); // drops
        put(body, input_if);
        put(body, output_if);
        put(body, 1); // one record
        put(body, 1); // raw packet header
        put(body, record_len as u32);
        put(body, header_protocol);
        put(body, wire_len);
        put(body, 0); // stripped
        put(body, captured as u32);
        body.extend_from_slice(&frame[..captured]);
        body.resize(body.len() + (padded - captured), 0);
        self.sample_sequence = self.sample_sequence.wrapping_add(1);
        self.samples += 1;
        finished
    }

    /// The datagram holding the pending samples, if any.
    pub fn flush(&mut self, uptime_ms: u32) -> Option<Vec<u8>> {
        if self.samples == 0 {
            return None;
        }
        let mut datagram = Vec::with_capacity(DATAGRAM_HEADER_V6 + self.body.len());
        put(&mut datagram, 5);
        match self.agent {
            IpAddr::V4(v4) => {
                put(&mut datagram, 1);
                datagram.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                put(&mut datagram, 2);
                datagram.extend_from_slice(&v6.octets());
            }
        }
        put(&mut datagram, self.sub_agent);
        put(&mut datagram, self.sequence);
        put(&mut datagram, uptime_ms);
        put(&mut datagram, self.samples);
        datagram.extend_from_slice(&self.body);
        self.body.clear();
        self.samples = 0;
        self.sequence = self.sequence.wrapping_add(1);
        Some(datagram)
    }
}

fn put(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sflow::{SflowDecoder, SflowLimits};
    use crate::{TrafficRecord, UnixNanos};
    use proptest::prelude::*;

    fn udp_frame(dst_last: u8, ip_len: u16) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, dst_last]);
        frame.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 8, 0, 0]);
        frame.resize(14 + usize::from(ip_len), 0xee);
        frame
    }

    fn decode_all(datagrams: &[Vec<u8>]) -> (Vec<TrafficRecord>, SflowDecoder) {
        let mut decoder = SflowDecoder::new(SflowLimits::default());
        let mut records = Vec::new();
        for datagram in datagrams {
            decoder.decode("127.0.0.1".parse().unwrap(), datagram, UnixNanos(1), &mut records);
        }
        (records, decoder)
    }

    #[test]
    fn samples_round_trip_through_the_decoder() {
        let mut encoder = SflowEncoder::new("192.0.2.9".parse().unwrap(), 3);
        let mut datagrams = Vec::new();
        for i in 0..100u16 {
            let frame = udp_frame((i % 7) as u8, 100 + i * 10);
            datagrams.extend(encoder.push_sample(
                LinkType::Ethernet,
                &frame,
                frame.len() as u32,
                10,
                4,
                5,
                1000,
            ));
        }
        datagrams.extend(encoder.flush(2000));
        assert!(datagrams.len() > 1, "several datagrams");
        assert!(datagrams.iter().all(|d| d.len() <= MAX_DATAGRAM));
        let (records, decoder) = decode_all(&datagrams);
        assert_eq!(records.len(), 100);
        let bytes: u64 = records.iter().map(|r| r.scaled_bytes()).sum();
        assert_eq!(bytes, (0..100u64).map(|i| (100 + i * 10) * 10).sum::<u64>());
        assert!(
            records.iter().all(|r| r.src_port == Some(53) && r.input_if == Some(4) && r.sampling_rate == 10)
        );
        let (_, stats) = decoder.stats().next().unwrap();
        assert_eq!((stats.decode_errors, stats.sequence_gaps), (0, 0));
    }

    proptest! {
        #[test]
        fn any_frames_encode_into_decodable_datagrams(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
            ipv6_agent: bool,
        ) {
            let agent: IpAddr = if ipv6_agent { "2001:db8::9".parse().unwrap() } else { "192.0.2.9".parse().unwrap() };
            let mut encoder = SflowEncoder::new(agent, 0);
            let mut datagrams = Vec::new();
            for frame in &frames {
                datagrams.extend(encoder.push_sample(LinkType::Raw, frame, frame.len() as u32, 1, 1, 2, 5));
            }
            datagrams.extend(encoder.flush(6));
            for datagram in &datagrams {
                prop_assert!(datagram.len() <= MAX_DATAGRAM);
            }
            // Framing is always valid: the decoder never reports a framing error, whatever
            // the frames held (undecodable headers are counted per sample, not as framing).
            let (records, _) = decode_all(&datagrams);
            prop_assert!(records.len() <= frames.len());
        }
    }
}
