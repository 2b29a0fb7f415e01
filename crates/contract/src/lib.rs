//! Rampart's one vocabulary: what detection reports and what the acting layers (BGP FlowSpec
//! and RTBH, the XDP/nftables filter, the HTTP shield, notifications) consume and produce.
//!
//! Everything here is a typed value: targets are addresses, prefixes or groups; a trigger
//! names its counter by level and metric; a signature's match fields are prefixes, port
//! ranges, flag value/mask pairs and length ranges. No layer parses strings produced by
//! another. Human text (explanations, tables) is rendered from these types at the edges, by
//! [`text`].
//!
//! Every JSON document Rampart writes carries a [`SchemaVersion`]; [`schema`] generates the
//! JSON Schema of each document (published under `docs/schema/`).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod attack;
mod decision;
pub mod schema;
mod signature;
mod signature_parse;
mod target;
pub mod text;
mod time;
mod trigger;
mod vector;
mod version;

pub use attack::{Attack, AttackEvent, AttackId, Campaign, EventKind, PacketSample, Share, VectorShare};
pub use decision::{Action, Decision, DecisionId, Origin, RouteTarget, Scope};
pub use signature::{Collateral, Confidence, FragmentMatch, LengthRange, PortRange, Signature, TcpFlags};
pub use signature_parse::{SignatureSyntax, parse_signature};
pub use target::{Direction, Policy, Target};
pub use time::EventTime;
pub use trigger::{Level, Metric, ThreatContext, ThreatLevel, Trigger};
pub use vector::{UnknownName, Vector};
pub use version::{AttackReport, EventDocument, SCHEMA_VERSION, SchemaVersion};
