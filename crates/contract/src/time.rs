//! Event time: when something happened in the traffic, not when it was processed.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A moment as Unix microseconds (UTC).
///
/// Microseconds, not nanoseconds: it is finer than any flow export, and every value survives
/// the JSON form (Unix seconds as a number) exactly, since an `f64` near today's epoch seconds
/// resolves 0.24 µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(u64);

impl EventTime {
    pub const ZERO: EventTime = EventTime(0);

    pub const fn from_unix_micros(micros: u64) -> Self {
        EventTime(micros)
    }

    /// Truncates to the microsecond.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        EventTime(nanos / 1_000)
    }

    pub const fn from_unix_secs(secs: u64) -> Self {
        EventTime(secs.saturating_mul(1_000_000))
    }

    pub const fn unix_micros(self) -> u64 {
        self.0
    }

    /// Whole seconds (truncated).
    pub const fn unix_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    pub fn as_unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Seconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn secs_since(self, earlier: EventTime) -> f64 {
        (self.0 as f64 - earlier.0 as f64) / 1e6
    }

    /// From Unix seconds as a JSON number; `None` for negative, non-finite or far-future values.
    pub fn from_unix_secs_f64(secs: f64) -> Option<Self> {
        let micros = (secs * 1e6).round();
        (micros.is_finite() && (0.0..=u64::MAX as f64 / 2.0).contains(&micros))
            .then_some(EventTime(micros as u64))
    }

    /// A UTC date or date and time as operators write it: `2026-12-01` (midnight),
    /// `2026-12-01T20:00`, `2026-12-01T20:00:30` or `2026-12-01 20:00:30`, each with an optional
    /// trailing `Z`. Only UTC, so a time means the same instant on every node.
    pub fn parse_utc(text: &str) -> Option<Self> {
        use ::time::{Date, Month, PrimitiveDateTime, Time};
        let text = text.trim();
        let text = text.strip_suffix('Z').unwrap_or(text);
        let (date, clock) = match text.split_once(['T', ' ']) {
            Some((date, clock)) => (date, Some(clock)),
            None => (text, None),
        };
        let mut parts = date.splitn(3, '-');
        let year: i32 = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        if !(1970..=9999).contains(&year) {
            return None;
        }
        let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
        let clock = match clock {
            None => Time::MIDNIGHT,
            Some(clock) => {
                let fields: Vec<&str> = clock.split(':').collect();
                let field = |i: usize| fields.get(i).map_or(Some(0), |f| f.parse::<u8>().ok());
                if !(2..=3).contains(&fields.len()) {
                    return None;
                }
                Time::from_hms(field(0)?, field(1)?, field(2)?).ok()?
            }
        };
        let secs = PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
        u64::try_from(secs).ok().map(EventTime::from_unix_secs)
    }

    /// ISO 8601 / RFC 3339 in UTC with the offset: `2026-01-01T00:00:01.250Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = i64::try_from(self.unix_secs()).unwrap_or(i64::MAX);
        let micros = (self.0 % 1_000_000) as u32;
        let Ok(at) = ::time::OffsetDateTime::from_unix_timestamp(secs) else {
            return format!("unix second {secs}");
        };
        let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
        let (h, mi, s) = (at.hour(), at.minute(), at.second());
        if micros == 0 {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else if micros.is_multiple_of(1_000) {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", micros / 1_000)
        } else {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
        }
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_unix_secs_f64())
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        EventTime::from_unix_secs_f64(secs)
            .ok_or_else(|| serde::de::Error::custom(format!("{secs} is not a Unix time in seconds")))
    }
}

impl JsonSchema for EventTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventTime".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Unix time in seconds (UTC), microsecond resolution",
            "type": "number",
            "minimum": 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_utc_dates() {
        assert_eq!(EventTime::from_unix_secs(1_767_225_601).to_string(), "2026-01-01T00:00:01Z");
        assert_eq!(
            EventTime::from_unix_micros(1_767_225_601_250_000).to_string(),
            "2026-01-01T00:00:01.250Z"
        );
        assert_eq!(EventTime::from_unix_micros(1_000_001).to_string(), "1970-01-01T00:00:01.000001Z");
    }

    #[test]
    fn parses_utc_dates_and_times() {
        let secs = |t: &str| EventTime::parse_utc(t).map(EventTime::unix_secs);
        assert_eq!(secs("1970-01-01"), Some(0));
        assert_eq!(secs("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(secs("2022-11-23T12:30Z"), Some(1_669_206_600));
        assert_eq!(secs("2022-11-23 12:30:05"), Some(1_669_206_605));
        assert_eq!(secs("2024-02-29"), Some(1_709_164_800));
        for bad in ["2023-02-29", "2026-13-01", "2026-01-01T24:00", "2026-01-01T10", "1969-12-31", "x", ""] {
            assert_eq!(EventTime::parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_bad_seconds() {
        assert_eq!(EventTime::from_unix_secs_f64(-1.0), None);
        assert_eq!(EventTime::from_unix_secs_f64(f64::NAN), None);
        assert_eq!(EventTime::from_unix_secs_f64(f64::INFINITY), None);
        assert!(serde_json::from_str::<EventTime>("-5").is_err());
    }

    proptest! {
        /// Every time up to the year 2106 survives its JSON form exactly.
        #[test]
        fn json_round_trip_is_exact(micros in 0u64..4_294_967_295_000_000) {
            let t = EventTime::from_unix_micros(micros);
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<EventTime>(&json).unwrap(), t);
        }
    }
}
