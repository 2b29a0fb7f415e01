//! Rampart mitigation: what detection's attacks turn into, safely.
//!
//! - [`store`]: durable decisions (`decisions.redb`), reconciled at start, every change first
//!   in the hash-chained [`audit`] log (`audit.jsonl`).
//! - [`policy`]: per host group, an escalation ladder (notify → FlowSpec rate limit →
//!   FlowSpec discard → RTBH as the last resort), holds, repeat offenders, dry run. Pure:
//!   attack events and `now` in, steps out; tests drive it in simulated time.
//! - [`guard`]: the safety guards every decision passes, whoever proposed it. Pure and
//!   property-tested.
//! - [`config`]: the `[mitigation]` table.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod actuator;
pub mod audit;
pub mod config;
pub mod control;
pub mod guard;
#[cfg(test)]
mod guard_props;
pub mod mitigator;
pub mod policy;
pub mod script;
pub mod store;

pub use actuator::{Actuator, ActuatorError, Applied};
pub use config::{GroupPolicy, MitigationConfig, Rung};
pub use guard::{GuardConfig, Refusal};
pub use mitigator::{MitigationStats, Mitigator, Outcome, Unban};
pub use store::{DecisionReader, DecisionStore, NewDecision, StoredDecision};
