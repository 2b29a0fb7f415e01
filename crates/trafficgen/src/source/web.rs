//! Benign web background: complete TCP sessions (handshake, request, ACK-clocked response
//! flights, FIN) between outside clients and protected servers on ports 80/443.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{NOISE_SPAN, Out, TEXT_BLOCK};
use crate::rng::Rand;
use crate::wire::{self, Addrs, Built, FrameBuf, IpHdr, PROTO_TCP, Tcp};

/// Clients 203.0.113.1-254 and 192.0.2.1-254; IPv6 clients 2001:db8:200::1-1fe.
pub(crate) const CLIENTS_PER_FAMILY: u32 = 508;
/// Servers 198.51.100.10-49 and 2001:db8:100::10-37.
pub(crate) const SERVERS_PER_FAMILY: u32 = 40;
pub(crate) const CLIENT_PREFIXES: [&str; 3] = ["203.0.113.0/24", "192.0.2.0/24", "2001:db8:200::/48"];
pub(crate) const SERVER_PREFIXES: [&str; 2] = ["198.51.100.0/24", "2001:db8:100::/48"];
pub(crate) const CLIENT_V6_BASE: u128 = 0x2001_0db8_0200_0000_0000_0000_0000_0000;
/// Upper bound on simultaneously open sessions, to bound memory at absurd rates.
const MAX_SESSIONS: usize = 1 << 20;
/// TCP options of SYN and SYN-ACK: MSS, NOP, window scale 7, NOP, NOP, SACK-permitted.
const SYN_OPTS_V4: [u8; 12] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2];
const SYN_OPTS_V6: [u8; 12] = [2, 4, 0x05, 0xa0, 1, 3, 3, 7, 1, 1, 4, 2];
/// Windows in SYN / SYN-ACK (unscaled) and afterwards (scaled by 2^7).
const CLIENT_SYN_WINDOW: u16 = 64_240;
const SERVER_SYN_WINDOW: u16 = 65_160;
pub(crate) const CLIENT_WINDOW: u16 = 2_048;
pub(crate) const SERVER_WINDOW: u16 = 502;
const HTTP_REQ: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: www.example.net\r\nUser-Agent: Mozilla/5.0\r\n\
Accept: text/html\r\nCookie: ";
const HTTP_RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n";

pub(crate) fn client_addr(v6: bool, idx: u32) -> u128 {
    if v6 {
        CLIENT_V6_BASE | u128::from(idx + 1)
    } else if idx < 254 {
        u128::from(0xcb00_7100u32 | (idx + 1))
    } else {
        u128::from(0xc000_0200u32 | (idx - 253))
    }
}

pub(crate) fn server_addr(v6: bool, idx: u32) -> u128 {
    if v6 { wire::PROTECTED_V6 | u128::from(0x10 + idx) } else { u128::from(wire::PROTECTED_V4 | (10 + idx)) }
}

/// The two endpoints of a TCP connection and the per-direction IP header state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) v6: bool,
    pub(crate) client: u128,
    pub(crate) server: u128,
    pub(crate) cport: u16,
    pub(crate) sport: u16,
    pub(crate) ttl_c: u8,
    pub(crate) ttl_s: u8,
    pub(crate) id_c: u16,
    pub(crate) id_s: u16,
}

impl Conn {
    fn addrs(&self, c2s: bool) -> Addrs {
        let (src, dst) = if c2s { (self.client, self.server) } else { (self.server, self.client) };
        if self.v6 { Addrs::V6 { src, dst } } else { Addrs::V4 { src: src as u32, dst: dst as u32 } }
    }

    /// IP header for the next packet in one direction (IPv4 IDs count up per sender; the IPv6
    /// flow label stays fixed).
    fn ip(&mut self, c2s: bool) -> IpHdr {
        let (ttl, id) = if c2s { (self.ttl_c, &mut self.id_c) } else { (self.ttl_s, &mut self.id_s) };
        let ident = *id;
        if !self.v6 {
            *id = id.wrapping_add(1);
        }
        IpHdr { addrs: self.addrs(c2s), ttl, ident, dont_fragment: true }
    }

    pub(crate) fn mss(&self) -> u32 {
        if self.v6 { 1440 } else { 1460 }
    }

    pub(crate) fn syn_opts(&self) -> &'static [u8] {
        if self.v6 { &SYN_OPTS_V6 } else { &SYN_OPTS_V4 }
    }

    /// Builds one segment; `fill` writes the payload into the slice it is given.
    pub(crate) fn segment(
        &mut self,
        buf: &mut FrameBuf,
        c2s: bool,
        tcp: Tcp,
        opts: &[u8],
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Built {
        let h = self.ip(c2s);
        let off = wire::l4_offset(self.v6);
        let hlen = wire::write_tcp(buf, off, &tcp, opts);
        let start = off + hlen;
        let end = (start + payload_len).min(off + wire::l4_max(self.v6));
        fill(&mut buf[start..end]);
        wire::finish(buf, &h, PROTO_TCP, end - off)
    }
}

/// Plain-HTTP filler: `prefix`, then text, ending in a blank line when there is room.
pub(crate) fn fill_http(dst: &mut [u8], prefix: &[u8], text_off: usize) {
    let n = dst.len();
    let p = prefix.len().min(n);
    dst[..p].copy_from_slice(&prefix[..p]);
    wire::copy_payload(dst, p, &TEXT_BLOCK, text_off % 2048, n - p);
    if n >= p + 4 {
        dst[n - 4..].copy_from_slice(b"\r\n\r\n");
    }
}

/// TLS filler: one complete application-data record per segment (header, then random bytes),
/// so dissectors see well-formed records. Segments shorter than 6 bytes get no header; callers
/// avoid them.
pub(crate) fn fill_tls(dst: &mut [u8], noise: &[u8], noise_off: usize) {
    let n = dst.len();
    wire::copy_payload(dst, 0, noise, noise_off, n);
    if n > 5 {
        let rec = (n - 5) as u16;
        dst[..5].copy_from_slice(&[0x17, 0x03, 0x03, (rec >> 8) as u8, rec as u8]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Syn,
    SynAck,
    Ack,
    Request,
    Data,
    DataAck,
    ClientFin,
    ServerFin,
    LastAck,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    conn: Conn,
    phase: Phase,
    c_next: u32,
    s_next: u32,
    s_acked: u32,
    rtt: u64,
    srv: u64,
    gap: u64,
    req_len: u32,
    resp_left: u32,
    flight_size: u32,
    flight_sent: u32,
    acks_left: u32,
    flight_start: u64,
    first_data: bool,
}

/// Session shape drawn per arrival: (server port, request bytes, response bytes).
fn draw_shape(rng: &mut Rand) -> (u16, u32, u32) {
    let port = if rng.percent(70) { 443 } else { 80 };
    let req = if port == 80 { rng.range(120, 700) } else { rng.range(100, 1200) };
    let class = rng.below(100);
    let resp = if class < 50 {
        rng.range(200, 2_000)
    } else if class < 85 {
        rng.range(2_000, 30_000)
    } else {
        rng.range(30_000, 300_000)
    };
    (port, req, resp)
}

/// Exact packet count of a completed session (see the state machine below).
fn session_packets(resp: u32, mss: u32) -> u64 {
    let mut segs = resp.div_ceil(mss);
    let mut total = 7u64;
    let mut flight = 10;
    while segs > 0 {
        let f = segs.min(flight);
        total += u64::from(f + f.div_ceil(2));
        segs -= f;
        flight = (flight * 2).min(64);
    }
    total
}

/// Mean packets per session, measured on a fixed-seed sample so rates do not depend on the seed.
fn mean_session_packets() -> f64 {
    let mut rng = Rand::new(0x5eed_ca1b, 0);
    let n = 4096;
    let sum: u64 = (0..n).map(|_| session_packets(draw_shape(&mut rng).2, 1460)).sum();
    sum as f64 / f64::from(n)
}

/// Web background source.
#[derive(Debug)]
pub(crate) struct Web {
    rng: Rand,
    sessions: Vec<Session>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    next_arrival: u64,
    arrival_interval: u64,
    arrivals_end: u64,
    v6_percent: u32,
    tag: usize,
    pub(crate) started: u64,
    pub(crate) completed: u64,
    clients_seen: [u64; 16],
    servers_seen: [u64; 2],
}

impl Web {
    pub(crate) fn new(
        seed: u64,
        stream: u64,
        pps: u64,
        start: u64,
        end: u64,
        v6_percent: u32,
        tag: usize,
    ) -> Self {
        let arrival_interval = ((1e9 * mean_session_packets() / pps.max(1) as f64) as u64).max(1);
        let mut rng = Rand::new(seed, stream);
        let first = start + rng.below_u64(arrival_interval);
        Self {
            rng,
            sessions: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            next_arrival: first,
            arrival_interval,
            arrivals_end: end,
            v6_percent,
            tag,
            started: 0,
            completed: 0,
            clients_seen: [0; 16],
            servers_seen: [0; 2],
        }
    }

    pub(crate) fn distinct_clients(&self) -> u64 {
        self.clients_seen.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub(crate) fn distinct_servers(&self) -> u64 {
        self.servers_seen.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn arrival_due(&self) -> Option<u64> {
        (self.next_arrival < self.arrivals_end).then_some(self.next_arrival)
    }

    pub(crate) fn peek(&self) -> Option<u64> {
        let h = self.heap.peek().map(|Reverse((t, _))| *t);
        match (self.arrival_due(), h) {
            (Some(a), Some(h)) => Some(a.min(h)),
            (a, h) => a.or(h),
        }
    }

    pub(crate) fn next(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> Option<Out> {
        let heap_t = self.heap.peek().map(|Reverse((t, _))| *t);
        match self.arrival_due() {
            Some(a) if heap_t.is_none_or(|h| a <= h) => {
                self.next_arrival = a + self.rng.jitter(self.arrival_interval);
                self.open(a, buf)
            }
            _ => {
                let Reverse((t, slot)) = self.heap.pop()?;
                let idx = slot as usize;
                let mut s = *self.sessions.get(idx)?;
                let (built, next) = self.step(&mut s, t, buf, noise);
                match next {
                    Some(n) => self.heap.push(Reverse((n, slot))),
                    None => {
                        self.free.push(slot);
                        self.completed += 1;
                    }
                }
                if let Some(dst) = self.sessions.get_mut(idx) {
                    *dst = s;
                }
                Some(Out { ts: t, built, tag: self.tag })
            }
        }
    }

    /// Starts a session at `t` and returns its SYN.
    fn open(&mut self, t: u64, buf: &mut FrameBuf) -> Option<Out> {
        if self.heap.len() >= MAX_SESSIONS {
            return None;
        }
        let rng = &mut self.rng;
        let v6 = rng.percent(self.v6_percent);
        let ci = rng.below(CLIENTS_PER_FAMILY);
        let si = rng.below(SERVERS_PER_FAMILY);
        let (port, req_len, mut resp_len) = draw_shape(rng);
        let hops = rng.range(4, 24) as u8;
        let conn = Conn {
            v6,
            client: client_addr(v6, ci),
            server: server_addr(v6, si),
            cport: rng.range(32_768, 60_999) as u16,
            sport: port,
            ttl_c: if rng.percent(70) { 64 - hops } else { 128 - hops },
            ttl_s: 63,
            id_c: rng.u16(),
            id_s: rng.u16(),
        };
        if port == 443 && (1..=5).contains(&(resp_len % conn.mss())) {
            // Keep the last segment long enough for a whole TLS record.
            resp_len += 6;
        }
        let mut s = Session {
            conn,
            phase: Phase::Syn,
            c_next: rng.u32(),
            s_next: rng.u32(),
            s_acked: 0,
            rtt: u64::from(rng.range(5_000, 150_000)) * 1_000,
            srv: u64::from(rng.range(50, 500)) * 1_000,
            gap: u64::from(rng.range(12, 120)) * 1_000,
            req_len,
            resp_left: resp_len,
            flight_size: 10,
            flight_sent: 0,
            acks_left: 0,
            flight_start: 0,
            first_data: true,
        };
        let fam = usize::from(v6);
        let cbit = fam * CLIENTS_PER_FAMILY as usize + ci as usize;
        if let Some(w) = self.clients_seen.get_mut(cbit / 64) {
            *w |= 1 << (cbit % 64);
        }
        let sbit = fam * SERVERS_PER_FAMILY as usize + si as usize;
        if let Some(w) = self.servers_seen.get_mut(sbit / 64) {
            *w |= 1 << (sbit % 64);
        }
        self.started += 1;
        let (built, next) = self.step(&mut s, t, buf, &[]);
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(dst) = self.sessions.get_mut(slot as usize) {
                    *dst = s;
                }
                slot
            }
            None => {
                self.sessions.push(s);
                (self.sessions.len() - 1) as u32
            }
        };
        if let Some(n) = next {
            self.heap.push(Reverse((n, slot)));
        }
        Some(Out { ts: t, built, tag: self.tag })
    }

    /// Emits the packet of `s` due at `now`; returns it and the session's next event time.
    fn step(&mut self, s: &mut Session, now: u64, buf: &mut FrameBuf, noise: &[u8]) -> (Built, Option<u64>) {
        let rng = &mut self.rng;
        let mss = s.conn.mss();
        let http = s.conn.sport == 80;
        let (cport, sport) = (s.conn.cport, s.conn.sport);
        let c2s =
            |seq, ack, flags| Tcp { sport: cport, dport: sport, seq, ack, flags, window: CLIENT_WINDOW };
        let s2c = |seq, ack, flags| Tcp { sport, dport: cport, seq, ack, flags, window: SERVER_WINDOW };
        let none = |_: &mut [u8]| {};
        match s.phase {
            Phase::Syn => {
                let opts = s.conn.syn_opts();
                let t = Tcp { window: CLIENT_SYN_WINDOW, ..c2s(s.c_next, 0, wire::TCP_SYN) };
                let b = s.conn.segment(buf, true, t, opts, 0, none);
                s.c_next = s.c_next.wrapping_add(1);
                s.phase = Phase::SynAck;
                (b, Some(now + s.srv))
            }
            Phase::SynAck => {
                let opts = s.conn.syn_opts();
                let t = Tcp {
                    window: SERVER_SYN_WINDOW,
                    ..s2c(s.s_next, s.c_next, wire::TCP_SYN | wire::TCP_ACK)
                };
                let b = s.conn.segment(buf, false, t, opts, 0, none);
                s.s_next = s.s_next.wrapping_add(1);
                s.s_acked = s.s_next;
                s.phase = Phase::Ack;
                (b, Some(now + s.rtt))
            }
            Phase::Ack => {
                let b = s.conn.segment(buf, true, c2s(s.c_next, s.s_next, wire::TCP_ACK), &[], 0, none);
                s.phase = Phase::Request;
                (b, Some(now + u64::from(rng.range(20, 200)) * 1_000))
            }
            Phase::Request => {
                let t = c2s(s.c_next, s.s_next, wire::TCP_PSH | wire::TCP_ACK);
                let text_off = rng.below(2048) as usize;
                let noise_off = rng.below(NOISE_SPAN) as usize;
                let len = s.req_len as usize;
                let b = s.conn.segment(buf, true, t, &[], len, |p| {
                    if http { fill_http(p, HTTP_REQ, text_off) } else { fill_tls(p, noise, noise_off) }
                });
                s.c_next = s.c_next.wrapping_add(s.req_len);
                s.phase = Phase::Data;
                s.flight_start = now + s.srv + u64::from(rng.below(20_000)) * 1_000;
                (b, Some(s.flight_start))
            }
            Phase::Data => {
                let len = s.resp_left.min(mss);
                s.resp_left -= len;
                s.flight_sent += 1;
                let last_of_flight = s.flight_sent >= s.flight_size || s.resp_left == 0;
                let flags = if last_of_flight { wire::TCP_PSH | wire::TCP_ACK } else { wire::TCP_ACK };
                let t = s2c(s.s_next, s.c_next, flags);
                let first = s.first_data;
                let text_off = rng.below(2048) as usize;
                let noise_off = rng.below(NOISE_SPAN) as usize;
                let b = s.conn.segment(buf, false, t, &[], len as usize, |p| {
                    if http {
                        fill_http(p, if first { HTTP_RESP } else { b"" }, text_off)
                    } else {
                        fill_tls(p, noise, noise_off)
                    }
                });
                s.first_data = false;
                s.s_next = s.s_next.wrapping_add(len);
                if last_of_flight {
                    s.phase = Phase::DataAck;
                    s.acks_left = s.flight_sent.div_ceil(2);
                    (b, Some((s.flight_start + s.rtt).max(now + s.gap)))
                } else {
                    (b, Some(now + s.gap))
                }
            }
            Phase::DataAck => {
                s.acks_left -= 1;
                s.s_acked = if s.acks_left == 0 {
                    s.s_next
                } else {
                    let step = s.s_acked.wrapping_add(2 * mss);
                    // Never acknowledge beyond what the server sent (sequence space wraps).
                    if s.s_next.wrapping_sub(step) as i32 >= 0 { step } else { s.s_next }
                };
                let b = s.conn.segment(buf, true, c2s(s.c_next, s.s_acked, wire::TCP_ACK), &[], 0, none);
                if s.acks_left > 0 {
                    (b, Some(now + 2 * s.gap))
                } else if s.resp_left > 0 {
                    s.phase = Phase::Data;
                    s.flight_size = (s.flight_size * 2).min(64);
                    s.flight_sent = 0;
                    s.flight_start = now + u64::from(rng.range(30, 100)) * 1_000;
                    (b, Some(s.flight_start))
                } else {
                    s.phase = Phase::ClientFin;
                    (b, Some(now + u64::from(rng.range(1_000, 50_000)) * 1_000))
                }
            }
            Phase::ClientFin => {
                let t = c2s(s.c_next, s.s_next, wire::TCP_FIN | wire::TCP_ACK);
                let b = s.conn.segment(buf, true, t, &[], 0, none);
                s.c_next = s.c_next.wrapping_add(1);
                s.phase = Phase::ServerFin;
                (b, Some(now + s.srv))
            }
            Phase::ServerFin => {
                let t = s2c(s.s_next, s.c_next, wire::TCP_FIN | wire::TCP_ACK);
                let b = s.conn.segment(buf, false, t, &[], 0, none);
                s.s_next = s.s_next.wrapping_add(1);
                s.phase = Phase::LastAck;
                (b, Some(now + s.rtt))
            }
            Phase::LastAck => {
                let b = s.conn.segment(buf, true, c2s(s.c_next, s.s_next, wire::TCP_ACK), &[], 0, none);
                (b, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_their_prefixes() {
        for i in 0..CLIENTS_PER_FAMILY {
            let a = client_addr(false, i) as u32;
            assert!(a & 0xffff_ff00 == 0xcb00_7100 || a & 0xffff_ff00 == 0xc000_0200, "{a:x}");
            let last = a & 0xff;
            assert!((1..=254).contains(&last));
            assert!(client_addr(true, i) >> 80 == CLIENT_V6_BASE >> 80);
        }
        for i in 0..SERVERS_PER_FAMILY {
            assert!(wire::is_protected_v4(server_addr(false, i) as u32));
            assert!(wire::is_protected_v6(server_addr(true, i)));
        }
        assert_eq!(server_addr(false, 0) as u32, wire::PROTECTED_V4 | 10);
    }

    #[test]
    fn packet_count_model_matches_state_machine() {
        assert_eq!(session_packets(200, 1460), 7 + 1 + 1);
        assert_eq!(session_packets(1460 * 10, 1460), 7 + 10 + 5);
        assert_eq!(session_packets(1460 * 11, 1460), 7 + 10 + 5 + 1 + 1);
        let m = mean_session_packets();
        assert!(m > 15.0 && m < 80.0, "{m}");
    }

    #[test]
    fn sessions_complete_with_exact_packet_counts() {
        let mut w = Web::new(3, 1, 2_000, 0, 1_000_000_000, 0, 0);
        let noise = vec![0u8; super::super::NOISE_LEN];
        let mut buf = [0u8; wire::BUF_LEN];
        let mut last = 0;
        let mut n = 0u64;
        while let Some(t) = w.peek() {
            assert!(t >= last);
            last = t;
            if w.next(&mut buf, &noise).is_some() {
                n += 1;
            }
        }
        assert!(w.started > 10);
        assert_eq!(w.started, w.completed, "without a window end every session completes");
        assert!(n > 1_000, "{n}");
        assert!(w.distinct_clients() > 10 && w.distinct_servers() > 5);
    }
}
