//! Threat level: attacks follow events (a vote, a verdict, an election), so an operator raises
//! sensitivity ahead of them. The level scales every threshold down; it is set by hand or by
//! scheduled windows (an event's date range).

use serde::Serialize;

use crate::config::Thresholds;

pub use rampart_contract::ThreatLevel;

/// A scheduled period of raised threat, in Unix seconds (`from` inclusive, `until` exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreatWindow {
    pub level: ThreatLevel,
    pub from: u64,
    pub until: u64,
    /// Why (shown in attack explanations): "vote on sanctions", "election night".
    pub reason: String,
}

/// Threat level settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreatConfig {
    /// The level outside every window (set by hand).
    pub level: ThreatLevel,
    /// Thresholds at `elevated` are this percentage of their configured value (default 70).
    pub elevated_percent: u8,
    /// Thresholds at `high` are this percentage of their configured value (default 50).
    pub high_percent: u8,
    pub windows: Vec<ThreatWindow>,
}

impl Default for ThreatConfig {
    fn default() -> Self {
        Self { level: ThreatLevel::Normal, elevated_percent: 70, high_percent: 50, windows: Vec::new() }
    }
}

impl ThreatConfig {
    /// The level in force during Unix second `second`: the highest of the manual level and every
    /// window covering it, with the window that raised it (if any).
    pub fn level_at(&self, second: u64) -> (ThreatLevel, Option<&ThreatWindow>) {
        let mut level = self.level;
        let mut cause = None;
        for window in &self.windows {
            if (window.from..window.until).contains(&second) && window.level > level {
                level = window.level;
                cause = Some(window);
            }
        }
        (level, cause)
    }

    /// Percentage of the configured thresholds in force at `level`.
    pub fn percent(&self, level: ThreatLevel) -> u8 {
        match level {
            ThreatLevel::Normal => 100,
            ThreatLevel::Elevated => self.elevated_percent,
            ThreatLevel::High => self.high_percent,
        }
    }
}

impl Thresholds {
    /// Every threshold at `percent` % of its value, never below 1.
    pub fn scaled(&self, percent: u8) -> Thresholds {
        let scale = |v: u64| (u128::from(v) * u128::from(percent) / 100).max(1) as u64;
        Thresholds {
            pps: scale(self.pps),
            bps: scale(self.bps),
            tcp_pps: scale(self.tcp_pps),
            tcp_syn_pps: scale(self.tcp_syn_pps),
            tcp_ack_pps: scale(self.tcp_ack_pps),
            tcp_rst_pps: scale(self.tcp_rst_pps),
            udp_pps: scale(self.udp_pps),
            icmp_pps: scale(self.icmp_pps),
            fragment_pps: scale(self.fragment_pps),
            amplification_pps: scale(self.amplification_pps),
            new_flows: scale(self.new_flows),
        }
    }
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS]Z` (UTC) to Unix seconds. Only UTC is
/// accepted, so a window means the same instant on every node whatever its time zone.
pub fn parse_utc(text: &str) -> Option<u64> {
    // A time of day must say it is UTC (`Z`): a configuration read on another node must not
    // be taken as local time.
    if text.contains('T') && !text.ends_with('Z') || text.contains(' ') {
        return None;
    }
    rampart_contract::EventTime::parse_utc(text).map(rampart_contract::EventTime::unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_utc_dates_and_times() {
        assert_eq!(parse_utc("1970-01-01"), Some(0));
        assert_eq!(parse_utc("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(parse_utc("2022-11-23T12:30Z"), Some(1_669_206_600));
        assert_eq!(parse_utc("2024-02-29"), Some(1_709_164_800));
        for bad in ["2023-02-29", "2026-13-01", "2026-01-01T10:00:00", "2026-01-01T24:00Z", "yesterday", ""] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_raise_the_level_only_while_they_last() {
        let config = ThreatConfig {
            level: ThreatLevel::Elevated,
            windows: vec![ThreatWindow {
                level: ThreatLevel::High,
                from: 100,
                until: 200,
                reason: "vote".into(),
            }],
            ..ThreatConfig::default()
        };
        assert_eq!(config.level_at(99).0, ThreatLevel::Elevated);
        assert_eq!(config.level_at(100).0, ThreatLevel::High);
        assert_eq!(config.level_at(100).1.map(|w| w.reason.as_str()), Some("vote"));
        assert_eq!(config.level_at(200).0, ThreatLevel::Elevated);
        assert_eq!(config.percent(ThreatLevel::High), 50);
    }

    #[test]
    fn scaling_never_reaches_zero() {
        let t = Thresholds::HOST_DEFAULT.scaled(50);
        assert_eq!(t.pps, Thresholds::HOST_DEFAULT.pps / 2);
        assert_eq!(Thresholds::HOST_DEFAULT.scaled(0).pps, 1);
    }

    proptest! {
        #[test]
        fn parse_utc_never_panics(text in "\\PC{0,30}") {
            let _ = parse_utc(&text);
        }

        #[test]
        fn parse_utc_matches_day_arithmetic(days in 0u64..2_900_000, secs in 0u64..86_400) {
            // Format a Unix time back to text through the same civil algorithm's inverse.
            let t = days * 86_400 + secs;
            let z = (t / 86_400) as i64 + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            prop_assume!(year <= 9999);
            let text = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
            prop_assert_eq!(parse_utc(&text), Some(t));
        }
    }
}
