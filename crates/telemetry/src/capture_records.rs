//! Captures to records: the pcap/pcapng container reader feeding the shared packet decoder.

use std::io::Read;

use serde::Serialize;

use crate::capture::{CaptureError, CaptureFormat, CaptureReader, CaptureStats};
use crate::packet::{self, PacketError};
use crate::record::{Exporter, RecordSource, TrafficRecord};

/// What decoding a capture produced, beyond the records themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaptureDecodeStats {
    /// Frames read from the container.
    pub frames: u64,
    /// Records produced (one per IP packet).
    pub records: u64,
    /// Frames that were not IP (ARP, LLDP, STP...): expected on a mirror port, not errors.
    pub non_ip_frames: u64,
    /// IP frames cut before the IP header ends, with a malformed IP header, or on an
    /// unsupported link type.
    pub undecodable_frames: u64,
    /// Container-level counters (blocks skipped, framing errors, truncated tail).
    pub container: CaptureStats,
}

/// Iterates over the IP packets of a pcap or pcapng stream as [`TrafficRecord`]s.
#[derive(Debug)]
pub struct CaptureRecords<R> {
    reader: CaptureReader<R>,
    frames: u64,
    records: u64,
    non_ip_frames: u64,
    undecodable_frames: u64,
}

impl<R: Read> CaptureRecords<R> {
    /// Reads the capture header; fails with [`CaptureError::NotACapture`] for anything that is
    /// neither pcap nor pcapng.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        Ok(Self {
            reader: CaptureReader::new(reader)?,
            frames: 0,
            records: 0,
            non_ip_frames: 0,
            undecodable_frames: 0,
        })
    }

    pub fn format(&self) -> CaptureFormat {
        self.reader.format()
    }

    /// The next IP packet's record; `Ok(None)` at the end of the capture (including a
    /// truncated tail, which is counted). An `Err` is a framing error that ends the stream.
    pub fn next_record(&mut self) -> Result<Option<TrafficRecord>, CaptureError> {
        loop {
            let Some(frame) = self.reader.next_frame()? else { return Ok(None) };
            self.frames += 1;
            match packet::decode(frame.link, frame.data, frame.wire_len) {
                Ok(headers) => {
                    self.records += 1;
                    let exporter = Exporter { addr: None, sub_id: frame.interface };
                    return Ok(Some(headers.into_record(frame.time, exporter, RecordSource::Pcap)));
                }
                Err(PacketError::NotIp(_)) => self.non_ip_frames += 1,
                Err(_) => self.undecodable_frames += 1,
            }
        }
    }

    /// Input bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.reader.stats().bytes_read
    }

    pub fn stats(&self) -> CaptureDecodeStats {
        CaptureDecodeStats {
            frames: self.frames,
            records: self.records,
            non_ip_frames: self.non_ip_frames,
            undecodable_frames: self.undecodable_frames,
            container: self.reader.stats().clone(),
        }
    }
}

impl<R: Read> Iterator for CaptureRecords<R> {
    type Item = Result<TrafficRecord, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_with(frames: &[&[u8]]) -> Vec<u8> {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        file.extend_from_slice(&65_535u32.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        for (i, frame) in frames.iter().enumerate() {
            file.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            file.extend_from_slice(&500_000u32.to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32 + 1000).to_le_bytes());
            file.extend_from_slice(frame);
        }
        file
    }

    #[test]
    fn ip_frames_become_records_and_the_rest_is_counted() {
        let mut ipv4_udp = vec![0u8; 12];
        ipv4_udp.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0x05, 0xdc, 0, 0, 0, 0, 64, 17, 0, 0]);
        ipv4_udp.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 7, 0, 53, 0x30, 0x39, 0, 8, 0, 0]);
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        let runt = [0u8; 10];
        let file = pcap_with(&[&ipv4_udp, &arp, &runt, &ipv4_udp]);
        let mut records = CaptureRecords::new(&file[..]).unwrap();
        let first = records.next_record().unwrap().unwrap();
        assert_eq!((first.bytes, first.dst_port, first.src_port), (1500, Some(12345), Some(53)));
        assert_eq!(first.start.0, 1_700_000_000_500_000_000);
        assert_eq!(records.by_ref().count(), 1);
        let stats = records.stats();
        assert_eq!(
            (stats.frames, stats.records, stats.non_ip_frames, stats.undecodable_frames),
            (4, 2, 1, 1)
        );
    }

    #[test]
    fn text_is_not_a_capture() {
        assert!(matches!(
            CaptureRecords::new(&b"hello, this is not a capture"[..]),
            Err(CaptureError::NotACapture)
        ));
    }
}
