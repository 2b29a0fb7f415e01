//! Keyed hashing of the new-flow table: tuples crafted to share one set under one seed spread
//! over the table under another, so without knowing the process's seed an attacker cannot aim a
//! flood at the set of a legitimate flow.

use std::net::IpAddr;

use rampart_detect::flows::{NewFlows, WAYS, random_seed};
use rampart_detect::{DetectConfig, Engine};
use rampart_telemetry::{TrafficRecord, UnixNanos};

const SEED_A: u64 = 0x5eed_aaaa;
const SEED_B: u64 = 0x5eed_bbbb;
/// 1024 sets.
const ENTRIES: usize = 1024 * WAYS;
const CRAFTED: usize = 64;

fn udp(src: [u8; 4], src_port: u16, dst_port: u16) -> TrafficRecord {
    TrafficRecord {
        src: IpAddr::from(src),
        dst: IpAddr::from([198, 51, 100, 1]),
        protocol: 17,
        src_port: Some(src_port),
        dst_port: Some(dst_port),
        packets: 1,
        bytes: 80,
        ..TrafficRecord::EMPTY
    }
}

/// What an attacker who knows the seed would do: search spoofed tuples that land in the set of
/// `victim` under `table`'s seed.
fn crafted_for(table: &NewFlows, victim: &TrafficRecord) -> Vec<TrafficRecord> {
    let target = table.set_of(victim);
    let mut found = Vec::new();
    for i in 0u32.. {
        let [a, b, c, d] = i.to_be_bytes();
        let record = udp([203, a, b, c], 1024 + u16::from(d), 53);
        if table.set_of(&record) == target {
            found.push(record);
            if found.len() == CRAFTED {
                break;
            }
        }
    }
    found
}

fn distinct_sets(table: &NewFlows, records: &[TrafficRecord]) -> usize {
    let mut sets: Vec<usize> = records.iter().map(|r| table.set_of(r)).collect();
    sets.sort_unstable();
    sets.dedup();
    sets.len()
}

/// New flows counted for `victim`'s flow seen once a second for 30 s while the crafted tuples
/// arrive every second in between.
fn victim_new_flows(table: &mut NewFlows, victim: &TrafficRecord, flood: &[TrafficRecord]) -> u64 {
    let mut new = 0;
    for second in 100..130 {
        new += table.count(victim, second);
        for record in flood {
            table.count(record, second);
        }
    }
    new
}

#[test]
fn tuples_crafted_for_one_seed_collide_only_under_it() {
    let a = NewFlows::with_seed(ENTRIES, SEED_A);
    let b = NewFlows::with_seed(ENTRIES, SEED_B);
    assert_eq!(a.sets(), 1024);
    let victim = udp([192, 0, 2, 10], 5353, 5353);
    let crafted = crafted_for(&a, &victim);
    assert_eq!(crafted.len(), CRAFTED);

    // Under A every crafted tuple is in the victim's set: the test could fail.
    assert_eq!(distinct_sets(&a, &crafted), 1);
    assert!(crafted.iter().all(|r| a.set_of(r) == a.set_of(&victim)));
    // Under B they spread: 64 random picks of 1024 sets hit about 62 distinct ones.
    let spread = distinct_sets(&b, &crafted);
    assert!(spread >= 48, "{spread} sets");
    let with_victim = crafted.iter().filter(|r| b.set_of(r) == b.set_of(&victim)).count();
    assert!(with_victim < WAYS, "{with_victim} in the victim's set");

    // What that does: under A the flood evicts the victim's flow every second, so it counts
    // as new every second; under B it is new once.
    let mut a = a;
    let mut b = b;
    assert_eq!(victim_new_flows(&mut a, &victim, &crafted), 30);
    assert_eq!(victim_new_flows(&mut b, &victim, &crafted), 1);
}

#[test]
fn the_same_seed_maps_alike_and_random_seeds_differ() {
    let victim = udp([192, 0, 2, 10], 5353, 5353);
    let a = NewFlows::with_seed(ENTRIES, SEED_A);
    let again = NewFlows::with_seed(ENTRIES, SEED_A);
    let crafted = crafted_for(&a, &victim);
    assert!(crafted.iter().all(|r| again.set_of(r) == a.set_of(&victim)));

    let seeds: Vec<u64> = (0..8).map(|_| random_seed()).collect();
    let mut distinct = seeds.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), seeds.len(), "{seeds:x?}");
    // A table drawn at random scatters tuples crafted for a known seed.
    let random = NewFlows::new(ENTRIES);
    assert!(distinct_sets(&random, &crafted) >= 48);
}

#[test]
fn engines_with_the_same_seed_agree() {
    let config = DetectConfig::from_toml_str(
        "protected = [\"198.51.100.0/24\"]\n[thresholds]\nnew_flows = 500\n",
        "seeds.toml",
    )
    .unwrap();
    let run = |mut engine: Engine| {
        let mut events = Vec::new();
        for second in 0..20u64 {
            for i in 0..600u32 {
                let [_, a, b, c] = (i + 7919 * second as u32).to_be_bytes();
                let record = TrafficRecord {
                    start: UnixNanos::from_secs(1_767_225_600 + second),
                    end: UnixNanos::from_secs(1_767_225_600 + second),
                    ..udp([203, a, b, c], 40_000, 53)
                };
                events.extend(engine.advance(record.start));
                engine.observe(&record);
            }
        }
        events.extend(engine.finish());
        format!("{events:?}")
    };
    let first = run(Engine::with_seed(config.clone(), 42));
    assert!(first.contains("Onset"), "{first}");
    assert_eq!(first, run(Engine::with_seed(config, 42)));
}
