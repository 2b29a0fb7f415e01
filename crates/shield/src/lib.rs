//! Rampart's HTTP shield: a hardened HTTP/1.1 and HTTP/2 reverse proxy.
//!
//! Pure parts (rate limiting, connection caps, routing, forwarded headers, configuration) take
//! their input and `now`; the drivers (`server`, `proxy`, `body`, `watch`) wrap hyper.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access_log;
pub mod audit;
pub mod bans;
pub mod body;
pub mod challenge;
pub mod config;
pub mod connections;
pub mod defense;
pub mod fingerprint;
pub mod flood;
pub mod forwarded;
pub mod gcra;
pub mod h2_frames;
pub mod hardening;
pub mod metrics;
mod metrics_server;
pub mod observe;
pub mod origin;
pub mod proxy;
pub mod proxy_protocol;
pub mod routing;
pub mod server;
pub mod tls;
pub mod tunnel;
pub mod upstream;
pub mod watch;

pub use bans::{BanList, BanTable};
pub use config::{Config, ConfigError};
pub use hardening::Hardening;
pub use metrics::{Metrics, Reason};
pub use server::{ReloadError, Reloader, Shield, ShieldError};
