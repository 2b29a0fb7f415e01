//! `[challenge]` in the shield's configuration, and the per-route `challenge` key.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::page::TextOverrides;

/// When a route challenges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeMode {
    /// Never, whatever the flood rules say.
    Off,
    /// When an automatic flood rule says so (the default).
    #[default]
    Auto,
    /// Every client without a clearance.
    Always,
}

/// A search engine or other good bot: its User-Agent contains `user_agent` (ASCII case
/// ignored) and its address's reverse name ends in one of `domains` and resolves back to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodBot {
    /// A substring of the User-Agent, as `Googlebot`.
    pub user_agent: String,
    /// Domains its reverse DNS names end in, as `googlebot.com`.
    pub domains: Vec<String>,
}

fn bot(user_agent: &str, domains: &[&str]) -> GoodBot {
    GoodBot { user_agent: user_agent.into(), domains: domains.iter().map(|d| (*d).to_owned()).collect() }
}

/// The search engines that document forward-confirmed reverse DNS for their crawlers.
pub fn default_good_bots() -> Vec<GoodBot> {
    vec![
        bot("Googlebot", &["googlebot.com", "google.com", "googleusercontent.com"]),
        bot("Google-InspectionTool", &["googlebot.com", "google.com"]),
        bot("bingbot", &["search.msn.com"]),
        bot("Applebot", &["applebot.apple.com"]),
        bot("YandexBot", &["yandex.ru", "yandex.net", "yandex.com"]),
        bot("Baiduspider", &["baidu.com", "baidu.jp"]),
    ]
}

/// The challenge ladder's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengeSettings {
    /// Where the key file (`challenge-keys`) lives; without one a random key lives in memory
    /// only (clearances end with a restart and are not shared between shields).
    pub data_dir: Option<PathBuf>,
    /// Seconds a clearance lasts.
    pub clearance_secs: u64,
    /// IPv4 prefix length a clearance is bound to (32: the exact address).
    pub ipv4_prefix: u8,
    /// IPv6 prefix length a clearance is bound to (128: the exact address).
    pub ipv6_prefix: u8,
    /// Bind clearances to (a hash of) the User-Agent too.
    pub bind_user_agent: bool,
    /// Offer the no-JavaScript cookie check first.
    pub no_js: bool,
    /// Seconds the no-JavaScript probe cookie lives.
    pub probe_secs: u64,
    /// Cookie-check rounds before the page says cookies are needed.
    pub no_js_tries: u8,
    /// From this pressure (0..=3) on, every client gets the proof of work.
    pub pow_at_pressure: u8,
    /// No-JavaScript clearances one client prefix may earn per `farm_window_secs` before it
    /// gets the proof of work (someone is farming the cookie check).
    pub farm_limit: u32,
    /// The window of `farm_limit`, seconds.
    pub farm_window_secs: u64,
    /// Difficulty (leading zero bits) at pressure 0.
    pub min_difficulty: u8,
    /// Difficulty at pressure 3.
    pub max_difficulty: u8,
    /// Seconds a proof-of-work challenge may take to solve and submit.
    pub pow_secs: u64,
    /// Redeemed challenges remembered (replay protection), about 100 bytes each.
    pub replay_capacity: usize,
    /// The page's language (`en` and `de` are built in; others use English unless `texts`
    /// gives them).
    pub lang: String,
    /// Texts replacing the built-in ones.
    pub texts: TextOverrides,
    /// Good bots, let through once their reverse DNS is confirmed.
    pub good_bots: Vec<GoodBot>,
    /// Client networks never challenged (monitoring).
    pub allow_networks: Vec<IpNet>,
    /// DNS servers for the good-bot check; empty: the system's (/etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
    /// Milliseconds a good-bot check may take before the client counts as unverified.
    pub dns_timeout_ms: u64,
    /// Seconds a confirmed good bot stays confirmed.
    pub dns_cache_secs: u64,
    /// Seconds a failed check is remembered.
    pub dns_negative_secs: u64,
    /// Addresses the good-bot cache holds.
    pub dns_cache_capacity: usize,
    /// Good-bot lookups running at once (more wait as unverified).
    pub dns_concurrency: usize,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        ChallengeSettings {
            data_dir: None,
            // An hour: long enough for a visit, short enough that a stolen cookie ages out.
            clearance_secs: 3600,
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            bind_user_agent: true,
            no_js: true,
            probe_secs: 60,
            no_js_tries: 3,
            pow_at_pressure: 2,
            farm_limit: 30,
            farm_window_secs: 600,
            // 12 bits: ~4,000 hashes (milliseconds); 18 bits: ~260,000 (about a second on a
            // phone with the page's script).
            min_difficulty: 12,
            max_difficulty: 18,
            pow_secs: 300,
            replay_capacity: 1 << 20,
            lang: "en".into(),
            texts: TextOverrides::default(),
            good_bots: default_good_bots(),
            allow_networks: Vec::new(),
            dns_servers: Vec::new(),
            dns_timeout_ms: 2000,
            dns_cache_secs: 3600,
            dns_negative_secs: 300,
            dns_cache_capacity: 65536,
            dns_concurrency: 32,
        }
    }
}

impl ChallengeSettings {
    /// Check ranges: the key (under `challenge.`) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("clearance_secs", self.clearance_secs),
            ("probe_secs", self.probe_secs),
            ("farm_window_secs", self.farm_window_secs),
            ("pow_secs", self.pow_secs),
            ("dns_timeout_ms", self.dns_timeout_ms),
            ("dns_cache_secs", self.dns_cache_secs),
            ("dns_negative_secs", self.dns_negative_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.ipv4_prefix > 32 {
            return Err(("ipv4_prefix", "must be 0 to 32".into()));
        }
        if self.ipv6_prefix > 128 {
            return Err(("ipv6_prefix", "must be 0 to 128".into()));
        }
        if self.no_js_tries == 0 {
            return Err(("no_js_tries", "must be at least 1".into()));
        }
        if self.max_difficulty > super::pow::MAX_DIFFICULTY {
            return Err(("max_difficulty", format!("must be at most {}", super::pow::MAX_DIFFICULTY)));
        }
        if self.min_difficulty > self.max_difficulty {
            return Err(("min_difficulty", "must not exceed max_difficulty".into()));
        }
        if self.replay_capacity == 0 || self.dns_cache_capacity == 0 || self.dns_concurrency == 0 {
            return Err(("replay_capacity", "capacities must be at least 1".into()));
        }
        let lang_ok = !self.lang.is_empty()
            && self.lang.len() <= 35
            && self.lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !lang_ok {
            return Err(("lang", "must be a language tag such as en or de-CH".into()));
        }
        for bot in &self.good_bots {
            if bot.user_agent.is_empty() || bot.domains.iter().any(|d| d.trim_matches('.').is_empty()) {
                return Err(("good_bots", "every bot needs a user_agent and non-empty domains".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_check_and_mistakes_name_the_key() {
        assert_eq!(ChallengeSettings::default().check(), Ok(()));
        let bad =
            ChallengeSettings { min_difficulty: 20, max_difficulty: 10, ..ChallengeSettings::default() };
        assert_eq!(bad.check().unwrap_err().0, "min_difficulty");
        let bad = ChallengeSettings { lang: "en\"><script>".into(), ..ChallengeSettings::default() };
        assert_eq!(bad.check().unwrap_err().0, "lang");
        let parsed: ChallengeSettings =
            toml::from_str("lang = \"de\"\nno_js = false\n[texts]\nheading = \"Hallo\"\n").unwrap();
        assert_eq!(parsed.lang, "de");
        assert!(!parsed.no_js);
        assert_eq!(parsed.clearance_secs, 3600);
    }
}
