//! Thin async drivers around the telemetry decoders: UDP collectors for sFlow, NetFlow and IPFIX,
//! packet capture from an interface (AF_PACKET rings; libpcap optionally), and pcap streams from any reader (standard input).
//!
//! Drivers own the sockets, the clock and the tasks; all protocol logic stays in
//! `rampart-telemetry`, so what runs here is I/O and bookkeeping only.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod inputs;
pub mod interface;
#[cfg(feature = "live-capture")]
pub mod live;
pub mod udp;

#[cfg(feature = "live-capture")]
pub use live::{LiveCapture, LiveCaptureConfig, LiveCaptureError, LiveCaptureReport};

pub use inputs::{
    ExporterConfig, InputConfig, InputError, InputSnapshot, InputStats, Inputs, ListenOn, RunningInputs,
};
pub use interface::{CaptureError, InterfaceCapture, InterfaceConfig, InterfaceStats, RunningCapture};
pub use udp::{BindError, CollectorKind, UdpCollector, UdpCollectorReport};
