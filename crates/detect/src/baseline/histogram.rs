//! The per-slot log histogram: per-second values of one metric while a seasonal slot runs, in
//! quarter-octave buckets, so the slot's percentile (p95) costs 64 bytes per metric and key.

/// Histogram window: 32 quarter-octave buckets (factor 2^(1/4), ±9 % around the reported
/// midpoint) reaching 2^8 = 256x below the slot's highest value; lower values share the bottom
/// bucket, which only matters when the percentile itself is that far below the maximum.
const BUCKETS: usize = 32;
const BUCKETS_PER_OCTAVE: u32 = 4;
/// 2^31 * 2^(k/4) for k = 1, 2, 3, rounded up: the quarter-octave boundaries of a mantissa
/// normalised to [2^31, 2^32).
const QUARTER_BOUNDS: [u32; 3] = [2_553_802_834, 3_037_000_500, 3_611_622_603];

/// Per-second values of one metric in the running slot, in quarter-octave buckets.
#[derive(Debug, Clone, Default)]
pub(super) struct Histogram {
    /// Bucket of `counts[0]`; values below it are counted there too.
    base: u8,
    /// Saturating: with percentile >= 50 at most one bucket can pass 65 535 in a day-long slot,
    /// and the percentile rank is found before or within it, so saturation never moves it.
    counts: [u16; BUCKETS],
}

/// Quarter-octave bucket of `value` (>= 1): floor(4 * log2(value)), integer only.
fn bucket_of(value: u64) -> u8 {
    let zeros = value.leading_zeros();
    let octave = 63 - zeros;
    let mantissa = ((value << zeros) >> 32) as u32;
    let quarter = QUARTER_BOUNDS.iter().filter(|&&bound| mantissa >= bound).count() as u32;
    (octave * BUCKETS_PER_OCTAVE + quarter) as u8
}

/// Geometric midpoint of a bucket.
fn bucket_value(bucket: usize) -> f64 {
    ((bucket as f64 + 0.5) / f64::from(BUCKETS_PER_OCTAVE)).exp2()
}

impl Histogram {
    pub(super) fn record(&mut self, value: u64) {
        if value == 0 {
            return; // zeros are the seconds observed but not counted here
        }
        let bucket = bucket_of(value);
        let top = usize::from(self.base) + BUCKETS - 1;
        if usize::from(bucket) > top {
            self.shift_up(usize::from(bucket) - top);
        }
        let index = usize::from(bucket.saturating_sub(self.base));
        self.counts[index] = self.counts[index].saturating_add(1);
    }

    /// Moves the window up so a higher maximum fits; buckets falling off merge into the bottom.
    fn shift_up(&mut self, shift: usize) {
        let merged_len = (shift + 1).min(BUCKETS);
        let merged = self.counts[..merged_len].iter().fold(0u16, |sum, &count| sum.saturating_add(count));
        if merged_len < BUCKETS {
            self.counts.copy_within(merged_len.., 1);
        }
        self.counts[1 + BUCKETS - merged_len..].fill(0);
        self.counts[0] = merged;
        self.base += shift as u8;
    }

    /// The value with `rank` values at or above it (1 = maximum); 0 when the rank falls among
    /// the zero seconds.
    pub(super) fn value_at_rank_from_top(&self, rank: u64) -> f64 {
        let mut seen = 0u64;
        for index in (0..BUCKETS).rev() {
            seen += u64::from(self.counts[index]);
            if seen >= rank {
                return bucket_value(usize::from(self.base) + index);
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::testing::within;

    #[test]
    fn buckets_are_quarter_octaves() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 4);
        assert_eq!(bucket_of(3), 6); // 4 * log2(3) = 6.34
        assert_eq!(bucket_of(u64::MAX), 255);
        let mut value = 1u64;
        while value < u64::MAX / 3 {
            let exact = 4.0 * (value as f64).log2();
            if (exact - exact.round()).abs() > 1e-6 {
                assert_eq!(u32::from(bucket_of(value)), exact.floor() as u32, "value {value}");
            }
            value = value * 3 / 2 + 1;
        }
        assert!(within(bucket_value(usize::from(bucket_of(400))), 400.0, 0.09));
    }

    #[test]
    fn histogram_percentile_counts_zeros_and_follows_a_rising_maximum() {
        let mut histogram = Histogram::default();
        for value in 1..=100 {
            histogram.record(value);
        }
        // 100 seconds observed: p95 has 6 values at or above it (95..=100).
        assert!(within(histogram.value_at_rank_from_top(6), 95.0, 0.1));
        // In 1000 observed seconds (900 zeros) p95 has 51 values above it: 50. In 2000 seconds
        // it has 101, more than the 100 non-zero ones: it falls among the zeros.
        assert!(within(histogram.value_at_rank_from_top(51), 50.0, 0.1));
        assert_eq!(histogram.value_at_rank_from_top(101), 0.0);
        // A maximum 2^20 x higher moves the window; the top stays exact, the rest merges low.
        histogram.record(100 << 20);
        assert!(within(histogram.value_at_rank_from_top(1), (100 << 20) as f64, 0.1));
        assert_eq!(histogram.counts.iter().map(|&c| u32::from(c)).sum::<u32>(), 101);
    }
}
