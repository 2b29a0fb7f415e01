//! Seasonal levels: one u16 code per slot of the day and metric, folded day over day.
//!
//! Codes are 0 = none yet, 1 = zero, else 2^((code - 2) / 256 - 32), i.e. 256 steps per
//! doubling (±0.14 %) from 2^-32 to 2^224. Codes order like the values, so "the highest of
//! several slots" is a plain `max`.

use super::{DAY_SECS, METRICS};

pub(super) const CODE_NONE: u16 = 0;
pub(super) const CODE_ZERO: u16 = 1;
const CODE_STEPS_PER_OCTAVE: f64 = 256.0;
const CODE_MIN_LOG2: f64 = -32.0;

pub(super) fn encode(value: f64) -> u16 {
    if value.is_nan() || value < CODE_MIN_LOG2.exp2() {
        return CODE_ZERO;
    }
    let steps = ((value.log2() - CODE_MIN_LOG2) * CODE_STEPS_PER_OCTAVE).round();
    (steps + 2.0).min(f64::from(u16::MAX)) as u16
}

pub(super) fn decode(code: u16) -> Option<f64> {
    match code {
        CODE_NONE => None,
        CODE_ZERO => Some(0.0),
        _ => Some((f64::from(code - 2) / CODE_STEPS_PER_OCTAVE + CODE_MIN_LOG2).exp2()),
    }
}

/// Folds one day's slot value into a seasonal code; the first value is taken as is.
pub(super) fn fold(code: u16, value: f64, weight: f64) -> u16 {
    match decode(code) {
        None => encode(value),
        Some(old) => encode(old * (1.0 - weight) + value * weight),
    }
}

/// Folds `days` silent (zero) days into a seasonal code.
pub(super) fn fold_zeros(code: u16, days: u64, weight: f64) -> u16 {
    if days == 0 {
        return code;
    }
    match decode(code) {
        None => CODE_ZERO,
        Some(old) => encode(old * (1.0 - weight).powf(days as f64)),
    }
}

/// How many slots `m` in `from..to` have `m % slots == index`.
pub(super) fn count_congruent(from: u64, to: u64, index: u64, slots: u64) -> u64 {
    if from >= to {
        return 0;
    }
    let first = from + (index + slots - from % slots) % slots;
    if first >= to { 0 } else { (to - 1 - first) / slots + 1 }
}

/// Seasonal codes from `old_slots` to `new_slots` per day: each new slot takes the highest
/// code of the old slots it overlaps (codes order like the values, "none" lowest).
pub(super) fn resample(old: &[u16], old_slots: usize, new_slots: usize) -> Vec<u16> {
    if old_slots == new_slots {
        return old.to_vec();
    }
    let old_secs = DAY_SECS as usize / old_slots;
    let new_secs = DAY_SECS as usize / new_slots;
    let mut new = vec![CODE_NONE; new_slots * METRICS];
    for slot in 0..new_slots {
        let first = slot * new_secs / old_secs;
        let last = ((slot + 1) * new_secs - 1) / old_secs;
        for metric in 0..METRICS {
            new[slot * METRICS + metric] =
                (first..=last).map(|old_slot| old[old_slot * METRICS + metric]).max().unwrap_or(CODE_NONE);
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::testing::within;

    #[test]
    fn codes_keep_values_within_a_quarter_percent_and_order() {
        assert_eq!(decode(CODE_NONE), None);
        assert_eq!(decode(encode(0.0)), Some(0.0));
        let mut previous = CODE_ZERO;
        for value in [1e-6, 0.5, 1.0, 99.0, 100.0, 12_345.0, 1e9, 4e12] {
            let code = encode(value);
            assert!(within(decode(code).unwrap(), value, 0.0025), "{value}");
            assert!(code > previous);
            previous = code;
        }
        assert_eq!(fold(CODE_NONE, 80.0, 0.25), encode(80.0));
        assert!(within(decode(fold(encode(100.0), 200.0, 0.25)).unwrap(), 125.0, 0.003));
        assert_eq!(fold_zeros(CODE_NONE, 3, 0.25), CODE_ZERO);
        assert!(within(decode(fold_zeros(encode(64.0), 2, 0.5)).unwrap(), 16.0, 0.003));
    }

    #[test]
    fn congruent_slots_are_counted_exactly() {
        // Slots 0..10 of a 4-slot day: index 1 occurs at 1, 5, 9.
        assert_eq!(count_congruent(0, 10, 1, 4), 3);
        assert_eq!(count_congruent(2, 9, 1, 4), 1);
        assert_eq!(count_congruent(5, 5, 1, 4), 0);
        let brute = |from: u64, to: u64, index: u64, slots: u64| {
            (from..to).filter(|m| m % slots == index).count() as u64
        };
        for (from, to) in [(0, 0), (3, 50), (17, 18), (96, 1000)] {
            for index in 0..24 {
                assert_eq!(count_congruent(from, to, index, 24), brute(from, to, index, 24));
            }
        }
    }
}
