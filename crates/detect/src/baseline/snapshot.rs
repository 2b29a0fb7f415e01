//! Versioned, checksummed persistence of a [`BaselineTable`].
//!
//! Layout (little endian): magic `RBSL`, version u16, slot_secs u32, latest second u64, key
//! count u32; per key, in ascending key order: the key, first_seen u64, last u64, active
//! seconds u32, recent levels 12 x f32, seasonal codes slots x 3 x u16; then an FNV-1a 64
//! checksum of everything before.
//!
//! - Version 2 (written): the key is a u128, 16 bytes.
//! - Version 1 (read only, from builds with a key-generic table): the key is its JSON form
//!   behind a u16 length; the daemon's `u128` keys are plain decimal digits.

use super::seasonal::resample;
use super::table::{KeyState, NOT_OBSERVING};
use super::{BaselineConfig, BaselineError, BaselineTable, DAY_SECS, METRICS};

const SNAPSHOT_MAGIC: [u8; 4] = *b"RBSL";
/// Snapshot format version written by this build.
pub const SNAPSHOT_VERSION: u16 = 2;
/// Oldest format version this build still reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;
const CHECKSUM_LEN: usize = 8;
/// Magic, version, slot_secs, latest second, key count.
const HEADER_LEN: usize = 4 + 2 + 4 + 8 + 4;
/// Per key without the seasonal codes: key, first_seen, last, active seconds, levels.
const ROW_FIXED_LEN: usize = 16 + 8 + 8 + 4 + 4 * super::RECENT_LEN;
/// Longest key accepted in a version 1 snapshot: u128::MAX has 39 decimal digits.
const V1_MAX_KEY_DIGITS: usize = 39;

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

impl BaselineTable {
    /// Versioned binary snapshot (see the [module](self) for the layout), keys in ascending
    /// order, slots closed as of the latest second seen (the running slot is partial and left
    /// out).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by_key(|&entry| self.keys[entry]);
        let row_len = ROW_FIXED_LEN + self.stride * 2;
        let mut out = Vec::with_capacity(HEADER_LEN + self.len() * row_len + CHECKSUM_LEN);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        // A validated slot_secs divides a day, so it fits.
        out.extend_from_slice(&(self.config.slot_secs as u32).to_le_bytes());
        out.extend_from_slice(&self.now.to_le_bytes());
        // max_keys is validated to at most u32::MAX.
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        let target = self.now / self.config.slot_secs;
        for entry in order {
            let state = &self.states[entry];
            out.extend_from_slice(&self.keys[entry].to_le_bytes());
            out.extend_from_slice(&state.first_seen.to_le_bytes());
            out.extend_from_slice(&state.last.to_le_bytes());
            out.extend_from_slice(&state.active_secs.to_le_bytes());
            for level in state.recent {
                out.extend_from_slice(&level.to_le_bytes());
            }
            for index in 0..self.slots {
                for metric in 0..METRICS {
                    out.extend_from_slice(&self.settled_code(entry, metric, index, target).to_le_bytes());
                }
            }
        }
        let checksum = fnv1a(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Rebuilds a table from [`snapshot`](Self::snapshot) bytes, of this version or an older
    /// one. A different `slot_secs` is resampled (each new slot takes the highest overlapping
    /// old one); beyond `max_keys` the most recently learned keys are kept. The time between the
    /// snapshot and a key's next `learn` is treated as unknown for the seasonal levels (not as
    /// silence); the recent levels decay over it as over any gap.
    pub fn restore(config: BaselineConfig, bytes: &[u8]) -> Result<Self, BaselineError> {
        config.validate().map_err(BaselineError::Config)?;
        if bytes.len() < SNAPSHOT_MAGIC.len() || bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err(BaselineError::NotSnapshot);
        }
        let mut reader = Reader { bytes, at: SNAPSHOT_MAGIC.len() };
        let version = reader.u16().map_err(|_| BaselineError::Checksum)?;
        if !(OLDEST_READABLE_VERSION..=SNAPSHOT_VERSION).contains(&version) {
            return Err(BaselineError::Version(version));
        }
        let body_len = bytes.len().checked_sub(CHECKSUM_LEN).ok_or(BaselineError::Checksum)?;
        let (body, checksum) = bytes.split_at(body_len);
        if body_len < reader.at || fnv1a(body).to_le_bytes() != checksum {
            return Err(BaselineError::Checksum);
        }
        let mut reader = Reader { bytes: body, at: reader.at };
        let old_slot_secs = u64::from(reader.u32()?);
        if old_slot_secs == 0 || old_slot_secs > DAY_SECS || !DAY_SECS.is_multiple_of(old_slot_secs) {
            return Err(BaselineError::Corrupt(format!("slot_secs {old_slot_secs} does not divide a day")));
        }
        let old_slots = (DAY_SECS / old_slot_secs) as usize;
        let now = reader.u64()?;
        let count = reader.u32()? as usize;
        let mut table = Self::try_new(config)?;
        table.now = now;
        let new_slots = table.slots;
        // The count is not trusted for the allocation: at most what the body can hold.
        let mut rows: Vec<(u128, KeyState, Vec<u16>)> = Vec::with_capacity(count.min(body.len() / 64));
        let mut old_codes = vec![0u16; old_slots * METRICS];
        let mut previous: Option<u128> = None;
        for row in 0..count {
            let key = match version {
                OLDEST_READABLE_VERSION => v1_key(&mut reader, row)?,
                _ => u128::from_le_bytes(reader.array()?),
            };
            // Written in ascending order: anything else is damage, and a repeated key would
            // leave a dangling row behind the index.
            if previous.is_some_and(|previous| key <= previous) {
                return Err(BaselineError::Corrupt(format!("key {row} is out of order or appears twice")));
            }
            previous = Some(key);
            let mut state = KeyState::new(reader.u64()?);
            state.last = reader.u64()?;
            state.slot_first = NOT_OBSERVING;
            state.active_secs = reader.u32()?;
            if state.first_seen > state.last || state.last > now {
                return Err(BaselineError::Corrupt(format!("key {row}: times out of order")));
            }
            for level in &mut state.recent {
                *level = f32::from_bits(reader.u32()?);
                if !(level.is_finite() && *level >= 0.0) {
                    return Err(BaselineError::Corrupt(format!("key {row}: bad level {level}")));
                }
            }
            for code in &mut old_codes {
                *code = reader.u16()?;
            }
            rows.push((key, state, resample(&old_codes, old_slots, new_slots)));
        }
        if reader.at != body.len() {
            return Err(BaselineError::Corrupt("bytes after the last key".to_string()));
        }
        if rows.len() > table.config.max_keys {
            rows.sort_unstable_by(|a, b| b.1.last.cmp(&a.1.last).then(a.0.cmp(&b.0)));
            table.evicted += (rows.len() - table.config.max_keys) as u64;
            rows.truncate(table.config.max_keys);
        }
        for (key, state, codes) in rows {
            // At most max_keys <= u32::MAX rows.
            table.index.insert(key, table.states.len() as u32);
            table.keys.push(key);
            table.states.push(state);
            table.seasonal.extend_from_slice(&codes);
        }
        Ok(table)
    }
}

/// A version 1 key: JSON behind a u16 length, for the daemon's u128 keys a decimal number.
fn v1_key(reader: &mut Reader<'_>, row: usize) -> Result<u128, BaselineError> {
    let len = usize::from(reader.u16()?);
    let json = reader.take(len)?;
    let corrupt = || BaselineError::Corrupt(format!("key {row}: not an integer key"));
    // Digits only: `str::parse` alone would also take a leading `+`, which JSON never writes.
    if json.is_empty() || json.len() > V1_MAX_KEY_DIGITS || !json.iter().all(u8::is_ascii_digit) {
        return Err(corrupt());
    }
    std::str::from_utf8(json).ok().and_then(|digits| digits.parse().ok()).ok_or_else(corrupt)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], BaselineError> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| BaselineError::Corrupt("ends inside a key".to_string()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BaselineError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u16(&mut self) -> Result<u16, BaselineError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, BaselineError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, BaselineError> {
        self.array().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::baseline::testing::*;

    #[test]
    fn a_restored_table_answers_like_the_original() {
        let original = varied_table();
        let bytes = original.snapshot();
        let restored = BaselineTable::restore(BaselineConfig::default(), &bytes).unwrap();
        assert_eq!(restored.len(), 4);
        assert_eq!(restored.snapshot(), bytes);
        let now = original.now;
        let mut answered = 0;
        for second in (now..now + 22 * HOUR).step_by(997) {
            for key in [10, 11, 12, 13, 14] {
                let answer = original.baseline(host(key), second);
                assert_eq!(answer, restored.baseline(host(key), second), "host {key} at {second}");
                answered += usize::from(answer.is_some());
            }
        }
        assert!(answered > 200, "{answered}");
    }

    #[test]
    fn wide_integer_keys_round_trip() {
        // The engine keys hosts by u128 (IPv4 mapped into IPv6): the whole range round-trips.
        let mut baselines = BaselineTable::new(BaselineConfig::default());
        let keys = [0u128, 0xffff_c000_0201, 0x2001_0db8_0000_0000_0000_0000_0000_0001, u128::MAX];
        for second in DAY0..DAY0 + 2 * HOUR {
            for key in keys {
                baselines.learn(key, second, &sample(100));
            }
        }
        let restored = BaselineTable::restore(BaselineConfig::default(), &baselines.snapshot()).unwrap();
        for key in keys {
            let expected = baselines.baseline(key, DAY0 + 2 * HOUR);
            assert!(expected.is_some());
            assert_eq!(restored.baseline(key, DAY0 + 2 * HOUR), expected);
        }
    }

    #[test]
    fn a_restored_key_with_a_seasonal_level_is_available_at_once() {
        let config = BaselineConfig { warmup_secs: 3 * DAY_SECS, ..Default::default() };
        let mut baselines = table(config.clone());
        for second in DAY0..=DAY0 + 6 * HOUR {
            baselines.learn(host(15), second, &sample(100));
        }
        let restored = BaselineTable::restore(config, &baselines.snapshot()).unwrap();
        let next_day = DAY0 + DAY_SECS;
        let early =
            restored.baseline(host(15), next_day + 3 * HOUR + 1800).expect("seasonal level for 03:00");
        assert!(within(early.seasonal_pps, 100.0, 0.1));
        assert!(early.learned_secs < 3 * DAY_SECS);
        assert_eq!(restored.baseline(host(15), next_day + 12 * HOUR), None);
    }

    #[test]
    fn restore_resamples_slots_and_keeps_the_latest_keys() {
        let bytes = four_days_of_surges().snapshot();
        let day5 = DAY0 + 4 * DAY_SECS;
        let halves = BaselineConfig { slot_secs: 1800, min_slot_secs: 600, ..Default::default() };
        let restored = BaselineTable::restore(halves, &bytes).unwrap();
        assert!(within(restored.baseline(host(1), day5 + 9 * HOUR + 900).unwrap().seasonal_pps, 400.0, 0.1));
        assert!(within(restored.baseline(host(1), day5 + 8 * HOUR + 2700).unwrap().seasonal_pps, 100.0, 0.1));
        let doubles = BaselineConfig { slot_secs: 7200, ..Default::default() };
        let restored = BaselineTable::restore(doubles, &bytes).unwrap();
        assert!(within(restored.baseline(host(1), day5 + 8 * HOUR).unwrap().seasonal_pps, 400.0, 0.1));

        let mut baselines = table(BaselineConfig::default());
        for key in 0..5u8 {
            baselines.learn(host(key), DAY0 + u64::from(key), &sample(100));
        }
        let two = BaselineConfig { max_keys: 2, ..Default::default() };
        let restored = BaselineTable::restore(two, &baselines.snapshot()).unwrap();
        assert_eq!(restored.len(), 2);
        assert_eq!(restored.stats().evicted, 3);
        assert!(restored.index.contains_key(&host(4)) && restored.index.contains_key(&host(3)));
    }

    #[test]
    fn restore_rejects_foreign_and_damaged_input() {
        let bytes = snapshot_bytes();
        let config = BaselineConfig::default;
        assert_eq!(BaselineTable::restore(config(), b"").unwrap_err(), BaselineError::NotSnapshot);
        assert_eq!(BaselineTable::restore(config(), b"{}").unwrap_err(), BaselineError::NotSnapshot);
        let mut future = bytes.to_vec();
        future[4] = 3;
        assert_eq!(BaselineTable::restore(config(), &future).unwrap_err(), BaselineError::Version(3));
        future[4] = 0;
        assert_eq!(BaselineTable::restore(config(), &future).unwrap_err(), BaselineError::Version(0));
        let truncated = &bytes[..bytes.len() - 1];
        assert_eq!(BaselineTable::restore(config(), truncated).unwrap_err(), BaselineError::Checksum);
        // Version 1 keys of another type (an address as a JSON string) do not parse.
        for key in [&b"\"192.0.2.1\""[..], b"+5", b"", b"1.5", b"1000000000000000000000000000000000000000"] {
            let one = v1_snapshot(&[(key, 0)]);
            assert!(
                matches!(BaselineTable::restore(config(), &one), Err(BaselineError::Corrupt(_))),
                "{key:?}"
            );
        }
        // Keys out of order, or twice, are damage.
        let twice = v1_snapshot(&[(b"7", 0), (b"7", 0)]);
        assert!(matches!(BaselineTable::restore(config(), &twice), Err(BaselineError::Corrupt(_))));
        let unordered = v1_snapshot(&[(b"9", 0), (b"8", 0)]);
        assert!(matches!(BaselineTable::restore(config(), &unordered), Err(BaselineError::Corrupt(_))));
        let ordered = v1_snapshot(&[(b"8", 5), (b"340282366920938463463374607431768211455", 9)]);
        let restored = BaselineTable::restore(config(), &ordered).unwrap();
        assert_eq!(restored.len(), 2);
        assert!(restored.index.contains_key(&u128::MAX) && restored.index.contains_key(&8));
    }

    /// A version 1 snapshot (24 slots, no seasonal levels) of keys given in their JSON form,
    /// each last learned at `last`.
    fn v1_snapshot(keys: &[(&[u8], u64)]) -> Vec<u8> {
        let mut out = SNAPSHOT_MAGIC.to_vec();
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&3600u32.to_le_bytes());
        out.extend_from_slice(&10u64.to_le_bytes());
        out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for (key, last) in keys {
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&0u64.to_le_bytes());
            out.extend_from_slice(&last.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&[0; 4 * crate::baseline::RECENT_LEN]);
            out.extend_from_slice(&[0; 24 * METRICS * 2]);
        }
        out.extend_from_slice(&fnv1a(&out).to_le_bytes());
        out
    }

    #[test]
    fn the_binary_format_is_smaller_than_the_json_keyed_one() {
        // Version 2 rows have a fixed size: 16 key bytes instead of up to 2 + 39.
        let table = varied_table();
        let bytes = table.snapshot();
        assert_eq!(bytes.len(), HEADER_LEN + table.len() * (ROW_FIXED_LEN + 24 * METRICS * 2) + CHECKSUM_LEN);
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), SNAPSHOT_VERSION);
    }

    /// Replaces the checksum so that damage reaches the parser.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.len() >= CHECKSUM_LEN {
            let body = bytes.len() - CHECKSUM_LEN;
            let checksum = fnv1a(&bytes[..body]);
            bytes[body..].copy_from_slice(&checksum.to_le_bytes());
        }
        bytes
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), prefixed: bool) {
            let mut input = if prefixed { snapshot_bytes()[..6].to_vec() } else { Vec::new() };
            input.extend_from_slice(&bytes);
            // Unsealed random bytes fail the checksum (a 2^-64 chance aside).
            prop_assert!(BaselineTable::restore(BaselineConfig::default(), &input).is_err());
            if let Ok(restored) = BaselineTable::restore(BaselineConfig::default(), &reseal(input)) {
                let again = BaselineTable::restore(BaselineConfig::default(), &restored.snapshot());
                prop_assert_eq!(again.map(|t| t.snapshot()).ok(), Some(restored.snapshot()));
            }
        }

        #[test]
        fn any_changed_byte_is_rejected(at in any::<prop::sample::Index>(), flip in 1..=255u8) {
            let mut bytes = snapshot_bytes().to_vec();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            prop_assert!(BaselineTable::restore(BaselineConfig::default(), &bytes).is_err());
        }

        #[test]
        fn truncated_or_extended_input_is_rejected(
            cut in any::<prop::sample::Index>(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let bytes = snapshot_bytes();
            let cut = cut.index(bytes.len());
            prop_assert!(BaselineTable::restore(BaselineConfig::default(), &bytes[..cut]).is_err());
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(&extra);
            prop_assert!(BaselineTable::restore(BaselineConfig::default(), &longer).is_err());
        }

        /// Damage behind a valid checksum (a bug, or a crafted file) reaches the parser: it
        /// must answer Err or a usable table, never panic.
        #[test]
        fn resealed_damage_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = snapshot_bytes().to_vec();
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let cut = CHECKSUM_LEN + cut.index(bytes.len() - CHECKSUM_LEN);
            for input in [reseal(bytes.clone()), reseal(bytes[..cut].to_vec())] {
                if let Ok(restored) = BaselineTable::restore(BaselineConfig::default(), &input) {
                    let _ = restored.baseline(host(10), restored.now.saturating_add(1));
                    // A usable table writes a snapshot that reads back as itself.
                    let again = BaselineTable::restore(BaselineConfig::default(), &restored.snapshot());
                    prop_assert_eq!(again.map(|t| t.snapshot()).ok(), Some(restored.snapshot()));
                }
            }
        }
    }
}
