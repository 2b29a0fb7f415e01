//! Good bots: a User-Agent claiming to be a configured crawler is let through only once
//! forward-confirmed reverse DNS agrees (the address's PTR name ends in one of the bot's
//! domains and that name resolves back to the address). A User-Agent is free to forge, so a
//! flood of fake "Googlebot"s must cost little: results are cached per address (confirmed and
//! refused, each with its TTL, the cache bounded), one lookup runs per address at a time, a
//! bounded number at once, each under a deadline, and the request never waits for one (an
//! unverified bot is challenged like anyone; search engines retry a 503 later).

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::settings::GoodBot;

/// A boxed future, as the resolver trait returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A DNS lookup failed (no such name, server failure, timeout): the bot stays unverified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup failed: {0}")]
pub struct DnsError(pub String);

/// The two lookups forward-confirmed reverse DNS needs.
pub trait Resolve: Send + Sync + Debug {
    /// The PTR names of `address`.
    fn reverse(&self, address: IpAddr) -> BoxFuture<Result<Vec<String>, DnsError>>;
    /// The A and AAAA addresses of `name`.
    fn forward(&self, name: String) -> BoxFuture<Result<Vec<IpAddr>, DnsError>>;
}

/// Lower case, without the root's trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` is `domain` or inside it (on a label boundary: `evilgooglebot.com` is not
/// inside `googlebot.com`).
pub fn in_domain(name: &str, domain: &str) -> bool {
    let (name, domain) = (normalize(name), normalize(domain));
    !domain.is_empty()
        && (name == domain
            || (name.len() > domain.len() && name.ends_with(&domain) && {
                let cut = name.len() - domain.len() - 1;
                name.as_bytes()[cut] == b'.'
            }))
}

/// Forward-confirmed reverse DNS: one of `address`'s PTR names inside `domains` resolves back
/// to `address`. At most two names are tried forward.
pub async fn confirm(resolver: &dyn Resolve, address: IpAddr, domains: &[String]) -> bool {
    let Ok(names) = resolver.reverse(address).await else { return false };
    let candidates = names.iter().filter(|n| domains.iter().any(|d| in_domain(n, d))).take(2);
    for name in candidates {
        if let Ok(addresses) = resolver.forward(normalize(name)).await
            && addresses.contains(&address)
        {
            return true;
        }
    }
    false
}

/// What is known about an address claiming a bot's User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A lookup runs; until then unverified.
    Pending { until: u64 },
    /// Confirmed until then.
    Confirmed { until: u64 },
    /// Refused until then.
    Refused { until: u64 },
}

impl Entry {
    fn until(self) -> u64 {
        match self {
            Entry::Pending { until } | Entry::Confirmed { until } | Entry::Refused { until } => until,
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotStatus {
    /// The User-Agent names no configured bot.
    NotABot,
    /// A configured bot, confirmed by DNS.
    Verified,
    /// Claims to be one, not (or not yet) confirmed.
    Unverified,
}

/// A bounded cache of FCrDNS results, keyed by address and bot; pure (takes `now`).
#[derive(Debug)]
pub struct BotCache {
    capacity: usize,
    entries: HashMap<(IpAddr, usize), Entry, foldhash::fast::RandomState>,
}

/// What the cache says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// Confirmed.
    Confirmed,
    /// Refused, or a lookup already runs.
    Unverified,
    /// Unknown: the caller should look it up (marked pending now).
    LookUp,
    /// Unknown, and the cache is full of live entries: no lookup.
    Full,
}

impl BotCache {
    /// A cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> BotCache {
        BotCache { capacity: capacity.max(1), entries: HashMap::default() }
    }

    /// Look `key` up at `now`; an unknown key is marked pending until `now + pending_secs`.
    pub fn get(&mut self, key: (IpAddr, usize), now: u64, pending_secs: u64) -> Cached {
        match self.entries.get(&key) {
            Some(entry) if entry.until() > now => {
                return if matches!(entry, Entry::Confirmed { .. }) {
                    Cached::Confirmed
                } else {
                    Cached::Unverified
                };
            }
            _ => {}
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.until() > now);
            if self.entries.len() >= self.capacity {
                return Cached::Full;
            }
        }
        self.entries.insert(key, Entry::Pending { until: now.saturating_add(pending_secs) });
        Cached::LookUp
    }

    /// Record a lookup's result at `now`, kept `ttl` seconds.
    pub fn put(&mut self, key: (IpAddr, usize), confirmed: bool, now: u64, ttl: u64) {
        let until = now.saturating_add(ttl);
        let entry = if confirmed { Entry::Confirmed { until } } else { Entry::Refused { until } };
        if self.entries.len() < self.capacity || self.entries.contains_key(&key) {
            self.entries.insert(key, entry);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How long results and lookups last.
#[derive(Debug, Clone, Copy)]
pub struct BotTiming {
    /// A lookup's deadline.
    pub timeout: Duration,
    /// Seconds a confirmation is kept.
    pub confirmed_secs: u64,
    /// Seconds a refusal (or failure) is kept.
    pub refused_secs: u64,
}

/// The good-bot check: User-Agent patterns, their domains, the resolver and the cache.
#[derive(Debug)]
pub struct GoodBots {
    bots: Vec<(Vec<u8>, Vec<String>)>,
    /// All the patterns in one automaton (ASCII case ignored): every request's User-Agent is
    /// scanned once instead of once per pattern. `None` when it cannot be built (then the
    /// patterns are tried one by one).
    matcher: Option<aho_corasick::AhoCorasick>,
    resolver: Arc<dyn Resolve>,
    cache: Arc<Mutex<BotCache>>,
    lookups: Arc<Semaphore>,
    timing: BotTiming,
}

/// Whether `haystack` contains `needle` (already lower case), ASCII case ignored.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.iter().zip(needle).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// The index of the first of `bots` whose pattern `user_agent` contains (ASCII case ignored),
/// through `matcher` (built from the same patterns) when there is one.
fn first_bot(
    matcher: Option<&aho_corasick::AhoCorasick>,
    bots: &[(Vec<u8>, Vec<String>)],
    user_agent: &[u8],
) -> Option<usize> {
    match matcher {
        Some(matcher) => matcher.find_overlapping_iter(user_agent).map(|m| m.pattern().as_usize()).min(),
        None => bots.iter().position(|(pattern, _)| contains_ignore_case(user_agent, pattern)),
    }
}

impl GoodBots {
    /// The check for `bots` through `resolver`.
    pub fn new(
        bots: &[GoodBot],
        resolver: Arc<dyn Resolve>,
        capacity: usize,
        concurrency: usize,
        timing: BotTiming,
    ) -> GoodBots {
        let bots: Vec<(Vec<u8>, Vec<String>)> = bots
            .iter()
            .map(|b| (b.user_agent.to_ascii_lowercase().into_bytes(), b.domains.clone()))
            .collect();
        let matcher = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(bots.iter().map(|(pattern, _)| pattern))
            .ok();
        GoodBots {
            bots,
            matcher,
            resolver,
            cache: Arc::new(Mutex::new(BotCache::new(capacity))),
            lookups: Arc::new(Semaphore::new(concurrency.max(1))),
            timing,
        }
    }

    /// The first configured bot (in the configuration's order) whose pattern `user_agent`
    /// contains, ASCII case ignored.
    fn bot_of(&self, user_agent: &[u8]) -> Option<usize> {
        first_bot(self.matcher.as_ref(), &self.bots, user_agent)
    }

    /// The verdict for `address` with `user_agent` at `now` (Unix seconds); never waits. An
    /// unknown address starts its lookup in the background (on the current Tokio runtime).
    pub fn check(&self, address: IpAddr, user_agent: &[u8], now: u64) -> BotStatus {
        let Some(index) = self.bot_of(user_agent) else {
            return BotStatus::NotABot;
        };
        let pending_secs = self.timing.timeout.as_secs() + 1;
        let verdict =
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).get((address, index), now, pending_secs);
        match verdict {
            Cached::Confirmed => BotStatus::Verified,
            Cached::Unverified | Cached::Full => BotStatus::Unverified,
            Cached::LookUp => {
                self.start_lookup(address, index);
                BotStatus::Unverified
            }
        }
    }

    fn start_lookup(&self, address: IpAddr, index: usize) {
        let (Ok(runtime), Ok(permit)) =
            (tokio::runtime::Handle::try_current(), Arc::clone(&self.lookups).try_acquire_owned())
        else {
            // No runtime or too many lookups at once: stays pending (unverified) until it
            // expires, then the next request tries again.
            return;
        };
        let resolver = Arc::clone(&self.resolver);
        let cache = Arc::clone(&self.cache);
        let domains = self.bots[index].1.clone();
        let timing = self.timing;
        runtime.spawn(async move {
            let confirmed = tokio::time::timeout(timing.timeout, confirm(&*resolver, address, &domains))
                .await
                .unwrap_or(false);
            let ttl = if confirmed { timing.confirmed_secs } else { timing.refused_secs };
            cache.lock().unwrap_or_else(|p| p.into_inner()).put((address, index), confirmed, unix_now(), ttl);
            drop(permit);
        });
    }

    /// Addresses in the cache (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    proptest::proptest! {
        /// The one-scan automaton finds the same bot as trying the patterns in order.
        #[test]
        fn the_automaton_agrees_with_the_patterns_one_by_one(
            patterns in proptest::collection::vec("[a-cA-C]{1,4}", 1..6),
            user_agent in "[a-cA-C/ ]{0,24}",
        ) {
            let bots: Vec<(Vec<u8>, Vec<String>)> =
                patterns.iter().map(|p| (p.to_ascii_lowercase().into_bytes(), Vec::new())).collect();
            let matcher = aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(bots.iter().map(|(p, _)| p))
                .unwrap();
            proptest::prop_assert_eq!(
                first_bot(Some(&matcher), &bots, user_agent.as_bytes()),
                first_bot(None, &bots, user_agent.as_bytes())
            );
        }
    }

    #[test]
    fn domains_match_on_label_boundaries() {
        assert!(in_domain("crawl-66-249-66-1.googlebot.com.", "googlebot.com"));
        assert!(in_domain("GoogleBot.com", "googlebot.com"));
        assert!(!in_domain("evilgooglebot.com", "googlebot.com"));
        assert!(!in_domain("googlebot.com.evil.example", "googlebot.com"));
        assert!(!in_domain("x.example", ""));
        assert!(contains_ignore_case(b"Mozilla/5.0 (compatible; Googlebot/2.1)", b"googlebot"));
        assert!(!contains_ignore_case(b"Googlebo", b"googlebot"));
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut cache = BotCache::new(1);
        assert_eq!(cache.get((a, 0), 0, 3), Cached::LookUp);
        assert_eq!(cache.get((a, 0), 1, 3), Cached::Unverified, "one lookup per address at a time");
        assert_eq!(cache.get((b, 0), 1, 3), Cached::Full);
        cache.put((a, 0), true, 2, 100);
        assert_eq!(cache.get((a, 0), 50, 3), Cached::Confirmed);
        assert_eq!(cache.get((a, 0), 102, 3), Cached::LookUp, "expired: looked up again");
        cache.put((a, 0), false, 102, 10);
        assert_eq!(cache.get((a, 0), 105, 3), Cached::Unverified);
        assert_eq!(cache.get((b, 0), 200, 3), Cached::LookUp, "expired entries make room");
        assert_eq!(cache.len(), 1);
    }

    /// A resolver from a fixed table, counting lookups.
    #[derive(Debug, Default)]
    struct Table {
        ptr: Vec<(IpAddr, String)>,
        a: Vec<(String, IpAddr)>,
        lookups: AtomicUsize,
    }

    impl Resolve for Table {
        fn reverse(&self, address: IpAddr) -> BoxFuture<Result<Vec<String>, DnsError>> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let names: Vec<String> =
                self.ptr.iter().filter(|(a, _)| *a == address).map(|(_, n)| n.clone()).collect();
            Box::pin(
                async move { if names.is_empty() { Err(DnsError("NXDOMAIN".into())) } else { Ok(names) } },
            )
        }
        fn forward(&self, name: String) -> BoxFuture<Result<Vec<IpAddr>, DnsError>> {
            let found: Vec<IpAddr> = self.a.iter().filter(|(n, _)| *n == name).map(|(_, a)| *a).collect();
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn fake_bots_cost_one_lookup_per_address() {
        let real: IpAddr = "192.0.2.10".parse().unwrap();
        let fake: IpAddr = "198.51.100.10".parse().unwrap();
        let table = Arc::new(Table {
            ptr: vec![
                (real, "crawl-1.googlebot.com.".into()),
                (fake, "crawl-2.googlebot.com.".into()), // forward says otherwise
            ],
            a: vec![("crawl-1.googlebot.com".into(), real), ("crawl-2.googlebot.com".into(), real)],
            lookups: AtomicUsize::new(0),
        });
        let timing = BotTiming { timeout: Duration::from_secs(1), confirmed_secs: 3600, refused_secs: 300 };
        let bots = GoodBots::new(&super::super::settings::default_good_bots(), table.clone(), 100, 4, timing);
        let ua = b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let now = unix_now();
        assert_eq!(bots.check(real, b"Firefox", now), BotStatus::NotABot);
        for _ in 0..100 {
            assert_eq!(bots.check(fake, ua, now), BotStatus::Unverified);
            assert_eq!(bots.check(real, ua, now), BotStatus::Unverified);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(bots.check(real, ua, now), BotStatus::Verified);
        assert_eq!(bots.check(fake, ua, now), BotStatus::Unverified);
        assert_eq!(table.lookups.load(Ordering::Relaxed), 2, "one reverse lookup per address");
    }
}
