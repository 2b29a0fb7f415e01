//! The kernel-wrapping crate: the one place in Rampart where `unsafe` is allowed, each block
//! with a `// SAFETY:` line saying why it holds.
//!
//! * [`afpacket`]: packet capture from an interface (a mirror / SPAN port) through an
//!   AF_PACKET TPACKET_V3 ring: a memory-mapped ring of blocks the kernel fills and hands over
//!   whole, fanned out over several sockets (one per core) in one fanout group, with the
//!   kernel's drop counters. The ring's bytes are parsed by safe, bounds-checked code
//!   ([`afpacket::block`]) that is property-tested on random and mutated blocks.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod afpacket;
