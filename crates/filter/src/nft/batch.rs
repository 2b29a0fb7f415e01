//! The nftables JSON for a plan (pure): Rampart's table, its sets and chains, the elements as
//! prefixes with timeouts, signature rules; and the parser of a set read back.

use std::collections::BTreeMap;

use ipnet::IpNet;
use rampart_contract::{DecisionId, EventTime, FragmentMatch, PortRange};
use serde_json::{Value, json};

use crate::plan::{FilterPlan, RuleAction, SignatureRule};

/// Rampart's table (family `inet`); nothing outside it is ever touched.
pub const TABLE: &str = "rampart";
/// The base chain (prerouting, before conntrack).
const CHAIN: &str = "filter";
/// The signature rules, rewritten in each batch.
const SIG_CHAIN: &str = "signatures";
/// The source sets, by family.
pub const SET4: &str = "src4";
pub const SET6: &str = "src6";

/// One dropped source prefix and its remaining lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    pub net: IpNet,
    /// Whole seconds, rounded up; `None`: no timeout.
    pub timeout_secs: Option<u64>,
}

/// Why a decision of the plan is not in nftables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftSkip {
    /// Per-source rate limits are XDP only.
    PerSourceRate,
    /// Inside a broader prefix that is dropped too (an interval set cannot hold overlaps).
    Covered,
    /// "Everything but non-initial fragments" over IPv6 needs two rules; XDP only.
    Ipv6NotNonInitial,
    /// SYN guards are XDP only.
    SynGuard,
}

/// What Rampart's table should hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub src4: Vec<Element>,
    pub src6: Vec<Element>,
    /// One nftables rule (its `expr` list) per signature and family.
    pub signature_rules: Vec<Value>,
    pub skipped: Vec<(DecisionId, NftSkip)>,
}

impl Desired {
    /// The table's content for `plan` at `now`.
    pub fn from_plan(plan: &FilterPlan, now: EventTime) -> Self {
        let mut out = Desired::default();
        let timeout = |expires: Option<EventTime>| {
            expires.map(|e| e.unix_micros().saturating_sub(now.unix_micros()).div_ceil(1_000_000).max(1))
        };
        let mut drops: BTreeMap<IpNet, (DecisionId, Option<u64>)> = BTreeMap::new();
        for p in plan.v4.iter().chain(&plan.v6) {
            if p.rule.action == RuleAction::Drop {
                drops.insert(p.source, (p.rule.decision, timeout(p.rule.expires)));
            } else {
                out.skipped.push((p.rule.decision, NftSkip::PerSourceRate));
            }
        }
        // Sorted by address then length: a covering prefix comes before what it covers, and
        // every prefix between them lies inside it too, so only the last one kept can cover.
        let mut kept: Vec<IpNet> = Vec::new();
        for (net, (decision, t)) in &drops {
            if kept.last().is_some_and(|k| k.contains(net)) {
                out.skipped.push((*decision, NftSkip::Covered));
                continue;
            }
            kept.push(*net);
            let e = Element { net: *net, timeout_secs: *t };
            if net.addr().is_ipv4() {
                out.src4.push(e);
            } else {
                out.src6.push(e);
            }
        }
        for s in &plan.signatures {
            for v6 in [false, true] {
                match signature_rule(s, v6) {
                    Ok(Some(r)) => out.signature_rules.push(r),
                    Ok(None) => {}
                    Err(skip) => out.skipped.push((s.rule.decision, skip)),
                }
            }
        }
        for g in &plan.syn_guards {
            out.skipped.push((DecisionId(0), NftSkip::SynGuard));
            let _ = g;
        }
        out
    }
}

fn base(kind: &str, name: &str) -> Value {
    json!({ kind: { "family": "inet", "table": TABLE, "name": name } })
}

fn element_json(e: &Element) -> Value {
    let val = if e.net.prefix_len() == e.net.max_prefix_len() {
        json!(e.net.addr().to_string())
    } else {
        json!({ "prefix": { "addr": e.net.network().to_string(), "len": e.net.prefix_len() } })
    };
    match e.timeout_secs {
        Some(t) => json!({ "elem": { "val": val, "timeout": t } }),
        None => val,
    }
}

fn set_ref(set: &str, elements: Vec<Value>) -> Value {
    json!({ "family": "inet", "table": TABLE, "name": set, "elem": elements })
}

/// One transaction that creates what is missing of Rampart's table, replaces the signature
/// rules, and brings the sets from `previous` (`None`: unknown, so flushed and refilled) to
/// `desired`. nftables applies it all or nothing.
pub fn transaction(desired: &Desired, previous: Option<&Desired>) -> Value {
    let mut cmds = vec![
        json!({ "add": { "table": { "family": "inet", "name": TABLE } } }),
        json!({ "add": { "set": { "family": "inet", "table": TABLE, "name": SET4, "type": "ipv4_addr", "flags": ["interval", "timeout"] } } }),
        json!({ "add": { "set": { "family": "inet", "table": TABLE, "name": SET6, "type": "ipv6_addr", "flags": ["interval", "timeout"] } } }),
        json!({ "add": { "chain": { "family": "inet", "table": TABLE, "name": CHAIN, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept" } } }),
        json!({ "add": base("chain", SIG_CHAIN) }),
        json!({ "flush": base("chain", CHAIN) }),
        json!({ "flush": base("chain", SIG_CHAIN) }),
    ];
    let saddr = |proto: &str, set: &str| {
        json!({ "add": { "rule": { "family": "inet", "table": TABLE, "chain": CHAIN, "expr": [
            { "match": { "op": "==", "left": { "payload": { "protocol": proto, "field": "saddr" } }, "right": format!("@{set}") } },
            { "counter": null },
            { "drop": null },
        ] } } })
    };
    cmds.push(saddr("ip", SET4));
    cmds.push(saddr("ip6", SET6));
    cmds.push(json!({ "add": { "rule": { "family": "inet", "table": TABLE, "chain": CHAIN, "expr": [ { "jump": { "target": SIG_CHAIN } } ] } } }));
    for rule in &desired.signature_rules {
        cmds.push(json!({ "add": { "rule": { "family": "inet", "table": TABLE, "chain": SIG_CHAIN, "expr": rule } } }));
    }
    for (set, want, had) in
        [(SET4, &desired.src4, previous.map(|p| &p.src4)), (SET6, &desired.src6, previous.map(|p| &p.src6))]
    {
        match had {
            None => {
                cmds.push(json!({ "flush": { "set": { "family": "inet", "table": TABLE, "name": set } } }));
                if !want.is_empty() {
                    cmds.push(json!({ "add": { "element": set_ref(set, want.iter().map(element_json).collect()) } }));
                }
            }
            Some(had) => {
                let had_nets: BTreeMap<IpNet, &Element> = had.iter().map(|e| (e.net, e)).collect();
                let want_nets: BTreeMap<IpNet, &Element> = want.iter().map(|e| (e.net, e)).collect();
                let gone: Vec<Value> = had
                    .iter()
                    .filter(|e| !want_nets.contains_key(&e.net))
                    .map(|e| element_json(&Element { timeout_secs: None, ..*e }))
                    .collect();
                // Elements kept but with a new lifetime are deleted and added again.
                let renewed: Vec<&Element> = want
                    .iter()
                    .filter(|e| {
                        had_nets.get(&e.net).is_some_and(|h| {
                            h.timeout_secs.is_none() != e.timeout_secs.is_none() || renewal(h, e)
                        })
                    })
                    .collect();
                let mut delete: Vec<Value> = gone;
                delete.extend(renewed.iter().map(|e| element_json(&Element { timeout_secs: None, ..**e })));
                let renewed_nets: std::collections::BTreeSet<IpNet> = renewed.iter().map(|e| e.net).collect();
                if !delete.is_empty() {
                    cmds.push(json!({ "delete": { "element": set_ref(set, delete) } }));
                }
                let add: Vec<Value> = want
                    .iter()
                    .filter(|e| !had_nets.contains_key(&e.net) || renewed_nets.contains(&e.net))
                    .map(element_json)
                    .collect();
                if !add.is_empty() {
                    cmds.push(json!({ "add": { "element": set_ref(set, add) } }));
                }
            }
        }
    }
    json!({ "nftables": cmds })
}

/// Whether a kept element's timeout moved later than the previous write would still cover
/// (a decision extended), beyond a second of rounding.
fn renewal(had: &Element, want: &Element) -> bool {
    match (had.timeout_secs, want.timeout_secs) {
        (Some(h), Some(w)) => w > h + 1,
        _ => false,
    }
}

/// The nftables rule (its expressions) for one family of a signature; `None` when the
/// signature has no destination in that family.
fn signature_rule(s: &SignatureRule, v6: bool) -> Result<Option<Value>, NftSkip> {
    let proto = if v6 { "ip6" } else { "ip" };
    let dsts: Vec<&IpNet> = s.destinations.iter().filter(|n| n.addr().is_ipv6() == v6).collect();
    if dsts.is_empty() {
        return Ok(None);
    }
    let m = &s.matcher;
    let mut expr = Vec::new();
    expr.push(json!({ "match": { "op": "==", "left": { "meta": { "key": "nfproto" } }, "right": if v6 { "ipv6" } else { "ipv4" } } }));
    if !dsts.iter().any(|n| n.prefix_len() == 0) {
        let set: Vec<Value> = dsts
            .iter()
            .map(|n| json!({ "prefix": { "addr": n.network().to_string(), "len": n.prefix_len() } }))
            .collect();
        expr.push(json!({ "match": { "op": "==", "left": { "payload": { "protocol": proto, "field": "daddr" } }, "right": { "set": set } } }));
    }
    if let Some(p) = m.protocol {
        expr.push(json!({ "match": { "op": "==", "left": { "meta": { "key": "l4proto" } }, "right": p } }));
    }
    let ports = |field: &str, ranges: &[PortRange]| {
        let set: Vec<Value> = ranges
            .iter()
            .map(|r| if r.first == r.last { json!(r.first) } else { json!({ "range": [r.first, r.last] }) })
            .collect();
        json!({ "match": { "op": "==", "left": { "payload": { "protocol": "th", "field": field } }, "right": { "set": set } } })
    };
    if !m.src_ports.is_empty() {
        expr.push(ports("sport", &m.src_ports));
    }
    if !m.dst_ports.is_empty() {
        expr.push(ports("dport", &m.dst_ports));
    }
    if let Some(f) = m.tcp_flags {
        expr.push(json!({ "match": { "op": "==", "left": { "&": [ { "payload": { "protocol": "tcp", "field": "flags" } }, f.mask ] }, "right": f.value & f.mask } }));
    }
    match (m.fragment, v6) {
        (None, _) => {}
        (Some(FragmentMatch::NonInitial), false) => expr.push(json!({ "match": { "op": "!=", "left": { "&": [ { "payload": { "protocol": "ip", "field": "frag-off" } }, 0x1fff ] }, "right": 0 } })),
        (Some(FragmentMatch::NotNonInitial), false) => expr.push(json!({ "match": { "op": "==", "left": { "&": [ { "payload": { "protocol": "ip", "field": "frag-off" } }, 0x1fff ] }, "right": 0 } })),
        (Some(FragmentMatch::NonInitial), true) => expr.push(json!({ "match": { "op": "!=", "left": { "exthdr": { "name": "frag", "field": "frag-off" } }, "right": 0 } })),
        (Some(FragmentMatch::NotNonInitial), true) => return Err(NftSkip::Ipv6NotNonInitial),
    }
    if let Some(l) = m.packet_len {
        expr.push(json!({ "match": { "op": "==", "left": { "meta": { "key": "length" } }, "right": { "range": [l.min, l.max] } } }));
    }
    match s.rule.action {
        RuleAction::Drop => {}
        RuleAction::RatePackets(r) => {
            expr.push(json!({ "limit": { "rate": r, "per": "second", "inv": true } }))
        }
        RuleAction::RateBytes(r) => {
            expr.push(json!({ "limit": { "rate": r, "rate_unit": "bytes", "per": "second", "inv": true } }))
        }
    }
    expr.push(json!({ "counter": null }));
    expr.push(json!({ "drop": null }));
    Ok(Some(Value::Array(expr)))
}

/// The prefixes of a set as `nft -j list set` prints it (addresses, prefixes, ranges, each
/// possibly inside an `elem` with its timeout). A range that is not one prefix is an error:
/// what was written were prefixes.
pub fn parse_set(listing: &Value) -> Result<Vec<IpNet>, String> {
    let items = listing.get("nftables").and_then(Value::as_array).ok_or("no \"nftables\" array")?;
    let mut out = Vec::new();
    for item in items {
        let Some(set) = item.get("set") else { continue };
        let Some(elems) = set.get("elem").and_then(Value::as_array) else { continue };
        for e in elems {
            let val = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
            out.push(parse_value(val)?);
        }
    }
    out.sort();
    Ok(out)
}

fn parse_value(v: &Value) -> Result<IpNet, String> {
    if let Some(s) = v.as_str() {
        let ip: std::net::IpAddr = s.parse().map_err(|_| format!("bad address {s:?}"))?;
        return Ok(IpNet::from(ip));
    }
    if let Some(p) = v.get("prefix") {
        let addr = p.get("addr").and_then(Value::as_str).ok_or("prefix without addr")?;
        let len = p.get("len").and_then(Value::as_u64).ok_or("prefix without len")?;
        return format!("{addr}/{len}").parse().map_err(|_| format!("bad prefix {addr}/{len}"));
    }
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        let ends: Vec<std::net::IpAddr> =
            r.iter().filter_map(Value::as_str).filter_map(|s| s.parse().ok()).collect();
        if let [a, b] = ends[..] {
            let nets: Vec<IpNet> = match (a, b) {
                (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                    ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect()
                }
                (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                    ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect()
                }
                _ => Vec::new(),
            };
            return match nets[..] {
                [one] => Ok(one),
                _ => Err(format!("range {a}-{b} is not one prefix")),
            };
        }
        return Err("bad range".into());
    }
    Err(format!("unexpected set element {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Match, PrefixRule, RuleSpec};
    use proptest::prelude::*;
    use rampart_contract::{LengthRange, TcpFlags};

    fn rule(id: u64, action: RuleAction, expires: Option<u64>) -> RuleSpec {
        RuleSpec { decision: DecisionId(id), action, expires: expires.map(EventTime::from_unix_secs) }
    }

    #[test]
    fn plan_to_elements_and_rules() {
        let plan = FilterPlan {
            v4: vec![
                PrefixRule {
                    source: "203.0.113.0/24".parse().unwrap(),
                    rule: rule(1, RuleAction::Drop, Some(160)),
                },
                PrefixRule {
                    source: "203.0.113.9/32".parse().unwrap(),
                    rule: rule(2, RuleAction::Drop, None),
                },
                PrefixRule {
                    source: "198.51.100.0/24".parse().unwrap(),
                    rule: rule(3, RuleAction::RatePackets(5), None),
                },
            ],
            v6: vec![PrefixRule {
                source: "2001:db8::/48".parse().unwrap(),
                rule: rule(4, RuleAction::Drop, None),
            }],
            signatures: vec![SignatureRule {
                destinations: vec!["192.0.2.10/32".parse().unwrap()],
                matcher: Match {
                    protocol: Some(6),
                    dst_ports: vec![PortRange::single(80), PortRange { first: 8000, last: 8080 }],
                    tcp_flags: Some(TcpFlags { value: 2, mask: 0x12 }),
                    packet_len: Some(LengthRange { min: 40, max: 80 }),
                    ..Match::default()
                },
                rule: rule(5, RuleAction::RateBytes(1000), None),
            }],
            ..FilterPlan::default()
        };
        let d = Desired::from_plan(&plan, EventTime::from_unix_micros(100_500_000));
        assert_eq!(d.src4, vec![Element { net: "203.0.113.0/24".parse().unwrap(), timeout_secs: Some(60) }]);
        assert_eq!(d.src6.len(), 1);
        assert_eq!(
            d.skipped,
            vec![(DecisionId(3), NftSkip::PerSourceRate), (DecisionId(2), NftSkip::Covered)]
        );
        assert_eq!(d.signature_rules.len(), 1);
        let text = d.signature_rules[0].to_string();
        assert!(
            text.contains(r#"{"range":[8000,8080]}"#) && text.contains(r#""rate_unit":"bytes""#),
            "{text}"
        );
        let tx = transaction(&d, None).to_string();
        assert!(
            tx.contains(r#"{"flush":{"set":{"family":"inet","name":"src4","table":"rampart"}}}"#),
            "{tx}"
        );
        assert!(
            tx.contains(r#"{"elem":{"timeout":60,"val":{"prefix":{"addr":"203.0.113.0","len":24}}}}"#),
            "{tx}"
        );
        // Nothing but Rampart's table is named.
        for table in tx.match_indices(r#""table":""#) {
            assert!(tx[table.0 + 9..].starts_with("rampart\""));
        }
        // Unchanged: no element commands at all.
        let again = transaction(&d, Some(&d)).to_string();
        assert!(!again.contains("element"), "{again}");
    }

    #[test]
    fn read_back_understands_every_element_form() {
        let listing = json!({"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "src4", "table": "rampart", "elem": [
            "192.0.2.1",
            {"prefix": {"addr": "203.0.113.0", "len": 24}},
            {"elem": {"val": {"prefix": {"addr": "198.51.100.0", "len": 25}}, "timeout": 60, "expires": 59}},
            {"range": ["198.51.100.128", "198.51.100.255"]}
        ]}}]});
        let nets = parse_set(&listing).unwrap();
        let want: Vec<IpNet> = ["192.0.2.1/32", "198.51.100.0/25", "198.51.100.128/25", "203.0.113.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(nets, want);
        let bad = json!({"nftables": [{"set": {"elem": [{"range": ["198.51.100.1", "198.51.100.7"]}]}}]});
        assert!(parse_set(&bad).is_err());
    }

    proptest! {
        #[test]
        fn read_back_never_panics(v in any::<String>()) {
            if let Ok(j) = serde_json::from_str::<Value>(&v) {
                let _ = parse_set(&j);
            }
            let j = json!({"nftables": [{"set": {"elem": [v.clone(), {"prefix": {"addr": v.clone(), "len": 7}}, {"range": [v.clone(), v]}]}}]});
            let _ = parse_set(&j);
        }
    }
}
