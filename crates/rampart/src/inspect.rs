//! `rampart inspect`: a capture file (or standard input) to a traffic report.

use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rampart_telemetry::{CaptureDecodeStats, CaptureFormat, TrafficSummary};
use serde::Serialize;

use crate::capture_input::CaptureInput;
use crate::report::{TrafficReport, group};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// pcap or pcapng capture (detected by content); `-` reads a stream from standard input,
    /// e.g. `tcpdump -w - | rampart inspect -`.
    pub file: PathBuf,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// Destinations listed in the readable summary.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

/// `decode` section of the inspect report.
#[derive(Debug, Serialize)]
struct InspectDecode {
    format: &'static str,
    #[serde(flatten)]
    stats: CaptureDecodeStats,
    /// The framing error that ended decoding early, if any (everything before it was counted).
    error: Option<String>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let mut input = CaptureInput::open(&args.file)?;
    let format = input.records.format();
    let mut summary = TrafficSummary::new();
    let framing_error = input.for_each(|record| summary.add(record))?;
    let stats = input.records.stats();
    let name = input.name;
    if let Some(error) = &framing_error {
        eprintln!(
            "rampart: warning: {name}: {error}; the {} frames before it were counted",
            group(stats.frames)
        );
    } else if stats.container.truncated {
        eprintln!("rampart: warning: {name} ends inside a record (cut short or still being written)");
    }
    let format_name = match format {
        CaptureFormat::Pcap { nanos: true, .. } => "pcap (nanosecond)",
        CaptureFormat::Pcap { nanos: false, .. } => "pcap (microsecond)",
        CaptureFormat::Pcapng => "pcapng",
    };
    let report =
        TrafficReport::new(&summary, InspectDecode { format: format_name, stats, error: framing_error });
    if args.json {
        report.print_json().context("cannot write to standard output")?;
    } else {
        let mut out = io::stdout().lock();
        print_human(&mut out, &name, &report, args.top).context("cannot write to standard output")?;
    }
    Ok(())
}

fn print_human(
    out: &mut impl io::Write,
    name: &str,
    report: &TrafficReport<InspectDecode>,
    top: usize,
) -> io::Result<()> {
    let decode = &report.decode;
    writeln!(out, "capture      {name} ({})", decode.format)?;
    report.print_human(out, top)?;
    writeln!(out)?;
    let stats = &decode.stats;
    writeln!(
        out,
        "decode       frames {}, IP records {}, non-IP frames {}, undecodable frames {}, skipped blocks {}, container errors {}{}",
        group(stats.frames),
        group(stats.records),
        group(stats.non_ip_frames),
        group(stats.undecodable_frames),
        group(stats.container.skipped_blocks),
        group(stats.container.decode_errors),
        if stats.container.truncated { ", truncated" } else { "" }
    )
}
