//! Walking one TPACKET_V3 block: the block descriptor, then a chain of packet headers, each
//! followed by its link-layer address (`sockaddr_ll`) and the captured bytes.
//!
//! Safe code over a byte slice: the ring hands a block over as `&[u8]` once the kernel has
//! retired it, and every offset read from it (the kernel's, but still only numbers in memory)
//! is checked against the slice. The walk yields at most `num_pkts` frames and only moves
//! forward, so a corrupt block ends it early instead of looping or reading past the end.
//!
//! Layouts (`linux/if_packet.h`, native byte order):
//!
//! ```text
//! tpacket_block_desc  version u32 @0, offset_to_priv u32 @4, tpacket_hdr_v1 @8:
//!                     block_status u32 @8, num_pkts u32 @12, offset_to_first_pkt u32 @16,
//!                     blk_len u32 @20, seq_num u64 @24, ts_first @32, ts_last @40   (48 bytes)
//! tpacket3_hdr        tp_next_offset u32 @0, tp_sec @4, tp_nsec @8, tp_snaplen @12, tp_len @16,
//!                     tp_status @20, tp_mac u16 @24, tp_net u16 @26, rxhash @28,
//!                     vlan_tci @32, vlan_tpid u16 @36                                (48 bytes)
//! sockaddr_ll         at TPACKET_ALIGN(48) = 48: family u16, protocol u16 (big endian),
//!                     ifindex i32, hatype u16 @+8, pkttype u8 @+10, halen u8, addr [u8; 8]
//! ```

/// Size of the block descriptor (`tpacket_block_desc` with `tpacket_hdr_v1`).
pub const BLOCK_HEADER_LEN: usize = 48;
/// Size of a packet header (`tpacket3_hdr`).
pub const PACKET_HEADER_LEN: usize = 48;
/// Where the `sockaddr_ll` starts after a packet header (`TPACKET_ALIGN(sizeof tpacket3_hdr)`).
pub const SOCKADDR_OFFSET: usize = 48;
/// Size of `sockaddr_ll`.
pub const SOCKADDR_LEN: usize = 20;

/// `tp_status` bit: the VLAN tag the NIC stripped is in `vlan_tci`.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `block_status` bit: the block's timer expired before it was full.
const TP_STATUS_BLK_TMO: u32 = 1 << 5;

/// One captured frame inside a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, seconds and nanoseconds since the Unix epoch.
    pub sec: u32,
    pub nsec: u32,
    /// Length of the frame on the wire, from the link-layer header on (`tp_len`).
    pub wire_len: u32,
    /// The captured bytes, from the link-layer header on (at most the snap length).
    pub data: &'a [u8],
    /// Where the network header starts inside `data` (`tp_net - tp_mac`; 0 when the device
    /// has no link-layer header).
    pub network_offset: usize,
    /// The device's ARPHRD_* hardware type (1 Ethernet, 772 loopback, 65534 none...).
    pub hatype: u16,
    /// The link-layer protocol (an EtherType, e.g. 0x0800 IPv4).
    pub protocol: u16,
    /// PACKET_HOST, PACKET_OUTGOING...: who the frame was for.
    pub pkttype: u8,
    /// The VLAN tag the NIC took off the frame, if any.
    pub vlan_tci: Option<u16>,
}

/// The descriptor of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub version: u32,
    pub status: u32,
    pub num_pkts: u32,
    pub offset_to_first_pkt: u32,
    pub blk_len: u32,
    pub seq_num: u64,
}

impl BlockHeader {
    /// The block was retired by its timeout, not because it was full.
    pub fn timed_out(&self) -> bool {
        self.status & TP_STATUS_BLK_TMO != 0
    }
}

/// Why a block (or the rest of it) could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The slice is shorter than a block descriptor.
    #[error("block of {0} bytes is shorter than its descriptor")]
    Short(usize),
    /// A packet header, its address or its bytes lie outside the block.
    #[error("packet {index} of the block lies outside it")]
    OutOfBounds {
        /// Which packet (0-based).
        index: u32,
    },
    /// A packet before the last one says there is no next one, or points backwards.
    #[error("packet {index} of the block has a bad next offset")]
    BadNextOffset {
        /// Which packet (0-based).
        index: u32,
    },
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let raw = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([raw[0], raw[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let low = u64::from(u32_at(bytes, at)?);
    let high = u64::from(u32_at(bytes, at.checked_add(4)?)?);
    Some(if cfg!(target_endian = "little") { low | high << 32 } else { high | low << 32 })
}

/// Reads a block's descriptor.
pub fn header(block: &[u8]) -> Result<BlockHeader, BlockError> {
    let short = BlockError::Short(block.len());
    if block.len() < BLOCK_HEADER_LEN {
        return Err(short);
    }
    let read = || {
        Some(BlockHeader {
            version: u32_at(block, 0)?,
            status: u32_at(block, 8)?,
            num_pkts: u32_at(block, 12)?,
            offset_to_first_pkt: u32_at(block, 16)?,
            blk_len: u32_at(block, 20)?,
            seq_num: u64_at(block, 24)?,
        })
    };
    read().ok_or(short)
}

/// The frames of a block, in order. Ends after `num_pkts` frames, or at the first frame that
/// does not fit (then [`Frames::error`] says why).
pub fn frames(block: &[u8]) -> Result<Frames<'_>, BlockError> {
    let header = header(block)?;
    // The kernel fills at most `blk_len` bytes; never trust it past the slice either.
    let end = usize::try_from(header.blk_len).map_or(block.len(), |len| len.min(block.len()));
    Ok(Frames {
        block: block.get(..end).unwrap_or(block),
        header,
        next: usize::try_from(header.offset_to_first_pkt).ok(),
        index: 0,
        error: None,
    })
}

/// Iterator over a block's frames.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    block: &'a [u8],
    header: BlockHeader,
    /// Offset of the next packet header; `None` once the walk is over.
    next: Option<usize>,
    index: u32,
    error: Option<BlockError>,
}

impl<'a> Frames<'a> {
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// Why the walk ended before `num_pkts` frames, if it did.
    pub fn error(&self) -> Option<BlockError> {
        self.error
    }

    fn fail(&mut self, error: BlockError) -> Option<Frame<'a>> {
        self.error = Some(error);
        self.next = None;
        None
    }

    fn frame_at(&self, at: usize) -> Option<(Frame<'a>, u32)> {
        let block = self.block;
        let field = |offset: usize| at.checked_add(offset);
        let next_offset = u32_at(block, field(0)?)?;
        let sec = u32_at(block, field(4)?)?;
        let nsec = u32_at(block, field(8)?)?;
        let snaplen = usize::try_from(u32_at(block, field(12)?)?).ok()?;
        let wire_len = u32_at(block, field(16)?)?;
        let status = u32_at(block, field(20)?)?;
        let mac = usize::from(u16_at(block, field(24)?)?);
        let net = usize::from(u16_at(block, field(26)?)?);
        let vlan_tci = u32_at(block, field(32)?)?;
        let address = field(SOCKADDR_OFFSET)?;
        let address = block.get(address..address.checked_add(SOCKADDR_LEN)?)?;
        let protocol = u16::from_be_bytes([address[2], address[3]]);
        let hatype = u16::from_ne_bytes([address[8], address[9]]);
        let pkttype = address[10];
        let start = field(mac)?;
        let data = block.get(start..start.checked_add(snaplen)?)?;
        // A network header before the link-layer one, or past the captured bytes, is not
        // usable: point it at the end so decoding sees a truncated packet.
        let network_offset = net.checked_sub(mac).filter(|&n| n <= data.len()).unwrap_or(data.len());
        let vlan_tci = (status & TP_STATUS_VLAN_VALID != 0).then_some(vlan_tci as u16);
        Some((
            Frame { sec, nsec, wire_len, data, network_offset, hatype, protocol, pkttype, vlan_tci },
            next_offset,
        ))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let at = self.next?;
        if self.index >= self.header.num_pkts {
            self.next = None;
            return None;
        }
        let index = self.index;
        let Some((frame, next_offset)) = self.frame_at(at) else {
            return self.fail(BlockError::OutOfBounds { index });
        };
        self.index += 1;
        if self.index < self.header.num_pkts {
            // Offsets only grow, by at least a header: the walk cannot loop.
            let step = usize::try_from(next_offset).ok().filter(|&s| s >= PACKET_HEADER_LEN);
            match step.and_then(|s| at.checked_add(s)) {
                Some(next) => self.next = Some(next),
                None => {
                    self.error = Some(BlockError::BadNextOffset { index });
                    self.next = None;
                }
            }
        } else {
            self.next = None;
        }
        Some(frame)
    }
}

/// Builds blocks the way the kernel lays them out, for tests here and in the crates that use
/// the ring.
pub mod synthetic {
    use super::{BLOCK_HEADER_LEN, SOCKADDR_OFFSET};

    /// One frame to put in a block.
    #[derive(Debug, Clone)]
    pub struct SyntheticFrame {
        pub sec: u32,
        pub nsec: u32,
        pub data: Vec<u8>,
        /// Wire length (at least `data.len()`).
        pub wire_len: u32,
        pub hatype: u16,
        pub protocol: u16,
        pub network_offset: u16,
    }

    /// Space a frame takes: header, address, data, rounded up to 16 as the kernel does.
    fn frame_space(frame: &SyntheticFrame) -> usize {
        (SOCKADDR_OFFSET + 32 + frame.data.len()).div_ceil(16) * 16
    }

    /// A block of `size` bytes (grown to fit) holding `frames`, with status `TP_STATUS_USER`.
    pub fn block(frames: &[SyntheticFrame], size: usize) -> Vec<u8> {
        let needed = BLOCK_HEADER_LEN + frames.iter().map(frame_space).sum::<usize>();
        let mut block = vec![0u8; size.max(needed)];
        let put32 = |block: &mut [u8], at: usize, v: u32| block[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut block, 0, 3);
        put32(&mut block, 8, 1);
        put32(&mut block, 12, frames.len() as u32);
        put32(&mut block, 16, BLOCK_HEADER_LEN as u32);
        let mut at = BLOCK_HEADER_LEN;
        for (i, frame) in frames.iter().enumerate() {
            let space = frame_space(frame);
            let next = if i + 1 == frames.len() { 0 } else { space as u32 };
            // The kernel puts the link-layer header at TPACKET3_HDRLEN (header + address),
            // aligned; 32 bytes after the address here, like a small tp_reserve.
            let mac = (SOCKADDR_OFFSET + 32) as u16;
            put32(&mut block, at, next);
            put32(&mut block, at + 4, frame.sec);
            put32(&mut block, at + 8, frame.nsec);
            put32(&mut block, at + 12, frame.data.len() as u32);
            put32(&mut block, at + 16, frame.wire_len);
            put32(&mut block, at + 20, 1);
            block[at + 24..at + 26].copy_from_slice(&mac.to_ne_bytes());
            block[at + 26..at + 28].copy_from_slice(&(mac + frame.network_offset).to_ne_bytes());
            let address = at + SOCKADDR_OFFSET;
            block[address..address + 2].copy_from_slice(&17u16.to_ne_bytes());
            block[address + 2..address + 4].copy_from_slice(&frame.protocol.to_be_bytes());
            block[address + 8..address + 10].copy_from_slice(&frame.hatype.to_ne_bytes());
            let data = at + usize::from(mac);
            block[data..data + frame.data.len()].copy_from_slice(&frame.data);
            at += space;
        }
        let blk_len = at as u32;
        put32(&mut block, 20, blk_len);
        block
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::{SyntheticFrame, block};
    use super::*;
    use proptest::prelude::*;

    fn frame(len: usize, seed: u8) -> SyntheticFrame {
        SyntheticFrame {
            sec: 1_767_225_600 + u32::from(seed),
            nsec: 1000 * u32::from(seed),
            data: (0..len).map(|i| (i as u8).wrapping_add(seed)).collect(),
            wire_len: len as u32 + 4,
            hatype: 1,
            protocol: 0x0800,
            network_offset: 14,
        }
    }

    #[test]
    fn walks_every_frame_with_its_fields() {
        let frames: Vec<_> = (0..5).map(|i| frame(60 + i * 37, i as u8)).collect();
        let bytes = block(&frames, 4096);
        let mut walk = super::frames(&bytes).unwrap();
        assert_eq!(walk.header().num_pkts, 5);
        assert_eq!(walk.header().version, 3);
        let seen: Vec<_> = walk.by_ref().collect();
        assert_eq!(walk.error(), None);
        assert_eq!(seen.len(), 5);
        for (got, want) in seen.iter().zip(&frames) {
            assert_eq!(got.data, want.data.as_slice());
            assert_eq!((got.sec, got.nsec, got.wire_len), (want.sec, want.nsec, want.wire_len));
            assert_eq!((got.hatype, got.protocol, got.network_offset), (1, 0x0800, 14));
            assert_eq!(got.vlan_tci, None);
        }
    }

    #[test]
    fn empty_block_and_short_slice() {
        let bytes = block(&[], 256);
        assert_eq!(super::frames(&bytes).unwrap().count(), 0);
        assert_eq!(super::frames(&bytes[..20]).unwrap_err(), BlockError::Short(20));
    }

    #[test]
    fn a_frame_past_the_end_stops_the_walk() {
        let frames: Vec<_> = (0..3).map(|i| frame(100, i)).collect();
        let mut bytes = block(&frames, 0);
        // Claim a huge snap length for the second frame.
        let second = BLOCK_HEADER_LEN + u32_at(&bytes, BLOCK_HEADER_LEN).unwrap() as usize;
        bytes[second + 12..second + 16].copy_from_slice(&u32::MAX.to_ne_bytes());
        let mut walk = super::frames(&bytes).unwrap();
        assert_eq!(walk.by_ref().count(), 1);
        assert_eq!(walk.error(), Some(BlockError::OutOfBounds { index: 1 }));
    }

    #[test]
    fn a_zero_next_offset_before_the_last_frame_stops_the_walk() {
        let frames: Vec<_> = (0..3).map(|i| frame(100, i)).collect();
        let mut bytes = block(&frames, 0);
        bytes[BLOCK_HEADER_LEN..BLOCK_HEADER_LEN + 4].copy_from_slice(&0u32.to_ne_bytes());
        let mut walk = super::frames(&bytes).unwrap();
        assert_eq!(walk.by_ref().count(), 1);
        assert_eq!(walk.error(), Some(BlockError::BadNextOffset { index: 0 }));
    }

    fn arb_frames() -> impl Strategy<Value = Vec<SyntheticFrame>> {
        prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..300), any::<u32>(), any::<u16>(), 0u16..40).prop_map(
                |(data, sec, hatype, network_offset)| SyntheticFrame {
                    sec,
                    nsec: sec % 1_000_000_000,
                    wire_len: data.len() as u32,
                    data,
                    hatype,
                    protocol: 0x86dd,
                    network_offset,
                },
            ),
            0..12,
        )
    }

    proptest! {
        /// Well-formed blocks give back exactly what was put in.
        #[test]
        fn round_trip(frames in arb_frames()) {
            let bytes = block(&frames, 0);
            let mut walk = super::frames(&bytes).unwrap();
            let seen: Vec<_> = walk.by_ref().collect();
            prop_assert_eq!(walk.error(), None);
            prop_assert_eq!(seen.len(), frames.len());
            for (got, want) in seen.iter().zip(&frames) {
                prop_assert_eq!(got.data, want.data.as_slice());
                prop_assert_eq!(got.hatype, want.hatype);
                prop_assert!(got.network_offset <= got.data.len());
            }
        }

        /// Mutated blocks (any bytes flipped, including every offset and count): no panic, every
        /// frame inside the block, never more frames than the descriptor says, and a walk that
        /// ends within `num_pkts` steps.
        #[test]
        fn mutated_blocks_stay_in_bounds(
            frames in arb_frames(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = block(&frames, 0);
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let bytes = &bytes[..cut.index(bytes.len() + 1)];
            if let Ok(walk) = super::frames(bytes) {
                let claimed = walk.header().num_pkts;
                let range = bytes.as_ptr_range();
                let mut count = 0u32;
                for frame in walk {
                    count += 1;
                    prop_assert!(count <= claimed);
                    let inside = frame.data.is_empty()
                        || (range.contains(&frame.data.as_ptr())
                            && frame.data.as_ptr_range().end <= range.end);
                    prop_assert!(inside);
                    prop_assert!(frame.network_offset <= frame.data.len());
                }
            }
        }

        /// Random bytes: no panic, bounded walk.
        #[test]
        fn random_blocks(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(walk) = super::frames(&bytes) {
                let claimed = walk.header().num_pkts;
                prop_assert!(walk.count() as u64 <= u64::from(claimed));
            }
        }
    }
}
