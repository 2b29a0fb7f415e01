//! `rampart inspect`: a capture file (or standard input) to a traffic report.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_telemetry::{CaptureDecodeStats, CaptureError, CaptureFormat, CaptureRecords, TrafficSummary};
use serde::Serialize;

use crate::report::{TrafficReport, file_progress, group};

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
    let name = args.file.display().to_string();
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file).with_context(|| format!("cannot open capture {name}"))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let mut records = match CaptureRecords::new(input) {
        Ok(records) => records,
        Err(CaptureError::NotACapture) => bail!("{name} is not a pcap or pcapng capture"),
        Err(CaptureError::TruncatedHeader) => bail!("{name} is too short to be a capture (header truncated)"),
        Err(error) => return Err(error).with_context(|| format!("cannot read capture {name}")),
    };
    let format = records.format();
    let progress = file_progress(size);
    let mut summary = TrafficSummary::new();
    let mut framing_error = None;
    let mut count: u64 = 0;
    loop {
        match records.next_record() {
            Ok(Some(record)) => {
                summary.add(&record);
                count += 1;
                if count.is_multiple_of(65_536)
                    && let Some(bar) = &progress
                {
                    bar.set_position(records.bytes_read());
                }
            }
            Ok(None) => break,
            Err(CaptureError::Io(error)) => {
                return Err(error).with_context(|| format!("cannot read capture {name}"));
            }
            Err(error) => {
                framing_error = Some(error.to_string());
                break;
            }
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let stats = records.stats();
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
