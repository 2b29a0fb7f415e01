//! Full reloads of the XDP source tables (the standby generation filled off to the side, made
//! live with one update) through BPF_PROG_TEST_RUN: packets run from another thread throughout
//! a swap see the old set until it and the new set after it, never neither; reloads reuse the
//! same two generations' maps, and what a standby held before (or was left holding by an
//! interrupted reload, in this loader or a previous one) never drops after the next reload; a
//! restarted loader finds both generations through the pinned outer maps; small deltas stay in
//! place, large ones swap. Needs root (CI runs as root).
#![cfg(feature = "xdp")]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_contract::{Action, Decision, DecisionId, EventTime, Origin, Scope};
use rampart_filter::plan::plan;
use rampart_filter::xdp::time::boot_now_ns;
use rampart_filter::xdp::{Capacity, Options, ReconcileReport, XdpError, XdpFilter, map_id_exists};
use support::Pkt;

const DROP: u32 = 1;
const PASS: u32 = 2;

fn small() -> Capacity {
    Capacity {
        rules: 1024,
        v4_groups: 64,
        v4_hosts: 1024,
        v6_prefixes: 1024,
        destinations: 64,
        signatures: 64,
        buckets: 1024,
        lpm_v4: 1,
        lpm_v6: 1,
    }
}

fn open(pin_dir: Option<PathBuf>, swap_min_changes: usize) -> Option<XdpFilter> {
    if !support::is_root() {
        support::skip("BPF_PROG_TEST_RUN needs root");
        return None;
    }
    support::ensure_bpffs();
    let options = Options { pin_dir, capacity: small(), swap_min_changes, ..Options::default() };
    match XdpFilter::open(options) {
        Ok(f) => Some(f),
        Err(e @ XdpError::Unavailable(_)) => {
            support::skip(&e.to_string());
            None
        }
        Err(e) => panic!("loading the XDP program: {e}"),
    }
}

fn wall_now() -> EventTime {
    EventTime::from_unix_micros(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64,
    )
}

fn ban(id: u64, prefix: &str, now: EventTime) -> Decision {
    Decision {
        id: DecisionId(id),
        scope: Scope::Prefix(prefix.parse().unwrap()),
        action: Action::Discard,
        origin: Origin::Operator { name: "test".into() },
        created: EventTime::from_unix_micros(now.unix_micros() - 1_000_000),
        expires: Some(EventTime::from_unix_micros(now.unix_micros() + 60_000_000)),
        reason: "test".into(),
    }
}

/// Bans `prefixes` with decision ids from `first_id` on.
fn bans(first_id: u64, prefixes: &[&str], now: EventTime) -> Vec<Decision> {
    prefixes.iter().enumerate().map(|(i, p)| ban(first_id + i as u64, p, now)).collect()
}

fn reconcile(f: &mut XdpFilter, decisions: &[Decision], full: bool) -> ReconcileReport {
    let now = wall_now();
    let p = plan(decisions, &[], now);
    let boot = boot_now_ns().unwrap();
    if full { f.reload(&p, now, boot) } else { f.reconcile(&p, now, boot) }.unwrap()
}

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn verdict(f: &XdpFilter, p: &Pkt) -> u32 {
    f.test_run(&p.frame(), 1).unwrap().0
}

/// Two sets of bans, each with sources of its own (IPv4 at /32, /24 and /28, IPv6) and
/// sources both share; every swap between them is watched by a thread running packets.
#[test]
fn a_swap_drops_the_old_set_until_it_and_the_new_set_after_it() {
    let Some(mut f) = open(None, usize::MAX) else { return };
    let now = wall_now();
    let shared = ["203.0.113.0/24", "2001:db8:2::/48"];
    let old_only = ["198.51.100.7/32", "198.51.100.64/28", "2001:db8:1::/48"];
    let new_only = ["10.1.2.3/32", "10.9.0.0/16", "2001:db8:3::/64"];
    let mut old = bans(1, &shared, now);
    old.extend(bans(10, &old_only, now));
    // The shared sources under decisions of their own in the new set: their rules are
    // released only after the swap.
    let mut new = bans(20, &shared, now);
    new.extend(bans(30, &new_only, now));
    let probe = |src: &str| {
        let dst = if src.contains(':') { "2001:db8:ffff::1" } else { "192.0.2.1" };
        Pkt::udp(src, dst, 1, 2).frame()
    };
    let shared_frames = [probe("203.0.113.9"), probe("2001:db8:2::9")];
    let old_frames = [probe("198.51.100.7"), probe("198.51.100.70"), probe("2001:db8:1::1")];
    let new_frames = [probe("10.1.2.3"), probe("10.9.200.1"), probe("2001:db8:3::1")];

    reconcile(&mut f, &old, true);
    for (from, to, from_frames, to_frames) in [
        (&old, &new, &old_frames, &new_frames),
        (&new, &old, &new_frames, &old_frames),
        (&old, &new, &old_frames, &new_frames),
        (&new, &old, &new_frames, &old_frames),
    ] {
        reconcile(&mut f, from, true);
        let runner = f.test_runner().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let stop = Arc::clone(&stop);
            let (shared_frames, from_frames, to_frames) =
                (shared_frames.clone(), from_frames.clone(), to_frames.clone());
            std::thread::spawn(move || {
                // Per round: the shared sources, then the old set's, then the new set's.
                let mut rounds: Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> = Vec::new();
                let run = |frames: &[Vec<u8>]| -> Vec<u32> {
                    frames.iter().map(|fr| runner.run(fr, 1).unwrap().0).collect()
                };
                while !stop.load(Ordering::Relaxed) || rounds.len() < 10 {
                    rounds.push((run(&shared_frames), run(&from_frames), run(&to_frames)));
                }
                rounds
            })
        };
        std::thread::sleep(Duration::from_millis(5));
        let report = reconcile(&mut f, to, true);
        std::thread::sleep(Duration::from_millis(5));
        stop.store(true, Ordering::Relaxed);
        let rounds = watcher.join().unwrap();
        assert!(report.swap.is_some(), "a reload swaps");
        // In time order, every verdict says which set applied: the shared sources always
        // drop; an old-only source dropping or a new-only one passing is the old set, the
        // reverse the new one. The old set must hold until the new one holds, and never again.
        let mut new_since: Option<usize> = None;
        let mut events = 0;
        for (i, (shared, from_v, to_v)) in rounds.iter().enumerate() {
            assert!(shared.iter().all(|&v| v == DROP), "round {i}: a source in both sets passed: {shared:?}");
            let sets = from_v.iter().map(|&v| v == PASS).chain(to_v.iter().map(|&v| v == DROP));
            for (j, is_new) in sets.enumerate() {
                match (is_new, new_since) {
                    (true, None) => new_since = Some(events),
                    (false, Some(at)) => panic!(
                        "round {i}, check {j}: the old set applies again after the new one did (at check {at}): old set {from_v:?}, new set {to_v:?}"
                    ),
                    _ => {}
                }
                events += 1;
            }
        }
        assert!(new_since.is_some(), "the watcher saw the swap ({} rounds)", rounds.len());
        for fr in to_frames {
            assert_eq!(f.test_run(fr, 1).unwrap().0, DROP);
        }
        for fr in from_frames {
            assert_eq!(f.test_run(fr, 1).unwrap().0, PASS);
        }
    }
}

fn both(f: &XdpFilter) -> ((u32, Vec<u32>), (u32, Vec<u32>)) {
    (f.source_generation().unwrap(), f.standby_generation().unwrap())
}

/// Every reload fills the standby generation and keeps the old live one as the next standby:
/// the same fourteen maps throughout, none created or freed; and a standby's old content never
/// applies after it is live again (what it held and the new set lacks is deleted).
#[test]
fn reloads_reuse_the_same_two_generations_and_leave_nothing_stale() {
    let Some(mut f) = open(None, usize::MAX) else { return };
    let now = wall_now();
    let (live, standby) = both(&f);
    assert_ne!(live.0, standby.0);
    let mut all: Vec<u32> = live.1.iter().chain(&standby.1).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 14, "two generations of seven maps: {live:?} {standby:?}");
    // The same decision ids on other prefixes in each set: their rules stay in force, so an
    // entry a standby kept from an old set would drop.
    let sets: [Vec<Decision>; 3] = [
        bans(
            1,
            &["198.51.100.7/32", "198.51.100.64/28", "10.1.0.0/16", "2001:db8:1::/48", "2001:db8:1:2::5/128"],
            now,
        ),
        bans(
            1,
            &["203.0.113.9/32", "203.0.113.128/25", "2001:db8:2::/48", "10.3.0.0/16", "10.4.0.0/16"],
            now,
        ),
        bans(1, &["192.0.2.200/32", "10.2.0.0/16", "2001:db8:3::/64", "10.5.0.0/16", "2001:db8:5::/64"], now),
    ];
    let probes: [Vec<Pkt>; 3] = [
        vec![
            Pkt::udp("198.51.100.7", "192.0.2.1", 1, 2),
            Pkt::udp("198.51.100.70", "192.0.2.1", 1, 2),
            Pkt::udp("10.1.9.9", "192.0.2.1", 1, 2),
            Pkt::udp("2001:db8:1::1", "2001:db8:ffff::1", 1, 2),
            Pkt::udp("2001:db8:1:2::5", "2001:db8:ffff::1", 1, 2),
        ],
        vec![
            Pkt::udp("203.0.113.9", "192.0.2.1", 1, 2),
            Pkt::udp("203.0.113.200", "192.0.2.1", 1, 2),
            Pkt::udp("2001:db8:2::1", "2001:db8:ffff::1", 1, 2),
        ],
        vec![
            Pkt::udp("192.0.2.200", "192.0.2.1", 1, 2),
            Pkt::udp("10.2.3.4", "192.0.2.1", 1, 2),
            Pkt::udp("2001:db8:3::1", "2001:db8:ffff::1", 1, 2),
        ],
    ];
    // Set 0 into the first standby, set 1 into the other (empty) one, then set 2 into the one
    // holding set 0, and round again: every fill after the second replaces a set.
    let mut expected = (live, standby);
    for round in 0..6 {
        let i = round % 3;
        let report = reconcile(&mut f, &sets[i], true);
        assert!(report.swap.is_some(), "round {round}: a reload swaps");
        expected = (expected.1, expected.0);
        assert_eq!(both(&f), expected, "round {round}: the standby is live, the old live the standby");
        for (j, set) in probes.iter().enumerate() {
            let want = if i == j { DROP } else { PASS };
            for p in set {
                assert_eq!(verdict(&f, p), want, "round {round} (set {i} live): {p:?} of set {j}");
            }
        }
    }
    assert!(all.iter().all(|&id| map_id_exists(id)), "no map freed");
}

/// A standby holding a whole set takes another one as large as its hash's capacity allows (the
/// old entries go before the new ones come): 600 hosts in a hash of 1024, three times over.
#[test]
fn a_standby_holding_a_full_set_takes_another_as_large() {
    let Some(mut f) = open(None, usize::MAX) else { return };
    let now = wall_now();
    let set = |net: u32| -> Vec<Decision> {
        let hosts: Vec<String> =
            (0..600u32).map(|i| format!("10.{net}.{}.{}/32", i / 250, i % 250 + 1)).collect();
        bans(1, &names(&hosts), now)
    };
    for net in 0..3 {
        assert!(reconcile(&mut f, &set(net), true).swap.is_some());
        for other in 0..3 {
            let want = if other == net { DROP } else { PASS };
            assert_eq!(verdict(&f, &Pkt::udp(&format!("10.{other}.1.7"), "192.0.2.1", 1, 2)), want);
        }
    }
}

/// A reload that fails half way (here: more /24s with longer prefixes than the group array
/// holds, found after the hosts were written) leaves the live set dropping, and what it wrote
/// into the standby is deleted by the next reload's fill instead of going live with it.
#[test]
fn an_interrupted_reload_leaves_nothing_in_the_standby_for_the_next() {
    let Some(mut f) = open(None, usize::MAX) else { return };
    let now = wall_now();
    let first = bans(1, &["203.0.113.0/24", "2001:db8:1::/48"], now);
    reconcile(&mut f, &first, true);
    let before = both(&f);
    // A host and a v6 prefix, then 65 /28s in as many /24s (room for 64 groups).
    let mut broken = bans(100, &["198.51.100.200/32", "2001:db8:9::/48"], now);
    let nets: Vec<String> = (0..65).map(|i| format!("10.0.{i}.16/28")).collect();
    broken.extend(bans(200, &names(&nets), now));
    let p = plan(&broken, &[], now);
    let err = f.reload(&p, now, boot_now_ns().unwrap()).expect_err("too many groups");
    assert!(err.to_string().contains("group") || format!("{err:?}").contains("Group"), "{err:?}");
    assert_eq!(both(&f), before, "nothing flipped");
    let host = Pkt::udp("198.51.100.200", "192.0.2.1", 1, 2);
    let v6 = Pkt::udp("2001:db8:9::1", "2001:db8:ffff::1", 1, 2);
    assert_eq!(verdict(&f, &Pkt::udp("203.0.113.5", "192.0.2.1", 1, 2)), DROP, "the live set still drops");
    assert_eq!(verdict(&f, &host), PASS);
    // The next reload fills the same standby: the host and prefix written there are gone
    // (their decisions in force on other prefixes, so an entry left would drop).
    let next = bans(100, &["192.0.2.99/32", "192.0.2.98/32"], now);
    assert!(reconcile(&mut f, &next, true).swap.is_some());
    assert_eq!(both(&f), (before.1.clone(), before.0.clone()));
    assert_eq!(verdict(&f, &Pkt::udp("192.0.2.99", "192.0.2.1", 1, 2)), DROP);
    assert_eq!(verdict(&f, &host), PASS, "a host left by the failed reload drops");
    assert_eq!(verdict(&f, &v6), PASS, "a prefix left by the failed reload drops");
    assert_eq!(verdict(&f, &Pkt::udp("203.0.113.5", "192.0.2.1", 1, 2)), PASS, "the old set is gone");
}

#[test]
fn a_restarted_loader_finds_both_generations_and_empties_the_standby_before_filling_it() {
    if !support::is_root() {
        support::skip("pinning needs root");
        return;
    }
    let dir = PathBuf::from(format!("/sys/fs/bpf/rampart-test-{}-swap", std::process::id()));
    let _unpin = support::Unpin(dir.clone());
    let now = wall_now();
    let ds = bans(1, &["198.51.100.0/24", "198.51.100.129/32", "2001:db8:7::/48"], now);
    let frames = [
        Pkt::udp("198.51.100.1", "192.0.2.1", 1, 2),
        Pkt::udp("198.51.100.129", "192.0.2.1", 1, 2),
        Pkt::udp("2001:db8:7::1", "2001:db8:ffff::1", 1, 2),
    ];
    let leftover = Pkt::udp("203.0.113.77", "192.0.2.1", 1, 2);
    // A fresh loader creates both generations, the first decisions go into the live one in
    // place; a reload fills the other and flips.
    let (live, standby) = {
        let Some(mut first) = open(Some(dir.clone()), 1_000) else { return };
        let (empty, other) = both(&first);
        assert_eq!(reconcile(&mut first, &ds, false).swap, None, "the first decisions go in place");
        assert_eq!(both(&first), (empty.clone(), other.clone()));
        assert!(reconcile(&mut first, &ds, true).swap.is_some());
        assert_eq!(both(&first), (other.clone(), empty.clone()));
        // The loader dies half way through its next reload (as after `kill -9`): the standby
        // holds an entry of a set that never went live (written here directly).
        let hosts = libbpf_rs::MapHandle::from_map_id(empty.1[2]).unwrap();
        let rule = first.slot_of(DecisionId(1)).unwrap();
        libbpf_rs::MapCore::update(&hosts, &[203, 0, 113, 77], &rule.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
            .unwrap();
        both(&first)
    };
    // The loader is gone; its pins stay. A new one finds both generations through the pinned
    // outer maps, and the live one keeps dropping.
    let Some(mut second) = open(Some(dir.clone()), 1_000) else { return };
    assert_eq!(both(&second), (live.clone(), standby.clone()));
    for p in &frames {
        assert_eq!(verdict(&second, p), DROP, "before any reconcile");
    }
    assert_eq!(verdict(&second, &leftover), PASS, "the standby is not live");
    // Its first reconcile (the tables' content is unknown) fills the standby, read back and
    // emptied of what the new set lacks first, and flips to it; no map is created or freed.
    let report = reconcile(&mut second, &ds[..2], false);
    assert!(report.swap.is_some());
    assert_eq!(both(&second), (standby.clone(), live.clone()));
    assert!(live.1.iter().chain(&standby.1).all(|&id| map_id_exists(id)));
    assert_eq!(verdict(&second, &frames[0]), DROP);
    assert_eq!(verdict(&second, &frames[1]), DROP);
    assert_eq!(verdict(&second, &frames[2]), PASS, "withdrawn");
    assert_eq!(verdict(&second, &leftover), PASS, "the interrupted reload's entry was deleted");
    // And the next reload fills the generation found live (unknown too) the same way.
    assert!(reconcile(&mut second, &ds[1..2], true).swap.is_some());
    assert_eq!(both(&second), (live, standby));
    assert_eq!(verdict(&second, &frames[0]), PASS);
    assert_eq!(verdict(&second, &frames[1]), DROP);
    assert_eq!(verdict(&second, &frames[2]), PASS);
}

#[test]
fn small_deltas_change_the_live_tables_in_place_and_large_ones_swap() {
    // At least 8 changes and a quarter of the set make a full reload.
    let Some(mut f) = open(None, 8) else { return };
    let now = wall_now();
    let hosts: Vec<String> = (0..40).map(|i| format!("198.51.100.{i}/32")).collect();
    let nets: Vec<String> = (0..40).map(|i| format!("10.{i}.0.0/16")).collect();
    let mut ds = bans(1, &names(&hosts), now);
    ds.extend(bans(100, &names(&nets), now));
    assert!(reconcile(&mut f, &ds, false).swap.is_some(), "80 prefixes over none: a large change");
    let live = f.source_generation().unwrap();
    // Five changes of 80: in place, the same maps.
    let mut small = ds.clone();
    small.drain(..3);
    small.extend(bans(200, &["203.0.113.0/24", "2001:db8:5::/48"], now));
    let report = reconcile(&mut f, &small, false);
    assert_eq!(report.swap, None, "a small delta goes in place");
    assert_eq!(f.source_generation(), Some(live.clone()));
    assert_eq!(verdict(&f, &Pkt::udp("198.51.100.1", "192.0.2.1", 1, 2)), PASS);
    assert_eq!(verdict(&f, &Pkt::udp("198.51.100.3", "192.0.2.1", 1, 2)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp("203.0.113.5", "192.0.2.1", 1, 2)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp("2001:db8:5::5", "2001:db8:ffff::1", 1, 2)), DROP);
    // Half the set replaced: a new generation.
    let mut large = small.clone();
    large.retain(|d| d.id.0 >= 100);
    large.extend(bans(
        300,
        &names(&(0..40).map(|i| format!("192.0.2.{}/32", i + 100)).collect::<Vec<_>>()),
        now,
    ));
    let report = reconcile(&mut f, &large, false);
    assert!(report.swap.is_some(), "a large delta swaps");
    assert_ne!(f.source_generation().unwrap().0, live.0);
    assert_eq!(verdict(&f, &Pkt::udp("198.51.100.3", "192.0.2.1", 1, 2)), PASS);
    assert_eq!(verdict(&f, &Pkt::udp("192.0.2.139", "192.0.2.1", 1, 2)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp("10.39.1.1", "192.0.2.1", 1, 2)), DROP);
    assert_eq!(verdict(&f, &Pkt::udp("203.0.113.5", "192.0.2.1", 1, 2)), DROP);
    // And in place again on the new generation.
    let mut after = large.clone();
    after.pop();
    let report = reconcile(&mut f, &after, false);
    assert_eq!(report.swap, None);
    assert_eq!(verdict(&f, &Pkt::udp("192.0.2.139", "192.0.2.1", 1, 2)), PASS);
    assert_eq!(verdict(&f, &Pkt::udp("192.0.2.138", "192.0.2.1", 1, 2)), DROP);
}

/// A slot given up by one decision and taken by another (in a later delta) starts the new
/// decision's counters at zero (reset in one batch for all reused slots).
#[test]
fn a_reused_rule_slot_starts_its_counters_at_zero() {
    let Some(mut f) = open(None, usize::MAX) else { return };
    let now = wall_now();
    let first = bans(1, &["198.51.100.0/24", "203.0.113.0/24"], now);
    reconcile(&mut f, &first, false);
    let p = Pkt::udp("198.51.100.1", "192.0.2.1", 1, 2);
    for _ in 0..3 {
        assert_eq!(verdict(&f, &p), DROP);
    }
    let slot = f.slot_of(DecisionId(1)).unwrap();
    assert_eq!(f.decision_counters(DecisionId(1)).unwrap().packets, 3);
    // Withdrawn (its slot released), then another decision on the same prefix: in place.
    assert_eq!(reconcile(&mut f, &first[1..], false).swap, None);
    let mut next = first[1..].to_vec();
    next.push(ban(7, "198.51.100.0/24", now));
    assert_eq!(reconcile(&mut f, &next, false).swap, None);
    assert_eq!(f.slot_of(DecisionId(7)), Some(slot), "the released slot is taken again");
    assert_eq!(f.decision_counters(DecisionId(7)).unwrap().packets, 0);
    assert_eq!(verdict(&f, &p), DROP);
    assert_eq!(f.decision_counters(DecisionId(7)).unwrap().packets, 1);
}
