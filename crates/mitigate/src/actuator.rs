//! Actuators: what puts decisions into effect (the BGP speaker, the XDP/nftables filter, the
//! HTTP shield) or tells people about them (a script, a webhook). The mitigator calls them
//! after a change is durable and audited; an actuator that fails is logged and counted and
//! never undoes the decision (the next `reconcile` gives it the full set again).

use rampart_contract::{Attack, Decision, DecisionId};

/// Why an actuator could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActuatorError(pub String);

/// One decision put in force, with what it is about.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub decision: &'a Decision,
    /// The attack an automatic decision is for, as known at the time.
    pub attack: Option<&'a Attack>,
    /// What Rampart would have done (only actuators that [`Actuator::in_dry_run`] see these).
    pub dry_run: bool,
}

/// A layer that enacts decisions. Calls come from one thread and must return quickly: slow
/// work (a BGP session, a script) belongs on a queue of the actuator's own.
pub trait Actuator: Send {
    /// Short name for logs and metrics.
    fn name(&self) -> &str;

    /// Put `applied.decision` into effect.
    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError>;

    /// Take decision `id` out of effect (withdrawn or expired).
    fn withdraw(&mut self, id: DecisionId, dry_run: bool) -> Result<(), ActuatorError>;

    /// The complete set in force (at start, and when the actuator asks for it): anything the
    /// actuator holds that is not in `active` goes.
    fn reconcile(&mut self, active: &[Decision]) -> Result<(), ActuatorError>;

    /// Whether it also wants dry-run decisions (notifications do: they change nothing).
    fn in_dry_run(&self) -> bool {
        false
    }
}
