//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::{Receiver, channel};

use serde_json::Value;

/// The child's stdout and stderr as channels of lines, each read by a thread of its own;
/// stderr is echoed (prefixed `daemon: `) so a failing test shows what the daemon said.
pub fn line_channels(child: &mut Child) -> (Receiver<String>, Receiver<String>) {
    let (out_tx, stdout) = channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
    }
    let (err_tx, stderr) = channel();
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("daemon: {line}");
                let _ = err_tx.send(line);
            }
        });
    }
    (stdout, stderr)
}

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
