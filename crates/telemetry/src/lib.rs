//! Rampart's telemetry layer: everything an operator's network can export, turned into one
//! normalized stream of [`TrafficRecord`]s.
//!
//! Every decoder here is pure: bytes (and, where the format needs it, per-exporter state) in,
//! records and statistics out. Nothing in this crate opens a socket, reads a clock or spawns a
//! task; the drivers in `rampart-ingest` do that.

#![forbid(unsafe_code)]

pub mod flow;
pub mod packet;
pub mod record;
pub mod stats;

pub use flow::{FlowDecoder, FlowLimits};
pub use record::{Exporter, Fragment, IcmpTypeCode, LinkType, RecordSource, TrafficRecord, UnixNanos};
pub use stats::ExporterStats;
