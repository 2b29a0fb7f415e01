//! What the engine reports: the shared vocabulary of `rampart-contract`.

pub use rampart_contract::{Attack, AttackEvent, AttackId, Direction, EventKind, Level, Metric, Trigger};
