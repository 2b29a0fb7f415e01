//! The driver of `bench/shield-flood.sh` (a bench tool, not a user-facing command): starts the
//! origin on a given loopback port, waits for the proxy in front of it, runs legitimate
//! browsers and one flood through the proxy, and prints the report (text, a Markdown row, and
//! JSON appended to a file).
//!
//! cargo run --release -p rampart-floodharness --example flood_bench -- \
//!     --origin-port 18080 --target 127.0.0.1:18081 --name nginx --flood get_flood

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rampart_floodharness::browser::BrowserPlan;
use rampart_floodharness::{FloodKind, FloodPlan, Origin, OriginConfig, Report, Scenario, run_scenario};

#[derive(Debug, Parser)]
struct Args {
    /// The origin listens on 127.0.0.1:PORT (0: any free port; then --target defaults to it).
    #[arg(long, default_value_t = 0)]
    origin_port: u16,
    /// The proxy in front of the origin (loopback only); default: the origin itself.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// The target's name in the report.
    #[arg(long, default_value = "origin")]
    name: String,
    /// get_flood, distributed, login_flood or cache_busting.
    #[arg(long)]
    flood: String,
    /// Flood requests per second.
    #[arg(long, default_value_t = 800)]
    rate: u32,
    /// Flood length in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Browsing before the flood, seconds.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Browsing after the flood, seconds.
    #[arg(long, default_value_t = 2)]
    cooldown: u64,
    /// Legitimate browsers.
    #[arg(long, default_value_t = 40)]
    clients: u32,
    /// Flood workers (concurrent connections); default per flood.
    #[arg(long)]
    workers: Option<u32>,
    /// Time /search takes, ms.
    #[arg(long, default_value_t = 50)]
    search_delay_ms: u64,
    /// Slow origin: extra ms per request in flight (default 2 for cache_busting, else off).
    #[arg(long)]
    slow_ms_per_in_flight: Option<u64>,
    /// The origin's concurrency limit (reported).
    #[arg(long, default_value_t = 64)]
    origin_limit: usize,
    /// Append the report as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Longest wait for the target to accept connections, seconds.
    #[arg(long, default_value_t = 20)]
    wait: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kind = FloodKind::from_name(&args.flood).with_context(|| {
        format!("--flood {}: expected get_flood, distributed, login_flood or cache_busting", args.flood)
    })?;
    let slow = args.slow_ms_per_in_flight.unwrap_or(if kind == FloodKind::CacheBusting { 2 } else { 0 });
    let origin = Origin::start(OriginConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], args.origin_port)),
        search_delay: Duration::from_millis(args.search_delay_ms),
        slow_per_in_flight: (slow > 0).then(|| Duration::from_millis(slow)),
        concurrency_limit: args.origin_limit,
    })
    .await
    .with_context(|| format!("origin on 127.0.0.1:{}", args.origin_port))?;
    let target = args.target.unwrap_or(origin.address());
    wait_for(target, Duration::from_secs(args.wait))?;
    let mut flood = FloodPlan::new(kind, args.rate, Duration::from_secs(args.seconds));
    if let Some(workers) = args.workers {
        flood.workers = workers;
    }
    let scenario = Scenario {
        target,
        target_name: args.name.clone(),
        host: None,
        browsers: BrowserPlan { clients: args.clients, ..BrowserPlan::default() },
        flood,
        warmup: Duration::from_secs(args.warmup),
        cooldown: Duration::from_secs(args.cooldown),
    };
    let report = run_scenario(&scenario, &origin)
        .await
        .with_context(|| format!("{} against {target}", kind.name()))?;
    print!("{}", report.text());
    println!("{}", Report::table_header());
    println!("{}", report.row());
    if let Some(path) = &args.json {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Waits until something accepts connections on `target`.
fn wait_for(target: SocketAddr, patience: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < patience {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing accepts connections on {target} after {} s", patience.as_secs())
}
