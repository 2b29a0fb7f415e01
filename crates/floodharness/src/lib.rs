//! A black-box HTTP flood harness for Rampart's tests and benchmarks, on loopback only.
//!
//! An in-process origin (the site), legitimate browsers (cookies, realistic headers, think time,
//! following a no-JavaScript challenge the way a browser does) and four bounded floods, each
//! connection bound to its own source address in 127.0.0.0/8. It measures what a visitor and
//! the origin see: the share of legitimate requests that succeed, those challenged or refused,
//! the flood requests the origin answered against those refused per second, the time from the
//! flood's start to its mitigation, and the origin's concurrency.
//!
//! This is a test and benchmark tool, never a user-facing attack command: every target must be
//! a loopback address ([`sources::ensure_loopback`]), and every loop ends by itself at a
//! deadline and a request cap.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod browser;
pub mod challenge;
pub mod client;
pub mod cookies;
pub mod error;
pub mod flood;
pub mod origin;
pub mod report;
pub mod scenario;
pub mod sources;

pub use error::HarnessError;
pub use flood::{FloodKind, FloodPlan};
pub use origin::{Origin, OriginConfig, OriginStats};
pub use report::Report;
pub use scenario::{Scenario, run_scenario};
