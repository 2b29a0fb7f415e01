//! Rampart's telemetry layer: everything an operator's network can export, turned into one
//! normalized stream of [`TrafficRecord`]s.
//!
//! Every decoder here is pure: bytes (and, where the format needs it, per-exporter state) in,
//! records and statistics out. Nothing in this crate opens a socket, reads a clock or spawns a
//! task; the drivers in `rampart-ingest` do that.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod capture;
pub mod capture_records;
pub mod datagram;
pub mod flow;
pub mod packet;
pub mod plausibility;
pub mod record;
pub mod sflow;
pub mod sflow_encode;
pub mod spread;
pub mod stats;
pub mod summary;

pub use capture::{
    CaptureError, CaptureFormat, CaptureInterface, CaptureReader, CaptureSliceReader, CaptureStats, Frame,
};
pub use capture_records::{CaptureDecodeStats, CaptureRecords};
pub use datagram::DatagramDecoder;
pub use flow::{FlowDecoder, FlowLimits};
pub use plausibility::{ImplausibleCounts, ImplausibleReason, PlausibilityLimits};
pub use record::{Exporter, Fragment, IcmpTypeCode, LinkType, RecordSource, TrafficRecord, UnixNanos};
pub use stats::ExporterStats;
pub use summary::TrafficSummary;
