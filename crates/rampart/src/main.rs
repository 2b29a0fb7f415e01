//! `rampart`: the one binary. Each subcommand wires library crates together; no protocol logic
//! lives here.

#![forbid(unsafe_code)]

mod analyze;
mod attacks;
mod capture_input;
mod collect;
mod decisions;
mod filter;
mod generate;
mod html;
mod inspect;
mod replay;
mod report;
mod run;
mod shield;
mod shield_flood;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rampart: multi-layered DDoS defense. Telemetry in (pcap/pcapng, live capture, sFlow v5,
/// NetFlow v5/v9, IPFIX), one normalized traffic stream out.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a pcap or pcapng capture (or `-` for standard input) and report its traffic: totals,
    /// every destination by bytes, protocols, decoder statistics.
    Inspect(inspect::InspectArgs),
    /// Listen for sFlow, NetFlow and IPFIX exports (and optionally capture an interface) for a
    /// while, then report the traffic they described, per destination, scaled by sampling.
    Collect(collect::CollectArgs),
    /// Write a deterministic capture of a named traffic scenario, with its ground truth in
    /// FILE.truth.json. Nothing is sent on any network.
    Generate(generate::GenerateArgs),
    /// Replay a capture as an sFlow v5 agent would export it, paced by the capture's
    /// timestamps, to one or more collectors.
    Replay(replay::ReplayArgs),
    /// Run the detection daemon: listen for flow exports, detect attacks, store them and
    /// report them (JSON lines on stdout, webhook, Prometheus metrics). SIGTERM or Ctrl-C
    /// stops it cleanly; SIGHUP re-reads the file of its `[shield]`.
    Run(run::RunArgs),
    /// List or show the attacks `rampart run` recorded.
    Attacks(attacks::AttacksArgs),
    /// Run detection over a pcap or pcapng capture in its own event time and report the
    /// attacks found: targets, vectors, timing, volume, signatures.
    Analyze(analyze::AnalyzeArgs),
    /// List the decisions in force (what Rampart blocks, rate-limits or would in dry run).
    Decisions(decisions::DecisionsArgs),
    /// Put a decision in force by hand (through the same safety guards as automatic ones).
    Ban(decisions::BanArgs),
    /// Withdraw decisions by id, or every one on an address or prefix.
    Unban(decisions::UnbanArgs),
    /// Check the audit log of every decision change for tampering.
    Audit(decisions::AuditArgs),
    /// The host filter: enforce decisions in XDP (nftables where XDP cannot attach), show
    /// what it attached and dropped, detach it.
    Filter(filter::FilterArgs),
    /// Run the HTTP shield: a hardened HTTP/1.1 and HTTP/2 reverse proxy with per-address
    /// and per-prefix limits, in front of a website.
    Shield(shield::ShieldArgs),
}

/// mimalloc instead of glibc malloc: the shield allocates per request (header maps, buffers),
/// and glibc's malloc and free were ~11 % of the proxy's CPU at full load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Collect(args) => collect::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Run(args) => run::run(args),
        Command::Attacks(args) => attacks::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Decisions(args) => decisions::run_decisions(args),
        Command::Ban(args) => decisions::run_ban(args),
        Command::Unban(args) => decisions::run_unban(args),
        Command::Audit(args) => decisions::run_audit(args),
        Command::Filter(args) => filter::run(args),
        Command::Shield(args) => shield::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`rampart inspect x.pcap | head`) is the reader's choice, not an error.
        Err(error)
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            // One line, with the context chain: "cannot open capture x.pcap: No such file".
            eprintln!("rampart: {error:#}");
            ExitCode::FAILURE
        }
    }
}
