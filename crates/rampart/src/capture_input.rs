//! A capture named on the command line (a file, or `-` for standard input) read as records,
//! with the errors and the progress bar every subcommand shows the same way.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;
use rampart_telemetry::{CaptureError, CaptureRecords, TrafficRecord};

use crate::report::file_progress;

/// An opened capture.
pub struct CaptureInput {
    /// As the user named it, for messages.
    pub name: String,
    pub records: CaptureRecords<Box<dyn Read>>,
    progress: Option<ProgressBar>,
}

impl std::fmt::Debug for CaptureInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureInput").field("name", &self.name).finish_non_exhaustive()
    }
}

impl CaptureInput {
    /// Opens `path` (`-`: standard input) and reads the capture header.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let (input, size): (Box<dyn Read>, Option<u64>) = if path.as_os_str() == "-" {
            (Box::new(io::stdin().lock()), None)
        } else {
            let file = File::open(path).with_context(|| format!("cannot open capture {name}"))?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        };
        let records = CaptureRecords::new(input).map_err(|error| capture_error(&name, error))?;
        Ok(Self { name, records, progress: file_progress(size) })
    }

    /// Hands every record to `each`. A damaged capture stops early: the framing error is
    /// returned (everything before it was handed over); an I/O error fails.
    pub fn for_each(&mut self, mut each: impl FnMut(&TrafficRecord)) -> Result<Option<String>> {
        let mut count: u64 = 0;
        let outcome = loop {
            match self.records.next_record() {
                Ok(Some(record)) => {
                    each(&record);
                    count += 1;
                    if count.is_multiple_of(65_536)
                        && let Some(bar) = &self.progress
                    {
                        bar.set_position(self.records.bytes_read());
                    }
                }
                Ok(None) => break Ok(None),
                Err(CaptureError::Io(error)) => {
                    break Err(error).with_context(|| format!("cannot read capture {}", self.name));
                }
                Err(error) => break Ok(Some(error.to_string())),
            }
        };
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        outcome
    }
}

/// The one-line message for a capture that cannot be read at all.
pub fn capture_error(name: &str, error: CaptureError) -> anyhow::Error {
    match error {
        CaptureError::NotACapture => anyhow!("{name} is not a pcap or pcapng capture"),
        CaptureError::TruncatedHeader => anyhow!("{name} is too short to be a capture (header truncated)"),
        error => anyhow::Error::new(error).context(format!("cannot read capture {name}")),
    }
}
