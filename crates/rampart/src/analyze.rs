//! `rampart analyze`: a capture through the detection engine, in the capture's event time, to
//! a list of attacks.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use rampart_detect::{Attack, DetectConfig, Engine, EngineStats, EventKind};
use rampart_telemetry::CaptureRecords;

use crate::capture_input::CaptureInput;
use crate::report::group;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// pcap or pcapng capture; `-` reads standard input.
    pub file: PathBuf,
    /// Detection configuration (TOML; see config/rampart.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Protected network (CIDR), repeatable; replaces the config's list. Without any, every
    /// destination is a candidate target.
    #[arg(long = "protect", value_name = "CIDR")]
    pub protect: Vec<String>,
    /// Per-host threshold, packets per second (all inbound packets).
    #[arg(long, value_name = "N")]
    pub threshold_pps: Option<u64>,
    /// Per-host threshold, megabits per second.
    #[arg(long, value_name = "N")]
    pub threshold_mbps: Option<u64>,
    /// Per-prefix (/24, /64) threshold, packets per second.
    #[arg(long, value_name = "N")]
    pub prefix_threshold_pps: Option<u64>,
    /// Per-prefix threshold, megabits per second.
    #[arg(long, value_name = "N")]
    pub prefix_threshold_mbps: Option<u64>,
    /// Threat level outside the configuration's scheduled windows: normal, elevated or high
    /// (raised levels scale every threshold down).
    #[arg(long, value_name = "LEVEL", value_parser = parse_threat_level)]
    pub threat_level: Option<rampart_detect::ThreatLevel>,
    /// Judge hosts and groups against the learned baselines in FILE (a daemon's
    /// DIR/baselines.bin), as if the daemon had been watching; a capture shorter than the
    /// warm-up hour learns none of its own.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Also write a self-contained HTML report (traffic chart per target, fingerprint of each
    /// attack) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print `{"attacks": [...]}` instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

fn positive(name: &str, value: Option<u64>) -> Result<Option<u64>> {
    if value == Some(0) {
        bail!("--{name} must be at least 1");
    }
    Ok(value)
}

fn build_config(args: &AnalyzeArgs) -> Result<DetectConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let name = path.display().to_string();
            let text = rampart_store::files::read_to_string(path, crate::run::MAX_CONFIG_BYTES)
                .with_context(|| format!("cannot read configuration {name}"))?;
            DetectConfig::from_toml_str(&text, &name)?
        }
        None => DetectConfig::default(),
    };
    if !args.protect.is_empty() {
        config.protected = args
            .protect
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .with_context(|| format!("--protect {s}: not an IP prefix"))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(pps) = positive("threshold-pps", args.threshold_pps)? {
        config.thresholds.pps = pps;
    }
    if let Some(mbps) = positive("threshold-mbps", args.threshold_mbps)? {
        config.thresholds.bps = mbps.saturating_mul(1_000_000);
    }
    if let Some(pps) = positive("prefix-threshold-pps", args.prefix_threshold_pps)? {
        config.aggregation.thresholds.pps = pps;
    }
    if let Some(mbps) = positive("prefix-threshold-mbps", args.prefix_threshold_mbps)? {
        config.aggregation.thresholds.bps = mbps.saturating_mul(1_000_000);
    }
    if let Some(level) = args.threat_level {
        config.threat.level = level;
    }
    Ok(config)
}

fn parse_threat_level(text: &str) -> Result<rampart_detect::ThreatLevel, String> {
    rampart_detect::ThreatLevel::parse(text)
        .ok_or_else(|| format!("{text:?} is not normal, elevated or high"))
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let config = build_config(&args)?;
    if args.file.as_os_str() == "-" && args.html.is_some() {
        bail!("--html reads the capture a second time for its charts: give a file, not standard input");
    }
    let mut input = CaptureInput::open(&args.file)?;
    let name = input.name.clone();
    let mut engine = Engine::try_new(config).map_err(|e| anyhow::anyhow!("detection configuration: {e}"))?;
    if let Some(path) = &args.baseline {
        if !engine.config().baseline.enabled {
            bail!(
                "--baseline {}: baselines are off in the configuration ([baseline] enabled)",
                path.display()
            );
        }
        let cap = rampart_daemon::baselines::max_snapshot_bytes(engine.config().baseline.max_keys);
        let bytes = rampart_store::files::read_regular_file(path, cap)
            .with_context(|| format!("cannot read baselines {}", path.display()))?;
        engine.restore_baselines(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a usable baseline snapshot ({e}); it comes from `rampart run`'s data directory",
                path.display()
            )
        })?;
    }
    let mut attacks: Vec<Attack> = Vec::new();
    let mut keep = |events: Vec<rampart_detect::AttackEvent>| {
        attacks.extend(events.into_iter().filter(|e| e.kind == EventKind::End).map(|e| e.attack));
    };
    let framing_error = input.for_each(|record| {
        keep(engine.advance(record.start));
        engine.observe(record);
    })?;
    if let Some(error) = framing_error {
        eprintln!("rampart: warning: {name}: {error}; the records before it were analyzed");
    }
    keep(engine.finish());
    attacks.sort_by_key(|a| (a.start, a.id));
    if let Some(path) = &args.html {
        write_html(&args.file, &name, &attacks, path)?;
    }
    let mut out = io::stdout().lock();
    if args.json {
        let report =
            rampart_contract::AttackReport { schema_version: rampart_contract::SchemaVersion, attacks };
        serde_json::to_writer(&mut out, &report).context("cannot write to standard output")?;
        writeln!(out).context("cannot write to standard output")?;
    } else {
        print_human(&mut out, &name, &attacks, engine.stats()).context("cannot write to standard output")?;
    }
    Ok(())
}

/// Second pass over the capture for the per-target charts, then the report.
fn write_html(
    capture: &std::path::Path,
    name: &str,
    attacks: &[Attack],
    path: &std::path::Path,
) -> Result<()> {
    let mut series = crate::html::TargetSeries::new(attacks);
    let file = File::open(capture).with_context(|| format!("cannot open capture {name}"))?;
    let records = CaptureRecords::new(file).with_context(|| format!("cannot read capture {name}"))?;
    for record in records {
        match record {
            Ok(record) => series.add(&record),
            // The first pass already reported how the capture ends.
            Err(_) => break,
        }
    }
    let html = crate::html::render(name, attacks, &series);
    std::fs::write(path, html).with_context(|| format!("cannot write HTML report {}", path.display()))?;
    Ok(())
}

/// "80 57.4%, 443 30.4%": each value (as `label` writes it) with its share of the packets.
fn shares<K: Clone>(list: &[rampart_detect::Share<K>], label: impl Fn(K) -> String) -> String {
    list.iter()
        .map(|s| format!("{} {:.1}%", label(s.value.clone()), s.percent))
        .collect::<Vec<_>>()
        .join(", ")
}

fn vectors(attack: &Attack) -> String {
    attack.vectors.iter().map(|v| v.name()).collect::<Vec<_>>().join(",")
}

/// Buckets listed on the `lengths` line; the rest are summed (the JSON keeps them all).
const LENGTH_BUCKETS_SHOWN: usize = 6;

/// "32-47 41.6%, 48-63 58.4%": the heaviest 16-byte buckets in length order, and what the
/// others add up to when a flood spreads its lengths wide.
fn length_summary(buckets: &[rampart_detect::Share<u32>]) -> String {
    let mut heaviest: Vec<&rampart_detect::Share<u32>> = buckets.iter().collect();
    heaviest.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.value.cmp(&b.value)));
    let (shown, rest) = heaviest.split_at(heaviest.len().min(LENGTH_BUCKETS_SHOWN));
    let mut shown = shown.to_vec();
    shown.sort_by_key(|s| s.value);
    let mut text = shown
        .iter()
        .map(|s| format!("{}-{} {:.1}%", s.value, s.value + 15, s.percent))
        .collect::<Vec<_>>()
        .join(", ");
    if !rest.is_empty() {
        let percent: f64 = rest.iter().map(|s| s.percent).sum();
        let (low, high) =
            rest.iter().fold((u32::MAX, 0), |(lo, hi), s| (lo.min(s.value), hi.max(s.value + 15)));
        text += &format!(" and {} more buckets within {low}-{high}, {percent:.1}%", rest.len());
    }
    text
}

fn print_human(out: &mut impl Write, name: &str, attacks: &[Attack], stats: &EngineStats) -> io::Result<()> {
    writeln!(out, "capture      {name}")?;
    writeln!(out, "records      {}", group(stats.records))?;
    writeln!(out, "attacks      {}", attacks.len())?;
    if attacks.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:>3}  {:<26} {:<34} {:>27} {:>7} {:>12} {:>10} {:>12}",
        "id", "target", "vectors", "start", "secs", "peak pps", "peak Mbps", "packets"
    )?;
    for a in attacks {
        writeln!(
            out,
            "  {:>3}  {:<26} {:<34} {:>27} {:>7.1} {:>12} {:>10.1} {:>12}",
            a.id,
            a.target.to_string(),
            vectors(a),
            a.start.to_string(),
            a.duration_secs(),
            group(a.peak_pps),
            a.peak_bps as f64 / 1e6,
            group(a.packets)
        )?;
    }
    for a in attacks {
        writeln!(out)?;
        writeln!(out, "attack {}: {} ({})", a.id, a.target, vectors(a))?;
        let group_note = a.group.as_ref().map(|g| format!(", group {g}")).unwrap_or_default();
        writeln!(
            out,
            "  scope        {} {}{group_note}, policy {}",
            a.direction,
            a.target.kind_name(),
            a.policy
        )?;
        writeln!(out, "  why          {}", rampart_contract::text::explanation(a))?;
        writeln!(out, "  when         {} to {} ({:.1} s)", a.start, a.end, a.duration_secs())?;
        writeln!(
            out,
            "  volume       {} packets, {} bytes; peak {} pps, {:.1} Mbps",
            group(a.packets),
            group(a.bytes),
            group(a.peak_pps),
            a.peak_bps as f64 / 1e6
        )?;
        match a.distinct_destinations {
            Some(d) => writeln!(out, "  destinations ~{} distinct", group(d))?,
            None => writeln!(out, "  sources      ~{} distinct", group(a.distinct_sources))?,
        }
        if !a.top_src_prefixes.is_empty() {
            writeln!(out, "  src prefixes {}", shares(&a.top_src_prefixes, |v| v.to_string()))?;
        }
        if !a.top_dst_prefixes.is_empty() {
            writeln!(out, "  dst prefixes {}", shares(&a.top_dst_prefixes, |v| v.to_string()))?;
        }
        writeln!(out, "  src ports    {}", shares(&a.top_src_ports, |v| v.to_string()))?;
        writeln!(out, "  dst ports    {}", shares(&a.top_dst_ports, |v| v.to_string()))?;
        writeln!(out, "  protocols    {}", shares(&a.protocols, |v| v.to_string()))?;
        if !a.tcp_flags.is_empty() {
            writeln!(out, "  tcp flags    {}", shares(&a.tcp_flags, |v| format!("0x{v:02x}")))?;
        }
        if !a.ttls.is_empty() {
            writeln!(out, "  ttl          {}", shares(&a.ttls, |v| v.to_string()))?;
        }
        if !a.packet_lengths.is_empty() {
            writeln!(out, "  lengths      {}", length_summary(&a.packet_lengths))?;
        }
        for sample in &a.sample_headers {
            writeln!(out, "  packet       {sample}")?;
        }
        let s = &a.signature;
        writeln!(out, "  signature    {}", rampart_contract::text::signature(s))?;
        writeln!(out, "  confidence   {}", rampart_contract::text::confidence(s))?;
        if let Some(c) = &s.collateral {
            writeln!(
                out,
                "  collateral   at most {:.0} of the target's normal {:.0} pps ({:.1}%) also match",
                c.matching_pps, c.baseline_pps, c.percent
            )?;
        }
        if a.vector_shares.len() > 1 {
            for v in &a.vector_shares {
                writeln!(
                    out,
                    "  vector       {} {:.1}%: {} ({} confidence, {} packets observed)",
                    v.vector,
                    v.percent,
                    rampart_contract::text::signature(&v.signature),
                    v.signature.confidence,
                    v.signature.samples
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn wide_length_spreads_are_summarized() {
        let share = |value, packets| rampart_detect::Share { value, packets, percent: packets as f64 };
        let narrow = [share(32, 40), share(48, 60)];
        assert_eq!(super::length_summary(&narrow), "32-47 40.0%, 48-63 60.0%");
        let wide: Vec<_> = (0..10u32).map(|i| share(64 + 16 * i, 10 + u64::from(i))).collect();
        assert_eq!(
            super::length_summary(&wide),
            "128-143 14.0%, 144-159 15.0%, 160-175 16.0%, 176-191 17.0%, 192-207 18.0%, 208-223 19.0% \
             and 4 more buckets within 64-127, 46.0%"
        );
    }
}
