//! Per-vector signatures: the part of a profile each named vector is made of, and the filter
//! for that part alone. A multi-vector attack (a SYN flood with a DNS reflection on top, or
//! BACnet and DHDiscover reflection at once) gets one precise rule per vector where the whole
//! attack's signature would leave the protocol or ports open.
//!
//! A vector's part is read from the profile's per-class sketches: the classes the vector is
//! made of (a SYN flood: SYNs; middlebox reflection: SYNs and ACKs carrying payload) and, for
//! reflection, only the UDP packets from its service's source ports. Non-initial fragments of
//! reflected answers carry no port and belong to no reflection vector's part.

use rampart_contract::{FragmentMatch, PortRange, Signature, Vector, VectorShare};

use super::{ClassPart, Profile, SIGNATURE_COVERAGE, TopKeys, length_range, tcp_flags_covering};
use crate::class::{AMPLIFICATION_PORTS, Class, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, tcp_class};

/// Where a vector's packets are in a profile.
enum Part {
    /// Every packet of these classes.
    Classes(&'static [Class]),
    /// UDP from these source ports (reflection).
    UdpFrom(Vec<u16>),
    /// The whole profile (carpet bombing: a spread, not a kind of packet).
    Whole,
}

fn part_of(vector: Vector, udp: &ClassPart) -> Part {
    match vector {
        Vector::SynFlood => Part::Classes(&[Class::TcpSyn]),
        Vector::AckFlood => Part::Classes(&[Class::TcpAck]),
        Vector::RstFlood => Part::Classes(&[Class::TcpRst]),
        Vector::TcpFlood | Vector::SynAckReflection => Part::Classes(&[Class::TcpOther]),
        Vector::TcpMiddleboxReflection => Part::Classes(&[Class::TcpSyn, Class::TcpAck]),
        Vector::UdpFlood => Part::Classes(&[Class::Udp]),
        Vector::IcmpFlood => Part::Classes(&[Class::Icmp]),
        Vector::IpFragmentFlood => Part::Classes(&[Class::Fragment]),
        Vector::Other => Part::Classes(&[Class::Other]),
        Vector::UdpReflection => {
            // The heavy source ports no reflector table names.
            let ports = udp.src_ports.top(3).into_iter().map(|(p, _)| p);
            Part::UdpFrom(ports.filter(|&p| p != 0 && crate::class::reflector_vector(p).is_none()).collect())
        }
        v if v.is_amplification() => {
            Part::UdpFrom(AMPLIFICATION_PORTS.iter().filter(|&&(_, av)| av == v).map(|&(p, _)| p).collect())
        }
        _ => Part::Whole,
    }
}

impl Profile {
    /// Each of `vectors` with its share of the profiled packets and its own signature, as
    /// [`Profile::signature`] would write for that vector's packets alone, with the prefixes of
    /// `whole` (the attack's signature). A vector with no profiled packets is listed with a
    /// share of 0 and `whole`.
    pub fn vector_shares(&self, vectors: &[Vector], whole: &Signature) -> Vec<VectorShare> {
        let ipv4 = whole.dst_prefixes.iter().chain(&whole.src_prefixes).all(|p| p.addr().is_ipv4());
        let udp = &self.classes[Class::Udp.index()];
        vectors
            .iter()
            .map(|&vector| {
                let signature = match part_of(vector, udp) {
                    Part::Whole => whole.clone(),
                    Part::Classes(classes) => self.classes_signature(classes, whole, ipv4),
                    Part::UdpFrom(ports) => udp_from_signature(udp, &ports, whole),
                };
                let packets = signature.sampled_packets;
                let signature = if packets == 0 {
                    Signature { sampled_packets: 0, ..whole.clone() }.with_samples(0)
                } else {
                    signature
                };
                VectorShare { vector, packets, percent: self.share((), packets).percent, signature }
            })
            .collect()
    }

    /// The signature of the packets of `classes`, with the whole signature's prefixes.
    fn classes_signature(&self, classes: &[Class], whole: &Signature, ipv4: bool) -> Signature {
        let mut part = ClassPart::default();
        for &c in classes {
            if let Some(p) = self.classes.get(c.index()) {
                part.merge(p);
            }
        }
        let n = part.packets;
        let tcp = classes
            .iter()
            .all(|c| matches!(c, Class::TcpSyn | Class::TcpAck | Class::TcpRst | Class::TcpOther));
        let protocol = match classes {
            _ if tcp => Some(PROTO_TCP),
            [Class::Udp] => Some(PROTO_UDP),
            [Class::Icmp] => Some(if ipv4 { PROTO_ICMP } else { PROTO_ICMPV6 }),
            _ => None,
        };
        let ports =
            |t: &TopKeys| t.covering(SIGNATURE_COVERAGE, n, 3).into_iter().map(PortRange::single).collect();
        Signature {
            src_prefixes: whole.src_prefixes.clone(),
            dst_prefixes: whole.dst_prefixes.clone(),
            protocol,
            src_ports: ports(&part.src_ports),
            dst_ports: ports(&part.dst_ports),
            tcp_flags: if tcp {
                tcp_flags_covering(&self.tcp_flags, n, |f| classes.contains(&tcp_class(f)))
            } else {
                None
            },
            fragment: Some(if classes == [Class::Fragment] {
                FragmentMatch::NonInitial
            } else {
                FragmentMatch::NotNonInitial
            }),
            packet_len: length_range(&part, n),
            sampled_packets: n,
            collateral: None,
            ..Signature::default()
        }
        .with_samples(part.observed)
    }
}

/// The signature of UDP from `ports`: those source ports, to the whole signature's prefixes.
/// Lengths are the UDP class's (one histogram per class, not per port), so the range may be
/// wider than this vector's own.
fn udp_from_signature(udp: &ClassPart, ports: &[u16], whole: &Signature) -> Signature {
    let mut heavy: Vec<(u16, u64)> =
        udp.src_ports.top(16).into_iter().filter(|(p, _)| ports.contains(p)).collect();
    heavy.sort_unstable();
    let n: u64 = heavy.iter().map(|&(_, c)| c).sum();
    Signature {
        src_prefixes: whole.src_prefixes.clone(),
        dst_prefixes: whole.dst_prefixes.clone(),
        protocol: Some(PROTO_UDP),
        src_ports: heavy.iter().map(|&(p, _)| PortRange::single(p)).collect(),
        dst_ports: Vec::new(),
        tcp_flags: None,
        fragment: None,
        packet_len: length_range(udp, udp.packets),
        sampled_packets: n,
        collateral: None,
        ..Signature::default()
    }
    // Observed packets per port are not kept: the class's, in proportion.
    .with_samples(
        u64::try_from(u128::from(udp.observed) * u128::from(n) / u128::from(udp.packets.max(1)))
            .unwrap_or(u64::MAX),
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::class::classify;
    use rampart_telemetry::{TrafficRecord, UnixNanos};

    use super::*;

    /// A SYN flood to port 443 (59.5 %) and a DNS reflection (40 %) on one host, with 0.5 % of
    /// web background: the whole signature leaves the protocol open, each vector's does not.
    #[test]
    fn each_vector_of_a_multi_vector_attack_gets_its_own_signature() {
        let h = foldhash::fast::FixedState::with_seed(1);
        let mut p = Profile::default();
        for i in 0..10_000u32 {
            let src = IpAddr::from([203, 0, (i >> 8) as u8, i as u8]);
            let base = TrafficRecord {
                start: UnixNanos(u64::from(i)),
                end: UnixNanos(u64::from(i)),
                src,
                dst: IpAddr::from([198, 51, 100, 10]),
                packets: 1,
                ..TrafficRecord::EMPTY
            };
            let r = match i % 200 {
                0 => TrafficRecord {
                    protocol: 6,
                    src_port: Some(50_000),
                    dst_port: Some(80),
                    tcp_flags: 0x10,
                    packet_len: Some(1500),
                    ..base
                },
                n if n < 120 => TrafficRecord {
                    protocol: 6,
                    src_port: Some((i % 60_000) as u16 + 1024),
                    dst_port: Some(443),
                    tcp_flags: 0x02,
                    packet_len: Some(60),
                    ..base
                },
                _ => TrafficRecord {
                    protocol: 17,
                    src_port: Some(53),
                    dst_port: Some((i % 60_000) as u16 + 1024),
                    packet_len: Some(1200 + i % 100),
                    ..base
                },
            };
            p.add(&r, classify(&r).0, (1, 1), u64::from(r.packet_len.unwrap_or(0)), false, &h);
        }
        let whole = p.signature("198.51.100.10/32".parse().unwrap(), false);
        assert_eq!(whole.protocol, None, "{whole:#?}");
        let shares = p.vector_shares(&[Vector::SynFlood, Vector::DnsAmplification], &whole);
        let (syn, dns) = (&shares[0], &shares[1]);
        assert_eq!((syn.vector, syn.packets), (Vector::SynFlood, 5_950));
        assert_eq!(syn.percent, 59.5);
        let s = &syn.signature;
        assert_eq!(
            (s.protocol, s.tcp_flags, s.dst_ports.clone()),
            (Some(6), Some(rampart_contract::TcpFlags::exact(0x02)), vec![PortRange::single(443)])
        );
        assert_eq!(s.packet_len.map(|l| (l.min, l.max)), Some((48, 63)));
        assert_eq!(s.dst_prefixes, whole.dst_prefixes);
        assert_eq!((dns.vector, dns.packets), (Vector::DnsAmplification, 4_000));
        let d = &dns.signature;
        assert_eq!(
            (d.protocol, d.src_ports.clone(), d.tcp_flags),
            (Some(17), vec![PortRange::single(53)], None)
        );
        // A vector the profile has no packets of: share 0, the whole signature.
        let none = p.vector_shares(&[Vector::IcmpFlood], &whole);
        assert_eq!((none[0].packets, none[0].signature.protocol), (0, None));
    }
}
