//! Runs nftables transactions: one `nft -j -f -` per batch (JSON on stdin), then reads each
//! set back and checks it holds exactly the prefixes written.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use rampart_contract::EventTime;
use serde_json::Value;
use thiserror::Error;

use super::batch::{Desired, SET4, SET6, TABLE, parse_set, transaction};
use crate::plan::FilterPlan;

/// What can go wrong with nftables.
#[derive(Debug, Error)]
pub enum NftError {
    /// The `nft` program could not be started.
    #[error("running {program}: {source} (is nftables installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// nft rejected the transaction or listing (nothing of the batch was applied).
    #[error("nft {what} failed: {stderr}")]
    Rejected { what: String, stderr: String },
    /// What nft listed is not JSON we understand.
    #[error("reading set {set} back: {message}")]
    BadListing { set: String, message: String },
    /// The set read back differs from what was written.
    #[error(
        "set {set} holds {found} prefixes after the batch, {written} were written (first difference: {first})"
    )]
    Mismatch { set: String, written: usize, found: usize, first: String },
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftReport {
    pub src4: usize,
    pub src6: usize,
    pub signature_rules: usize,
    /// Decisions left to XDP (per-source rates, SYN guards) or covered by a broader prefix.
    pub skipped: usize,
}

/// Rampart's nftables table.
#[derive(Debug)]
pub struct NftFilter {
    /// The command that runs nft (`["nft"]`, or e.g. `["ip", "netns", "exec", NS, "nft"]`).
    command: Vec<String>,
    written: Option<Desired>,
}

impl NftFilter {
    /// With `command` running nft; nothing is read or written yet.
    pub fn new(command: Vec<String>) -> Self {
        NftFilter { command, written: None }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>, what: &str) -> Result<Vec<u8>, NftError> {
        let (program, prefix) = self.command.split_first().map_or(("nft", &[][..]), |(p, r)| (p.as_str(), r));
        let mut child = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Spawn { program: program.to_owned(), source })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A failed write shows up as nft's own error below.
            let _ = pipe.write_all(input);
        }
        let out = child
            .wait_with_output()
            .map_err(|source| NftError::Spawn { program: program.to_owned(), source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr: String = stderr.lines().take(6).collect::<Vec<_>>().join(" | ");
            return Err(NftError::Rejected { what: what.to_owned(), stderr });
        }
        Ok(out.stdout)
    }

    /// Applies `plan` at `now` in one transaction and checks both sets read back equal.
    pub fn apply(&mut self, plan: &FilterPlan, now: EventTime) -> Result<NftReport, NftError> {
        let desired = Desired::from_plan(plan, now);
        let tx = transaction(&desired, self.written.as_ref());
        let body = serde_json::to_vec(&tx)
            .map_err(|e| NftError::Rejected { what: "encoding".into(), stderr: e.to_string() })?;
        // Unknown state after a failure: the next batch flushes and refills.
        self.written = None;
        self.run(&["-j", "-f", "-"], Some(&body), "transaction")?;
        for (set, elements) in [(SET4, &desired.src4), (SET6, &desired.src6)] {
            let written: Vec<IpNet> = {
                let mut v: Vec<IpNet> = elements.iter().map(|e| e.net).collect();
                v.sort();
                v
            };
            let found = self.read_set(set)?;
            if found != written {
                let first = found
                    .iter()
                    .zip(&written)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("read {a}, wrote {b}"))
                    .unwrap_or_else(|| "one list is a prefix of the other".into());
                return Err(NftError::Mismatch {
                    set: set.into(),
                    written: written.len(),
                    found: found.len(),
                    first,
                });
            }
        }
        let report = NftReport {
            src4: desired.src4.len(),
            src6: desired.src6.len(),
            signature_rules: desired.signature_rules.len(),
            skipped: desired.skipped.len(),
        };
        self.written = Some(desired);
        Ok(report)
    }

    /// The prefixes set `set` of Rampart's table holds now.
    pub fn read_set(&self, set: &str) -> Result<Vec<IpNet>, NftError> {
        let out = self.run(&["-j", "list", "set", "inet", TABLE, set], None, "list set")?;
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| NftError::BadListing { set: set.into(), message: e.to_string() })?;
        parse_set(&v).map_err(|message| NftError::BadListing { set: set.into(), message })
    }

    /// Packets dropped by the source sets and by the signature rules, from the rule counters.
    pub fn dropped_packets(&self) -> Result<u64, NftError> {
        let out = self.run(&["-j", "list", "table", "inet", TABLE], None, "list table")?;
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| NftError::BadListing { set: TABLE.into(), message: e.to_string() })?;
        let mut total = 0;
        for item in v.get("nftables").and_then(Value::as_array).into_iter().flatten() {
            let Some(exprs) = item.get("rule").and_then(|r| r.get("expr")).and_then(Value::as_array) else {
                continue;
            };
            for e in exprs {
                total += e.get("counter").and_then(|c| c.get("packets")).and_then(Value::as_u64).unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Deletes Rampart's table (and only it), if present.
    pub fn remove(&mut self) -> Result<(), NftError> {
        self.written = None;
        let tx = serde_json::json!({ "nftables": [
            { "add": { "table": { "family": "inet", "name": TABLE } } },
            { "delete": { "table": { "family": "inet", "name": TABLE } } },
        ] });
        self.run(&["-j", "-f", "-"], Some(tx.to_string().as_bytes()), "delete table")?;
        Ok(())
    }
}
