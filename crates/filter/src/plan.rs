//! From decisions to filter rules: which decisions a host filter can enforce at `now`, as
//! source-prefix rules, signature rules per destination and SYN guards. Pure: decisions and
//! `now` in, a [`FilterPlan`] out; the XDP and nftables drivers both consume it.

use std::collections::BTreeMap;

use ipnet::IpNet;
use rampart_contract::EventTime;
use rampart_contract::{Action, Decision, DecisionId, Scope};
use rampart_contract::{FragmentMatch, LengthRange, PortRange, TcpFlags};

/// Port ranges one signature field can hold in the XDP program.
pub const MAX_PORT_RANGES: usize = 8;
/// Signatures one destination prefix can hold in the XDP program.
pub const MAX_SIGNATURES_PER_DESTINATION: usize = 8;

/// What a rule does to the traffic it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    /// Drop every packet.
    Drop,
    /// Let through this many packets per second (per source for a source prefix).
    RatePackets(u32),
    /// Let through this many bytes per second (per source for a source prefix).
    RateBytes(u32),
}

impl RuleAction {
    /// Rates above what the program's 32-bit rate field holds saturate, which lets more
    /// through, never less: a filter must not drop what the decision allowed.
    fn from_action(action: &Action) -> Option<Self> {
        let clamp = |rate: u64| u32::try_from(rate).unwrap_or(u32::MAX);
        match action {
            Action::Discard => Some(RuleAction::Drop),
            Action::RateLimitPackets { packets_per_sec } => {
                Some(RuleAction::RatePackets(clamp(*packets_per_sec)))
            }
            Action::RateLimitBytes { bytes_per_sec } => Some(RuleAction::RateBytes(clamp(*bytes_per_sec))),
            _ => None,
        }
    }

    /// Stricter first: drop, then the lowest rate (packets before bytes at equal rates).
    fn strictness(self) -> (u8, u32) {
        match self {
            RuleAction::Drop => (0, 0),
            RuleAction::RatePackets(r) => (1, r),
            RuleAction::RateBytes(r) => (2, r),
        }
    }
}

/// Who asked for a rule, what it does and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub decision: DecisionId,
    pub action: RuleAction,
    /// `None`: until withdrawn.
    pub expires: Option<EventTime>,
}

/// Traffic from a source prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRule {
    /// Truncated to its length (`203.0.113.7/24` becomes `203.0.113.0/24`).
    pub source: IpNet,
    pub rule: RuleSpec,
}

/// The packet fields of a signature beyond its destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub protocol: Option<u8>,
    pub src_ports: Vec<PortRange>,
    pub dst_ports: Vec<PortRange>,
    pub tcp_flags: Option<TcpFlags>,
    pub fragment: Option<FragmentMatch>,
    pub packet_len: Option<LengthRange>,
}

/// Traffic to any of `destinations` (each truncated; both families' `/0` when the signature
/// names none) matching `matcher`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRule {
    pub destinations: Vec<IpNet>,
    pub matcher: Match,
    pub rule: RuleSpec,
}

/// How a SYN guard protects its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynMode {
    /// At most `per_source_pps` SYNs (without ACK) per second from each source.
    #[default]
    RateLimit,
    /// Every SYN answered from XDP with a SYN cookie (nothing reaches the stack before the
    /// handshake completes); ACKs without a valid cookie or a connection dropped. Where the
    /// kernel lacks the cookie helpers, or net.ipv4.tcp_syncookies is 0, the guard falls back
    /// to [`SynMode::RateLimit`] at `per_source_pps`.
    Cookies,
}

/// SYN-flood mode for a protected destination. From the configuration, not from a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynGuard {
    pub destination: IpNet,
    /// The per-source SYN rate (of the cookie mode's fallback too).
    pub per_source_pps: u32,
    pub mode: SynMode,
    pub expires: Option<EventTime>,
}

impl SynGuard {
    /// `PREFIX=PPS` or `PREFIX=PPS,cookies` (an address is its own /32 or /128); the error
    /// says what is wrong with `s`.
    pub fn parse(s: &str) -> Result<SynGuard, String> {
        let (net, rest) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected PREFIX=PPS[,cookies]"))?;
        let destination: IpNet = net
            .parse()
            .or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{s:?}: {net:?} is not an address or prefix"))?;
        let (pps, mode) = match rest.split_once(',') {
            None => (rest, SynMode::RateLimit),
            Some((pps, "cookies")) => (pps, SynMode::Cookies),
            Some((_, other)) => return Err(format!("{s:?}: {other:?} is not a SYN mode (cookies)")),
        };
        let per_source_pps = pps.parse().map_err(|_| format!("{s:?}: {pps:?} is not a rate"))?;
        Ok(SynGuard { destination, per_source_pps, mode, expires: None })
    }
}

/// Why a decision is not in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Not in force at `now` (expired or not yet created).
    NotActive,
    /// The action is not something a packet filter does (blackhole, redirect, mark, notify).
    UnsupportedAction,
    /// A signature with source prefixes describes an outbound attack; this filter sees
    /// inbound traffic.
    Outbound,
    /// More port ranges in one field than the program holds.
    TooManyPortRanges,
    /// A destination already holds the most signatures the program takes.
    TooManySignatures,
    /// Another decision on the same prefix is stricter (or equal and older).
    Superseded,
    /// The scope is a kind this filter does not know.
    UnsupportedScope,
}

/// A decision left out of the plan, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub decision: DecisionId,
    pub reason: SkipReason,
}

/// Everything a host filter enforces, sorted (by prefix, then by decision).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPlan {
    pub v4: Vec<PrefixRule>,
    pub v6: Vec<PrefixRule>,
    pub signatures: Vec<SignatureRule>,
    pub syn_guards: Vec<SynGuard>,
    pub skipped: Vec<Skipped>,
}

impl FilterPlan {
    /// Every rule's spec, in plan order (v4, v6, signatures).
    pub fn rules(&self) -> impl Iterator<Item = &RuleSpec> {
        self.v4.iter().chain(&self.v6).map(|p| &p.rule).chain(self.signatures.iter().map(|s| &s.rule))
    }
}

/// The plan for `decisions` and `syn_guards` at `now`.
pub fn plan(decisions: &[Decision], syn_guards: &[SynGuard], now: EventTime) -> FilterPlan {
    let mut out = FilterPlan::default();
    let mut sources: BTreeMap<IpNet, RuleSpec> = BTreeMap::new();
    let mut per_destination: BTreeMap<IpNet, usize> = BTreeMap::new();
    let mut sorted: Vec<&Decision> = decisions.iter().collect();
    sorted.sort_by_key(|d| d.id);
    for d in sorted {
        let skip = |reason| Skipped { decision: d.id, reason };
        if !d.active_at(now) {
            out.skipped.push(skip(SkipReason::NotActive));
            continue;
        }
        let Some(action) = RuleAction::from_action(&d.action) else {
            out.skipped.push(skip(SkipReason::UnsupportedAction));
            continue;
        };
        let rule = RuleSpec { decision: d.id, action, expires: d.expires };
        match &d.scope {
            Scope::Address(ip) => add_source(&mut sources, &mut out.skipped, IpNet::from(*ip), rule),
            Scope::Prefix(net) => add_source(&mut sources, &mut out.skipped, net.trunc(), rule),
            Scope::Signature(sig) => {
                if !sig.src_prefixes.is_empty() {
                    out.skipped.push(skip(SkipReason::Outbound));
                    continue;
                }
                if sig.src_ports.len() > MAX_PORT_RANGES || sig.dst_ports.len() > MAX_PORT_RANGES {
                    out.skipped.push(skip(SkipReason::TooManyPortRanges));
                    continue;
                }
                let mut destinations: Vec<IpNet> = sig.dst_prefixes.iter().map(IpNet::trunc).collect();
                if destinations.is_empty() {
                    destinations = vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())];
                }
                destinations.sort();
                destinations.dedup();
                if destinations
                    .iter()
                    .any(|n| per_destination.get(n).copied().unwrap_or(0) >= MAX_SIGNATURES_PER_DESTINATION)
                {
                    out.skipped.push(skip(SkipReason::TooManySignatures));
                    continue;
                }
                for n in &destinations {
                    *per_destination.entry(*n).or_default() += 1;
                }
                let matcher = Match {
                    protocol: sig.protocol,
                    src_ports: sig.src_ports.clone(),
                    dst_ports: sig.dst_ports.clone(),
                    tcp_flags: sig.tcp_flags,
                    fragment: sig.fragment,
                    packet_len: sig.packet_len,
                };
                out.signatures.push(SignatureRule { destinations, matcher, rule });
            }
            _ => out.skipped.push(skip(SkipReason::UnsupportedScope)),
        }
    }
    for (source, rule) in sources {
        let entry = PrefixRule { source, rule };
        match source {
            IpNet::V4(_) => out.v4.push(entry),
            IpNet::V6(_) => out.v6.push(entry),
        }
    }
    out.syn_guards = syn_guards
        .iter()
        .filter(|g| g.expires.is_none_or(|e| now < e))
        .map(|g| SynGuard { destination: g.destination.trunc(), ..*g })
        .collect();
    out
}

fn add_source(
    sources: &mut BTreeMap<IpNet, RuleSpec>,
    skipped: &mut Vec<Skipped>,
    net: IpNet,
    rule: RuleSpec,
) {
    match sources.get(&net) {
        // Decisions arrive in id order, so on equal strictness the older one stays.
        Some(held) if held.action.strictness() <= rule.action.strictness() => {
            skipped.push(Skipped { decision: rule.decision, reason: SkipReason::Superseded });
        }
        Some(held) => {
            skipped.push(Skipped { decision: held.decision, reason: SkipReason::Superseded });
            sources.insert(net, rule);
        }
        None => {
            sources.insert(net, rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::Origin;
    use rampart_contract::Signature;

    fn decision(id: u64, scope: Scope, action: Action) -> Decision {
        Decision {
            id: DecisionId(id),
            scope,
            action,
            origin: Origin::Operator { name: "test".into() },
            created: EventTime::from_unix_secs(100),
            expires: Some(EventTime::from_unix_secs(200)),
            reason: "test".into(),
        }
    }

    #[test]
    fn decisions_become_rules_and_the_rest_is_explained() {
        let prefix = |s: &str| Scope::Prefix(s.parse().unwrap());
        let sig = Signature {
            dst_prefixes: vec!["198.51.100.10/32".parse().unwrap()],
            protocol: Some(17),
            src_ports: vec![PortRange::single(53)],
            ..Signature::default()
        };
        let outbound =
            Signature { src_prefixes: vec!["198.51.100.1/32".parse().unwrap()], ..Signature::default() };
        let decisions = vec![
            decision(1, prefix("203.0.113.7/24"), Action::Discard),
            decision(2, prefix("203.0.113.0/24"), Action::RateLimitPackets { packets_per_sec: 10 }),
            decision(
                3,
                Scope::Address("2001:db8::1".parse().unwrap()),
                Action::RateLimitBytes { bytes_per_sec: 1 << 40 },
            ),
            decision(4, Scope::Signature(Box::new(sig)), Action::Discard),
            decision(5, Scope::Signature(Box::new(outbound)), Action::Discard),
            decision(6, prefix("192.0.2.0/24"), Action::Blackhole),
            decision(7, prefix("192.0.2.0/24"), Action::Notify),
        ];
        let p = plan(&decisions, &[], EventTime::from_unix_secs(150));
        assert_eq!(p.v4.len(), 1);
        assert_eq!(p.v4[0].source, "203.0.113.0/24".parse::<IpNet>().unwrap());
        assert_eq!(p.v4[0].rule.action, RuleAction::Drop);
        assert_eq!(p.v6[0].source, "2001:db8::1/128".parse::<IpNet>().unwrap());
        assert_eq!(p.v6[0].rule.action, RuleAction::RateBytes(u32::MAX));
        assert_eq!(p.signatures.len(), 1);
        assert_eq!(p.signatures[0].matcher.protocol, Some(17));
        let reasons: Vec<(u64, SkipReason)> = p.skipped.iter().map(|s| (s.decision.0, s.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (2, SkipReason::Superseded),
                (5, SkipReason::Outbound),
                (6, SkipReason::UnsupportedAction),
                (7, SkipReason::UnsupportedAction)
            ]
        );
        let later = plan(&decisions, &[], EventTime::from_unix_secs(200));
        assert!(later.rules().next().is_none());
        assert_eq!(later.skipped.len(), decisions.len());
    }

    #[test]
    fn syn_guards_parse_with_their_mode() {
        let g = SynGuard::parse("198.51.100.0/24=100").unwrap();
        assert_eq!((g.per_source_pps, g.mode), (100, SynMode::RateLimit));
        let g = SynGuard::parse("2001:db8::1=5,cookies").unwrap();
        assert_eq!(g.destination, "2001:db8::1/128".parse::<IpNet>().unwrap());
        assert_eq!((g.per_source_pps, g.mode), (5, SynMode::Cookies));
        for bad in ["198.51.100.0/24", "x=1", "192.0.2.1=fast", "192.0.2.1=1,proxy"] {
            assert!(SynGuard::parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn syn_guard_parsing_never_panics_and_round_trips(s in "\\PC{0,40}", pps: u32, cookies: bool) {
            let _ = SynGuard::parse(&s);
            let text = format!("192.0.2.0/24={pps}{}", if cookies { ",cookies" } else { "" });
            let g = SynGuard::parse(&text).unwrap();
            proptest::prop_assert_eq!(g.per_source_pps, pps);
            proptest::prop_assert_eq!(g.mode == SynMode::Cookies, cookies);
        }
    }

    #[test]
    fn a_stricter_later_decision_replaces_a_looser_one() {
        let net = Scope::Prefix("203.0.113.0/24".parse().unwrap());
        let decisions = vec![
            decision(1, net.clone(), Action::RateLimitPackets { packets_per_sec: 10 }),
            decision(2, net, Action::Discard),
        ];
        let p = plan(&decisions, &[], EventTime::from_unix_secs(150));
        assert_eq!(p.v4[0].rule.decision, DecisionId(2));
        assert_eq!(p.skipped, vec![Skipped { decision: DecisionId(1), reason: SkipReason::Superseded }]);
    }

    #[test]
    fn signatures_without_destination_cover_both_families_and_are_bounded_per_destination() {
        let any = Signature { protocol: Some(6), ..Signature::default() };
        let decisions: Vec<Decision> =
            (1..=10).map(|i| decision(i, Scope::Signature(Box::new(any.clone())), Action::Discard)).collect();
        let p = plan(&decisions, &[], EventTime::from_unix_secs(150));
        assert_eq!(p.signatures.len(), MAX_SIGNATURES_PER_DESTINATION);
        assert_eq!(p.signatures[0].destinations, vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        assert_eq!(p.skipped.iter().filter(|s| s.reason == SkipReason::TooManySignatures).count(), 2);
    }
}
