//! `rampart attacks list|show`: read the attack store (also while `rampart run` writes it).

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rampart_store::{StoreReader, StoredAttack};
use serde_json::Value;

use crate::report::unix_time;

#[derive(Debug, Args)]
pub struct AttacksArgs {
    #[command(subcommand)]
    pub command: AttacksCommand,
}

#[derive(Debug, Subcommand)]
pub enum AttacksCommand {
    /// Every attack recorded, oldest first.
    List {
        /// Data directory of `rampart run`.
        #[arg(long, value_name = "DIR", default_value = "rampart-data")]
        data_dir: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One attack: its latest state and every event.
    Show {
        /// Attack id (as printed by `rampart run` and `attacks list`).
        id: u64,
        #[arg(long, value_name = "DIR", default_value = "rampart-data")]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: AttacksArgs) -> Result<()> {
    let mut out = io::stdout().lock();
    match args.command {
        AttacksCommand::List { data_dir, json } => {
            let attacks = StoreReader::open(&data_dir)?.attacks()?;
            if json {
                serde_json::to_writer_pretty(&mut out, &attacks)?;
                writeln!(out)?;
            } else if attacks.is_empty() {
                writeln!(out, "no attacks recorded in {}", data_dir.display())?;
            } else {
                print_table(&mut out, &attacks)?;
            }
        }
        AttacksCommand::Show { id, data_dir, json } => {
            let store = StoreReader::open(&data_dir)?;
            let Some(attack) = store.attack(id)? else {
                bail!("no attack {id} in {}", data_dir.display());
            };
            let events = store.events(id)?;
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({ "attack": attack, "events": events }),
                )?;
                writeln!(out)?;
            } else {
                print_table(&mut out, std::slice::from_ref(&attack))?;
                writeln!(out)?;
                if let Ok(typed) = serde_json::from_value::<rampart_contract::Attack>(attack.attack.clone()) {
                    writeln!(out, "{}", rampart_contract::text::explanation(&typed))?;
                }
                writeln!(
                    out,
                    "signature: {}",
                    attack.attack.get("signature").map(Value::to_string).unwrap_or_default()
                )?;
                writeln!(out, "events:")?;
                for event in &events {
                    writeln!(
                        out,
                        "  #{:<6} {:<7} {} peak {} pps",
                        event.seq,
                        format!("{:?}", event.kind).to_lowercase(),
                        unix_time(event.recorded as f64 / 1e9),
                        number(&event.attack, "peak_pps"),
                    )?;
                }
            }
        }
    }
    out.flush().context("cannot write to standard output")
}

fn print_table(out: &mut impl Write, attacks: &[StoredAttack]) -> io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<11} {:<40} {:<28} {:<20} {:>12} {:>14}",
        "id", "status", "target", "vectors", "start (UTC)", "peak pps", "peak bps"
    )?;
    for attack in attacks {
        let a = &attack.attack;
        let vectors = a
            .get("vectors")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        writeln!(
            out,
            "{:>5}  {:<11} {:<40} {:<28} {:<20} {:>12} {:>14}",
            attack.id,
            format!("{:?}", attack.status).to_lowercase(),
            target_label(a),
            vectors,
            unix_time(a.get("start").and_then(Value::as_f64).unwrap_or(0.0)),
            number(a, "peak_pps"),
            number(a, "peak_bps"),
        )?;
    }
    Ok(())
}

/// The target, marked when the attack leaves the protected network.
fn target_label(attack: &Value) -> String {
    let target = attack
        .get("target")
        .and_then(|t| serde_json::from_value::<rampart_contract::Target>(t.clone()).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    if text(attack, "direction") == "outbound" { format!("{target} (outbound)") } else { target }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_targets_are_marked() {
        let out = serde_json::json!({"target": {"host": "198.51.100.66"}, "direction": "outbound"});
        let inbound = serde_json::json!({"target": {"prefix": "198.51.100.0/24"}, "direction": "inbound"});
        assert_eq!(target_label(&out), "198.51.100.66 (outbound)");
        assert_eq!(target_label(&inbound), "198.51.100.0/24");
    }

    #[test]
    fn formats_unix_time() {
        assert_eq!(unix_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(unix_time(1_700_000_000.5), "2023-11-14 22:13:20");
        assert_eq!(unix_time(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(unix_time(f64::NAN), "1970-01-01 00:00:00");
    }
}
