//! The traffic report printed by `inspect` and `collect`: one JSON object, or a readable summary.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use rampart_contract::SchemaVersion;
use rampart_telemetry::summary::{DestinationTotals, Totals, protocol_name};
use rampart_telemetry::{ExporterStats, TrafficSummary};
use schemars::JsonSchema;
use serde::Serialize;

/// The JSON shape both commands print (acceptance checks read these field names); its schema
/// is published as `docs/schema/traffic.schema.json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrafficReport<D: Serialize> {
    pub schema_version: SchemaVersion,
    /// IP packets and IP-layer bytes, sampling-scaled.
    pub packets: u64,
    pub bytes: u64,
    /// Every destination, by bytes descending.
    #[schemars(with = "Vec<DestinationSchema>")]
    pub destinations: Vec<DestinationTotals>,
    /// Keyed by IP protocol number.
    #[schemars(with = "BTreeMap<u8, TotalsSchema>")]
    pub protocols: BTreeMap<u8, Totals>,
    /// Decoder and collector statistics (per capture format or per input and exporter).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub decode: D,
}

/// The schema of a [`DestinationTotals`] (the telemetry crate has no schema support).
#[derive(JsonSchema)]
#[allow(dead_code)]
struct DestinationSchema {
    #[schemars(with = "std::net::IpAddr")]
    ip: String,
    packets: u64,
    bytes: u64,
}

/// The schema of a [`Totals`].
#[derive(JsonSchema)]
#[allow(dead_code)]
struct TotalsSchema {
    packets: u64,
    bytes: u64,
}

impl<D: Serialize> TrafficReport<D> {
    pub fn new(summary: &TrafficSummary, decode: D) -> Self {
        let total = summary.total();
        TrafficReport {
            schema_version: SchemaVersion,
            packets: total.packets,
            bytes: total.bytes,
            destinations: summary.destinations_by_bytes(),
            protocols: summary.protocols(),
            decode,
        }
    }

    pub fn print_json(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, self)?;
        writeln!(out)
    }

    /// Totals, the top destinations and the protocol mix; the caller adds decoder details.
    pub fn print_human(&self, out: &mut impl Write, top: usize) -> io::Result<()> {
        writeln!(out, "packets      {:>16}", group(self.packets))?;
        writeln!(out, "bytes        {:>16}  ({})", group(self.bytes), human_bytes(self.bytes))?;
        writeln!(out)?;
        let shown = self.destinations.len().min(top);
        writeln!(out, "destinations {:>16}  (top {shown} by bytes)", group(self.destinations.len() as u64))?;
        writeln!(out, "  {:<40} {:>14} {:>16} {:>7}", "ip", "packets", "bytes", "share")?;
        for destination in &self.destinations[..shown] {
            writeln!(
                out,
                "  {:<40} {:>14} {:>16} {:>6.1}%",
                destination.ip.to_string(),
                group(destination.packets),
                group(destination.bytes),
                percent(destination.bytes, self.bytes)
            )?;
        }
        writeln!(out)?;
        writeln!(out, "protocols")?;
        for (protocol, totals) in &self.protocols {
            let name =
                protocol_name(*protocol).map(|n| format!("{n} ({protocol})")).unwrap_or(protocol.to_string());
            writeln!(
                out,
                "  {:<14} {:>14} packets {:>16} bytes {:>6.1}%",
                name,
                group(totals.packets),
                group(totals.bytes),
                percent(totals.bytes, self.bytes)
            )?;
        }
        Ok(())
    }
}

/// Files larger than this get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 32 << 20;

/// A byte progress bar for reading a file of `size` bytes, when that is worth showing: a large
/// file and a terminal on stderr.
pub fn file_progress(size: Option<u64>) -> Option<ProgressBar> {
    let size = size.filter(|&s| s >= PROGRESS_THRESHOLD)?;
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    Some(bar)
}

/// Human summary of one exporter's decoder statistics.
pub fn exporter_stats_line(stats: &ExporterStats) -> String {
    format!(
        "datagrams {}, records {}, decode errors {}, unknown-template records {}, sequence gaps {}, drops {}, templates {}",
        group(stats.datagrams),
        group(stats.records),
        group(stats.decode_errors),
        group(stats.unknown_template_records),
        group(stats.sequence_gaps),
        group(stats.drops),
        stats.templates
    )
}

/// 1234567 -> "1,234,567".
pub fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_truth_schema_is_current() {
        let schema = rampart_contract::schema::generate::<rampart_trafficgen::GroundTruth>();
        rampart_contract::schema::check_published(env!("CARGO_MANIFEST_DIR"), "truth", &schema).unwrap();
    }

    #[test]
    fn published_schema_is_current() {
        let schema = rampart_contract::schema::generate::<TrafficReport<serde_json::Value>>();
        rampart_contract::schema::check_published(env!("CARGO_MANIFEST_DIR"), "traffic", &schema).unwrap();
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
