//! `rampart replay`: a capture replayed as an sFlow v5 agent would export it, paced by the
//! capture's own timestamps. For end-to-end tests, demos and side-by-side runs of collectors.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rampart_telemetry::CaptureReader;
use rampart_telemetry::sflow_encode::SflowEncoder;

use crate::capture_input::capture_error;
use crate::report::group;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// pcap or pcapng capture to replay.
    pub file: PathBuf,
    /// Send sFlow to this collector (HOST:PORT); repeat to feed several collectors the same
    /// datagrams.
    #[arg(long, value_name = "ADDR", required = true)]
    pub sflow: Vec<SocketAddr>,
    /// Replay speed: 1 follows the capture's timing, 2 twice as fast, 0 as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Sample one packet in N (announced as the sampling rate, so collectors scale back up).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub sample: u32,
    /// Agent address written in the datagrams.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))]
    pub agent: IpAddr,
    /// Stop after this many seconds of wall time.
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
}

/// A datagram is sent at the latest this long (in capture time) after its first sample, so a
/// quiet link does not hold samples back.
const MAX_HOLD_NS: u64 = 50_000_000;

pub fn run(args: ReplayArgs) -> Result<()> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!("--speed must be 0 (as fast as possible) or a positive factor, not {}", args.speed);
    }
    if args.sample == 0 {
        bail!("--sample must be at least 1");
    }
    let name = args.file.display().to_string();
    let file = File::open(&args.file).with_context(|| format!("cannot open capture {name}"))?;
    let mut reader = CaptureReader::new(file).map_err(|error| capture_error(&name, error))?;
    let socket = UdpSocket::bind(if args.sflow[0].is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .context("cannot open a UDP socket")?;
    let mut encoder = SflowEncoder::new(args.agent, 0);
    let started = Instant::now();
    let deadline = args.max_seconds.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let uptime = || started.elapsed().as_millis() as u32;
    let (mut frames, mut samples, mut datagrams) = (0u64, 0u64, 0u64);
    let mut first_ts: Option<u64> = None;
    let mut oldest_pending_ts = 0u64;
    let send = |datagram: Vec<u8>, datagrams: &mut u64| -> Result<()> {
        for target in &args.sflow {
            socket.send_to(&datagram, target).with_context(|| format!("cannot send sFlow to {target}"))?;
        }
        *datagrams += 1;
        Ok(())
    };
    while let Some(frame) = reader.next_frame().with_context(|| format!("cannot read capture {name}"))? {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        frames += 1;
        let ts = frame.time.0;
        let t0 = *first_ts.get_or_insert(ts);
        if ts.saturating_sub(oldest_pending_ts) > MAX_HOLD_NS
            && let Some(datagram) = encoder.flush(uptime())
        {
            send(datagram, &mut datagrams)?;
        }
        if args.speed > 0.0 {
            let due = started + Duration::from_secs_f64(ts.saturating_sub(t0) as f64 / 1e9 / args.speed);
            let now = Instant::now();
            if due > now {
                // Send what is pending before waiting: it is already due.
                if let Some(datagram) = encoder.flush(uptime()) {
                    send(datagram, &mut datagrams)?;
                }
                std::thread::sleep(due - now);
            }
        }
        if frames % u64::from(args.sample) != 0 {
            continue;
        }
        if encoder.pending_samples() == 0 {
            oldest_pending_ts = ts;
        }
        let full = encoder.push_sample(frame.link, frame.data, frame.wire_len, args.sample, 1, 2, uptime());
        samples += 1;
        if let Some(datagram) = full {
            send(datagram, &mut datagrams)?;
            oldest_pending_ts = ts;
        }
    }
    if let Some(datagram) = encoder.flush(uptime()) {
        send(datagram, &mut datagrams)?;
    }
    eprintln!(
        "replayed {} frames as {} samples in {} sFlow datagrams in {:.1} s",
        group(frames),
        group(samples),
        group(datagrams),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
