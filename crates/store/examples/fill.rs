//! Fills a store with attacks of realistic size (typed attacks with filled fingerprints, 3 and
//! 7 kB of JSON: `tests/support/realistic.rs`), each an onset and an end, for measuring listings:
//!
//! ```sh
//! cargo run -p rampart-store --release --example fill -- DIR 100000
//! /usr/bin/time -v rampart attacks list --all --json --data-dir DIR > /dev/null
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use rampart_contract::{AttackId, EventKind, Target};
use rampart_store::{NewEvent, Retention, Store};

#[path = "../tests/support/realistic.rs"]
mod realistic;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: fill DIR COUNT".into());
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count.parse()?;
    let templates = [realistic::syn_flood(), realistic::udp_flood()];
    let mut store = Store::open_with(&dir, Retention::UNLIMITED)?;
    let started = Instant::now();
    let mut clock = 1_764_619_200_000_000_000u64;
    let batch = 50;
    for first in (1..=count).step_by(batch) {
        let mut events = Vec::with_capacity(batch * 2);
        for engine_id in first..(first + batch as u64).min(count + 1) {
            let mut attack = templates[(engine_id % 2) as usize].clone();
            attack.id = AttackId(engine_id);
            let host = IpAddr::from([198, 51, (engine_id / 256 % 256) as u8, (engine_id % 256) as u8]);
            attack.target = Target::Host(host);
            attack.signature.dst_prefixes = vec![host.into()];
            events.push(NewEvent { kind: EventKind::Onset, attack: attack.clone() });
            events.push(NewEvent { kind: EventKind::End, attack });
        }
        clock += 1_000_000_000;
        store.record(&events, clock)?;
    }
    let stats = store.stats()?;
    println!(
        "{} attacks, {} events, file {:.1} MiB, payload {:.1} MiB, in {:.1} s",
        stats.attacks,
        stats.events,
        stats.file_bytes as f64 / 1048576.0,
        stats.payload_bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
