//! Rampart's BGP speaker: announces FlowSpec (RFC 8955, RFC 8956) and RTBH (RFC 7999) routes
//! derived from the contract's decisions to several peers.
//!
//! The core is pure, in the manner of quinn-proto: [`message`], [`attr`], [`flowspec`] and
//! [`community`] are the codec (bytes in, typed values out, and back); [`route`] turns a
//! [`rampart_contract::Decision`] into routes and a peer's UPDATEs; [`rib`] is the per-peer
//! Adj-RIB-Out with its rule budget, which [`budget`] fills (aggregating, else dropping by priority); [`session`] is the RFC 4271 session state machine, fed
//! bytes and `now`, returning bytes to send. Only [`driver`] touches sockets and clocks.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod attr;
pub mod budget;
pub mod community;
pub mod config;
pub mod driver;
mod error;
pub mod family;
pub mod flowspec;
pub mod message;
pub mod rib;
pub mod route;
pub mod session;
mod wire;

pub use error::CodecError;
