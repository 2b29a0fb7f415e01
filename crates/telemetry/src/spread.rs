//! Spreading a flow's counts over its active period.
//!
//! Flow exporters report a long flow once, at the end of an active timeout (often 60 s or more).
//! Counting all of it at export time produces a spike that never happened; counting it per
//! second over `start..=end` reproduces the rate the network actually saw.

use crate::record::{TrafficRecord, UnixNanos};

/// Flows claiming to be active longer than this are spread over their last `MAX_SPREAD_SECS`
/// seconds: exporters' active timeouts are far shorter, and a lying timestamp must not make one
/// record cost millions of iterations.
pub const MAX_SPREAD_SECS: u64 = 3_600;

/// One second's share of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondShare {
    /// Unix second.
    pub second: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// Iterator over the per-second shares of one record, proportional to the time the record was
/// active in each second. The shares sum exactly to the record's packets and bytes.
#[derive(Debug, Clone)]
pub struct Spread {
    start: u64,
    end: u64,
    packets: u64,
    bytes: u64,
    next_second: u64,
    last_second: u64,
    packets_given: u64,
    bytes_given: u64,
}

/// Splits `record`'s observed (unscaled) packets and bytes over the seconds of its active
/// period. A single packet, or a flow within one second, yields one share.
pub fn spread_per_second(record: &TrafficRecord) -> Spread {
    let end = record.end.0.max(record.start.0);
    let start = record.start.0.max(end.saturating_sub(MAX_SPREAD_SECS * UnixNanos::NANOS_PER_SEC));
    Spread {
        start,
        end,
        packets: record.packets,
        bytes: record.bytes,
        next_second: start / UnixNanos::NANOS_PER_SEC,
        last_second: end / UnixNanos::NANOS_PER_SEC,
        packets_given: 0,
        bytes_given: 0,
    }
}

impl Iterator for Spread {
    type Item = SecondShare;

    fn next(&mut self) -> Option<SecondShare> {
        if self.next_second > self.last_second {
            return None;
        }
        let second = self.next_second;
        self.next_second += 1;
        let (packets_due, bytes_due) = if second == self.last_second {
            (self.packets, self.bytes)
        } else {
            // Cumulative share up to the end of this second, rounded down; the last second takes
            // the remainder so totals are exact.
            let elapsed = u128::from((second + 1) * UnixNanos::NANOS_PER_SEC - self.start);
            let duration = u128::from(self.end - self.start);
            (
                (u128::from(self.packets) * elapsed / duration) as u64,
                (u128::from(self.bytes) * elapsed / duration) as u64,
            )
        };
        let share = SecondShare {
            second,
            packets: packets_due - self.packets_given,
            bytes: bytes_due - self.bytes_given,
        };
        self.packets_given = packets_due;
        self.bytes_given = bytes_due;
        Some(share)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.last_second + 1).saturating_sub(self.next_second) as usize;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flow(start_ns: u64, end_ns: u64, packets: u64, bytes: u64) -> TrafficRecord {
        TrafficRecord {
            start: UnixNanos(start_ns),
            end: UnixNanos(end_ns),
            packets,
            bytes,
            ..TrafficRecord::EMPTY
        }
    }

    #[test]
    fn single_packet_is_one_share() {
        let shares: Vec<_> = spread_per_second(&flow(5_500_000_000, 5_500_000_000, 1, 60)).collect();
        assert_eq!(shares, vec![SecondShare { second: 5, packets: 1, bytes: 60 }]);
    }

    #[test]
    fn ten_second_flow_is_spread_evenly() {
        let shares: Vec<_> =
            spread_per_second(&flow(100_000_000_000, 110_000_000_000, 1000, 1_000_000)).collect();
        assert_eq!(shares.len(), 11);
        assert!(shares[..10].iter().all(|s| s.packets == 100 && s.bytes == 100_000));
        assert_eq!((shares[10].packets, shares[10].bytes), (0, 0));
    }

    #[test]
    fn absurd_durations_are_capped() {
        let shares = spread_per_second(&flow(0, 4_000_000_000_000_000_000, 7, 7)).count();
        assert_eq!(shares as u64, MAX_SPREAD_SECS + 1);
    }

    #[test]
    fn end_before_start_is_a_point() {
        let shares: Vec<_> = spread_per_second(&flow(9_000_000_000, 3_000_000_000, 2, 80)).collect();
        assert_eq!(shares, vec![SecondShare { second: 9, packets: 2, bytes: 80 }]);
    }

    proptest! {
        #[test]
        fn shares_sum_to_totals(start in 0u64..1u64 << 62, len in 0u64..5_000_000_000_000, packets: u32, bytes: u64) {
            let record = flow(start, start + len, u64::from(packets), bytes);
            let (mut p, mut b, mut n) = (0u64, 0u64, 0u64);
            for share in spread_per_second(&record) {
                p += share.packets;
                b += share.bytes;
                n += 1;
            }
            prop_assert_eq!((p, b), (u64::from(packets), bytes));
            prop_assert!(n <= MAX_SPREAD_SECS + 1);
        }
    }
}
