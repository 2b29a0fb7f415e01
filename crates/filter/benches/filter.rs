//! The XDP filter's figures, measured here against the anchors in the same run:
//! - ns per packet through the program (BPF_PROG_TEST_RUN, repeated) with 1M IPv4 and 100k
//!   IPv6 prefixes loaded: Rampart's lookup (host hash, DIR-24-8, per-length IPv6 hashes)
//!   beside the same program over the kernel LPM trie holding the same prefixes;
//! - map updates per second in batches (a full load and an incremental change), beside the
//!   trie's element-by-element updates;
//! - nftables decisions applied per second through one JSON transaction, beside
//!   element-by-element `nft add element` (the naive anchor) and one `nft add element` command
//!   carrying them all (nft at its best), in a network namespace the bench creates.
//!
//! Needs root. Run with `bench/filter.sh` (or `cargo bench -p rampart-filter --features xdp`).

#[cfg(feature = "xdp")]
#[path = "support/stall.rs"]
mod stall;

#[cfg(feature = "xdp")]
fn main() {
    bench::main();
}

#[cfg(not(feature = "xdp"))]
fn main() {
    eprintln!("the filter benchmark needs --features xdp");
}

#[cfg(feature = "xdp")]
mod bench {
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::stall;
    use ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use rampart_contract::{DecisionId, EventTime};
    use rampart_filter::nft::NftFilter;
    use rampart_filter::plan::{FilterPlan, PrefixRule, RuleAction, RuleSpec};
    use rampart_filter::xdp::time::boot_now_ns;
    use rampart_filter::xdp::{Capacity, LpmTries, Options, XdpFilter};

    const V4: usize = 1_000_000;
    const V6: usize = 100_000;
    /// Distinct sources per measurement (so lookups do not all hit one cache line).
    const SOURCES: usize = 64;
    const REPEAT: u32 = 20_000;
    /// Distinct sources of the random-traffic measurement, each run once.
    const RANDOM_SOURCES: usize = 100_000;
    /// Of them, drawn from the loaded prefixes (the rest miss), in percent.
    const RANDOM_HITS: u64 = 80;

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// A BGP-table-like mix of lengths: 40 % /32 hosts, 35 % /24, 15 % /16-/23, 5 % /8-/15,
    /// 5 % /25-/31, all distinct, none in 192.0.2.0/24 (the destination) or 100.64.0.0/10
    /// (the sources that must miss).
    fn v4_prefixes(rng: &mut Rng) -> Vec<Ipv4Net> {
        let mut seen = HashSet::with_capacity(V4);
        let mut out = Vec::with_capacity(V4);
        while out.len() < V4 {
            let r = rng.next();
            let len = match r % 100 {
                0..40 => 32,
                40..75 => 24,
                75..90 => 16 + (r >> 8) as u8 % 8,
                90..95 => 8 + (r >> 8) as u8 % 8,
                _ => 25 + (r >> 8) as u8 % 7,
            };
            let addr = Ipv4Addr::from((r >> 16) as u32);
            let Ok(net) = Ipv4Net::new(addr, len) else { continue };
            let net = net.trunc();
            let miss: Ipv4Net = "100.64.0.0/10".parse().unwrap_or_default();
            if net.contains(&miss.network())
                || miss.contains(&net.network())
                || net.contains(&Ipv4Addr::new(192, 0, 2, 1))
            {
                continue;
            }
            if seen.insert(net) {
                out.push(net);
            }
        }
        out
    }

    /// 100k IPv6 prefixes over seven lengths, inside 2000::/4 minus 2001:db8::/32.
    fn v6_prefixes(rng: &mut Rng) -> Vec<Ipv6Net> {
        let lens = [32u8, 40, 48, 56, 64, 96, 128];
        let mut seen = HashSet::with_capacity(V6);
        let mut out = Vec::with_capacity(V6);
        while out.len() < V6 {
            let hi = (rng.next() as u128) << 64 | rng.next() as u128;
            let addr = Ipv6Addr::from((hi & !(0xfu128 << 124)) | (0x2u128 << 124));
            let len = lens[(rng.next() % lens.len() as u64) as usize];
            let Ok(net) = Ipv6Net::new(addr, len) else { continue };
            let net = net.trunc();
            if net.addr().segments()[..2] == [0x2001, 0xdb8] {
                continue;
            }
            if seen.insert(net) {
                out.push(net);
            }
        }
        out
    }

    fn frame(src: IpAddr) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        let udp = [0x9c, 0x40, 0, 53, 0, 40, 0, 0];
        match src {
            IpAddr::V4(s) => {
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 60, 0, 1, 0, 0, 64, 17, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&[192, 0, 2, 1]);
            }
            IpAddr::V6(s) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 40, 17, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(
                    &"2001:db8::1".parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::LOCALHOST).octets(),
                );
            }
        }
        f.extend_from_slice(&udp);
        f.extend(std::iter::repeat_n(0u8, 32));
        f
    }

    /// Average ns per packet over `sources`, each run `REPEAT` times in the kernel.
    fn ns_per_packet(sources: &[IpAddr], run: impl Fn(&[u8]) -> (u32, Duration), want: u32) -> f64 {
        let mut total = Duration::ZERO;
        for s in sources {
            let (verdict, d) = run(&frame(*s));
            assert_eq!(verdict, want, "{s}");
            total += d;
        }
        total.as_nanos() as f64 / sources.len() as f64
    }

    fn host_in(net: IpNet, rng: &mut Rng) -> IpAddr {
        match net {
            IpNet::V4(n) => {
                let span = 1u64 << (32 - n.prefix_len());
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + (rng.next() % span) as u32))
            }
            IpNet::V6(n) => {
                let host_bits = 128 - u32::from(n.prefix_len());
                let mask = if host_bits == 0 { 0 } else { u128::MAX >> (128 - host_bits) };
                let r = (rng.next() as u128) << 64 | rng.next() as u128;
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | (r & mask)))
            }
        }
    }

    pub fn main() {
        if let Ok(spec) = std::env::var("FILTER_WATCH") {
            return stall::child_main(&spec);
        }
        xdp();
        if std::env::var_os("FILTER_STALLS_ONLY").is_none() {
            nftables();
        }
    }

    fn xdp() {
        let now = EventTime::from_unix_secs(2_000_000_000);
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let v4 = v4_prefixes(&mut rng);
        let v6 = v6_prefixes(&mut rng);
        let spec = |i: usize| RuleSpec {
            decision: DecisionId(i as u64 + 1),
            action: RuleAction::Drop,
            expires: None,
        };
        let plan = FilterPlan {
            v4: v4
                .iter()
                .enumerate()
                .map(|(i, n)| PrefixRule { source: IpNet::V4(*n), rule: spec(i) })
                .collect(),
            v6: v6
                .iter()
                .enumerate()
                .map(|(i, n)| PrefixRule { source: IpNet::V6(*n), rule: spec(V4 + i) })
                .collect(),
            ..FilterPlan::default()
        };
        // In source order, as `plan::plan` gives them (a reconcile diffs ordered lists).
        let mut plan = plan;
        plan.v4.sort_by_key(|p| p.source);
        plan.v6.sort_by_key(|p| p.source);
        let capacity = Capacity {
            // Two whole sets at once: a full reload releases the old set's rules after the
            // swap.
            rules: 1 << 22,
            v4_groups: 1 << 16,
            v4_hosts: 1 << 19,
            v6_prefixes: 1 << 17,
            destinations: 16,
            signatures: 16,
            buckets: 1024,
            lpm_v4: 1 << 20,
            lpm_v6: 1 << 17,
        };
        let started = Instant::now();
        let mut filter = match XdpFilter::open(Options {
            pin_dir: None,
            capacity,
            syn_cookies: true,
            ..Options::default()
        }) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("cannot load the XDP program (root needed): {e}");
                std::process::exit(1);
            }
        };
        println!("loaded the program and allocated maps in {:.2} s", started.elapsed().as_secs_f64());
        if std::env::var_os("FILTER_PROBE_MAPS").is_some() {
            return probe_maps(&filter, &capacity);
        }
        let boot = boot_now_ns().unwrap_or(1);
        let t = Instant::now();
        let report = match filter.reconcile(&plan, now, boot) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("reconcile: {e}");
                std::process::exit(1);
            }
        };
        let full = t.elapsed();
        println!(
            "full load: {} IPv4 + {} IPv6 prefixes ({} map elements, batched) in {:.3} s: {:.0} prefixes/s",
            V4,
            V6,
            report.elements_written,
            full.as_secs_f64(),
            (V4 + V6) as f64 / full.as_secs_f64()
        );
        // An incremental change: 10,000 prefixes withdrawn and 10,000 added.
        let mut changed = plan.clone();
        changed.v4.drain(..10_000);
        let extra = v4_prefixes(&mut Rng(0x0dd_ba11));
        let known: HashSet<IpNet> = plan.v4.iter().map(|p| p.source).collect();
        changed.v4.extend(
            extra
                .iter()
                .map(|n| IpNet::V4(*n))
                .filter(|n| !known.contains(n))
                .take(10_000)
                .enumerate()
                .map(|(i, n)| PrefixRule { source: n, rule: spec(V4 + V6 + i) }),
        );
        changed.v4.sort_by_key(|p| p.source);
        // Five rounds there and back (the machine is shared: the best round is the capacity,
        // the median what a loaded machine gets). Each is a reconcile of the whole plan, which
        // finds the delta itself.
        let mut rounds = Vec::new();
        let mut elements = 0;
        for _ in 0..5 {
            for target in [&changed, &plan] {
                let t = Instant::now();
                let r = filter.reconcile(target, now, boot).unwrap_or_default();
                rounds.push(t.elapsed());
                elements = r.elements_written;
            }
        }
        rounds.sort();
        let rate = |d: Duration| 20_000.0 / d.as_secs_f64();
        println!(
            "incremental: 20,000 prefix changes (~{} map elements) over 1.1M rules, 10 reconciles: best {:.3} s ({:.0} changes/s), median {:.3} s ({:.0} changes/s), worst {:.3} s",
            elements,
            rounds[0].as_secs_f64(),
            rate(rounds[0]),
            rounds[5].as_secs_f64(),
            rate(rounds[5]),
            rounds[9].as_secs_f64(),
        );

        // The trie, same prefixes, same rule slots.
        let pairs: Vec<(IpNet, u32)> = plan
            .v4
            .iter()
            .chain(&plan.v6)
            .filter_map(|p| filter.slot_of(p.rule.decision).map(|s| (p.source, s)))
            .collect();
        let t = Instant::now();
        if let Err(e) = filter.load_lpm(&pairs) {
            eprintln!("loading the LPM trie: {e}: {:?}", std::error::Error::source(&e));
            std::process::exit(1);
        }
        let lpm_load = t.elapsed();
        println!(
            "kernel LPM trie: {} prefixes loaded in {:.3} s: {:.0} prefixes/s",
            pairs.len(),
            lpm_load.as_secs_f64(),
            pairs.len() as f64 / lpm_load.as_secs_f64()
        );

        let mut rng = Rng(42);
        let pick = |rng: &mut Rng, list: &[IpNet], len: Option<u8>| -> Vec<IpAddr> {
            let mut out = Vec::new();
            while out.len() < SOURCES {
                let n = list[(rng.next() % list.len() as u64) as usize];
                if len.is_none_or(|l| n.prefix_len() == l) {
                    out.push(host_in(n, rng));
                }
            }
            out
        };
        let v4_nets: Vec<IpNet> = plan.v4.iter().map(|p| p.source).collect();
        let v6_nets: Vec<IpNet> = plan.v6.iter().map(|p| p.source).collect();
        let miss4: Vec<IpAddr> = (0..SOURCES)
            .map(|_| IpAddr::V4(Ipv4Addr::from(0x6440_0000 | (rng.next() as u32 & 0x003f_ffff))))
            .collect();
        let miss6: Vec<IpAddr> = (0..SOURCES)
            .map(|_| host_in("2001:db8::/32".parse().unwrap_or(IpNet::V6(Ipv6Net::default())), &mut rng))
            .collect();
        let cases: Vec<(&str, Vec<IpAddr>, u32)> = vec![
            ("IPv4, no match (passes)", miss4, 2),
            ("IPv4 /32 host (drop)", pick(&mut rng, &v4_nets, Some(32)), 1),
            ("IPv4 /24 (drop)", pick(&mut rng, &v4_nets, Some(24)), 1),
            ("IPv4 /25-/31 (drop)", pick(&mut rng, &v4_nets, Some(28)), 1),
            ("IPv4, any (drop)", pick(&mut rng, &v4_nets, None), 1),
            ("IPv6, no match (passes)", miss6, 2),
            ("IPv6, any (drop)", pick(&mut rng, &v6_nets, None), 1),
        ];
        println!();
        if std::env::var_os("FILTER_STALLS_ONLY").is_some() {
            stalls(&mut filter, &plan, now, boot);
            return;
        }
        println!(
            "ns per packet, hot (BPF_PROG_TEST_RUN, {SOURCES} sources x {REPEAT} runs each in a row: one source's lookup path stays in the caches), 1M IPv4 + 100k IPv6 prefixes loaded:"
        );
        println!(
            "(raw: as TEST_RUN reports it; net: less a no-op XDP program's ns over the same frames, \
             the harness's own cost, measured between the two)"
        );
        println!(
            "{:<26} {:>11} {:>11} {:>9} {:>11} {:>11} {:>9} {:>9}",
            "packet", "rampart", "LPM trie", "no-op", "rampart net", "trie net", "raw x", "net x"
        );
        for (name, sources, want) in &cases {
            let ours = ns_per_packet(sources, |f| filter.test_run(f, REPEAT).unwrap_or_default(), *want);
            let noop = ns_per_packet(sources, |f| filter.test_run_noop(f, REPEAT).unwrap_or_default(), 2);
            let trie = ns_per_packet(sources, |f| filter.test_run_lpm(f, REPEAT).unwrap_or_default(), *want);
            let (ours_net, trie_net) = ((ours - noop).max(0.1), (trie - noop).max(0.1));
            println!(
                "{name:<26} {ours:>11.1} {trie:>11.1} {noop:>9.1} {ours_net:>11.1} {trie_net:>11.1} {:>8.1}x {:>8.1}x",
                trie / ours,
                trie_net / ours_net
            );
        }
        println!();
        random_traffic(&filter, &v4_nets, &v6_nets);
        stalls(&mut filter, &plan, now, boot);
        // The filter's maps are freed when it goes out of scope here.
    }

    /// Per-packet cost over random traffic: [`RANDOM_SOURCES`] distinct sources per family
    /// ([`RANDOM_HITS`] % in the loaded prefixes, the rest misses), each frame run once
    /// (BPF_PROG_TEST_RUN with repeat 1: the kernel's duration is one run plus one clock
    /// read), as blocks over the same frames: all through Rampart's program, all through the
    /// trie's, all through the no-op, twice; the second pass is the figure (the first warms
    /// what can be warmed). Unlike the hot figures (one source's path run 20,000 times in a
    /// row), each lookup here starts from whatever the last 100,000 left in the caches.
    fn random_traffic(filter: &XdpFilter, v4_nets: &[IpNet], v6_nets: &[IpNet]) {
        let mut rng = Rng(0x0c01_dcac_4e00_0001);
        let draw = |rng: &mut Rng, nets: &[IpNet], miss: IpNet| -> Vec<(Vec<u8>, u32)> {
            let mut seen = HashSet::with_capacity(RANDOM_SOURCES);
            let mut out = Vec::with_capacity(RANDOM_SOURCES);
            while out.len() < RANDOM_SOURCES {
                let hit = rng.next() % 100 < RANDOM_HITS;
                let net = if hit { nets[(rng.next() % nets.len() as u64) as usize] } else { miss };
                let src = host_in(net, rng);
                if seen.insert(src) {
                    out.push((frame(src), if hit { 1 } else { 2 }));
                }
            }
            out
        };
        let v4_miss: IpNet = "100.64.0.0/10".parse().unwrap_or(IpNet::V4(Ipv4Net::default()));
        let v6_miss: IpNet = "2001:db8::/32".parse().unwrap_or(IpNet::V6(Ipv6Net::default()));
        let cases = [
            ("IPv4, random", draw(&mut rng, v4_nets, v4_miss)),
            ("IPv6, random", draw(&mut rng, v6_nets, v6_miss)),
        ];
        println!(
            "ns per packet over random traffic: {RANDOM_SOURCES} distinct sources per family ({RANDOM_HITS} % in the loaded prefixes, the rest misses), one BPF_PROG_TEST_RUN each (repeat 1), as blocks (all through rampart, then all through the trie, then all through the no-op, over the same frames), two passes:"
        );
        println!(
            "{:<26} {:>4} {:>11} {:>11} {:>9} {:>11} {:>11} {:>9} {:>9}",
            "packet", "pass", "rampart", "LPM trie", "no-op", "rampart net", "trie net", "raw x", "net x"
        );
        // Mean ns per frame of `run` over `frames`, checking each verdict (the no-op passes all).
        let block = |frames: &[(Vec<u8>, u32)], run: &dyn Fn(&[u8]) -> (u32, Duration), noop: bool| {
            let mut total = Duration::ZERO;
            for (f, want) in frames {
                let (verdict, d) = run(f);
                assert_eq!(verdict, if noop { 2 } else { *want }, "random traffic verdict");
                total += d;
            }
            total.as_nanos() as f64 / frames.len() as f64
        };
        for (name, frames) in &cases {
            for pass in 1..=2 {
                let ours = block(frames, &|f| filter.test_run(f, 1).unwrap_or_default(), false);
                let trie = block(frames, &|f| filter.test_run_lpm(f, 1).unwrap_or_default(), false);
                let noop = block(frames, &|f| filter.test_run_noop(f, 1).unwrap_or_default(), true);
                let (ours_net, trie_net) = ((ours - noop).max(0.1), (trie - noop).max(0.1));
                println!(
                    "{name:<26} {pass:>4} {ours:>11.1} {trie:>11.1} {noop:>9.1} {ours_net:>11.1} {trie_net:>11.1} {:>8.1}x {:>8.1}x",
                    trie / ours,
                    trie_net / ours_net
                );
            }
        }
    }

    /// A whole new set of 1M IPv4 + 100k IPv6 prefixes with decisions from `first_id` on,
    /// drawn from `seed`, holding `shared` (so one probe drops in every set).
    fn another_set(seed: u64, shared: IpNet, first_id: u64) -> FilterPlan {
        let mut rng = Rng(seed);
        let mut v4: Vec<IpNet> = v4_prefixes(&mut rng).into_iter().map(IpNet::V4).collect();
        let v6: Vec<IpNet> = v6_prefixes(&mut rng).into_iter().map(IpNet::V6).collect();
        if !v4.contains(&shared) {
            v4[0] = shared;
        }
        let rule = |i: usize| RuleSpec {
            decision: DecisionId(first_id + i as u64),
            action: RuleAction::Drop,
            expires: None,
        };
        let mut next = FilterPlan {
            v4: v4.iter().enumerate().map(|(i, n)| PrefixRule { source: *n, rule: rule(i) }).collect(),
            v6: v6.iter().enumerate().map(|(i, n)| PrefixRule { source: *n, rule: rule(V4 + i) }).collect(),
            ..FilterPlan::default()
        };
        next.v4.sort_by_key(|p| p.source);
        next.v6.sort_by_key(|p| p.source);
        next
    }

    /// Two full reloads of a whole new set (1M IPv4 + 100k IPv6 prefixes, one /24 shared with
    /// the others) while watchers run the program on every CPU: the first into the standby
    /// generation left empty at load, the second into the one holding the first load's set
    /// (all of it deleted, the new one written); then the kernel LPM trie filled with the same
    /// set and freed, watched the same way; a quiet baseline first.
    fn stalls(filter: &mut XdpFilter, plan: &FilterPlan, now: EventTime, boot: u64) {
        println!();
        let Some(shared) = plan.v4.iter().map(|p| p.source).find(|n| n.prefix_len() == 24) else { return };
        let first_id = (V4 + V6 + 100_000) as u64;
        let next = another_set(0x5707_a11e_d00d_f00d, shared, first_id);
        let third = another_set(0x7417_d5e7_0000_0003, shared, first_id + 2 * (V4 + V6) as u64);
        let mut r = Rng(7);
        let probe = frame(host_in(shared, &mut r));
        let prog =
            filter.test_runner().and_then(|r| r.program_id()).unwrap_or_else(|e| panic!("program id: {e}"));
        println!(
            "stalls: a watcher process, one thread per CPU (SCHED_FIFO, pinned), runs the program every {} µs over a source every set drops; worst gap between two runs (and every gap over {} ms, with when it ended):",
            stall::PERIOD.as_micros(),
            stall::LISTED.as_millis()
        );
        if let Some(c) = stall::Child::start(prog, 2.0, &probe) {
            c.finish("quiet baseline (2 s)");
        }

        for (what, set) in
            [("into the empty standby", &next), ("into the standby holding the first set", &third)]
        {
            // Long enough for the reload (about 5 s on the loaded 2-core machine) and 2 s after.
            let secs = 10.0;
            let watch = stall::Child::start(prog, secs, &probe);
            let (t, began) = (Instant::now(), stall::monotonic());
            let report = filter.reload(set, now, boot);
            let reload = t.elapsed();
            match report {
                Ok(r) => {
                    let times = r.swap.unwrap_or_default();
                    println!(
                        "  rampart full reload {what}, {} IPv4 + {} IPv6 prefixes ({} map elements): {:.3} s in all (monotonic {:.3}..{:.3} s): {:.0} prefixes/s; fill {:.3} s, flip (source_gen) {:.3} ms, wait for readers of the old generation {:.3} ms",
                        set.v4.len(),
                        set.v6.len(),
                        r.elements_written,
                        reload.as_secs_f64(),
                        began.as_secs_f64(),
                        stall::monotonic().as_secs_f64(),
                        (set.v4.len() + set.v6.len()) as f64 / reload.as_secs_f64(),
                        times.fill.as_secs_f64(),
                        times.flip.as_secs_f64() * 1e3,
                        times.release.as_secs_f64() * 1e3,
                    );
                }
                Err(e) => println!("  rampart full reload {what} failed: {e}"),
            }
            if let Some(c) = watch {
                c.finish(&format!("reload {what} ({:.1} s) and after ({secs} s)", reload.as_secs_f64()));
            }
        }
        let next = third;

        let pairs: Vec<(IpNet, u32)> =
            next.v4.iter().chain(&next.v6).enumerate().map(|(i, p)| (p.source, i as u32 + 1)).collect();
        let watch = stall::Child::start(prog, 8.0, &probe);
        let t = Instant::now();
        let tries = LpmTries::fill(&pairs);
        let fill = t.elapsed();
        let t = Instant::now();
        let held = tries.as_ref().map(|t| t.max_entries()).unwrap_or_default();
        drop(tries);
        let free = t.elapsed();
        println!(
            "  kernel LPM trie anchor: {} prefixes ({held:?} entries) filled in {:.3} s ({:.0}/s), closed (the kernel frees it after) in {:.3} ms",
            pairs.len(),
            fill.as_secs_f64(),
            pairs.len() as f64 / fill.as_secs_f64(),
            free.as_secs_f64() * 1e3
        );
        if let Some(c) = watch {
            c.finish("the LPM fill, free and after (8 s)");
        }
    }

    /// Creates and frees each source table's inner map alone, 0.4 s apart, while the watcher
    /// process runs, printing when each step began and ended (CLOCK_MONOTONIC) so the
    /// watcher's long gaps can be matched to one of them.
    fn probe_maps(filter: &XdpFilter, caps: &Capacity) {
        use rampart_filter::xdp::swap::TABLES;
        let prog =
            filter.test_runner().and_then(|r| r.program_id()).unwrap_or_else(|e| panic!("program id: {e}"));
        let probe = frame(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)));
        let watch = stall::Child::start(prog, 2.0 + TABLES.len() as f64 * 0.9, &probe);
        let step = |what: &str, f: &mut dyn FnMut()| {
            let (a, t) = (stall::monotonic(), Instant::now());
            f();
            println!(
                "  {what:<40} {:>9.3} ms, monotonic {:.3}..{:.3} s",
                t.elapsed().as_secs_f64() * 1e3,
                a.as_secs_f64(),
                stall::monotonic().as_secs_f64()
            );
            std::thread::sleep(Duration::from_millis(400));
        };
        for t in TABLES {
            let mut map = None;
            step(&format!("create {}", t.name()), &mut || map = Some(t.create(caps)));
            step(&format!("close {}", t.name()), &mut || drop(map.take()));
        }
        if let Some(c) = watch {
            c.finish("map probe");
        }
    }

    fn nftables() {
        let ns = format!("rampart-bench-{}", std::process::id());
        if !Command::new("ip").args(["netns", "add", &ns]).status().is_ok_and(|s| s.success()) {
            eprintln!("nftables: cannot create a network namespace (root needed)");
            return;
        }
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _del = Del(ns.clone());
        let nft = |args: &[&str]| Command::new("ip").args(["netns", "exec", &ns, "nft"]).args(args).output();
        let now = EventTime::from_unix_secs(2_000_000_000);
        // 100,000 prefixes, /24 to /32, each inside its own /24 (an interval set holds no
        // overlaps).
        let nets: Vec<Ipv4Net> = (0..100_000u32)
            .map(|i| {
                Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8) + (i % 7) * 16), 24 + (i % 9) as u8)
                    .unwrap_or_default()
                    .trunc()
            })
            .collect();
        let plan = FilterPlan {
            v4: nets
                .iter()
                .enumerate()
                .map(|(i, n)| PrefixRule {
                    source: IpNet::V4(*n),
                    rule: RuleSpec {
                        decision: DecisionId(i as u64 + 1),
                        action: RuleAction::Drop,
                        expires: Some(EventTime::from_unix_secs(2_000_003_600)),
                    },
                })
                .collect(),
            ..FilterPlan::default()
        };
        // The anchors first, on an empty ruleset (nft loads the whole ruleset on every call).
        let _ = nft(&["add", "table", "inet", "naive"]);
        let _ = nft(&["add", "set", "inet", "naive", "s", "{ type ipv4_addr; flags interval, timeout; }"]);
        let naive = 200;
        let t = Instant::now();
        for n in nets.iter().take(naive) {
            let _ = nft(&["add", "element", "inet", "naive", "s", &format!("{{ {n} timeout 3600s }}")]);
        }
        let d = t.elapsed();
        println!(
            "nftables, element by element (`nft add element` per decision into an empty set, the naive anchor): {naive} decisions in {:.3} s: {:.0} decisions/s",
            d.as_secs_f64(),
            naive as f64 / d.as_secs_f64()
        );
        let _ = nft(&["flush", "set", "inet", "naive", "s"]);
        let all: Vec<String> = nets.iter().map(|n| format!("{n} timeout 3600s")).collect();
        let script = format!("add element inet naive s {{ {} }}\n", all.join(", "));
        let t = Instant::now();
        let ok = {
            use std::io::Write;
            let child = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn();
            child.is_ok_and(|mut c| {
                let wrote = c.stdin.take().is_some_and(|mut i| i.write_all(script.as_bytes()).is_ok());
                wrote && c.wait().is_ok_and(|s| s.success())
            })
        };
        let d = t.elapsed();
        println!(
            "nftables, one native `nft -f` script adding all {} (nft at its best, no read-back){}: {:.3} s: {:.0} decisions/s",
            nets.len(),
            if ok { "" } else { " FAILED" },
            d.as_secs_f64(),
            nets.len() as f64 / d.as_secs_f64()
        );
        let _ = nft(&["delete", "table", "inet", "naive"]);
        let mut f =
            NftFilter::new(["ip", "netns", "exec", &ns, "nft"].iter().map(|s| s.to_string()).collect());
        let t = Instant::now();
        match f.apply(&plan, now) {
            Ok(r) => {
                let d = t.elapsed();
                println!(
                    "nftables, Rampart (one JSON transaction, read back and compared): {} decisions in {:.3} s: {:.0} decisions/s",
                    r.src4,
                    d.as_secs_f64(),
                    r.src4 as f64 / d.as_secs_f64()
                );
            }
            Err(e) => println!("nftables, Rampart: {e}"),
        }
    }
}
