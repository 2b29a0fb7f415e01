//! Fills a store with attacks of realistic size (real `rampart analyze` output, 3 and 7 kB of
//! JSON), each an onset and an end, for measuring listings:
//!
//! ```sh
//! cargo run -p rampart-store --release --example fill -- DIR 100000
//! /usr/bin/time -v rampart attacks list --all --json --data-dir DIR > /dev/null
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use rampart_store::{EventKind, NewEvent, Retention, Store};
use serde_json::Value;

fn fixture(name: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: fill DIR COUNT".into());
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count.parse()?;
    let templates = [fixture("attack-small.json")?, fixture("attack-large.json")?];
    let mut store = Store::open_with(&dir, Retention::UNLIMITED)?;
    let started = Instant::now();
    let mut clock = 1_764_619_200_000_000_000u64;
    let batch = 50;
    for first in (1..=count).step_by(batch) {
        let mut events = Vec::with_capacity(batch * 2);
        for engine_id in first..(first + batch as u64).min(count + 1) {
            let mut attack = templates[(engine_id % 2) as usize].clone();
            if let Some(object) = attack.as_object_mut() {
                object.insert("id".into(), engine_id.into());
                object.insert(
                    "target".into(),
                    format!("198.51.{}.{}", engine_id / 256 % 256, engine_id % 256).into(),
                );
            }
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
