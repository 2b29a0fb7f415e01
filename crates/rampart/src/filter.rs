//! `rampart filter apply|status|detach`: the host filter (XDP, nftables fallback) driven from a
//! file of decisions.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use rampart_contract::{Decision, EventTime};
use rampart_filter::nft::NftFilter;
use rampart_filter::plan::{FilterPlan, SynGuard, plan};
use rampart_filter::xdp::time::boot_now_ns;
use rampart_filter::xdp::{self, AttachMode, Options, XdpError, XdpFilter};

#[derive(Debug, Args)]
pub struct FilterArgs {
    #[command(subcommand)]
    pub command: FilterCommand,
}

/// Which layer enforces the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// XDP where it loads and attaches, else nftables.
    Auto,
    Xdp,
    Nftables,
}

#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Enforce the decisions in a file (a JSON array of decisions): source bans and rate limits,
    /// signatures, SYN guards. XDP maps are pinned, so rules keep dropping until they expire
    /// even if this process dies.
    Apply {
        /// JSON array of decisions (the `decision` schema); re-read every interval with --hold.
        #[arg(long, value_name = "FILE")]
        decisions: PathBuf,
        /// Attach XDP here (repeatable); MODE is native, generic or auto [default: auto].
        #[arg(long = "interface", value_name = "IFACE[=MODE]")]
        interfaces: Vec<String>,
        /// Where XDP maps and the program are pinned (on bpffs).
        #[arg(long, value_name = "DIR", default_value = xdp::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// SYN-flood mode for a protected destination: at most PPS SYNs per second per source;
        /// with `,cookies`, every SYN answered with a SYN cookie from XDP (needs
        /// net.ipv4.tcp_syncookies=2; PPS per source where the kernel lacks the helpers).
        #[arg(long = "syn-guard", value_name = "PREFIX=PPS[,cookies]")]
        syn_guards: Vec<String>,
        #[arg(long, value_enum, default_value = "auto")]
        backend: Backend,
        /// Keep running, re-reading the file and reconciling every --interval seconds.
        #[arg(long)]
        hold: bool,
        #[arg(long, value_name = "SECS", default_value = "1")]
        interval: u64,
    },
    /// What the XDP filter pinned at DIR does: interfaces it is attached to (in this network
    /// namespace) and mode, rules in force with what each dropped, packet totals.
    Status {
        #[arg(long, value_name = "DIR", default_value = xdp::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Detach the XDP filter from every interface of this network namespace.
    Detach {
        #[arg(long, value_name = "DIR", default_value = xdp::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Also remove the pinned maps and program.
        #[arg(long)]
        purge: bool,
        /// Also delete Rampart's nftables table (`inet rampart`).
        #[arg(long)]
        nftables: bool,
    },
}

pub fn run(args: FilterArgs) -> Result<()> {
    match args.command {
        FilterCommand::Apply { decisions, interfaces, pin_dir, syn_guards, backend, hold, interval } => {
            let guards = syn_guards.iter().map(|s| parse_guard(s)).collect::<Result<Vec<_>>>()?;
            let interfaces = interfaces.iter().map(|s| parse_interface(s)).collect::<Result<Vec<_>>>()?;
            apply(
                &decisions,
                &interfaces,
                &pin_dir,
                &guards,
                backend,
                hold,
                Duration::from_secs(interval.max(1)),
            )
        }
        FilterCommand::Status { pin_dir, json } => status(&pin_dir, json),
        FilterCommand::Detach { pin_dir, purge, nftables } => {
            let mut done = false;
            match xdp::detach(&pin_dir, purge) {
                Ok(list) => {
                    for a in list {
                        println!("detached from {} ({})", a.interface, a.mode);
                    }
                    done = true;
                }
                Err(e @ (XdpError::NotPinned(_) | XdpError::Unavailable(_))) if nftables => {
                    eprintln!("xdp: {e}")
                }
                Err(e) => return Err(e).context("detaching the XDP filter"),
            }
            if nftables {
                NftFilter::new(vec!["nft".into()]).remove().context("deleting table inet rampart")?;
                println!("deleted nftables table inet rampart");
                done = true;
            }
            if !done {
                bail!("nothing detached");
            }
            Ok(())
        }
    }
}

fn parse_guard(s: &str) -> Result<SynGuard> {
    SynGuard::parse(s).map_err(|e| anyhow::anyhow!("--syn-guard {e}"))
}

fn parse_interface(s: &str) -> Result<(String, AttachMode)> {
    match s.split_once('=') {
        None => Ok((s.to_owned(), AttachMode::Auto)),
        Some((name, mode)) => Ok((
            name.to_owned(),
            mode.parse().map_err(anyhow::Error::msg).with_context(|| format!("--interface {s:?}"))?,
        )),
    }
}

fn wall_now() -> EventTime {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    EventTime::from_unix_micros(micros)
}

fn read_decisions(path: &Path) -> Result<Vec<Decision>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading decisions {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("decisions {}: expected a JSON array of decisions", path.display()))
}

enum Enforcer {
    Xdp(Box<XdpFilter>),
    Nft(NftFilter),
}

fn apply(
    decisions: &Path,
    interfaces: &[(String, AttachMode)],
    pin_dir: &Path,
    guards: &[SynGuard],
    backend: Backend,
    hold: bool,
    interval: Duration,
) -> Result<()> {
    let mut enforcer = match backend {
        Backend::Nftables => Enforcer::Nft(NftFilter::new(vec!["nft".into()])),
        Backend::Xdp => Enforcer::Xdp(Box::new(load_xdp(interfaces, pin_dir)?)),
        Backend::Auto => match load_xdp(interfaces, pin_dir) {
            Ok(f) => Enforcer::Xdp(Box::new(f)),
            Err(e) => {
                eprintln!("rampart: XDP unavailable, using nftables: {e:#}");
                Enforcer::Nft(NftFilter::new(vec!["nft".into()]))
            }
        },
    };
    loop {
        let now = wall_now();
        let p = plan(&read_decisions(decisions)?, guards, now);
        enforce(&mut enforcer, &p, now)?;
        if !hold {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn load_xdp(interfaces: &[(String, AttachMode)], pin_dir: &Path) -> Result<XdpFilter> {
    if interfaces.is_empty() {
        bail!("XDP needs at least one --interface");
    }
    let filter = XdpFilter::open(Options { pin_dir: Some(pin_dir.to_owned()), ..Options::default() })
        .with_context(|| format!("loading the XDP filter (pinned at {})", pin_dir.display()))?;
    for (name, mode) in interfaces {
        let used = filter.attach(name, *mode).with_context(|| format!("attaching XDP to {name}"))?;
        println!("xdp: attached to {name} ({used})");
    }
    Ok(filter)
}

fn enforce(enforcer: &mut Enforcer, p: &FilterPlan, now: EventTime) -> Result<()> {
    let skipped = p.skipped.len();
    match enforcer {
        Enforcer::Xdp(f) => {
            let boot = boot_now_ns().context("reading /proc/uptime")?;
            let r = f.reconcile(p, now, boot).context("updating the XDP maps")?;
            println!(
                "xdp: {} rules ({} IPv4 and {} IPv6 prefixes, {} signatures, {} SYN guards), {} map elements written, {} released, {} decisions skipped",
                r.rules,
                r.v4_prefixes,
                r.v6_prefixes,
                r.signatures,
                r.syn_guards,
                r.elements_written,
                r.released,
                skipped
            );
            if let Some(why) = &r.syn_cookie_fallback {
                eprintln!("xdp: {why}");
            }
        }
        Enforcer::Nft(n) => {
            let r = n.apply(p, now).context("updating nftables table inet rampart")?;
            println!(
                "nftables: {} IPv4 and {} IPv6 prefixes, {} signature rules, {} left to XDP or covered, {} decisions skipped",
                r.src4, r.src6, r.signature_rules, r.skipped, skipped
            );
        }
    }
    Ok(())
}

fn status(pin_dir: &Path, json: bool) -> Result<()> {
    let boot = boot_now_ns().context("reading /proc/uptime")?;
    let s = xdp::status(pin_dir, boot)
        .with_context(|| format!("reading the XDP filter at {}", pin_dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("pinned at {}", s.pin_dir.display());
    if s.attached.is_empty() {
        println!("attached: nowhere in this network namespace");
    }
    for a in &s.attached {
        println!("attached: {} (ifindex {}, {}, program {})", a.interface, a.ifindex, a.mode, a.program_id);
    }
    println!("packets: {} seen, {} passed, {} dropped", s.packets_seen, s.packets_passed, s.packets_dropped);
    println!(
        "{:>8} {:>10} {:>13} {:>12} {:>12} {:>14}",
        "rule", "decision", "action", "expires in", "dropped", "dropped bytes"
    );
    for r in &s.rules {
        let action = match r.action {
            "drop" => "drop".to_owned(),
            "rate_packets" => format!("{} pps", r.rate),
            _ => format!("{} B/s", r.rate),
        };
        let expires = r.expires_in_secs.map_or_else(|| "never".to_owned(), |s| format!("{s}s"));
        println!(
            "{:>8} {:>10} {:>13} {:>12} {:>12} {:>14}",
            r.rule, r.decision, action, expires, r.dropped_packets, r.dropped_bytes
        );
    }
    Ok(())
}
