//! `rampart attacks list|show`: read the attack store (also while `rampart run` writes it).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use rampart_contract::{Attack, Direction, EventTime, text};
use rampart_store::{AttackDetail, Order, StoreReader, StoredAttack};

/// Attacks `attacks list` shows without `--limit`, `--since` or `--all`.
pub const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Args)]
pub struct AttacksArgs {
    #[command(subcommand)]
    pub command: AttacksCommand,
}

#[derive(Debug, Subcommand)]
pub enum AttacksCommand {
    /// The latest attacks recorded (50 unless --limit, --since or --all), oldest first,
    /// printed as they are read.
    List {
        /// Data directory of `rampart run`.
        #[arg(long, value_name = "DIR", default_value = "rampart-data")]
        data_dir: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Show the latest N attacks [default: 50].
        #[arg(long, value_name = "N", conflicts_with = "all")]
        limit: Option<usize>,
        /// Only attacks first recorded at or after TIME (every one of them unless --limit):
        /// Unix seconds, a UTC date or time (2026-12-01, 2026-12-01T20:00:00), or an age (90s,
        /// 30m, 2h, 7d).
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<u64>,
        /// Only attacks with ids below ID: the next page is `--before` the first id printed.
        #[arg(long, value_name = "ID")]
        before: Option<u64>,
        /// Every attack recorded (streamed: memory stays small however many there are).
        #[arg(long)]
        all: bool,
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
    let mut out = BufWriter::new(io::stdout().lock());
    let written = match args.command {
        AttacksCommand::List { data_dir, json, limit, since, before, all } => {
            let limit = match (all, limit, since) {
                (true, _, _) => None,
                (false, Some(limit), _) => Some(limit),
                (false, None, Some(_)) => None,
                (false, None, None) => Some(DEFAULT_LIMIT),
            };
            list(&mut out, &data_dir, json, Selection { limit, since, before })
        }
        AttacksCommand::Show { id, data_dir, json } => show(&mut out, &data_dir, id, json),
    };
    let Err(error) = written.and_then(|()| out.flush().map_err(anyhow::Error::from)) else { return Ok(()) };
    match error.downcast_ref::<io::Error>().map(io::Error::kind) {
        // A reader that has seen enough (`| head`) is not an error.
        Some(io::ErrorKind::BrokenPipe) => Ok(()),
        Some(_) => Err(error.context("cannot write to standard output")),
        None => Err(error),
    }
}

/// Which attacks `list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selection {
    /// At most this many, the latest.
    limit: Option<usize>,
    /// First recorded at or after (Unix nanoseconds).
    since: Option<u64>,
    /// Store ids below.
    before: Option<u64>,
}

/// Streams the selected attacks, oldest first, from one read snapshot per pass: the first pass
/// (keys only, or attack heads for `--since`) finds where the selection starts, the second
/// prints as it reads. Memory does not depend on how many attacks there are.
fn list(out: &mut impl Write, data_dir: &Path, json: bool, selection: Selection) -> Result<()> {
    let reader = StoreReader::open(data_dir)?;
    let end = selection.before.unwrap_or(u64::MAX);
    let mut start = 0;
    if let Some(limit) = selection.limit {
        start = start.max(reader.first_of_latest(selection.before, limit)?.unwrap_or(end));
    }
    if let Some(since) = selection.since {
        start = start.max(reader.first_since(since)?.unwrap_or(end));
    }
    let mut printed = 0u64;
    let mut first_id = None;
    let mut scratch = Vec::new();
    if json {
        write!(out, "[")?;
    }
    for attack in reader.iter(start..end, Order::OldestFirst)? {
        let attack = attack?;
        // Exact even if the wall clock stepped back between two attacks.
        if selection.since.is_some_and(|since| attack.first_recorded < since) {
            continue;
        }
        first_id.get_or_insert(attack.id);
        if json {
            write!(out, "{}", if printed == 0 { "\n" } else { ",\n" })?;
            write_indented(out, &attack, &mut scratch)?;
        } else {
            if printed == 0 {
                print_header(out)?;
            }
            print_row(out, &attack)?;
        }
        printed += 1;
    }
    if json {
        writeln!(out, "{}", if printed == 0 { "]" } else { "\n]" })?;
        return Ok(());
    }
    if printed == 0 {
        let stats = reader.stats()?;
        if stats.attacks == 0 {
            writeln!(out, "no attacks recorded in {}", data_dir.display())?;
        } else {
            writeln!(out, "none of the {} attacks in {} matches", stats.attacks, data_dir.display())?;
        }
        return Ok(());
    }
    // Say how to see more, on stderr: standard output stays the table.
    if let Some(first) = first_id
        && reader.first_of_latest(Some(first), 1)?.is_some()
        && selection.limit.is_some()
    {
        out.flush()?;
        eprintln!("(latest {printed} shown; older: --before {first}, or --all)");
    }
    Ok(())
}

/// One element of a pretty-printed JSON array, as `serde_json::to_writer_pretty` would indent
/// it (JSON strings hold no raw newlines, so indenting after each newline is exact); `scratch`
/// is reused from one element to the next.
fn write_indented(out: &mut impl Write, attack: &StoredAttack, scratch: &mut Vec<u8>) -> Result<()> {
    scratch.clear();
    serde_json::to_writer_pretty(&mut *scratch, attack)?;
    for (n, line) in scratch.split(|&b| b == b'\n').enumerate() {
        out.write_all(if n == 0 { b"  " } else { b"\n  " })?;
        out.write_all(line)?;
    }
    Ok(())
}

fn show(out: &mut impl Write, data_dir: &Path, id: u64, json: bool) -> Result<()> {
    let store = StoreReader::open(data_dir)?;
    let Some(attack) = store.attack(id)? else {
        bail!("no attack {id} in {}", data_dir.display());
    };
    let events = store.events(id)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &AttackDetail::new(attack, events))?;
        writeln!(out)?;
        return Ok(());
    }
    print_table(out, std::slice::from_ref(&attack))?;
    writeln!(out)?;
    writeln!(out, "{}", text::explanation(&attack.attack))?;
    writeln!(out, "signature: {}", text::signature(&attack.attack.signature))?;
    writeln!(out, "confidence: {}", text::confidence(&attack.attack.signature))?;
    writeln!(out, "events:")?;
    for event in &events {
        writeln!(
            out,
            "  #{:<6} {:<7} {} peak {} pps",
            event.seq,
            event.kind,
            EventTime::from_unix_nanos(event.recorded),
            event.attack.peak_pps,
        )?;
    }
    Ok(())
}

/// `--since`: Unix seconds, a UTC date or date and time, or an age before now; Unix
/// nanoseconds.
fn parse_since(text: &str) -> Result<u64, String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    since_at(text, now).map(|secs| (secs * 1e9) as u64)
}

fn since_at(text: &str, now: f64) -> Result<f64, String> {
    let text = text.trim();
    let wrong = || {
        format!(
            "`{text}` is not a time: give Unix seconds, 2026-12-01, 2026-12-01T20:00:00 (UTC) or an age like 30m, 2h, 7d"
        )
    };
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let number: f64 = text[..text.len() - 1].parse().map_err(|_| wrong())?;
        let scale = match unit {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => 86_400.0,
        };
        if !(number.is_finite() && number >= 0.0) {
            return Err(wrong());
        }
        return Ok((now - number * scale).max(0.0));
    }
    if let Ok(secs) = text.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 { Ok(secs) } else { Err(wrong()) };
    }
    rampart_contract::EventTime::parse_utc(text).map(|t| t.as_unix_secs_f64()).ok_or_else(wrong)
}

fn print_table(out: &mut impl Write, attacks: &[StoredAttack]) -> io::Result<()> {
    print_header(out)?;
    for attack in attacks {
        print_row(out, attack)?;
    }
    Ok(())
}

fn print_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<11} {:<40} {:<28} {:<20} {:>12} {:>14}",
        "id", "status", "target", "vectors", "start", "peak pps", "peak bps"
    )
}

fn print_row(out: &mut impl Write, attack: &StoredAttack) -> io::Result<()> {
    let a = &attack.attack;
    let vectors = a.vectors.iter().map(|v| v.name()).collect::<Vec<_>>().join(",");
    writeln!(
        out,
        "{:>5}  {:<11} {:<40} {:<28} {:<20} {:>12} {:>14}",
        attack.id,
        format!("{:?}", attack.status).to_lowercase(),
        target_label(a),
        vectors,
        // To the second in the table (RFC 3339, UTC); `show --json` has it to the microsecond.
        EventTime::from_unix_secs(a.start.unix_secs()),
        a.peak_pps,
        a.peak_bps,
    )
}

/// The target, marked when the attack leaves the protected network.
fn target_label(attack: &Attack) -> String {
    match attack.direction {
        Direction::Outbound => format!("{} (outbound)", attack.target),
        Direction::Inbound => attack.target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{AttackId, EventKind, Level, Metric, Target, Trigger, Vector};
    use rampart_store::Status;

    /// 2025-12-01 20:00:00.25 UTC.
    const START: EventTime = EventTime::from_unix_micros(1_764_619_200_250_000);

    fn attack(target: &str, direction: Direction) -> Attack {
        let target = match target.parse() {
            Ok(ip) => Target::Host(ip),
            Err(_) => Target::Prefix(target.parse().unwrap()),
        };
        let trigger = Trigger::new(Level::Host, Metric::Pps, 5000, 1000, START);
        let mut attack = Attack::new(AttackId(1), target, direction, trigger);
        attack.vectors = vec![Vector::SynFlood, Vector::UdpFlood];
        (attack.peak_pps, attack.peak_bps) = (5000, 40_000_000);
        attack
    }

    fn stored(attack: Attack) -> StoredAttack {
        StoredAttack {
            schema_version: rampart_contract::SchemaVersion,
            id: 1,
            run: 1,
            engine_id: 1,
            status: Status::Ended,
            last_event: EventKind::End,
            events: 2,
            first_recorded: 1,
            last_recorded: 2,
            attack,
        }
    }

    #[test]
    fn outbound_targets_are_marked() {
        assert_eq!(target_label(&attack("198.51.100.66", Direction::Outbound)), "198.51.100.66 (outbound)");
        assert_eq!(target_label(&attack("198.51.100.0/24", Direction::Inbound)), "198.51.100.0/24");
    }

    #[test]
    fn rows_show_the_typed_values_with_utc_dates() {
        let mut row = Vec::new();
        print_row(&mut row, &stored(attack("198.51.100.66", Direction::Outbound))).unwrap();
        let row = String::from_utf8(row).unwrap();
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "1",
                "ended",
                "198.51.100.66",
                "(outbound)",
                "syn_flood,udp_flood",
                "2025-12-01T20:00:00Z",
                "5000",
                "40000000"
            ],
            "{row}"
        );
    }

    #[test]
    fn array_elements_are_indented_as_serde_json_does() {
        let mut a = attack("198.51.100.7", Direction::Inbound);
        a.group = Some("a\nb".into());
        let attacks = vec![stored(a)];
        let mut streamed = b"[\n".to_vec();
        write_indented(&mut streamed, &attacks[0], &mut Vec::new()).unwrap();
        streamed.extend_from_slice(b"\n]");
        assert_eq!(String::from_utf8(streamed).unwrap(), serde_json::to_string_pretty(&attacks).unwrap());
    }

    #[test]
    fn since_accepts_seconds_dates_and_ages() {
        let now = 1_764_619_200.0; // 2025-12-01 20:00:00 UTC
        assert_eq!(since_at("1764619200", now), Ok(now));
        assert_eq!(since_at("2025-12-01", now), Ok(now - 20.0 * 3600.0));
        assert_eq!(since_at("2025-12-01T20:00:00", now), Ok(now));
        assert_eq!(since_at("2025-12-01 20:00Z", now), Ok(now));
        assert_eq!(since_at("2h", now), Ok(now - 7200.0));
        assert_eq!(since_at("7d", now), Ok(now - 7.0 * 86_400.0));
        assert_eq!(since_at("90s", now), Ok(now - 90.0));
        assert_eq!(since_at("2000-02-29", now), Ok(951_782_400.0));
        for bad in ["yesterday", "2025-13-01", "2025-12-01T25:00", "-5", "xh", "2025-12"] {
            let error = since_at(bad, now).unwrap_err();
            assert!(error.contains(bad) && error.contains("Unix seconds"), "{error}");
        }
    }
}
