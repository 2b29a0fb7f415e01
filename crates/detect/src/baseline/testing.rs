//! Shared helpers of the baseline tests.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use super::{BaselineConfig, BaselineTable, DAY_SECS, Sample};
use crate::class::Class;

/// 2024-01-01 00:00:00 UTC.
pub(super) const DAY0: u64 = 1_704_067_200;
pub(super) const HOUR: u64 = 3600;

pub(super) fn host(last: u8) -> u128 {
    // As the engine keys IPv4 hosts: mapped into IPv6.
    u128::from(Ipv4Addr::new(192, 0, 2, last).to_ipv6_mapped())
}

pub(super) fn scan_host(index: u128) -> u128 {
    u128::from(Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + index))
}

/// `pps` packets of 1000 bytes, one new flow per 10 packets, half UDP, half TCP ACK.
pub(super) fn sample(pps: u64) -> Sample {
    let mut classes = [0; Class::COUNT];
    classes[Class::Udp.index()] = pps / 2;
    classes[Class::TcpAck.index()] = pps - pps / 2;
    Sample { pps, bps: pps * 8000, flows: pps / 10, classes, amplification: pps / 100 }
}

pub(super) fn table(config: BaselineConfig) -> BaselineTable {
    BaselineTable::new(config)
}

pub(super) fn within(value: f64, expected: f64, tolerance: f64) -> bool {
    (value - expected).abs() <= expected * tolerance
}

/// 100 pps all day, 400 pps from 09:00 to 10:00 UTC.
pub(super) fn daily_surge(second: u64) -> u64 {
    if (second % DAY_SECS) / HOUR == 9 { 400 } else { 100 }
}

pub(super) fn four_days_of_surges() -> BaselineTable {
    let mut baselines = table(BaselineConfig::default());
    for second in DAY0..DAY0 + 4 * DAY_SECS {
        baselines.learn(host(1), second, &sample(daily_surge(second)));
    }
    baselines
}

/// Several keys over two days: surge, steady, young, and one silent since yesterday.
pub(super) fn varied_table() -> BaselineTable {
    let mut baselines = table(BaselineConfig::default());
    let end = DAY0 + 2 * DAY_SECS + 9 * HOUR + 1234;
    for second in DAY0..end {
        baselines.learn(host(10), second, &sample(daily_surge(second)));
        if second % 7 != 0 {
            baselines.learn(host(11), second, &sample(2000 + second % 500));
        }
        if second >= end - 2 * HOUR {
            baselines.learn(host(12), second, &sample(50));
        }
        if second < DAY0 + DAY_SECS + 5 * HOUR {
            baselines.learn(host(13), second, &sample(300));
        }
    }
    baselines
}

pub(super) fn snapshot_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| varied_table().snapshot())
}
