//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;

/// Validates `document` against the published schema `docs/schema/NAME.schema.json`.
pub fn assert_valid(name: &str, document: &Value) {
    let path = format!("{}/../../docs/schema/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name} document does not match {path}:\n{}\n{document:#}", errors.join("\n"));
}

/// The text of a target (`198.51.100.10`, `198.51.100.0/24`, the group's name) from its JSON.
pub fn target(attack: &Value) -> String {
    let t = &attack["target"];
    for key in ["host", "prefix"] {
        if let Some(s) = t[key].as_str() {
            return s.to_owned();
        }
    }
    t["group"]["name"].as_str().unwrap_or_default().to_owned()
}
