//! `rampart decisions list`, `rampart ban`, `rampart unban`, `rampart audit verify`.
//!
//! Reading (`list`, `verify`) opens the decision store read-only, also while the daemon runs.
//! Changing (`ban`, `unban`) goes through the daemon's control socket when it runs (the daemon
//! checks who is asking), else straight to the store, whose file lock keeps the two from ever
//! writing at once. Either way the same guards and the same audit log apply.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rampart_contract::{Action, Decision, EventTime, Origin, Scope, text};
use rampart_daemon::filter::CountersFile;
use rampart_mitigate::audit::hash_hex;
use rampart_mitigate::config::MitigationToml;
use rampart_mitigate::control::{self, ClientError, Request, Response};
use rampart_mitigate::mitigator::parse_prefix;
use rampart_mitigate::store::Closing;
use rampart_mitigate::{DecisionReader, DecisionStore, MitigationConfig, Mitigator, Outcome, StoredDecision};

use crate::run::MAX_CONFIG_BYTES;

/// Where the data directory and the guards come from.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory of `rampart run` (default ./rampart-data, or [store] data_dir of --config).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The daemon's configuration file: its data directory, and the [mitigation] guards a ban
    /// must pass when no daemon runs.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl StoreArgs {
    /// The data directory and the mitigation settings (the guards' defaults, with the
    /// detection's protected networks, when the file has no [mitigation]).
    fn load(&self) -> Result<(PathBuf, MitigationConfig)> {
        let (daemon, detect) = match &self.config {
            Some(path) => {
                let text = rampart_store::files::read_to_string(path, MAX_CONFIG_BYTES)
                    .with_context(|| format!("cannot read configuration {}", path.display()))?;
                rampart_daemon::config::parse(&text, &path.display().to_string())?
            }
            None => (rampart_daemon::DaemonConfig::default(), rampart_detect::DetectConfig::default()),
        };
        let mitigation = match daemon.mitigation {
            Some(config) => config,
            None => {
                MitigationToml::default().resolve(&detect.protected).map_err(|e| anyhow::anyhow!("{e}"))?
            }
        };
        Ok((self.data_dir.clone().unwrap_or(daemon.data_dir), mitigation))
    }
}

#[derive(Debug, Args)]
pub struct DecisionsArgs {
    #[command(subcommand)]
    pub command: DecisionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// The decisions in force (dry-run ones marked), oldest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Withdrawn and expired decisions too.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct BanArgs {
    /// An address (203.0.113.7: traffic from it; with --action blackhole, traffic to it), a
    /// prefix (203.0.113.0/24), or a signature as reports print it ('dst 198.51.100.10/32,
    /// proto 17, src port 53, length 512-1500'; fields: src, dst, proto, src port, dst port,
    /// tcp flags 0xVV[/0xMM], not fragments | non-initial fragments, length MIN-MAX).
    #[arg(value_name = "SCOPE")]
    pub scope: String,
    /// discard, blackhole, notify, rate-limit:BYTES_PER_SEC, rate-limit-pps:PACKETS_PER_SEC,
    /// mark:DSCP or redirect-ip:ADDRESS.
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// How long: 90s, 30m, 2h, 7d, or `forever` (until `rampart unban`).
    #[arg(long, value_name = "D")]
    pub duration: String,
    /// Why (goes into the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct UnbanArgs {
    /// A decision id (from `rampart decisions list`), or an address or prefix: every decision
    /// in force on exactly it.
    #[arg(value_name = "ID|SCOPE")]
    pub which: String,
    /// Why (goes into the audit log).
    #[arg(long, value_name = "TEXT", default_value = "withdrawn by hand")]
    pub reason: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain (its rotated files audit.jsonl.1, .2, ... first, then
    /// audit.jsonl) and the decision store's anchor: any changed, removed, reordered or cut-off
    /// record is reported (exit status 1).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn now() -> EventTime {
    let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    EventTime::from_unix_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// `90s`, `30m`, `2h`, `7d`, a bare number of seconds; `forever` is `None`.
pub fn parse_duration(text: &str) -> Result<Option<u64>> {
    if text == "forever" {
        return Ok(None);
    }
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("--duration {text:?}: give 90s, 30m, 2h, 7d or forever"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("--duration {text:?}: give 90s, 30m, 2h, 7d or forever"))?;
    if n == 0 {
        bail!("--duration {text:?}: must be more than 0 (or `forever`)");
    }
    Ok(Some(n.saturating_mul(scale)))
}

/// The `--action` values.
pub fn parse_action(text: &str) -> Result<Action> {
    let bad = || {
        anyhow::anyhow!(
            "--action {text:?}: give discard, blackhole, notify, rate-limit:BYTES_PER_SEC, rate-limit-pps:N, mark:DSCP or redirect-ip:ADDRESS"
        )
    };
    let (name, value) = match text.split_once(':') {
        Some((name, value)) => (name, Some(value)),
        None => (text, None),
    };
    Ok(match (name, value) {
        ("discard", None) => Action::Discard,
        ("blackhole", None) => Action::Blackhole,
        ("notify", None) => Action::Notify,
        ("rate-limit", Some(v)) => Action::RateLimitBytes { bytes_per_sec: v.parse().map_err(|_| bad())? },
        ("rate-limit-pps", Some(v)) => {
            Action::RateLimitPackets { packets_per_sec: v.parse().map_err(|_| bad())? }
        }
        ("mark", Some(v)) => match v.parse::<u8>() {
            Ok(dscp) if dscp < 64 => Action::Mark { dscp },
            _ => bail!("--action {text:?}: DSCP is 0 to 63"),
        },
        ("redirect-ip", Some(v)) => Action::RedirectNextHop { next_hop: v.parse().map_err(|_| bad())? },
        _ => return Err(bad()),
    })
}

fn parse_scope(text: &str) -> Result<Scope> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(Scope::Address(ip));
    }
    if let Some(net) = parse_prefix(text) {
        return Ok(Scope::Prefix(net));
    }
    if text.contains(char::is_whitespace) {
        // A signature, as reports print it.
        return match rampart_contract::parse_signature(text) {
            Ok(signature) if signature.dst_prefixes.is_empty() => {
                bail!("signature {text:?} needs a destination (dst PREFIX): it must name what it protects")
            }
            Ok(signature) => Ok(Scope::Signature(Box::new(signature))),
            Err(e) => bail!("{e} (e.g. 'dst 198.51.100.10/32, proto 17, src port 53')"),
        };
    }
    bail!(
        "{text:?} is not an address, prefix or signature (e.g. 203.0.113.7, 203.0.113.0/24, 'dst 198.51.100.10/32, proto 17, src port 53')"
    )
}

/// `discard`, `rate-limit 1000000 B/s`...
pub fn action_text(action: &Action) -> String {
    match action {
        Action::Discard => "discard".into(),
        Action::RateLimitBytes { bytes_per_sec } => format!("rate-limit {bytes_per_sec} B/s"),
        Action::RateLimitPackets { packets_per_sec } => format!("rate-limit {packets_per_sec} packets/s"),
        Action::Blackhole => "blackhole".into(),
        Action::RedirectVrf { route_target } => format!("redirect-vrf {route_target}"),
        Action::RedirectNextHop { next_hop } => format!("redirect-ip {next_hop}"),
        Action::Mark { dscp } => format!("mark {dscp}"),
        Action::Notify => "notify".into(),
        _ => "other".into(),
    }
}

pub fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Address(ip) => ip.to_string(),
        Scope::Prefix(net) => net.to_string(),
        Scope::Signature(signature) => text::signature(signature),
        _ => "other".into(),
    }
}

fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Attack { attack } => format!("attack {attack}"),
        Origin::Operator { name } => format!("operator {name}"),
        Origin::Intel { feed } => format!("feed {feed}"),
        _ => "other".into(),
    }
}

fn state(stored: &StoredDecision, now: EventTime) -> &'static str {
    match &stored.closed {
        Some(closed) if closed.how == Closing::Withdrawn => "withdrawn",
        Some(_) => "expired",
        None if !stored.decision.active_at(now) => "expired",
        None if stored.dry_run => "dry-run",
        None => "active",
    }
}

fn print_decision(out: &mut impl Write, decision: &Decision) -> io::Result<()> {
    let expires = decision.expires.map_or_else(|| "never".to_owned(), |e| e.to_string());
    writeln!(
        out,
        "decision {}: {} {} until {} ({})",
        decision.id.0,
        action_text(&decision.action),
        scope_text(&decision.scope),
        expires,
        decision.reason
    )
}

pub fn run_decisions(args: DecisionsArgs) -> Result<()> {
    let DecisionsCommand::List { store, json, all } = args.command;
    let (dir, _) = store.load()?;
    let decisions = match DecisionReader::open(&dir)? {
        Some(reader) => reader.all()?,
        None => Vec::new(),
    };
    let now = now();
    let shown: Vec<&StoredDecision> = decisions.iter().filter(|d| all || d.active_at(now)).collect();
    // What each decision's rule dropped in the host filter (`[filter]`), kept by the daemon
    // also after the decision is gone.
    let counters = CountersFile::read(&dir).map_err(anyhow::Error::msg)?;
    let dropped = |stored: &StoredDecision| counters.as_ref()?.decisions.get(&stored.decision.id.0).copied();
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        let mut listed = Vec::with_capacity(shown.len());
        for stored in &shown {
            let mut value = serde_json::to_value(stored)?;
            if let (Some(d), Some(object)) = (dropped(stored), value.as_object_mut()) {
                object.insert("dropped_packets".into(), d.packets.into());
                object.insert("dropped_bytes".into(), d.bytes.into());
            }
            listed.push(value);
        }
        serde_json::to_writer_pretty(&mut out, &listed)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    if shown.is_empty() {
        writeln!(out, "no decisions{} in {}", if all { "" } else { " in force" }, dir.display())?;
        return Ok(out.flush()?);
    }
    // The dropped column only where a host filter ran.
    let column = |text: String| if counters.is_some() { format!("{text:>22}  ") } else { String::new() };
    writeln!(
        out,
        "{:>5}  {:<9}  {:<24}  {:<34}  {:<14}  {:<27}  {}reason",
        "id",
        "state",
        "action",
        "scope",
        "origin",
        "expires",
        column("dropped (filter)".into())
    )?;
    for stored in shown {
        let d = &stored.decision;
        let expires = d.expires.map_or_else(|| "never".to_owned(), |e| e.to_string());
        let filtered =
            dropped(stored).map_or_else(|| "-".to_owned(), |c| format!("{} pkt {} B", c.packets, c.bytes));
        writeln!(
            out,
            "{:>5}  {:<9}  {:<24}  {:<34}  {:<14}  {:<27}  {}{}",
            d.id.0,
            state(stored, now),
            action_text(&d.action),
            scope_text(&d.scope),
            origin_text(&d.origin),
            expires,
            column(filtered),
            d.reason
        )?;
    }
    Ok(out.flush()?)
}

/// Sends `request` to the daemon, or returns `None` when no daemon runs.
fn via_daemon(dir: &Path, config: &MitigationConfig, request: &Request) -> Result<Option<Response>> {
    match control::request(&config.control_socket_in(dir), request) {
        Ok(response) => Ok(Some(response)),
        Err(ClientError::NoDaemon { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The store, for a command run without a daemon.
fn direct(dir: &Path, config: MitigationConfig) -> Result<Mitigator> {
    let store = DecisionStore::open(dir)?;
    store.warnings().iter().for_each(|w| eprintln!("rampart: warning: {w}"));
    Ok(Mitigator::start(store, config, Vec::new(), now())?)
}

fn report(response: Response) -> Result<()> {
    let mut out = io::stdout().lock();
    match response {
        Response::Enacted { decision } => print_decision(&mut out, &decision)?,
        Response::Withdrawn { ids } => {
            let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
            writeln!(out, "withdrawn: decision {}", ids.join(", "))?;
        }
        Response::NotFound => bail!("no decision in force matches"),
        Response::Refused { reason } => {
            bail!("refused by the safety guards: {reason} (recorded in the audit log)")
        }
        Response::Error { message } => bail!("{message}"),
    }
    Ok(())
}

fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Enacted(decision) => Response::Enacted { decision },
        Outcome::Withdrawn(ids) => Response::Withdrawn { ids },
        Outcome::Refused(refusal) => Response::Refused { reason: refusal.to_string() },
        Outcome::NotFound => Response::NotFound,
    }
}

pub fn run_ban(args: BanArgs) -> Result<()> {
    let scope = parse_scope(&args.scope)?;
    let action = parse_action(&args.action)?;
    let duration = parse_duration(&args.duration)?;
    if args.reason.trim().is_empty() {
        bail!("--reason: say why (it goes into the audit log)");
    }
    let (dir, config) = args.store.load()?;
    let request = Request::Ban {
        scope: scope.clone(),
        action: action.clone(),
        duration_secs: duration,
        reason: args.reason.clone(),
    };
    if let Some(response) = via_daemon(&dir, &config, &request)? {
        return report(response);
    }
    let mut mitigator = direct(&dir, config)?;
    let now = now();
    let expires = duration.map(|secs| {
        EventTime::from_unix_micros(now.unix_micros().saturating_add(secs.saturating_mul(1_000_000)))
    });
    let operator = control::local_user().name();
    report(outcome_response(mitigator.ban(scope, action, expires, &operator, &args.reason, now)?))
}

pub fn run_unban(args: UnbanArgs) -> Result<()> {
    let which: rampart_mitigate::Unban = args.which.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
    let (dir, config) = args.store.load()?;
    let request = Request::Unban { which: args.which.clone(), reason: args.reason.clone() };
    if let Some(response) = via_daemon(&dir, &config, &request)? {
        return report(response);
    }
    let mut mitigator = direct(&dir, config)?;
    let operator = control::local_user().name();
    report(outcome_response(mitigator.unban(&which, &operator, &args.reason, now())?))
}

pub fn run_audit(args: AuditArgs) -> Result<()> {
    let AuditCommand::Verify { store } = args.command;
    let (dir, _) = store.load()?;
    let Some(reader) = DecisionReader::open(&dir)? else {
        bail!("no decision store in {}: nothing to verify", dir.display());
    };
    match reader.verify_audit()? {
        Ok(verified) => {
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "audit log intact: {} records, head {}",
                verified.records,
                hash_hex(&verified.head)
            )?;
            if verified.beyond_anchor > 0 {
                writeln!(
                    out,
                    "note: the last {} record(s) describe changes the writer died before committing",
                    verified.beyond_anchor
                )?;
            }
            Ok(())
        }
        Err(broken) => bail!(
            "audit log {} is not intact: {broken}",
            dir.join(rampart_mitigate::audit::FILE_NAME).display()
        ),
    }
}
