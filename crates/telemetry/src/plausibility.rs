//! Plausibility of decoded records: what an exporter claims must fit what it (or its links) can
//! carry, or the record is dropped with a reason instead of becoming an attack.
//!
//! Pure: a record, the exporter's limits and the arrival second in; accept or a reason out. No
//! socket, no clock. Two checks:
//!
//! * per record ([`check_record`]): the sampling rate is sane, bytes per packet are within
//!   IP-layer sizes, the sampling-scaled totals do not overflow, and the record's rate (its
//!   scaled totals over its active period, as [`crate::spread`] spreads it) is under the
//!   exporter's caps;
//! * per exporter-second ([`ExporterBudget`]): the rates of the records one exporter delivers
//!   within one second of arrival add up to at most the caps. Once a second is over, the rest
//!   of that second is dropped too (the exporter is lying, or someone speaks for it).

use std::net::IpAddr;

use serde::Serialize;

use crate::record::{TrafficRecord, UnixNanos};
use crate::spread::MAX_SPREAD_SECS;

/// Default cap on one exporter's IP-layer traffic: 400 Gbit/s.
pub const DEFAULT_MAX_BPS: u64 = 400_000_000_000;
/// Default cap on one exporter's packets: 600 Mpps.
pub const DEFAULT_MAX_PPS: u64 = 600_000_000;
/// Highest sampling rate taken as real (1 in a million).
pub const DEFAULT_MAX_SAMPLING_RATE: u32 = 1_000_000;
/// Smallest IP packet (an IPv4 header).
pub const MIN_PACKET_BYTES: u64 = 20;
/// Largest IP packet (the IPv4 total length field; IPv6 jumbograms are not exported).
pub const MAX_PACKET_BYTES: u64 = 65_535;
/// Bits on the wire of the smallest Ethernet frame (64 bytes + preamble + gap): a link of
/// N bit/s carries at most N / 672 packets a second.
pub const MIN_FRAME_BITS_ON_WIRE: u64 = 84 * 8;

/// What one exporter can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlausibilityLimits {
    /// IP-layer bits per second, over every record of the exporter.
    pub max_bps: u64,
    /// Packets per second, over every record of the exporter.
    pub max_pps: u64,
    /// Sampling rates above this are rejected.
    pub max_sampling_rate: u32,
}

impl Default for PlausibilityLimits {
    fn default() -> Self {
        PlausibilityLimits {
            max_bps: DEFAULT_MAX_BPS,
            max_pps: DEFAULT_MAX_PPS,
            max_sampling_rate: DEFAULT_MAX_SAMPLING_RATE,
        }
    }
}

impl PlausibilityLimits {
    /// The limits of an exporter whose links carry `bits_per_second` together: that many bits,
    /// and as many minimum-size frames as fit (never more than `self`'s packet cap).
    pub fn for_interface_speed(self, bits_per_second: u64) -> Self {
        PlausibilityLimits {
            max_bps: bits_per_second,
            max_pps: self.max_pps.min(bits_per_second / MIN_FRAME_BITS_ON_WIRE).max(1),
            ..self
        }
    }
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImplausibleReason {
    /// Sampling rate above [`PlausibilityLimits::max_sampling_rate`].
    SamplingRate,
    /// No packets (with or without bytes).
    NoPackets,
    /// Bytes per packet outside 20..=65,535 (IP layer).
    PacketSize,
    /// Packets or bytes times the sampling rate (or bytes in bits) overflow 64 bits.
    Overflow,
    /// The destination is 0.0.0.0 or `::`, which no packet is sent to.
    UnspecifiedDestination,
    /// The record alone claims more packets or bits per second than the exporter carries.
    RecordRate,
    /// The exporter's records of one arrival second together claim more than it carries.
    ExporterRate,
}

impl ImplausibleReason {
    /// Every reason, in counter order.
    pub const ALL: [ImplausibleReason; 7] = [
        ImplausibleReason::SamplingRate,
        ImplausibleReason::NoPackets,
        ImplausibleReason::PacketSize,
        ImplausibleReason::Overflow,
        ImplausibleReason::UnspecifiedDestination,
        ImplausibleReason::RecordRate,
        ImplausibleReason::ExporterRate,
    ];

    /// Snake-case name, for metrics labels and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ImplausibleReason::SamplingRate => "sampling_rate",
            ImplausibleReason::NoPackets => "no_packets",
            ImplausibleReason::PacketSize => "packet_size",
            ImplausibleReason::Overflow => "overflow",
            ImplausibleReason::UnspecifiedDestination => "unspecified_destination",
            ImplausibleReason::RecordRate => "record_rate",
            ImplausibleReason::ExporterRate => "exporter_rate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Dropped records by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImplausibleCounts([u64; ImplausibleReason::ALL.len()]);

impl ImplausibleCounts {
    pub fn add(&mut self, reason: ImplausibleReason) {
        if let Some(count) = self.0.get_mut(reason.index()) {
            *count = count.saturating_add(1);
        }
    }

    /// Adds `n` drops for `reason`.
    pub fn add_n(&mut self, reason: ImplausibleReason, n: u64) {
        if let Some(count) = self.0.get_mut(reason.index()) {
            *count = count.saturating_add(n);
        }
    }

    pub fn get(&self, reason: ImplausibleReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |sum, &n| sum.saturating_add(n))
    }

    /// Adds every count of `other`.
    pub fn absorb(&mut self, other: &ImplausibleCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// (reason, count) for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (ImplausibleReason, u64)> + '_ {
        ImplausibleReason::ALL.into_iter().map(|reason| (reason, self.get(reason)))
    }
}

impl Serialize for ImplausibleCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(ImplausibleReason::ALL.len()))?;
        for (reason, count) in self.iter() {
            map.serialize_entry(reason.name(), &count)?;
        }
        map.end()
    }
}

/// The most one record claims in any second of its active period (sampling-scaled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordLoad {
    pub pps: u64,
    pub bps: u64,
}

/// Checks one record against `limits`; on success returns its per-second load, for
/// [`ExporterBudget::admit`].
pub fn check_record(
    record: &TrafficRecord,
    limits: &PlausibilityLimits,
) -> Result<RecordLoad, ImplausibleReason> {
    let rate = u64::from(record.sampling_rate.max(1));
    if record.sampling_rate > limits.max_sampling_rate {
        return Err(ImplausibleReason::SamplingRate);
    }
    if record.dst.is_unspecified() {
        return Err(ImplausibleReason::UnspecifiedDestination);
    }
    if record.packets == 0 {
        return Err(ImplausibleReason::NoPackets);
    }
    let min_bytes = record.packets.checked_mul(MIN_PACKET_BYTES).ok_or(ImplausibleReason::Overflow)?;
    // Saturating: when packets × 65,535 overflows, every 64-bit byte count is within it.
    let max_bytes = record.packets.saturating_mul(MAX_PACKET_BYTES);
    if record.bytes < min_bytes || record.bytes > max_bytes {
        return Err(ImplausibleReason::PacketSize);
    }
    let packets = record.packets.checked_mul(rate).ok_or(ImplausibleReason::Overflow)?;
    let bits =
        record.bytes.checked_mul(rate).and_then(|b| b.checked_mul(8)).ok_or(ImplausibleReason::Overflow)?;
    let load = RecordLoad { pps: per_second(packets, record), bps: per_second(bits, record) };
    if load.pps > limits.max_pps || load.bps > limits.max_bps {
        return Err(ImplausibleReason::RecordRate);
    }
    Ok(load)
}

/// `total` over the record's active period as [`crate::spread`] sees it (at most
/// [`MAX_SPREAD_SECS`]; at least one second), rounded up: the most any second can hold.
fn per_second(total: u64, record: &TrafficRecord) -> u64 {
    let nanos = record.end.0.saturating_sub(record.start.0).min(MAX_SPREAD_SECS * UnixNanos::NANOS_PER_SEC);
    let nanos = u128::from(nanos.max(UnixNanos::NANOS_PER_SEC));
    let scaled = (u128::from(total) * u128::from(UnixNanos::NANOS_PER_SEC)).div_ceil(nanos);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// One exporter's load in its current arrival second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterBudget {
    second: u64,
    pps: u64,
    bps: u64,
    /// The second went over: everything else in it is dropped.
    exceeded: bool,
}

impl ExporterBudget {
    /// Adds a record's `load`, arrived at `received`, to the exporter's second; refuses it (and
    /// the rest of that second) when the second would claim more than `limits`. Arrivals from
    /// before the current second count in the current one.
    pub fn admit(
        &mut self,
        received: UnixNanos,
        load: RecordLoad,
        limits: &PlausibilityLimits,
    ) -> Result<(), ImplausibleReason> {
        // A clock stepping back keeps the current second: going back must not reset the budget.
        let second = received.secs();
        if second > self.second {
            *self = ExporterBudget { second, ..ExporterBudget::default() };
        }
        let pps = self.pps.saturating_add(load.pps);
        let bps = self.bps.saturating_add(load.bps);
        if self.exceeded || pps > limits.max_pps || bps > limits.max_bps {
            self.exceeded = true;
            return Err(ImplausibleReason::ExporterRate);
        }
        self.pps = pps;
        self.bps = bps;
        Ok(())
    }

    /// Load admitted so far in the current second (pps, bps).
    pub fn load(&self) -> RecordLoad {
        RecordLoad { pps: self.pps, bps: self.bps }
    }
}

/// Seconds before its arrival from which a record's traffic is "late": detection has judged
/// those seconds already and counts it in the oldest second still open, all at once.
pub const LATE_AFTER_SECS: u64 = 2;

/// The whole verdict on one record of `exporter`'s: [`check_record`], then the budget. What
/// the record claims for seconds more than [`LATE_AFTER_SECS`] before it arrived counts in
/// full in the arrival second, where detection will count it: a record claiming a long flow
/// in the past (60 s of an active timeout, or a forged month) must fit the exporter's
/// capacity for one second. Staggered exports of steady traffic do (each arrival second
/// carries about one second's worth of it).
pub fn admit(
    record: &TrafficRecord,
    received: UnixNanos,
    limits: &PlausibilityLimits,
    budget: &mut ExporterBudget,
) -> Result<(), ImplausibleReason> {
    let mut load = check_record(record, limits)?;
    let late = late_load(record, received);
    load.pps = load.pps.saturating_add(late.pps);
    load.bps = load.bps.saturating_add(late.bps);
    budget.admit(received, load, limits)
}

/// The sampling-scaled packets and bits `record` claims before `received - LATE_AFTER_SECS`.
fn late_load(record: &TrafficRecord, received: UnixNanos) -> RecordLoad {
    let cutoff = received.0.saturating_sub(LATE_AFTER_SECS * UnixNanos::NANOS_PER_SEC);
    if record.start.0 >= cutoff {
        return RecordLoad::default();
    }
    let rate = u128::from(record.sampling_rate.max(1));
    let span = u128::from(record.end.0.saturating_sub(record.start.0));
    let before = u128::from(record.end.0.min(cutoff).saturating_sub(record.start.0));
    // A record with no duration before the cutoff is late in full.
    // Saturating: only a forged record comes near, and it is refused either way.
    let share = |total: u128| total.saturating_mul(before).checked_div(span).unwrap_or(total);
    let packets = share(u128::from(record.packets) * rate);
    let bits = share(u128::from(record.bytes) * rate * 8);
    RecordLoad {
        pps: u64::try_from(packets).unwrap_or(u64::MAX),
        bps: u64::try_from(bits).unwrap_or(u64::MAX),
    }
}

/// Whether `addr` is a loopback address (IPv4-mapped loopback included).
pub fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordSource;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn flow(packets: u64, bytes: u64, secs: u64, rate: u32) -> TrafficRecord {
        TrafficRecord {
            start: UnixNanos::from_secs(1000),
            end: UnixNanos::from_secs(1000 + secs),
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
            packets,
            bytes,
            sampling_rate: rate,
            source: RecordSource::NetflowV5,
            ..TrafficRecord::EMPTY
        }
    }

    #[test]
    fn the_forged_four_billion_pps_record_is_refused() {
        // The datagram: 4e9 packets of 40 bytes within one second.
        let record = flow(4_000_000_000, 160_000_000_000, 0, 1);
        assert_eq!(check_record(&record, &PlausibilityLimits::default()), Err(ImplausibleReason::RecordRate));
    }

    #[test]
    fn reasons() {
        let limits = PlausibilityLimits::default();
        let ok = flow(1000, 1_000_000, 10, 100);
        assert_eq!(check_record(&ok, &limits), Ok(RecordLoad { pps: 10_000, bps: 80_000_000 }));
        assert_eq!(check_record(&flow(1, 100, 0, 2_000_000), &limits), Err(ImplausibleReason::SamplingRate));
        assert_eq!(check_record(&flow(0, 100, 0, 1), &limits), Err(ImplausibleReason::NoPackets));
        assert_eq!(check_record(&flow(10, 199, 0, 1), &limits), Err(ImplausibleReason::PacketSize));
        assert_eq!(check_record(&flow(1, 65_536, 0, 1), &limits), Err(ImplausibleReason::PacketSize));
        assert_eq!(
            check_record(&flow(u64::MAX / 2, u64::MAX, 0, 1), &limits),
            Err(ImplausibleReason::Overflow)
        );
        assert_eq!(
            check_record(&flow(1 << 40, 1 << 50, 0, 100_000), &limits),
            Err(ImplausibleReason::Overflow)
        );
        let nowhere = TrafficRecord { dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED), ..ok };
        assert_eq!(check_record(&nowhere, &limits), Err(ImplausibleReason::UnspecifiedDestination));
        // 10 Gbit/s link: 14.88 Mpps of minimum frames at most.
        let ten_g = limits.for_interface_speed(10_000_000_000);
        assert_eq!(ten_g.max_pps, 14_880_952);
        assert_eq!(
            check_record(&flow(20_000_000, 1_000_000_000, 0, 1), &ten_g),
            Err(ImplausibleReason::RecordRate)
        );
        // A long flow is judged by its rate, over at most the spread's hour.
        // 20 M packets and 1 GB over 10 s: 2 Mpps and 800 Mbit/s, under the 10G caps.
        assert_eq!(
            check_record(&flow(20_000_000, 1_000_000_000, 10, 1), &ten_g),
            Ok(RecordLoad { pps: 2_000_000, bps: 800_000_000 })
        );
        let day =
            TrafficRecord { start: UnixNanos(0), end: UnixNanos::from_secs(86_400), ..flow(1, 40, 0, 1) };
        let load =
            check_record(&TrafficRecord { packets: 3600 * 1000, bytes: 3600 * 40_000, ..day }, &limits);
        assert_eq!(load.map(|l| l.pps), Ok(1000));
    }

    #[test]
    fn an_exporter_second_over_the_cap_drops_the_rest_of_it() {
        let limits = PlausibilityLimits { max_pps: 1000, ..PlausibilityLimits::default() };
        let mut budget = ExporterBudget::default();
        let at = |s| UnixNanos::from_secs(s);
        let load = RecordLoad { pps: 400, bps: 1 };
        assert_eq!(budget.admit(at(5), load, &limits), Ok(()));
        assert_eq!(budget.admit(at(5), load, &limits), Ok(()));
        assert_eq!(budget.admit(at(5), load, &limits), Err(ImplausibleReason::ExporterRate));
        assert_eq!(
            budget.admit(at(5), RecordLoad { pps: 1, bps: 1 }, &limits),
            Err(ImplausibleReason::ExporterRate)
        );
        assert_eq!(budget.admit(at(6), load, &limits), Ok(()));
        assert_eq!(budget.load().pps, 400);
    }

    #[test]
    fn a_long_flow_in_the_past_counts_in_full_in_its_arrival_second() {
        // 600 pps for 60 s (36,000 packets) passes as a rate; arriving long after, detection
        // counts it at once, so a 1,488 pps exporter cannot carry it in one second.
        let limits = PlausibilityLimits { max_pps: 1488, ..PlausibilityLimits::default() };
        let old = flow(36_000, 36_000 * 100, 60, 1);
        assert!(check_record(&old, &limits).is_ok());
        let mut budget = ExporterBudget::default();
        let long_after = UnixNanos::from_secs(1000 + 600);
        assert_eq!(admit(&old, long_after, &limits, &mut budget), Err(ImplausibleReason::ExporterRate));
        // Arriving as it ends, only its last seconds are on time: the late part still counts.
        let mut budget = ExporterBudget::default();
        let at_end = UnixNanos::from_secs(1060);
        assert_eq!(late_load(&old, at_end).pps, 34_800);
        assert_eq!(admit(&old, at_end, &limits, &mut budget), Err(ImplausibleReason::ExporterRate));
        // Staggered exports of steady traffic: one second's worth a second passes.
        let mut budget = ExporterBudget::default();
        let small = flow(1_200, 1_200 * 100, 60, 1);
        assert_eq!(admit(&small, at_end, &limits, &mut budget), Ok(()));
        // A record of the current seconds is not late at all.
        let now = flow(1_000, 100_000, 1, 1);
        assert_eq!(late_load(&now, UnixNanos::from_secs(1001)), RecordLoad::default());
    }

    #[test]
    fn counts_serialize_by_name() {
        let mut counts = ImplausibleCounts::default();
        counts.add(ImplausibleReason::RecordRate);
        counts.add(ImplausibleReason::RecordRate);
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["record_rate"], 2);
        assert_eq!(json["exporter_rate"], 0);
        assert_eq!(counts.total(), 2);
    }

    fn arb_record() -> impl Strategy<Value = (TrafficRecord, u64)> {
        (
            prop_oneof![Just(0u64), 1u64..100, any::<u64>(), 1u64..10_000_000_000],
            prop_oneof![Just(0u64), 1u64..100_000, any::<u64>(), 1u64..1_000_000_000_000],
            prop_oneof![Just(0u32), Just(1u32), 1u32..10_000, any::<u32>()],
            any::<u64>(),
            prop_oneof![Just(0u64), 0u64..5_000_000_000, any::<u64>()],
            0u64..4,
            any::<u32>(),
        )
            .prop_map(|(packets, bytes, sampling_rate, start, duration, second, dst)| {
                let record = TrafficRecord {
                    start: UnixNanos(start),
                    end: UnixNanos(start.saturating_add(duration)),
                    dst: IpAddr::V4(Ipv4Addr::from(dst)),
                    packets,
                    bytes,
                    sampling_rate,
                    ..TrafficRecord::EMPTY
                };
                (record, second)
            })
    }

    proptest! {
        /// Random records never panic, and what is admitted never claims more than the caps:
        /// not per record, not summed over an arrival second, not per second of any spread.
        #[test]
        fn the_admitted_stream_stays_under_the_caps(
            records in proptest::collection::vec(arb_record(), 1..200),
            max_bps in 1u64..DEFAULT_MAX_BPS,
            max_pps in 1u64..DEFAULT_MAX_PPS,
        ) {
            let limits = PlausibilityLimits { max_bps, max_pps, ..PlausibilityLimits::default() };
            let mut budget = ExporterBudget::default();
            let mut per_second: std::collections::HashMap<u64, (u128, u128)> = Default::default();
            let mut latest = 0;
            for (record, second) in records {
                // The budget sees only records that pass `check_record`: only they move its second.
                if check_record(&record, &limits).is_ok() {
                    latest = second.max(latest);
                }
                let received = UnixNanos::from_secs(second);
                if admit(&record, received, &limits, &mut budget).is_ok() {
                    let rate = u128::from(record.sampling_rate.max(1));
                    prop_assert!(record.sampling_rate <= limits.max_sampling_rate);
                    prop_assert!(record.bytes >= record.packets * 20);
                    prop_assert!(u128::from(record.bytes) <= u128::from(record.packets) * 65_535);
                    let packets = u128::from(record.packets) * rate;
                    let bits = u128::from(record.bytes) * rate * 8;
                    prop_assert!(packets <= u128::from(u64::MAX) && bits <= u128::from(u64::MAX));
                    // Every spread second of the record is within the caps (checked for short
                    // flows; long ones cost up to an hour of shares each).
                    let short = record.end.0 - record.start.0 <= 10 * UnixNanos::NANOS_PER_SEC;
                    for share in crate::spread::spread_per_second(&record).filter(|_| short) {
                        prop_assert!(u128::from(share.packets) * rate <= u128::from(limits.max_pps) + rate);
                        prop_assert!(u128::from(share.bytes) * rate * 8 <= u128::from(limits.max_bps) + 8 * rate * 65_535);
                    }
                    let load = check_record(&record, &limits).unwrap();
                    let entry = per_second.entry(latest).or_default();
                    entry.0 += u128::from(load.pps);
                    entry.1 += u128::from(load.bps);
                    prop_assert!(entry.0 <= u128::from(limits.max_pps));
                    prop_assert!(entry.1 <= u128::from(limits.max_bps));
                }
            }
        }
    }
}
