//! `rampart attacks list --all --json` in release without building the whole binary: the
//! streamed listing it does now, or (`--old`) what it did before (redb's default 1 GiB cache,
//! every attack collected, then printed).
//!
//! ```sh
//! cargo run -p rampart-store --release --example fill -- DIR 100000
//! cargo build -p rampart-store --release --example list
//! /usr/bin/time -v target/release/examples/list DIR > /dev/null
//! /usr/bin/time -v target/release/examples/list DIR --old > /dev/null
//! ```

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rampart_store::{Order, StoreReader, StoredAttack};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: list DIR [--old]")?);
    let old = args.next().as_deref() == Some("--old");
    let mut out = BufWriter::new(std::io::stdout().lock());
    if old {
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open_read_only(dir.join(rampart_store::FILE_NAME))?;
        let txn = db.begin_read()?;
        let table = txn.open_table(TableDefinition::<u64, &[u8]>::new("attacks"))?;
        let mut attacks: Vec<StoredAttack> = Vec::new();
        for entry in table.iter()? {
            attacks.push(serde_json::from_slice(entry?.1.value())?);
        }
        serde_json::to_writer_pretty(&mut out, &attacks)?;
        writeln!(out)?;
    } else {
        // As crates/rampart/src/attacks.rs does it.
        let reader = StoreReader::open(&dir)?;
        let mut printed = 0;
        let mut scratch = Vec::new();
        write!(out, "[")?;
        for attack in reader.iter(.., Order::OldestFirst)? {
            write!(out, "{}", if printed == 0 { "\n" } else { ",\n" })?;
            scratch.clear();
            serde_json::to_writer_pretty(&mut scratch, &attack?)?;
            for (n, line) in scratch.split(|&b| b == b'\n').enumerate() {
                out.write_all(if n == 0 { b"  " } else { b"\n  " })?;
                out.write_all(line)?;
            }
            printed += 1;
        }
        writeln!(out, "{}", if printed == 0 { "]" } else { "\n]" })?;
    }
    out.flush()?;
    Ok(())
}
