//! The nftables fallback against the real nft, inside a network namespace this test creates:
//! batches, diffs, timeouts, ranges read back as written, other tables untouched.

mod support;

use std::process::Command;

use ipnet::IpNet;
use rampart_contract::{DecisionId, EventTime};
use rampart_filter::nft::{NftError, NftFilter};
use rampart_filter::plan::{FilterPlan, PrefixRule, RuleAction, RuleSpec};

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !support::is_root() || Command::new("nft").arg("--version").output().is_err() {
            support::skip("nftables tests need root and nft");
            return None;
        }
        let name = format!("rampart-nft-{tag}-{}", std::process::id());
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        Some(Netns(name))
    }

    fn nft(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.0, "nft"].iter().map(|s| s.to_string()).collect()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.0, "nft"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn rule(net: &str, id: u64, expires: Option<u64>) -> PrefixRule {
    PrefixRule {
        source: net.parse().unwrap(),
        rule: RuleSpec {
            decision: DecisionId(id),
            action: RuleAction::Drop,
            expires: expires.map(EventTime::from_unix_secs),
        },
    }
}

fn plan_of(rules: Vec<PrefixRule>) -> FilterPlan {
    let (v4, v6) = rules.into_iter().partition(|r| r.source.addr().is_ipv4());
    FilterPlan { v4, v6, ..FilterPlan::default() }
}

#[test]
fn batches_keep_ranges_and_read_back_equal() {
    let Some(ns) = Netns::new("batch") else { return };
    ns.run(&["add", "table", "ip", "theirs"]);
    ns.run(&[
        "add",
        "set",
        "ip",
        "theirs",
        "keep",
        "{ type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }",
    ]);
    let theirs = ns.run(&["list", "table", "ip", "theirs"]);
    let now = EventTime::from_unix_secs(1_000);
    let mut f = NftFilter::new(ns.nft());
    // Many prefixes of every length in one batch, with and without timeouts.
    let mut rules: Vec<PrefixRule> = (0..2_000u64)
        .map(|i| {
            let len = 16 + (i % 17) as u8;
            let addr = std::net::Ipv4Addr::from(0xc000_0000u32 + ((i as u32) << 16));
            PrefixRule {
                source: IpNet::V4(ipnet::Ipv4Net::new(addr, len).unwrap().trunc()),
                ..rule("0.0.0.0/32", i + 1, (i % 2 == 0).then_some(4_600))
            }
        })
        .collect();
    rules.push(rule("2001:db8::/32", 9_001, None));
    rules.push(rule("2001:db9::1/128", 9_002, Some(2_000)));
    let report = f.apply(&plan_of(rules.clone()), now).unwrap();
    assert_eq!((report.src4, report.src6), (2_000, 2));
    let v4 = f.read_set("src4").unwrap();
    assert_eq!(v4.len(), 2_000);
    assert!(v4.contains(&"192.1.0.0/17".parse().unwrap()), "a /17 stays a /17");
    // Timeouts are the decisions' remaining lifetimes.
    let listing = ns.run(&["-j", "list", "set", "inet", "rampart", "src6"]);
    assert!(listing.contains("\"timeout\": 1000") || listing.contains("\"timeout\":1000"), "{listing}");
    // A diff: half withdrawn, new ones added.
    rules.retain(|r| r.rule.decision.0 % 2 == 0);
    rules.push(rule("203.0.113.0/25", 9_003, None));
    let report = f.apply(&plan_of(rules.clone()), now).unwrap();
    assert_eq!(report.src4, 1_001);
    assert_eq!(f.read_set("src4").unwrap().len(), 1_001);
    // Someone else's table is as it was.
    assert_eq!(ns.run(&["list", "table", "ip", "theirs"]), theirs);
    // A rejected batch changes nothing and says why.
    let mut bad = NftFilter::new(vec!["false".into()]);
    assert!(matches!(bad.apply(&plan_of(rules), now), Err(NftError::Rejected { .. })));
    f.remove().unwrap();
    assert_eq!(ns.run(&["list", "table", "ip", "theirs"]), theirs);
    assert!(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "nft", "list", "table", "inet", "rampart"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
}
