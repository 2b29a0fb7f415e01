//! Applies a retention to an existing store the way the daemon's periodic `maintain` would,
//! until nothing is left to do, and prints each step (for measuring pruning and compaction):
//!
//! ```sh
//! cargo run -p rampart-store --release --example maintain -- DIR RETENTION_DAYS MAX_SIZE_MB
//! ```

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rampart_store::{Retention, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, days, mb] = args.as_slice() else {
        return Err("usage: maintain DIR RETENTION_DAYS MAX_SIZE_MB".into());
    };
    let retention = Retention::from_config(days.parse()?, mb.parse()?)?;
    let opened = Instant::now();
    let mut store = Store::open_with(&PathBuf::from(dir), retention)?;
    let before = store.stats()?;
    println!("opened in {:.2} s: {before:?}", opened.elapsed().as_secs_f64());
    let started = Instant::now();
    let (mut calls, mut slowest) = (0, 0.0f64);
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
        let call = Instant::now();
        let report = store.maintain(now)?;
        slowest = slowest.max(call.elapsed().as_secs_f64());
        calls += 1;
        if report.is_noteworthy() && (report.compaction.is_some() || calls % 20 == 1) {
            println!("call {calls}: {report}");
        }
        if !report.more {
            break;
        }
    }
    let after = store.stats()?;
    println!(
        "{calls} calls in {:.1} s (slowest {:.2} s): {after:?}",
        started.elapsed().as_secs_f64(),
        slowest
    );
    Ok(())
}
