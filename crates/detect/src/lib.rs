//! Rampart detection: [`TrafficRecord`](rampart_telemetry::TrafficRecord)s and event time in,
//! attack lifecycle events out. Pure: no sockets, no clocks.
//!
//! Per destination host and per second, the [`Engine`] counts inbound packets by class (TCP
//! SYN, ACK, RST, other TCP, UDP, ICMP, non-initial fragments, other; UDP from reflector ports)
//! and bytes, checks them against the host's [`Thresholds`], and aggregates hosts under their
//! thresholds per prefix (/24, /64) to catch carpet bombing. A threshold held `onset_secs`
//! consecutive seconds starts an attack; `quiet_secs` seconds under every threshold end it.
//!
//! ```
//! use rampart_detect::{DetectConfig, Engine};
//! use rampart_telemetry::UnixNanos;
//! let mut engine = Engine::new(DetectConfig::default());
//! # let records: Vec<rampart_telemetry::TrafficRecord> = Vec::new();
//! for record in &records {
//!     for event in engine.advance(record.start) {
//!         println!("{} {}", event.kind, event.attack.target);
//!     }
//!     engine.observe(record);
//! }
//! let last = engine.finish();
//! # assert!(last.is_empty());
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod attack;
pub mod baseline;
pub mod class;
pub mod config;
pub mod engine;
pub mod flows;
pub mod profile;
pub mod threat;

pub use attack::{Attack, AttackEvent, AttackId, Direction, EventKind, Level, Metric, Trigger};
pub use baseline::{Baseline, BaselineConfig, BaselineError, BaselineStats, BaselineTable, Sample};
pub use class::{AMPLIFICATION_PORTS, Class, Vector, classify};
pub use config::{Aggregation, ConfigError, DetectConfig, HostGroup, Lifecycle, Limits, Policy, Thresholds};
pub use engine::{Engine, EngineStats, Footprint, TrafficRates};
pub use rampart_contract::{Collateral, PacketSample, Share, Signature, Target};
pub use threat::{ThreatConfig, ThreatLevel, ThreatWindow};
