//! Host mitigation: Rampart's XDP filter and its nftables fallback, fed by the contract's
//! decisions.
//!
//! The cores are pure: [`plan`] turns decisions (and SYN guards) into filter rules at `now`,
//! [`dir248`] lays IPv4 source prefixes out as the program's direct-indexed table, [`layout`]
//! encodes the map values byte for byte, [`nft::batch`] writes the nftables JSON batch. The
//! drivers are thin: [`xdp`] loads, pins, attaches and reconciles the program's maps (feature
//! `xdp`), [`nft::driver`] runs the batches through `nft -j -f -` and reads the sets back.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod dir248;
pub mod layout;
pub mod nft;
pub mod plan;
pub mod xdp;
