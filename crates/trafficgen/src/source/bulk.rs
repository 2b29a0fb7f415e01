//! One large legitimate outbound TCP transfer: a protected server streams data to an outside
//! client at a high rate; the client ACKs every second segment.

use super::web::{Conn, SERVER_WINDOW, fill_tls};
use super::{NOISE_SPAN, Out};
use crate::rng::Rand;
use crate::wire::{self, FrameBuf, Tcp};

/// MSS, NOP, window scale 7, NOP, NOP, SACK-permitted.
const BULK_SYN_OPTS: [u8; 12] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2];
/// Client 203.0.113.50.
pub(crate) const BULK_CLIENT: u32 = 0xcb00_7132;
const RTT_NS: u64 = 40_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Syn,
    SynAck,
    Ack,
    Request,
    Stream,
    ServerFin,
    ClientFin,
    LastAck,
    Done,
}

/// The bulk-transfer source.
#[derive(Debug)]
pub(crate) struct Bulk {
    rng: Rand,
    pub(crate) conn: Conn,
    phase: Phase,
    next: u64,
    stop: u64,
    interval: u64,
    c_next: u32,
    s_first: u32,
    s_next: u32,
    sent_bytes: u64,
    inflight: u64,
    slot: u64,
    tag: usize,
}

impl Bulk {
    /// Transfer from `server` (protected) to [`BULK_CLIENT`] between `start` and `stop`, `pps`
    /// packets per second in both directions together.
    pub(crate) fn new(
        seed: u64,
        stream: u64,
        server: u32,
        start: u64,
        stop: u64,
        pps: u64,
        tag: usize,
    ) -> Self {
        let mut rng = Rand::new(seed, stream);
        let interval = (1_000_000_000 / pps.max(1)).max(1);
        let conn = Conn {
            v6: false,
            client: u128::from(BULK_CLIENT),
            server: u128::from(server),
            cport: rng.range(32_768, 60_999) as u16,
            sport: 443,
            ttl_c: 52,
            ttl_s: 63,
            id_c: rng.u16(),
            id_s: rng.u16(),
        };
        // Bytes in flight over one RTT at the data rate (two data segments per three slots).
        let inflight = (RTT_NS / interval) * 2 / 3 * u64::from(conn.mss());
        let c_next = rng.u32();
        let s_first = rng.u32();
        Self {
            rng,
            conn,
            phase: Phase::Syn,
            next: start,
            stop,
            interval,
            c_next,
            s_first,
            s_next: s_first,
            sent_bytes: 0,
            inflight,
            slot: 0,
            tag,
        }
    }

    pub(crate) fn peek(&self) -> Option<u64> {
        (self.phase != Phase::Done).then_some(self.next)
    }

    pub(crate) fn next(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> Out {
        let ts = self.next;
        let (cport, sport) = (self.conn.cport, self.conn.sport);
        let c2s = |seq, ack, flags| Tcp { sport: cport, dport: sport, seq, ack, flags, window: 65_535 };
        let s2c = |seq, ack, flags| Tcp { sport, dport: cport, seq, ack, flags, window: SERVER_WINDOW };
        let none = |_: &mut [u8]| {};
        let ack_flags = wire::TCP_ACK;
        let (built, next_ts, phase) = match self.phase {
            Phase::Syn => {
                let b =
                    self.conn.segment(buf, true, c2s(self.c_next, 0, wire::TCP_SYN), &BULK_SYN_OPTS, 0, none);
                self.c_next = self.c_next.wrapping_add(1);
                (b, ts + 200_000, Phase::SynAck)
            }
            Phase::SynAck => {
                let t = s2c(self.s_next, self.c_next, wire::TCP_SYN | wire::TCP_ACK);
                let b = self.conn.segment(buf, false, t, &BULK_SYN_OPTS, 0, none);
                self.s_next = self.s_next.wrapping_add(1);
                self.s_first = self.s_next;
                (b, ts + RTT_NS, Phase::Ack)
            }
            Phase::Ack => {
                let b = self.conn.segment(buf, true, c2s(self.c_next, self.s_next, ack_flags), &[], 0, none);
                (b, ts + 50_000, Phase::Request)
            }
            Phase::Request => {
                let off = self.rng.below(NOISE_SPAN) as usize;
                let t = c2s(self.c_next, self.s_next, wire::TCP_PSH | wire::TCP_ACK);
                let b = self.conn.segment(buf, true, t, &[], 517, |p| fill_tls(p, noise, off));
                self.c_next = self.c_next.wrapping_add(517);
                (b, ts + 300_000, Phase::Stream)
            }
            Phase::Stream => {
                // Every third slot is a client ACK, once a first RTT's worth of data is out
                // (earlier ACKs would all repeat the same number).
                let b = if self.slot % 3 == 2 && self.sent_bytes > self.inflight {
                    let acked = self.sent_bytes.saturating_sub(self.inflight);
                    let ack = self.s_first.wrapping_add(acked as u32);
                    self.conn.segment(buf, true, c2s(self.c_next, ack, ack_flags), &[], 0, none)
                } else {
                    let off = self.rng.below(NOISE_SPAN) as usize;
                    let mss = self.conn.mss();
                    let t = s2c(self.s_next, self.c_next, ack_flags);
                    let b = self.conn.segment(buf, false, t, &[], mss as usize, |p| fill_tls(p, noise, off));
                    self.s_next = self.s_next.wrapping_add(mss);
                    self.sent_bytes += u64::from(mss);
                    b
                };
                self.slot += 1;
                let n = ts + self.rng.jitter(self.interval);
                (b, n, if n >= self.stop { Phase::ServerFin } else { Phase::Stream })
            }
            Phase::ServerFin => {
                let t = s2c(self.s_next, self.c_next, wire::TCP_FIN | wire::TCP_ACK);
                let b = self.conn.segment(buf, false, t, &[], 0, none);
                self.s_next = self.s_next.wrapping_add(1);
                (b, ts + RTT_NS, Phase::ClientFin)
            }
            Phase::ClientFin => {
                let t = c2s(self.c_next, self.s_next, wire::TCP_FIN | wire::TCP_ACK);
                let b = self.conn.segment(buf, true, t, &[], 0, none);
                self.c_next = self.c_next.wrapping_add(1);
                (b, ts + 200_000, Phase::LastAck)
            }
            Phase::LastAck | Phase::Done => {
                let b = self.conn.segment(buf, false, s2c(self.s_next, self.c_next, ack_flags), &[], 0, none);
                (b, ts, Phase::Done)
            }
        };
        self.next = next_ts;
        self.phase = phase;
        Out { ts, built, tag: self.tag }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_runs_to_completion_in_order() {
        let noise = vec![1u8; super::super::NOISE_LEN];
        let mut b = Bulk::new(1, 1, wire::PROTECTED_V4 | 20, 0, 100_000_000, 30_000, 0);
        let mut buf = [0u8; wire::BUF_LEN];
        let (mut n, mut last, mut outbound_bytes) = (0u64, 0u64, 0u64);
        while let Some(t) = b.peek() {
            assert!(t >= last);
            last = t;
            let o = b.next(&mut buf, &noise);
            if o.built.meta.dir == wire::Dir::Outbound {
                outbound_bytes += u64::from(o.built.meta.ip_len);
            }
            n += 1;
            assert!(n < 100_000);
        }
        assert!(n > 1_500, "{n}");
        assert!(outbound_bytes > 1_000 * 1_500);
    }
}
