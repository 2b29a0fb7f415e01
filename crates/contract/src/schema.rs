//! JSON Schemas of the documents Rampart writes, generated from the types, and the check that
//! the published copies under `docs/schema/` are current.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;

/// The JSON Schema (draft 2020-12) of `T`, pretty-printed, with a trailing newline.
pub fn generate<T: JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// `docs/schema/` of the workspace, from a crate's manifest directory.
pub fn published_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("../../docs/schema")
}

/// Compares `schema` with the published `docs/schema/NAME.schema.json`; with
/// `RAMPART_UPDATE_SCHEMAS=1` in the environment, writes it instead. Returns what is wrong.
pub fn check_published(manifest_dir: &str, name: &str, schema: &str) -> Result<(), String> {
    let path = published_dir(manifest_dir).join(format!("{name}.schema.json"));
    if std::env::var_os("RAMPART_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        return std::fs::write(&path, schema).map_err(|e| format!("cannot write {}: {e}", path.display()));
    }
    match std::fs::read_to_string(&path) {
        Ok(published) if published == schema => Ok(()),
        Ok(_) => Err(format!(
            "{} is out of date with the types; regenerate with RAMPART_UPDATE_SCHEMAS=1 cargo test",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot read {}: {e} (generate with RAMPART_UPDATE_SCHEMAS=1 cargo test)",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttackReport, Decision, EventDocument};

    #[test]
    fn published_schemas_are_current() {
        let dir = env!("CARGO_MANIFEST_DIR");
        check_published(dir, "event", &generate::<EventDocument>()).unwrap();
        check_published(dir, "analyze", &generate::<AttackReport>()).unwrap();
        check_published(dir, "decision", &generate::<Decision>()).unwrap();
    }
}
