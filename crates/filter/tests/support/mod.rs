//! Test helpers: packets built byte by byte, peers required or skipped, bpffs mounted.
#![allow(dead_code)]

use std::net::IpAddr;

/// Whether a missing capability must fail the test (CI) rather than skip it.
pub fn required() -> bool {
    std::env::var_os("RAMPART_REQUIRE_PEERS").is_some_and(|v| v == "1") || std::env::var_os("CI").is_some()
}

/// Skips (prints why) or, where required, fails.
pub fn skip(why: &str) {
    assert!(!required(), "required but unavailable: {why}");
    eprintln!("skipping: {why}");
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Mounts bpffs at /sys/fs/bpf if nothing is mounted there.
pub fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf")) {
        let _ = std::process::Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]).status();
    }
}

/// Moves the calling thread (a test's own) into a fresh network namespace and sets
/// net.ipv4.tcp_syncookies there (the host's stays as it is; /proc/sys/net follows the
/// reading thread's namespace). Needs root.
pub fn own_netns_with_syncookies(value: u8) {
    if !is_root() {
        return; // the test skips (or fails where required) when it loads the program
    }
    // SAFETY: unshare takes a flag word and changes only the calling thread's namespaces.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
    std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", value.to_string())
        .expect("writing tcp_syncookies in the test's namespace");
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

/// A packet's headers.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub payload: usize,
    /// IPv4 fragment offset in 8-byte units (non-zero: a non-initial fragment).
    pub frag_offset: u16,
    /// TCP sequence and acknowledgement numbers.
    pub seq: u32,
    pub ack: u32,
}

impl Pkt {
    pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Self {
        Pkt {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: UDP,
            sport,
            dport,
            flags: 0,
            payload: 32,
            frag_offset: 0,
            seq: 1,
            ack: 0,
        }
    }

    pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Self {
        Pkt { protocol: TCP, flags, payload: 0, ..Pkt::udp(src, dst, sport, dport) }
    }

    fn l4(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        if self.frag_offset == 0 {
            match self.protocol {
                TCP => {
                    l4.extend_from_slice(&self.sport.to_be_bytes());
                    l4.extend_from_slice(&self.dport.to_be_bytes());
                    l4.extend_from_slice(&self.seq.to_be_bytes());
                    l4.extend_from_slice(&self.ack.to_be_bytes());
                    l4.extend_from_slice(&[0x50, self.flags, 0xff, 0xff, 0, 0, 0, 0]);
                }
                UDP => {
                    l4.extend_from_slice(&self.sport.to_be_bytes());
                    l4.extend_from_slice(&self.dport.to_be_bytes());
                    l4.extend_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                    l4.extend_from_slice(&[0, 0]);
                }
                _ => {}
            }
        }
        l4.extend(std::iter::repeat_n(0xab, self.payload));
        l4
    }

    /// The IP total length the filter sees.
    pub fn ip_len(&self) -> u64 {
        let header = if self.src.is_ipv4() { 20 } else { 40 };
        (header + self.l4().len()) as u64
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let l4 = self.l4();
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + l4.len()) as u16;
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&[0, 1]);
                ip.extend_from_slice(&self.frag_offset.to_be_bytes());
                ip.extend_from_slice(&[64, self.protocol, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let sum = checksum(&ip);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd]);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.extend_from_slice(&[self.protocol, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// The ones' complement sum of `b` folded (0 over a header whose checksum is right).
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 =
        b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A bpffs pin directory of a test's own, removed when the test ends, passed or not.
pub struct Unpin(pub std::path::PathBuf);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
