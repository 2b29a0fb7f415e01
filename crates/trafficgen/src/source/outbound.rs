//! Attacks leaving the protected networks: a compromised protected host SYN-flooding an outside
//! victim, and a protected DNS server abused as a reflector, answering spoofed queries with
//! large responses sent to the outside victim the queries name as their source.

use std::collections::VecDeque;

use super::flood::{SYN_OPTS, SYN_WINDOWS};
use super::{Out, TEXT_BLOCK};
use crate::rng::Rand;
use crate::wire::{self, Addrs, Built, FrameBuf, IpHdr, PROTO_TCP, PROTO_UDP, Tcp};

/// Names (wire format) the abusive queries ask for; with type ANY and EDNS0 the IPv4 queries are
/// 68-72 bytes long.
const QUERY_NAMES: [&[u8]; 4] = [
    b"\x07example\x03com\x00",
    b"\x07example\x03net\x00",
    b"\x07example\x03org\x00",
    b"\x03big\x07example\x03com\x00",
];
const DNS_PORT: u16 = 53;
const DNS_HDR: usize = 12;
/// QTYPE ANY, QCLASS IN.
const QUESTION_TAIL: [u8; 4] = [0, 255, 0, 1];
/// EDNS0 OPT pseudo-record: root name, type 41, 4096-byte UDP payload, DO bit, no options. The
/// large advertised size is what lets a single answer reach 1.4 kB.
const OPT_RR: [u8; 11] = [0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0];
/// Recursion desired (query); response, recursion desired and available (answer).
const QUERY_FLAGS: u16 = 0x0100;
const ANSWER_FLAGS: u16 = 0x8180;
/// IPv4 length of an answer, inclusive: about 18x the query, like ANY answers of a large zone.
const ANSWER_IP_LEN: (u32, u32) = (1_200, 1_400);
/// A TXT record: compressed name, type, class, TTL, RDLENGTH (12 bytes), the string's length
/// byte, then up to 255 bytes of text.
const TXT_FIXED: usize = 13;
const TXT_MAX: usize = TXT_FIXED + 255;
const TXT_TTL: u32 = 3_600;
/// Time the server takes to answer, nanoseconds (inclusive range).
const SERVER_DELAY_NS: (u32, u32) = (40_000, 250_000);
/// TTL of packets sent by protected hosts (the Linux default).
const HOST_TTL: u8 = 64;
/// Victim port of the outbound SYN flood.
const SYN_VICTIM_PORT: u16 = 443;

/// Which outbound attack a source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboundKind {
    /// TCP SYNs from the protected host to the victim's port 443.
    SynFlood,
    /// Spoofed DNS queries in (victim -> protected server), large answers out.
    DnsReflector,
}

/// Everything that configures one outbound attack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboundSpec {
    pub(crate) kind: OutboundKind,
    /// The protected sender: the compromised host, or the abused DNS server.
    pub(crate) host: u32,
    /// The outside victim.
    pub(crate) victim: u32,
    /// SYNs or queries are stamped in `start..end`; answers may follow `end` by the server delay.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// SYNs or queries per second (each query gets one answer).
    pub(crate) pps: u64,
    pub(crate) tag: usize,
}

/// An answer owed to a query already written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u64,
    victim_port: u16,
    id: u16,
    name: usize,
}

/// One outbound attack source.
#[derive(Debug)]
pub(crate) struct Outbound {
    rng: Rand,
    spec: OutboundSpec,
    interval: u64,
    /// Timestamp of the next SYN or query.
    next: u64,
    /// Answers not yet written, in timestamp order. Bounded by the rate times the largest server
    /// delay (a few hundred thousand entries at the highest accepted rate).
    pending: VecDeque<Pending>,
    /// IPv4 identification of the DNS server's packets, counting up.
    server_ident: u16,
}

impl Outbound {
    pub(crate) fn new(seed: u64, stream: u64, spec: OutboundSpec) -> Self {
        let mut rng = Rand::new(seed, stream);
        let interval = (1_000_000_000 / spec.pps.max(1)).max(1);
        let next = spec.start + rng.below_u64(interval);
        let server_ident = rng.u16();
        Self { rng, spec, interval, next, pending: VecDeque::new(), server_ident }
    }

    /// Timestamp of the next SYN or query, if the attack window still runs.
    fn request_due(&self) -> Option<u64> {
        (self.spec.pps > 0 && self.next < self.spec.end).then_some(self.next)
    }

    /// True when the owed answer is due no later than the next request (ties go to the answer,
    /// in step with [`Outbound::peek`]).
    fn answer_first(&self) -> bool {
        match (self.pending.front(), self.request_due()) {
            (Some(answer), Some(request)) => answer.ts <= request,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    pub(crate) fn peek(&self) -> Option<u64> {
        if self.answer_first() { self.pending.front().map(|p| p.ts) } else { self.request_due() }
    }

    /// Produces the packet announced by [`Outbound::peek`] (`None` only when there is none).
    pub(crate) fn next(&mut self, buf: &mut FrameBuf) -> Option<Out> {
        if self.answer_first() {
            let owed = self.pending.pop_front()?;
            let built = self.answer(buf, owed);
            return Some(Out { ts: owed.ts, built, tag: self.spec.tag });
        }
        let ts = self.request_due()?;
        let built = match self.spec.kind {
            OutboundKind::SynFlood => self.syn(buf),
            OutboundKind::DnsReflector => self.query(buf, ts),
        };
        self.next = ts + self.rng.jitter(self.interval);
        Some(Out { ts, built, tag: self.spec.tag })
    }

    fn syn(&mut self, buf: &mut FrameBuf) -> Built {
        let rng = &mut self.rng;
        let opts = SYN_OPTS[rng.below(SYN_OPTS.len() as u32) as usize];
        let window = SYN_WINDOWS[rng.below(SYN_WINDOWS.len() as u32) as usize];
        let sport = rng.range(1_024, 65_535) as u16;
        let t = Tcp { sport, dport: SYN_VICTIM_PORT, seq: rng.u32(), ack: 0, flags: wire::TCP_SYN, window };
        // Raw-socket flood tools pick the IP ID at random and leave DF clear.
        let h = IpHdr {
            addrs: Addrs::V4 { src: self.spec.host, dst: self.spec.victim },
            ttl: HOST_TTL,
            ident: rng.u16(),
            dont_fragment: false,
        };
        let hlen = wire::write_tcp(buf, wire::l4_offset(false), &t, opts);
        wire::finish(buf, &h, PROTO_TCP, hlen)
    }

    /// A spoofed query (victim -> server); queues its answer.
    fn query(&mut self, buf: &mut FrameBuf, ts: u64) -> Built {
        let rng = &mut self.rng;
        let name = rng.below(QUERY_NAMES.len() as u32) as usize;
        let id = rng.u16();
        let victim_port = rng.range(1_024, 65_535) as u16;
        let r = rng.u32();
        // Sent by whatever bots forge the victim's address: hop counts and IDs vary per packet.
        let h = IpHdr {
            addrs: Addrs::V4 { src: self.spec.victim, dst: self.spec.host },
            ttl: 30 + ((((r >> 8) & 0xff) * 226) >> 8) as u8,
            ident: (r >> 16) as u16,
            dont_fragment: false,
        };
        let udp = wire::l4_offset(false);
        let msg = &mut buf[udp + wire::UDP_HDR..];
        let mut len = write_header_and_question(msg, id, QUERY_FLAGS, 0, name);
        msg[len..len + OPT_RR.len()].copy_from_slice(&OPT_RR);
        len += OPT_RR.len();
        wire::write_udp(buf, udp, victim_port, DNS_PORT, len);
        let delay = u64::from(rng.range(SERVER_DELAY_NS.0, SERVER_DELAY_NS.1));
        // Never before the answer queued last, so the queue stays in timestamp order.
        let due = (ts + delay).max(self.pending.back().map_or(0, |p| p.ts));
        self.pending.push_back(Pending { ts: due, victim_port, id, name });
        wire::finish(buf, &h, PROTO_UDP, wire::UDP_HDR + len)
    }

    /// The server's answer (server -> victim): the question again, TXT records filling the
    /// message to 1200-1400 IP bytes, and an OPT record.
    fn answer(&mut self, buf: &mut FrameBuf, owed: Pending) -> Built {
        let rng = &mut self.rng;
        let ip_len = rng.range(ANSWER_IP_LEN.0, ANSWER_IP_LEN.1) as usize;
        let dns_len = ip_len - wire::V4_HDR - wire::UDP_HDR;
        let qname_len = QUERY_NAMES[owed.name].len();
        let records_len = dns_len - DNS_HDR - qname_len - QUESTION_TAIL.len() - OPT_RR.len();
        // Every record is 1128 / 5 bytes or more, far above TXT_FIXED.
        let count = records_len.div_ceil(TXT_MAX);
        let udp = wire::l4_offset(false);
        let msg = &mut buf[udp + wire::UDP_HDR..];
        let mut pos = write_header_and_question(msg, owed.id, ANSWER_FLAGS, count as u16, owed.name);
        for i in 0..count {
            let size = records_len / count + usize::from(i < records_len % count);
            let text = size - TXT_FIXED;
            let ttl = TXT_TTL.to_be_bytes();
            let rdlen = ((text + 1) as u16).to_be_bytes();
            // Name: pointer to the question's name at offset 12; type TXT, class IN.
            let fixed =
                [0xc0, 0x0c, 0, 16, 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], rdlen[0], rdlen[1], text as u8];
            msg[pos..pos + TXT_FIXED].copy_from_slice(&fixed);
            let from = rng.below((TEXT_BLOCK.len() - 255) as u32) as usize;
            wire::copy_payload(msg, pos + TXT_FIXED, &TEXT_BLOCK, from, text);
            pos += size;
        }
        msg[pos..pos + OPT_RR.len()].copy_from_slice(&OPT_RR);
        wire::write_udp(buf, udp, DNS_PORT, owed.victim_port, dns_len);
        let ident = self.server_ident;
        self.server_ident = ident.wrapping_add(1);
        // A Linux host sets DF on UDP it sends (path-MTU discovery).
        let h = IpHdr {
            addrs: Addrs::V4 { src: self.spec.host, dst: self.spec.victim },
            ttl: HOST_TTL,
            ident,
            dont_fragment: true,
        };
        wire::finish(buf, &h, PROTO_UDP, wire::UDP_HDR + dns_len)
    }
}

/// Writes a DNS header (one question, `answers` answers, one additional record: the OPT record)
/// and the question for `QUERY_NAMES[name]` at the start of `msg`; returns the bytes written.
fn write_header_and_question(msg: &mut [u8], id: u16, flags: u16, answers: u16, name: usize) -> usize {
    let [i0, i1] = id.to_be_bytes();
    let [f0, f1] = flags.to_be_bytes();
    let [a0, a1] = answers.to_be_bytes();
    msg[..DNS_HDR].copy_from_slice(&[i0, i1, f0, f1, 0, 1, a0, a1, 0, 0, 0, 1]);
    let qname = QUERY_NAMES[name % QUERY_NAMES.len()];
    let mut pos = DNS_HDR;
    msg[pos..pos + qname.len()].copy_from_slice(qname);
    pos += qname.len();
    msg[pos..pos + QUESTION_TAIL.len()].copy_from_slice(&QUESTION_TAIL);
    pos + QUESTION_TAIL.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: u32 = wire::PROTECTED_V4 | 53;
    const VICTIM: u32 = 0xcb00_714d;

    fn spec(kind: OutboundKind, pps: u64) -> OutboundSpec {
        OutboundSpec { kind, host: SERVER, victim: VICTIM, start: 1_000, end: 100_000_000, pps, tag: 0 }
    }

    /// Runs a source dry; returns (timestamp, IP length, outbound?) per packet.
    fn drain(s: &mut Outbound) -> Vec<(u64, u16, bool)> {
        let mut buf = [0u8; wire::BUF_LEN];
        let mut out = Vec::new();
        while let Some(t) = s.peek() {
            let o = s.next(&mut buf).unwrap();
            assert_eq!(o.ts, t, "next() writes what peek() announced");
            out.push((o.ts, o.built.meta.ip_len, o.built.meta.dir == wire::Dir::Outbound));
            assert!(out.len() < 1_000_000);
        }
        out
    }

    #[test]
    fn every_query_gets_one_large_answer_in_timestamp_order() {
        // 200 kpps: the answers (up to 250 us later) interleave with the following queries.
        let pkts = drain(&mut Outbound::new(1, 3, spec(OutboundKind::DnsReflector, 200_000)));
        assert!(pkts.windows(2).all(|w| w[0].0 <= w[1].0), "timestamps never go back");
        let (answers, queries): (Vec<&(u64, u16, bool)>, Vec<_>) = pkts.iter().partition(|p| p.2);
        assert_eq!(answers.len(), queries.len());
        assert!(queries.len() > 15_000, "{}", queries.len());
        assert!(queries.iter().all(|q| (68..=72).contains(&q.1)), "small queries");
        assert!(answers.iter().all(|a| (1_200..=1_400).contains(&a.1)), "large answers");
        // Interleaved: some query is written while an earlier one is still unanswered.
        let mut owed = 0i64;
        let mut max_owed = 0;
        for p in &pkts {
            owed += if p.2 { -1 } else { 1 };
            assert!(owed >= 0, "an answer never precedes its query");
            max_owed = max_owed.max(owed);
        }
        assert!(max_owed > 5, "{max_owed}");
    }

    #[test]
    fn answer_is_well_formed_dns() {
        let mut s = Outbound::new(2, 3, spec(OutboundKind::DnsReflector, 1_000));
        let mut buf = [0u8; wire::BUF_LEN];
        let q = s.next(&mut buf).unwrap();
        let msg_off = wire::l4_offset(false) + wire::UDP_HDR;
        let query = buf[msg_off..wire::ETH_HDR + usize::from(q.built.meta.ip_len)].to_vec();
        assert_eq!(&query[2..12], &[1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        let a = s.next(&mut buf).unwrap();
        assert!(a.ts > q.ts);
        let answer = &buf[msg_off..wire::ETH_HDR + usize::from(a.built.meta.ip_len)];
        assert_eq!(&answer[..2], &query[..2], "same transaction ID");
        assert_eq!(&answer[2..4], &[0x81, 0x80]);
        let qlen = query.len() - DNS_HDR - OPT_RR.len();
        assert_eq!(&answer[DNS_HDR..DNS_HDR + qlen], &query[DNS_HDR..DNS_HDR + qlen], "question echoed");
        // Walk the answers: each TXT record's RDLENGTH is its string plus the length byte.
        let count = usize::from(u16::from_be_bytes([answer[6], answer[7]]));
        let mut pos = DNS_HDR + qlen;
        for _ in 0..count {
            assert_eq!(&answer[pos..pos + 4], &[0xc0, 0x0c, 0, 16]);
            let rdlen = usize::from(u16::from_be_bytes([answer[pos + 10], answer[pos + 11]]));
            assert_eq!(usize::from(answer[pos + 12]) + 1, rdlen);
            pos += 12 + rdlen;
        }
        assert_eq!(&answer[pos..], &OPT_RR, "the OPT record ends the message");
        // UDP ports mirror the query's.
        let udp = wire::l4_offset(false);
        assert_eq!(&buf[udp..udp + 2], &DNS_PORT.to_be_bytes());
    }

    #[test]
    fn syn_flood_comes_from_the_host() {
        let mut s = Outbound::new(3, 3, spec(OutboundKind::SynFlood, 100_000));
        let mut buf = [0u8; wire::BUF_LEN];
        for _ in 0..1_000 {
            let o = s.next(&mut buf).unwrap();
            assert_eq!(o.built.meta.dir, wire::Dir::Outbound);
            assert_eq!(&buf[26..30], &SERVER.to_be_bytes());
            assert_eq!(buf[47], wire::TCP_SYN);
            assert_eq!(&buf[36..38], &SYN_VICTIM_PORT.to_be_bytes());
        }
        assert!(s.pending.is_empty());
    }

    #[test]
    fn zero_rate_sends_nothing() {
        assert_eq!(Outbound::new(1, 3, spec(OutboundKind::DnsReflector, 0)).peek(), None);
    }
}
