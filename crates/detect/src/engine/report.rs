//! Reporting: an attack as the contract describes it, built from a target's lifecycle state
//! and profile; no sentences (those are rendered at the edges from the typed values).

use ipnet::IpNet;
use rampart_contract::{
    Attack, AttackEvent, AttackId, Collateral, Direction, EventKind, EventTime, FragmentMatch, Signature,
    Target, ThreatContext,
};
use rampart_telemetry::{TrafficRecord, UnixNanos};

use super::keys::{TargetKey, host_net, ip_of, net_of};
use super::{Engine, TOP_N, Tracked};
use crate::baseline::Baseline;
use crate::class::{Class, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, classify};
use crate::profile::Profile;

/// The raised threat level at `second`, if it is raised.
pub(super) fn threat_context(threat: &crate::threat::ThreatConfig, second: u64) -> Option<ThreatContext> {
    let (level, window) = threat.level_at(second);
    (level != crate::threat::ThreatLevel::Normal).then(|| ThreatContext {
        level,
        reason: window.filter(|w| !w.reason.is_empty()).map(|w| w.reason.clone()),
        percent: threat.percent(level),
    })
}

impl Engine {
    pub(super) fn event(&self, kind: EventKind, target: TargetKey) -> Option<AttackEvent> {
        let tracked = self.targets.get(&target)?;
        Some(AttackEvent { kind, attack: self.snapshot(target, tracked) })
    }

    pub(super) fn end_event(&mut self, target: TargetKey, tracked: Tracked) -> AttackEvent {
        let event = AttackEvent { kind: EventKind::End, attack: self.snapshot(target, &tracked) };
        if let Some(a) = tracked.attack {
            let state = &tracked.state;
            let max = self.config.limits.max_attacks;
            self.campaigns.ended(target, a.id, state.last_over, &state.vectors, a.campaign, max);
        }
        self.release(&tracked);
        event
    }

    /// The contract's view of a target.
    pub(super) fn target_of(&self, target: TargetKey) -> Target {
        match target {
            TargetKey::Host(key) | TargetKey::Outbound(key) => Target::Host(ip_of(key)),
            TargetKey::Prefix(key, len) => Target::Prefix(net_of(key, len)),
            TargetKey::Group(g) => {
                let group = self.config.groups.get(usize::from(g));
                Target::Group {
                    name: group.map_or_else(String::new, |g| g.name.clone()),
                    prefixes: group.map_or_else(Vec::new, |g| g.prefixes.clone()),
                }
            }
        }
    }

    pub(super) fn snapshot(&self, target: TargetKey, tracked: &Tracked) -> Attack {
        let state = &tracked.state;
        let empty = Profile::default();
        let profile = self
            .profiles
            .get(tracked.profile as usize)
            .and_then(|p| p.as_deref())
            .map_or(&empty, |p| &p.kept);
        let group = match target {
            TargetKey::Group(g) => Some(usize::from(g)),
            TargetKey::Host(key) | TargetKey::Outbound(key) => self.config.group_of(ip_of(key)),
            TargetKey::Prefix(..) => None,
        };
        let group = group.and_then(|g| self.config.groups.get(g));
        let outbound = target.direction() == Direction::Outbound;
        let mut signature = match (target, group) {
            (TargetKey::Group(_), Some(g)) => {
                let first = g.prefixes.first().copied().unwrap_or_default();
                let mut s = profile.signature(first, false);
                s.dst_prefixes.clone_from(&g.prefixes);
                s
            }
            (TargetKey::Host(key) | TargetKey::Outbound(key), _) => {
                profile.signature(host_net(key), outbound)
            }
            (TargetKey::Prefix(key, len), _) => profile.signature(net_of(key, len), false),
            (TargetKey::Group(_), None) => profile.signature(IpNet::default(), false),
        };
        let baseline_key = match target {
            TargetKey::Host(key) => Some(key),
            TargetKey::Group(g) => self.group_keys.get(usize::from(g)).copied(),
            _ => None,
        };
        let baseline = baseline_key
            .filter(|_| self.config.baseline.enabled)
            .and_then(|key| self.baselines.baseline(key, state.first_over));
        signature.collateral = baseline.as_ref().map(|b| collateral(&signature, b));
        let vectors: Vec<_> = state.vectors.iter().copied().collect();
        let mut vector_shares = profile.vector_shares(&vectors, &signature);
        for share in &mut vector_shares {
            share.signature.collateral = baseline.as_ref().map(|b| collateral(&share.signature, b));
        }
        let start_ns = state.first_ns.max(state.first_over.saturating_mul(UnixNanos::NANOS_PER_SEC));
        Attack {
            id: AttackId(tracked.attack.map_or(0, |a| a.id)),
            target: self.target_of(target),
            direction: target.direction(),
            group: group.map(|g| g.name.clone()),
            policy: group.map_or(self.config.policy, |g| g.policy),
            vectors,
            start: EventTime::from_unix_nanos(start_ns),
            end: EventTime::from_unix_nanos(state.end_ns),
            current_pps: state.current_pps,
            current_bps: state.current_bps,
            peak_pps: state.peak_pps,
            peak_bps: state.peak_bps,
            packets: state.packets,
            bytes: state.bytes,
            trigger: state.trigger.clone(),
            distinct_sources: if outbound { 1 } else { profile.distinct_remotes() },
            distinct_destinations: outbound.then(|| profile.distinct_remotes()),
            top_src_prefixes: if outbound { Vec::new() } else { profile.top_remote_prefixes(TOP_N) },
            top_dst_prefixes: if outbound { profile.top_remote_prefixes(TOP_N) } else { Vec::new() },
            top_src_ports: profile.top_src_ports(TOP_N),
            top_dst_ports: profile.top_dst_ports(TOP_N),
            protocols: profile.protocol_mix(),
            tcp_flags: profile.tcp_flag_mix(TOP_N),
            ttls: profile.ttl_distribution(TOP_N),
            packet_lengths: profile.length_distribution(),
            sample_headers: profile.samples().to_vec(),
            signature,
            vector_shares,
            campaign: tracked.attack.and_then(|a| a.campaign),
        }
    }
}

/// How much of a target's normal traffic `signature` would also match: its learned per-class
/// levels in the classes the signature's protocol, TCP flags and fragment fields admit (and,
/// for a reflector source port, the normal reflector-port traffic). Destination ports are not
/// learned per host, so this is an upper bound.
pub(super) fn collateral(signature: &Signature, b: &Baseline) -> Collateral {
    let admits = |c: Class| -> bool {
        let protocol_ok = match (c, signature.protocol) {
            (_, None) | (Class::Fragment, _) => true,
            (Class::TcpSyn | Class::TcpAck | Class::TcpRst | Class::TcpOther, Some(p)) => p == PROTO_TCP,
            (Class::Udp, Some(p)) => p == PROTO_UDP,
            (Class::Icmp, Some(p)) => p == PROTO_ICMP || p == PROTO_ICMPV6,
            (Class::Other, Some(p)) => ![PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6].contains(&p),
        };
        let fragment_ok = match signature.fragment {
            Some(FragmentMatch::NonInitial) => c == Class::Fragment,
            Some(FragmentMatch::NotNonInitial) => c != Class::Fragment,
            None => true,
        };
        let flags_ok = match signature.tcp_flags {
            Some(flags) if matches!(c, Class::TcpSyn | Class::TcpAck | Class::TcpRst | Class::TcpOther) => {
                let record =
                    TrafficRecord { protocol: PROTO_TCP, tcp_flags: flags.value, ..TrafficRecord::EMPTY };
                classify(&record).0 == c
            }
            _ => true,
        };
        protocol_ok && fragment_ok && flags_ok
    };
    let normal: f64 = b.classes.iter().sum();
    let mut matching: f64 = Class::ALL.into_iter().filter(|&c| admits(c)).map(|c| b.classes[c.index()]).sum();
    let reflector_port =
        |r: &rampart_contract::PortRange| r.first == r.last && crate::class::is_reflector_port(r.first);
    if !signature.src_ports.is_empty() && signature.src_ports.iter().all(reflector_port) {
        matching = matching.min(b.amplification);
    }
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let percent = if normal > 0.0 { 100.0 * matching / normal } else { 0.0 };
    Collateral { baseline_pps: round(normal), matching_pps: round(matching), percent: round(percent) }
}
