//! A baseline snapshot written by the previous format (version 1, JSON keys) still restores:
//! `tests/data/baselines-v1.bin` was written by the build before the binary format, together
//! with that build's answers for its keys (`baselines-v1.expected`, one `KEY SECOND ANSWER` a
//! line, the answer in `Debug` form, which prints every f64 exactly), answered by the table
//! that wrote it. A restored table answers like the original for the day after the snapshot
//! (later the original folds the silent slots, the restored one treats them as unknown), so
//! the answers compared are those of the first 22 hours.
//!
//! The fixture's table: four u128 keys (an IPv4-mapped host with a daily surge, an IPv6 host,
//! a group key in 100::/64, u128::MAX with held seconds) learned over 29 hours from
//! 2026-01-01 00:00 UTC at the default configuration.

use rampart_detect::{BaselineConfig, BaselineTable};

const V1: &[u8] = include_bytes!("data/baselines-v1.bin");
const EXPECTED: &str = include_str!("data/baselines-v1.expected");

/// The fixture's latest second: its answers start there.
const SNAPSHOT_SECOND: u64 = 1_767_225_600 + 86_400 + 5 * 3600 + 123;

fn expected() -> Vec<(u128, u64, String)> {
    EXPECTED
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let key = fields.next().and_then(|k| k.strip_prefix("0x")).unwrap();
            let key = u128::from_str_radix(key, 16).unwrap();
            let second = fields.next().unwrap().parse().unwrap();
            (key, second, fields.next().unwrap().to_owned())
        })
        .filter(|(_, second, _)| *second < SNAPSHOT_SECOND + 22 * 3600)
        .collect()
}

#[test]
fn a_version_1_snapshot_restores_with_the_same_answers() {
    assert_eq!(u16::from_le_bytes([V1[4], V1[5]]), 1, "the fixture is a version 1 snapshot");
    let restored = BaselineTable::restore(BaselineConfig::default(), V1).unwrap();
    assert_eq!(restored.len(), 4);
    let expected = expected();
    assert_eq!(expected.len(), 4 * 27);
    let mut answered = 0;
    for (key, second, answer) in &expected {
        let now = format!("{:?}", restored.baseline(*key, *second));
        assert_eq!(&now, answer, "key {key:#x} at {second}");
        answered += usize::from(answer.starts_with("Some"));
    }
    assert!(answered > 100, "{answered}");

    // Written again, it is a version 2 snapshot with the same content.
    let again = restored.snapshot();
    assert_eq!(u16::from_le_bytes([again[4], again[5]]), rampart_detect::baseline::SNAPSHOT_VERSION);
    assert!(again.len() < V1.len(), "{} vs {}", again.len(), V1.len());
    let twice = BaselineTable::restore(BaselineConfig::default(), &again).unwrap();
    assert_eq!(twice.snapshot(), again);
    for (key, second, answer) in &expected {
        assert_eq!(&format!("{:?}", twice.baseline(*key, *second)), answer, "key {key:#x} at {second}");
    }
}

#[test]
fn a_version_1_snapshot_restores_through_the_engine() {
    let mut engine = rampart_detect::Engine::new(rampart_detect::DetectConfig::default());
    engine.restore_baselines(V1).unwrap();
    assert_eq!(engine.stats().baseline_keys, 4);
    let host = std::net::IpAddr::from([198, 51, 100, 80]);
    let (_, second, answer) = &expected()[0];
    assert_eq!(&format!("{:?}", engine.baseline_of(host, *second)), answer);
}
