//! Attack floods: spoofed TCP/UDP/ICMP floods, non-initial fragment floods, carpet bombing and
//! reflection/amplification with IPv4 fragmentation of large responses.

use super::{NOISE_SPAN, Out};
use crate::rng::Rand;
use crate::scenario::AmplificationVector;
use crate::wire::{self, Addrs, FrameBuf, IpHdr, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Tcp};

/// 2001:db8:ffff::/48, where IPv6 attack sources live.
pub(crate) const ATTACKER_V6: u128 = 0x2001_0db8_ffff_0000_0000_0000_0000_0000;
const LOW80: u128 = (1 << 80) - 1;
/// SYN option layouts giving IPv4 packets of 40, 44, 48, 52 and 60 bytes.
pub(crate) const SYN_OPTS: [&[u8]; 5] = [
    &[],
    &[2, 4, 0x05, 0xb4],
    &[2, 4, 0x05, 0xb4, 1, 1, 4, 2],
    &[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2],
    &[2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 1, 3, 3, 7],
];
pub(crate) const SYN_WINDOWS: [u16; 7] = [64_240, 65_535, 29_200, 8_192, 5_840, 14_600, 1_024];
const SSDP_REPLIES: [&[u8]; 3] = [
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Thu, 01 Jan 2026 00:00:00 GMT\r\nEXT:\r\n\
LOCATION: http://192.168.1.1:1900/igd.xml\r\nSERVER: Linux/2.6 UPnP/1.0 miniupnpd/1.9\r\n\
ST: upnp:rootdevice\r\nUSN: uuid:824ff22b-8c7d-41c5-a131-44f534e12555::upnp:rootdevice\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nDATE: Thu, 01 Jan 2026 00:00:00 GMT\r\nEXT:\r\n\
LOCATION: http://192.168.0.1:49152/rootDesc.xml\r\nSERVER: Linux/3.14 UPnP/1.0 IpBridge/1.26.0\r\n\
ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
USN: uuid:2f402f80-da50-11e1-9b23-001788255acb::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=3600\r\nEXT:\r\nLOCATION: http://10.0.0.138:80/description.xml\r\n\
SERVER: FreeRTOS/6.0.5, UPnP/1.0, IpBridge/1.17.0\r\nST: urn:schemas-upnp-org:service:WANIPConnection:1\r\n\
USN: uuid:2f402f80-da50-11e1-9b23-00178829d301::urn:schemas-upnp-org:service:WANIPConnection:1\r\n\r\n",
];
/// Largest UDP payload of a reflected response (memcached), well inside the noise block.
const MAX_AMP_PAYLOAD: usize = 12_000;

/// What kind of packets a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloodKind {
    /// TCP with these flags (SYN, ACK or RST; RST floods mix in RST+ACK).
    Tcp(u8),
    Udp,
    Icmp,
    /// Non-initial IPv4 fragments (protocol UDP).
    Fragment,
    Amplification(AmplificationVector),
    /// SYN-ACKs from a bounded set of web servers (ports 80 and 443).
    SynAckReflection,
    /// SYNs and PSH+ACKs carrying an HTTP GET to port 80 from a bounded set of middleboxes.
    MiddleboxReflection,
}

/// Destinations of a flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Targets {
    One(u128),
    /// `hosts` consecutive addresses starting at `base` (carpet bombing).
    Range {
        base: u128,
        hosts: u64,
    },
}

/// Everything that configures one flood source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloodSpec {
    pub(crate) kind: FloodKind,
    pub(crate) v6: bool,
    pub(crate) targets: Targets,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) pps: u64,
    /// (on, period) in nanoseconds for pulse waves.
    pub(crate) pulse: Option<(u64, u64)>,
    pub(crate) tag_base: usize,
    pub(crate) tag_count: usize,
    pub(crate) payload: (u16, u16),
    pub(crate) reflectors: u32,
}

#[derive(Debug)]
struct Amp {
    vector: AmplificationVector,
    reflectors: Vec<(u32, u8)>,
    dgram: Vec<u8>,
    len: usize,
    sent: usize,
    hdr: IpHdr,
    chargen: Vec<u8>,
}

/// One flood source.
#[derive(Debug)]
pub(crate) struct Flood {
    rng: Rand,
    spec: FloodSpec,
    interval: u64,
    next: u64,
    payload_min: u32,
    payload_max: u32,
    icmp_seq: u16,
    amp: Option<Amp>,
    /// SYN-ACK reflection: the reflecting servers (address, TTL).
    servers: Vec<(u32, u8)>,
}

/// A random unicast-looking IPv4 address (first octet 1-223, never 127).
pub(crate) fn spoofed_v4(rng: &mut Rand) -> u32 {
    let r = rng.u64();
    let first = ((((r >> 32) * 223) >> 32) as u32) + 1;
    let first = if first == 127 { 126 } else { first };
    (first << 24) | (r as u32 & 0x00ff_ffff)
}

fn spoofed_v6(rng: &mut Rand) -> u128 {
    let r = (u128::from(rng.u64()) << 64) | u128::from(rng.u64());
    ATTACKER_V6 | (r & LOW80)
}

/// `n` reflectors: unicast-looking addresses with TTLs a few hops below the usual initial
/// values (64, 128, 255).
fn reflector_set(rng: &mut Rand, n: u32) -> Vec<(u32, u8)> {
    (0..n)
        .map(|_| {
            let base = [64u8, 128, 255][rng.below(3) as usize];
            (spoofed_v4(rng), base - rng.range(5, 25) as u8)
        })
        .collect()
}

fn chargen_block() -> Vec<u8> {
    let mut b = Vec::with_capacity(190 * 74);
    for line in 0..190u32 {
        for p in 0..72u32 {
            b.push(32 + ((line + p) % 95) as u8);
        }
        b.extend_from_slice(b"\r\n");
    }
    b
}

impl Flood {
    pub(crate) fn new(seed: u64, stream: u64, spec: FloodSpec) -> Self {
        let mut rng = Rand::new(seed, stream);
        let interval = (1_000_000_000 / spec.pps.max(1)).max(1);
        let max_payload = (wire::l4_max(spec.v6) - wire::UDP_HDR) as u32;
        let payload_max = u32::from(spec.payload.1).min(max_payload);
        let payload_min = u32::from(spec.payload.0).min(payload_max);
        let amp = match spec.kind {
            FloodKind::Amplification(vector) => {
                let reflectors = reflector_set(&mut rng, spec.reflectors);
                Some(Amp {
                    vector,
                    reflectors,
                    dgram: vec![0; MAX_AMP_PAYLOAD + wire::UDP_HDR],
                    len: 0,
                    sent: 0,
                    hdr: IpHdr {
                        addrs: Addrs::V4 { src: 0, dst: 0 },
                        ttl: 0,
                        ident: 0,
                        dont_fragment: false,
                    },
                    chargen: if vector == AmplificationVector::Chargen {
                        chargen_block()
                    } else {
                        Vec::new()
                    },
                })
            }
            _ => None,
        };
        let servers = if matches!(spec.kind, FloodKind::SynAckReflection | FloodKind::MiddleboxReflection) {
            reflector_set(&mut rng, spec.reflectors)
        } else {
            Vec::new()
        };
        let mut f =
            Self { rng, spec, interval, next: 0, payload_min, payload_max, icmp_seq: 0, amp, servers };
        let first = spec.start + f.rng.below_u64(interval);
        f.next = f.align(first);
        f
    }

    /// Moves `t` out of a pulse-wave gap to the start of the next burst.
    fn align(&self, t: u64) -> u64 {
        match self.spec.pulse {
            Some((on, period)) if period > 0 && t >= self.spec.start => {
                let phase = (t - self.spec.start) % period;
                if phase >= on { t + (period - phase) } else { t }
            }
            _ => t,
        }
    }

    fn pending_fragments(&self) -> bool {
        self.amp.as_ref().is_some_and(|a| a.sent < a.len)
    }

    pub(crate) fn peek(&self) -> Option<u64> {
        (self.spec.pps > 0 && (self.next < self.spec.end || self.pending_fragments())).then_some(self.next)
    }

    fn tag(&self, ts: u64) -> usize {
        match self.spec.pulse {
            Some((_, period)) if period > 0 => {
                let burst = (ts.saturating_sub(self.spec.start) / period) as usize;
                self.spec.tag_base + burst.min(self.spec.tag_count.saturating_sub(1))
            }
            _ => self.spec.tag_base,
        }
    }

    fn target(&mut self) -> u128 {
        match self.spec.targets {
            Targets::One(t) => t,
            Targets::Range { base, hosts } => base + u128::from(self.rng.below_u64(hosts)),
        }
    }

    fn spoofed_addrs(&mut self) -> Addrs {
        let dst = self.target();
        if self.spec.v6 {
            Addrs::V6 { src: spoofed_v6(&mut self.rng), dst }
        } else {
            Addrs::V4 { src: spoofed_v4(&mut self.rng), dst: dst as u32 }
        }
    }

    fn payload_len(&mut self) -> usize {
        self.rng.range(self.payload_min, self.payload_max) as usize
    }

    pub(crate) fn next(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> Out {
        let ts = self.next;
        let built = match self.spec.kind {
            FloodKind::Tcp(flags) => self.tcp(buf, flags),
            FloodKind::Udp => self.udp(buf, noise),
            FloodKind::Icmp => self.icmp(buf, noise),
            FloodKind::Fragment => self.fragment(buf, noise),
            FloodKind::Amplification(_) => self.amplification(buf, noise),
            FloodKind::SynAckReflection => self.syn_ack(buf),
            FloodKind::MiddleboxReflection => self.middlebox(buf),
        };
        let tag = self.tag(ts);
        let step = self.rng.jitter(self.interval);
        self.next = self.align(ts + step);
        Out { ts, built, tag }
    }

    fn common_hdr(&mut self) -> IpHdr {
        let addrs = self.spoofed_addrs();
        let r = self.rng.u32();
        IpHdr {
            addrs,
            ttl: 30 + ((((r >> 8) & 0xff) * 226) >> 8) as u8,
            ident: (r >> 16) as u16,
            dont_fragment: r & 1 == 1,
        }
    }

    fn tcp(&mut self, buf: &mut FrameBuf, flags: u8) -> wire::Built {
        let h = self.common_hdr();
        let rng = &mut self.rng;
        let dport = match rng.below(10) {
            0..=5 => 80,
            6..=8 => 443,
            _ => rng.range(1, 65_535) as u16,
        };
        let sport = rng.range(1_024, 65_535) as u16;
        let (flags, opts, ack, window): (u8, &[u8], u32, u16) = match flags {
            wire::TCP_SYN => {
                let opts = SYN_OPTS[rng.below(SYN_OPTS.len() as u32) as usize];
                (flags, opts, 0, SYN_WINDOWS[rng.below(SYN_WINDOWS.len() as u32) as usize])
            }
            wire::TCP_RST if rng.percent(30) => (wire::TCP_RST | wire::TCP_ACK, &[], rng.u32(), 0),
            wire::TCP_RST => (flags, &[], 0, 0),
            f if f == wire::TCP_RST | wire::TCP_ACK => (flags, &[], rng.u32(), 0),
            _ => (flags, &[], rng.u32(), rng.u16()),
        };
        let t = Tcp { sport, dport, seq: rng.u32(), ack, flags, window };
        let off = wire::l4_offset(self.spec.v6);
        let hlen = wire::write_tcp(buf, off, &t, opts);
        wire::finish(buf, &h, PROTO_TCP, hlen)
    }

    /// A web server's SYN-ACK to the target (which never sent the SYN): from port 80 or 443 to
    /// an ephemeral port, with the options servers answer with.
    fn syn_ack(&mut self, buf: &mut FrameBuf) -> wire::Built {
        let dst = self.target() as u32;
        let rng = &mut self.rng;
        let &(src, ttl) =
            self.servers.get(rng.below(self.servers.len().max(1) as u32) as usize).unwrap_or(&(0, 64));
        let h = IpHdr { addrs: Addrs::V4 { src, dst }, ttl, ident: rng.u16(), dont_fragment: true };
        let sport = if rng.percent(60) { 80 } else { 443 };
        let dport = rng.range(1_024, 65_535) as u16;
        let opts = SYN_OPTS[1 + rng.below(SYN_OPTS.len() as u32 - 1) as usize];
        let window = SYN_WINDOWS[rng.below(SYN_WINDOWS.len() as u32) as usize];
        let t = Tcp {
            sport,
            dport,
            seq: rng.u32(),
            ack: rng.u32(),
            flags: wire::TCP_SYN | wire::TCP_ACK,
            window,
        };
        let off = wire::l4_offset(false);
        let hlen = wire::write_tcp(buf, off, &t, opts);
        wire::finish(buf, &h, PROTO_TCP, hlen)
    }

    /// What a censoring middlebox is made to reflect: a SYN or a PSH+ACK, each carrying an
    /// HTTP GET for a blocked site (SYNs with payload, as in the attacks seen in the wild), to
    /// port 80 of the target, from one of a bounded set of middleboxes.
    fn middlebox(&mut self, buf: &mut FrameBuf) -> wire::Built {
        const REQUESTS: [&[u8]; 3] = [
            b"GET / HTTP/1.1\r\nHost: www.youporn.com\r\n\r\n",
            b"GET /?q=ultrasurf HTTP/1.1\r\nHost: www.bittorrent.com\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: freedomhouse.org\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
        ];
        let dst = self.target() as u32;
        let rng = &mut self.rng;
        let &(src, ttl) =
            self.servers.get(rng.below(self.servers.len().max(1) as u32) as usize).unwrap_or(&(0, 64));
        let h = IpHdr { addrs: Addrs::V4 { src, dst }, ttl, ident: rng.u16(), dont_fragment: true };
        let flags = if rng.percent(50) { wire::TCP_SYN } else { wire::TCP_PSH | wire::TCP_ACK };
        let ack = if flags == wire::TCP_SYN { 0 } else { rng.u32() };
        let t = Tcp {
            sport: rng.range(1_024, 65_535) as u16,
            dport: 80,
            seq: rng.u32(),
            ack,
            flags,
            window: SYN_WINDOWS[rng.below(SYN_WINDOWS.len() as u32) as usize],
        };
        let request = REQUESTS[rng.below(REQUESTS.len() as u32) as usize];
        let off = wire::l4_offset(false);
        let hlen = wire::write_tcp(buf, off, &t, &[]);
        wire::copy_payload(buf, off + hlen, request, 0, request.len());
        wire::finish(buf, &h, PROTO_TCP, hlen + request.len())
    }

    fn udp(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> wire::Built {
        let h = self.common_hdr();
        let len = self.payload_len();
        let sport = self.rng.range(1_024, 65_535) as u16;
        let dport = self.rng.range(1, 65_535) as u16;
        let noise_off = self.rng.below(NOISE_SPAN) as usize;
        let off = wire::l4_offset(self.spec.v6);
        wire::write_udp(buf, off, sport, dport, len);
        wire::copy_payload(buf, off + wire::UDP_HDR, noise, noise_off, len);
        wire::finish(buf, &h, PROTO_UDP, wire::UDP_HDR + len)
    }

    fn icmp(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> wire::Built {
        let h = self.common_hdr();
        let len = self.payload_len();
        let id = self.rng.u16();
        self.icmp_seq = self.icmp_seq.wrapping_add(1);
        let noise_off = self.rng.below(NOISE_SPAN) as usize;
        let off = wire::l4_offset(self.spec.v6);
        let (ty, proto) = if self.spec.v6 { (128, PROTO_ICMPV6) } else { (8, PROTO_ICMP) };
        wire::write_echo(buf, off, ty, id, self.icmp_seq);
        wire::copy_payload(buf, off + 8, noise, noise_off, len);
        wire::finish(buf, &h, proto, 8 + len)
    }

    fn fragment(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> wire::Built {
        let h = self.common_hdr();
        let more = self.rng.percent(50);
        let mut len = self.payload_len().clamp(8, wire::V4_FRAG_DATA);
        if more {
            // Only the last fragment may have a length that is not a multiple of 8.
            len &= !7;
        }
        // offset*8 + len must stay within the 65535-byte IPv4 datagram.
        let max_units = ((65_535 - wire::V4_HDR - len) / 8).min(0x1fff) as u32;
        let offset_units = self.rng.range(1, max_units) as u16;
        let noise_off = self.rng.below(NOISE_SPAN) as usize;
        wire::copy_payload(buf, wire::l4_offset(false), noise, noise_off, len);
        wire::finish_v4_fragment(buf, &h, PROTO_UDP, len, offset_units, more)
    }

    fn amplification(&mut self, buf: &mut FrameBuf, noise: &[u8]) -> wire::Built {
        let dst = self.target() as u32;
        let rng = &mut self.rng;
        let Some(amp) = self.amp.as_mut() else {
            // Unreachable by construction; an empty UDP packet keeps the stream well-formed.
            let h = IpHdr { addrs: Addrs::V4 { src: 0, dst }, ttl: 1, ident: 0, dont_fragment: false };
            wire::write_udp(buf, wire::l4_offset(false), 0, 0, 0);
            return wire::finish(buf, &h, PROTO_UDP, wire::UDP_HDR);
        };
        if amp.sent >= amp.len {
            let &(src, ttl) =
                amp.reflectors.get(rng.below(amp.reflectors.len() as u32) as usize).unwrap_or(&(0, 64));
            let n = app_payload(amp, rng, noise);
            let dport = rng.range(1_024, 65_535) as u16;
            let addrs = Addrs::V4 { src, dst };
            wire::write_udp(&mut amp.dgram, 0, amp.vector.source_port(), dport, n);
            let total = wire::UDP_HDR + n;
            let c = wire::udp_checksum(addrs, &amp.dgram[..total]);
            amp.dgram[6..8].copy_from_slice(&c.to_be_bytes());
            amp.len = total;
            amp.sent = 0;
            amp.hdr = IpHdr { addrs, ttl, ident: rng.u16(), dont_fragment: false };
        }
        let chunk = (amp.len - amp.sent).min(wire::V4_FRAG_DATA);
        let more = amp.sent + chunk < amp.len;
        wire::copy_payload(buf, wire::l4_offset(false), &amp.dgram, amp.sent, chunk);
        let units = (amp.sent / 8) as u16;
        amp.sent += chunk;
        wire::finish_v4_fragment(buf, &amp.hdr, PROTO_UDP, chunk, units, more)
    }
}

/// Writes the reflected application payload at `dgram[8..]` and returns its length.
fn app_payload(amp: &mut Amp, rng: &mut Rand, noise: &[u8]) -> usize {
    let n = match amp.vector {
        AmplificationVector::Dns => rng.range(1_400, 4_000) as usize,
        AmplificationVector::Ntp => 440,
        AmplificationVector::Ssdp => SSDP_REPLIES[rng.below(SSDP_REPLIES.len() as u32) as usize].len(),
        AmplificationVector::Memcached => rng.range(1_400, MAX_AMP_PAYLOAD as u32) as usize,
        AmplificationVector::Cldap => rng.range(1_500, 3_200) as usize,
        AmplificationVector::Chargen => rng.range(74, 1_024) as usize,
        AmplificationVector::NatT => rng.range(300, 1_100) as usize,
        AmplificationVector::Bacnet => rng.range(200, 1_400) as usize,
        AmplificationVector::Dhdiscover => rng.range(400, 1_200) as usize,
        AmplificationVector::UnknownPort => rng.range(100, 1_200) as usize,
    }
    .min(MAX_AMP_PAYLOAD);
    let noise_off = rng.below(NOISE_SPAN) as usize;
    let body = &mut amp.dgram[wire::UDP_HDR..wire::UDP_HDR + n];
    wire::copy_payload(body, 0, noise, noise_off, n);
    match amp.vector {
        AmplificationVector::Dns => {
            let id = rng.u16().to_be_bytes();
            let answers = rng.range(8, 40) as u8;
            let hdr = [id[0], id[1], 0x81, 0x80, 0, 1, 0, answers, 0, 0, 0, 1];
            body[..12].copy_from_slice(&hdr);
            body[12..29].copy_from_slice(b"\x03isc\x03org\x00\x00\xff\x00\x01\xc0\x0c\x00\x30");
        }
        AmplificationVector::Ntp => {
            // Mode-7 MON_GETLIST_1 response: 6 items of 72 bytes.
            body[..8].copy_from_slice(&[0xd7, 0x00, 0x03, 0x2a, 0x00, 0x06, 0x00, 0x48]);
        }
        AmplificationVector::Ssdp => {
            let reply = SSDP_REPLIES.iter().find(|r| r.len() == n).copied().unwrap_or(SSDP_REPLIES[0]);
            wire::copy_payload(body, 0, reply, 0, n);
        }
        AmplificationVector::Memcached => {
            let id = rng.u16().to_be_bytes();
            body[..8].copy_from_slice(&[id[0], id[1], 0, 0, 0, 1, 0, 0]);
            body[8..18].copy_from_slice(b"VALUE a 0 ");
        }
        AmplificationVector::Cldap => {
            let len = ((n - 6) as u32).to_be_bytes();
            body[..6].copy_from_slice(&[0x30, 0x84, len[0], len[1], len[2], len[3]]);
            body[6..11].copy_from_slice(&[0x02, 0x01, (rng.below(255) + 1) as u8, 0x64, 0x84]);
        }
        AmplificationVector::Chargen => {
            let line = rng.below(95) as usize;
            wire::copy_payload(body, 0, &amp.chargen, line * 74, n);
        }
        AmplificationVector::NatT => {
            // Non-ESP marker, then an IKEv2 header (IKE_SA_INIT response).
            body[..4].copy_from_slice(&[0, 0, 0, 0]);
            body[4..12].copy_from_slice(&rng.u64().to_be_bytes());
            body[12..20].copy_from_slice(&rng.u64().to_be_bytes());
            body[20..24].copy_from_slice(&[0x21, 0x20, 0x22, 0x20]);
        }
        AmplificationVector::Bacnet => {
            // BVLC original-unicast, NPDU, a ComplexAck to ReadPropertyMultiple.
            let len = (n as u16).to_be_bytes();
            body[..9].copy_from_slice(&[0x81, 0x0a, len[0], len[1], 0x01, 0x00, 0x30, rng.u16() as u8, 0x0e]);
        }
        AmplificationVector::Dhdiscover => {
            body[..8].copy_from_slice(b"\x20\x00\x00\x00DHIP");
        }
        AmplificationVector::UnknownPort => {}
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FloodKind) -> FloodSpec {
        FloodSpec {
            kind,
            v6: false,
            targets: Targets::One(u128::from(wire::PROTECTED_V4 | 10)),
            start: 1_000,
            end: 1_000_000_000,
            pps: 100_000,
            pulse: None,
            tag_base: 0,
            tag_count: 1,
            payload: (32, 1200),
            reflectors: 8,
        }
    }

    #[test]
    fn spoofed_sources_are_unicast_looking() {
        let mut r = Rand::new(1, 1);
        for _ in 0..100_000 {
            let a = spoofed_v4(&mut r);
            let first = a >> 24;
            assert!((1..=223).contains(&first) && first != 127, "{a:x}");
        }
    }

    #[test]
    fn pulse_alignment_skips_gaps() {
        let mut s = spec(FloodKind::Udp);
        s.pulse = Some((3_000, 8_000));
        s.tag_count = 3;
        let f = Flood::new(1, 1, s);
        assert_eq!(f.align(1_000 + 2_999), 3_999);
        assert_eq!(f.align(1_000 + 3_000), 9_000);
        assert_eq!(f.align(1_000 + 7_999), 9_000);
        assert_eq!(f.tag(9_000), 1);
        assert_eq!(f.tag(1_000_000), 2);
    }

    #[test]
    fn amplification_datagrams_split_into_valid_fragments() {
        let noise = vec![7u8; super::super::NOISE_LEN];
        let mut f = Flood::new(1, 1, spec(FloodKind::Amplification(AmplificationVector::Memcached)));
        let mut buf = [0u8; wire::BUF_LEN];
        let mut offsets = Vec::new();
        loop {
            let o = f.next(&mut buf, &noise);
            let frag = u16::from_be_bytes([buf[20], buf[21]]);
            offsets.push((frag & 0x1fff, frag & 0x2000 != 0, o.built.meta.ip_len));
            if frag & 0x2000 == 0 {
                break;
            }
        }
        assert!(!offsets.is_empty());
        assert_eq!(offsets[0].0, 0);
        for w in offsets.windows(2) {
            assert_eq!(w[1].0, w[0].0 + (w[0].2 - 20) / 8, "contiguous");
        }
    }
}
