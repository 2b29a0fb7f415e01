//! The kernel-wrapping crate: the one place in Rampart where `unsafe` is allowed, each block
//! with a `// SAFETY:` line saying why it holds.
//!
//! * [`afpacket`]: packet capture from an interface (a mirror / SPAN port) through an
//!   AF_PACKET TPACKET_V3 ring: a memory-mapped ring of blocks the kernel fills and hands over
//!   whole, fanned out over several sockets (one per core) in one fanout group, with the
//!   kernel's drop counters. The ring's bytes are parsed by safe, bounds-checked code
//!   ([`afpacket::block`]) that is property-tested on random and mutated blocks.
//! * Host mitigation: Rampart's XDP filter and its nftables fallback, fed by the contract's
//!   decisions. The cores are pure: [`plan`] turns decisions (and SYN guards) into filter
//!   rules at `now`, [`dir248`] lays IPv4 source prefixes out as the program's direct-indexed
//!   table, [`layout`] encodes the map values byte for byte, [`nft::batch`] writes the
//!   nftables JSON batch. The drivers are thin: [`xdp`] loads, pins, attaches and reconciles
//!   the program's maps (feature `xdp`), [`nft::driver`] runs the batches through
//!   `nft -j -f -` and reads the sets back.
//! * [`sockopt`]: TCP-MD5 signatures (RFC 2385) on a socket, for the BGP speaker's sessions.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod afpacket;
pub mod dir248;
pub mod layout;
pub mod nft;
pub mod plan;
pub mod sockopt;
pub mod xdp;
