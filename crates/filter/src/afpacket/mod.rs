//! Packet capture from an interface through an AF_PACKET TPACKET_V3 ring.
//!
//! ```text
//!  NIC / veth ──► kernel ──► fanout group (flow hash) ──► socket 1: ring of blocks ──► thread 1
//!                                                    └──► socket N: ring of blocks ──► thread N
//! ```
//!
//! [`Ring`] owns one socket and its memory-mapped ring: [`Ring::next_block`] waits (poll with a
//! timeout) for the next block the kernel retired, lends it out as bytes, and gives it back to
//! the kernel when the [`Block`] is dropped. [`Ring::open_group`] opens one socket per capture
//! thread in one fanout group. [`Ring::stats`] sums the kernel's `PACKET_STATISTICS` (frames
//! delivered, frames dropped because the ring was full). [`block::frames`] walks a block's
//! frames with bounds-checked safe code.

pub mod block;
mod ring;

pub use block::{BlockError, BlockHeader, Frame, Frames};
pub use ring::{Block, FanoutMode, Ring, RingConfig, RingError, RingStats, interface_index};

#[cfg(test)]
mod tests;
