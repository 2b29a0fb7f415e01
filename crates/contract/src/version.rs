//! Versioned JSON documents.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attack::{Attack, AttackEvent, EventKind};

/// The version of every JSON document this build writes. Bump it when a field changes
/// meaning or disappears; adding optional fields keeps it.
pub const SCHEMA_VERSION: u32 = 1;

/// The `schema_version` field of a document: always [`SCHEMA_VERSION`] when written; reading a
/// document from a newer Rampart fails with a message saying so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaVersion;

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(SCHEMA_VERSION)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = u32::deserialize(deserializer)?;
        if version == SCHEMA_VERSION {
            Ok(SchemaVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "schema version {version}, but this Rampart reads version {SCHEMA_VERSION}"
            )))
        }
    }
}

impl JsonSchema for SchemaVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Version of the document's schema",
            "const": SCHEMA_VERSION
        })
    }
}

/// One attack lifecycle event as the daemon prints it (one JSON line) and posts it to the
/// webhook: the typed attack plus its explanation rendered for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventDocument {
    pub schema_version: SchemaVersion,
    pub event: EventKind,
    pub attack: Attack,
    /// Why it was declared, in words (rendered from `attack.trigger`).
    pub explanation: String,
}

impl EventDocument {
    pub fn new(event: &AttackEvent) -> Self {
        EventDocument {
            schema_version: SchemaVersion,
            event: event.kind,
            attack: event.attack.clone(),
            explanation: crate::text::explanation(&event.attack),
        }
    }
}

/// What `rampart analyze --json` prints: every attack found, by start time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttackReport {
    pub schema_version: SchemaVersion,
    pub attacks: Vec<Attack>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_written_and_checked() {
        assert_eq!(serde_json::to_string(&SchemaVersion).unwrap(), SCHEMA_VERSION.to_string());
        assert_eq!(
            serde_json::from_str::<SchemaVersion>(&SCHEMA_VERSION.to_string()).unwrap(),
            SchemaVersion
        );
        let newer = serde_json::from_str::<SchemaVersion>(&(SCHEMA_VERSION + 1).to_string());
        assert!(newer.unwrap_err().to_string().contains("this Rampart reads version"));
    }
}
