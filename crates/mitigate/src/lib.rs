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

#[cfg(test)]
mod schema_tests {
    use rampart_contract::schema::{check_published, generate};

    #[test]
    fn published_schemas_are_current() {
        let dir = env!("CARGO_MANIFEST_DIR");
        check_published(dir, "audit-record", &generate::<crate::audit::AuditRecord>()).unwrap();
        check_published(dir, "stored-decision", &generate::<crate::store::StoredDecision>()).unwrap();
        check_published(dir, "notice", &generate::<crate::script::Notice<'static>>()).unwrap();
    }
}
