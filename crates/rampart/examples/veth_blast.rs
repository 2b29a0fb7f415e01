//! Bounded raw-socket packet sender for the interface-capture benchmark (`bench/afpacket.sh`),
//! run inside the benchmark's own network namespace at one end of a veth pair.
//!
//! Sends IPv4 UDP packets (IPPROTO_RAW: the header is ours) from varying sources of
//! 203.0.113.0/24 and varying ports to one address, paced at a packet rate or as fast as the
//! socket takes them, for a bounded count and time, then prints one JSON object: packets sent,
//! seconds, achieved rate.
//!
//! Safety rule: the destination must be in 198.51.100.0/24 or 192.0.2.0/24 (documentation
//! ranges the benchmark assigns inside its namespaces); anything else is refused. Count and
//! time are capped.
//!
//! ```text
//! ip netns exec NS target/release/examples/veth_blast --to 198.51.100.10 --count 1000000 --pps 200000
//! ```

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

/// Most packets one run may send.
const MAX_COUNT: u64 = 100_000_000;
/// Packets sent between pacing checks.
const CHUNK: u64 = 64;

/// Sends a bounded UDP blast through a raw socket to a documentation address.
#[derive(Debug, Parser)]
struct Args {
    /// Destination: an address in 198.51.100.0/24 or 192.0.2.0/24 only.
    #[arg(long)]
    to: Ipv4Addr,
    /// Packets to send, then stop.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Packets per second to offer; 0: as fast as the socket takes them.
    #[arg(long, default_value_t = 0)]
    pps: u64,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 18)]
    payload: u16,
    /// Hard stop after this many seconds, whatever was sent.
    #[arg(long, default_value_t = 30.0)]
    max_seconds: f64,
}

fn allowed(to: Ipv4Addr) -> bool {
    let [a, b, c, _] = to.octets();
    matches!((a, b, c), (198, 51, 100) | (192, 0, 2))
}

/// An IPv4/UDP packet from `src` to `dst` (checksums: the kernel fills the IP one; UDP's is
/// optional over IPv4).
fn packet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: u16) -> Vec<u8> {
    let total = 20 + 8 + payload;
    let mut p = vec![0u8; usize::from(total)];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&(8 + payload).to_be_bytes());
    p
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !allowed(args.to) {
        bail!(
            "refusing to send to {}: only 198.51.100.0/24 or 192.0.2.0/24 (inside a test namespace)",
            args.to
        );
    }
    if args.count == 0 || args.count > MAX_COUNT {
        bail!("--count must be 1 to {MAX_COUNT}");
    }
    if !(args.max_seconds > 0.0 && args.max_seconds <= 120.0) {
        bail!("--max-seconds must be in (0, 120]");
    }
    if args.payload > 1400 {
        bail!("--payload must be at most 1400 bytes");
    }
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(255)), // IPPROTO_RAW
    )
    .context("cannot open a raw socket (needs root or CAP_NET_RAW)")?;
    let to = socket2::SockAddr::from(SocketAddr::V4(SocketAddrV4::new(args.to, 0)));
    // 256 sources × 64 source ports: enough flows for a fanout hash to spread.
    let packets: Vec<Vec<u8>> = (0..16_384u32)
        .map(|i| {
            let src = Ipv4Addr::new(203, 0, 113, (i % 256) as u8);
            packet(src, args.to, 1024 + (i / 256) as u16, 9, args.payload)
        })
        .collect();
    let limit = Duration::from_secs_f64(args.max_seconds);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut refused: u64 = 0;
    while sent < args.count {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            break;
        }
        if args.pps > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.pps as f64);
            if due > elapsed {
                std::thread::sleep((due - elapsed).min(Duration::from_millis(5)));
                continue;
            }
        }
        for _ in 0..CHUNK.min(args.count - sent) {
            let p = &packets[(sent % packets.len() as u64) as usize];
            match socket.send_to(p, &to) {
                Ok(_) => sent += 1,
                // ENOBUFS: the device queue is full; count and go on.
                Err(_) => refused += 1,
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{sent},\"refused\":{refused},\"seconds\":{seconds:.3},\"pps\":{:.0}}}",
        sent as f64 / seconds
    );
    Ok(())
}
