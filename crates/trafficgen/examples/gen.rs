//! `cargo run --release -p rampart-trafficgen --example gen -- SCENARIO OUT.pcap [PARAMS_JSON]`
//!
//! Writes OUT.pcap and OUT.pcap.truth.json (OUT `-`: the capture to stdout, no truth file);
//! PARAMS_JSON is a partial `GenParams` object, e.g. '{"seed": 7, "attack_pps": 1000000}'.
//! Prints the packet count and the write rate to stderr.

use std::time::Instant;

use rampart_trafficgen::{GenParams, Scenario, generate_to_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(name), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: gen SCENARIO OUT.pcap [PARAMS_JSON]");
        for s in Scenario::ALL {
            eprintln!("  {:<24} {}", s.name(), s.description());
        }
        std::process::exit(2);
    };
    let scenario: Scenario = name.parse()?;
    let mut params = serde_json::to_value(GenParams::for_scenario(scenario))?;
    if let Some(json) = args.get(3) {
        let overrides: serde_json::Value = serde_json::from_str(json)?;
        if let (Some(base), Some(over)) = (params.as_object_mut(), overrides.as_object()) {
            base.extend(over.clone());
        }
    }
    let params: GenParams = serde_json::from_value(params)?;
    let t = Instant::now();
    let truth = if out == "-" {
        rampart_trafficgen::generate(scenario, &params, std::io::stdout().lock())?
    } else {
        generate_to_file(scenario, &params, out.as_ref())?
    };
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} packets, {} IP bytes, {} attacks in {:.3} s ({:.2} Mpps)",
        scenario,
        truth.totals.packets,
        truth.totals.bytes,
        truth.attacks.len(),
        secs,
        truth.totals.packets as f64 / secs / 1e6
    );
    Ok(())
}
