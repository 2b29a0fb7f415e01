//! The challenge ladder (issue 12 §3): a signed clearance cookie bound to the client's prefix
//! and User-Agent; a no-JavaScript cookie check first; a proof of work whose difficulty
//! follows the pressure; good bots and allowed networks let through; one accessible page in
//! the site's language, served from memory.
//!
//! Which check a client gets: the cookie check (meta refresh), unless `no_js` is off, the
//! pressure is at `pow_at_pressure` or above, or the client's prefix has earned `farm_limit`
//! cookie-check clearances in the current `farm_window_secs` (someone farms the cookie check,
//! which costs a bot nothing): then the proof of work. A prefix table that is full counts as
//! farmed (a flood from very many prefixes).

pub mod bots;
pub mod dns;
mod farm;
pub mod keys;
pub mod page;
pub mod pow;
pub mod replay;
mod respond;
pub mod settings;
pub mod token;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http_body_util::Full;

use crate::defense::Challenger;
use crate::metrics::{ChallengeOutcome, Metrics};
use bots::{BotStatus, BotTiming, GoodBots, Resolve};
use farm::FarmCounter;
use page::{Mode, Texts};
use replay::ReplayCache;
pub use settings::{ChallengeMode, ChallengeSettings};
use token::{Binding, BindingRule, Keyring, Kind};

/// Requests under this path are the ladder's own (the verify step).
pub const PREFIX: &str = "/.rampart/challenge/";
/// Where a solved check goes.
pub const VERIFY_PATH: &str = "/.rampart/challenge/verify";
/// The clearance cookie.
pub const CLEARANCE_COOKIE: &str = "__rampart_clearance";
/// The no-JavaScript check's probe cookie.
pub const PROBE_COOKIE: &str = "__rampart_probe";

/// A request extension the proxy sets on requests from TLS listeners: cookies get `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// Why the ladder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    /// The key file is unusable.
    #[error(transparent)]
    Keys(#[from] keys::KeyFileError),
    /// No key.
    #[error(transparent)]
    Keyring(#[from] token::KeyringError),
    /// The good-bot resolver cannot be built.
    #[error("challenge.dns_servers: {0} (configure dns_servers, or good_bots = [])")]
    Dns(bots::DnsError),
}

/// A resolver that confirms nothing: for `good_bots = []`, and where no DNS is wanted.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl Resolve for NoResolver {
    fn reverse(&self, _address: IpAddr) -> bots::BoxFuture<Result<Vec<String>, bots::DnsError>> {
        Box::pin(async { Err(bots::DnsError("no resolver".into())) })
    }
    fn forward(&self, _name: String) -> bots::BoxFuture<Result<Vec<IpAddr>, bots::DnsError>> {
        Box::pin(async { Err(bots::DnsError("no resolver".into())) })
    }
}

/// The challenge ladder; the proxy's [`Challenger`].
pub struct Ladder {
    settings: ChallengeSettings,
    rule: BindingRule,
    keys: Keyring,
    texts: Texts,
    script: String,
    csp: String,
    replays: Mutex<ReplayCache>,
    farm: Mutex<FarmCounter>,
    pressure: AtomicU8,
    bots: GoodBots,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("pressure", &self.pressure.load(Ordering::Relaxed))
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Unix seconds of `now`.
pub fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The value of cookie `name` in `headers` (every `Cookie` field; HTTP/2 may split them),
/// each candidate in turn, at most four.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let rest = pair.strip_prefix(name.as_bytes())?;
            rest.strip_prefix(b"=")
        })
        .take(4)
}

fn user_agent(parts: &Parts) -> &[u8] {
    parts.headers.get(header::USER_AGENT).map_or(&[], |v| v.as_bytes())
}

/// Where a passed check sends the client: a same-origin absolute path (printable ASCII, not
/// `//host` or `/\host`, which browsers take as another site), else `/`. No open redirect.
pub fn safe_return(target: &str) -> &str {
    let bytes = target.as_bytes();
    let ok = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.len() <= 2048
        && bytes.iter().all(|b| (0x21..=0x7e).contains(b) && *b != b'\\')
        && !target.starts_with(PREFIX);
    if ok { target } else { "/" }
}

impl Ladder {
    /// The ladder of `settings`: keys from the data directory (or a random one in memory),
    /// good bots through hickory (configured servers or the system's).
    pub fn new(settings: ChallengeSettings, metrics: Arc<Metrics>) -> Result<Ladder, LadderError> {
        let keys = match &settings.data_dir {
            Some(dir) => keys::load_or_create(dir)?,
            None => vec![keys::random_key()],
        };
        let resolver: Arc<dyn Resolve> = if settings.good_bots.is_empty() {
            Arc::new(NoResolver)
        } else {
            let timeout = Duration::from_millis(settings.dns_timeout_ms);
            Arc::new(dns::HickoryResolver::new(&settings.dns_servers, timeout).map_err(LadderError::Dns)?)
        };
        Ladder::with_parts(settings, &keys, resolver, metrics)
    }

    /// The ladder with these keys (oldest first) and this resolver.
    pub fn with_parts(
        settings: ChallengeSettings,
        keys: &[[u8; token::KEY_BYTES]],
        resolver: Arc<dyn Resolve>,
        metrics: Arc<Metrics>,
    ) -> Result<Ladder, LadderError> {
        let keys = Keyring::new(keys)?;
        let rule = BindingRule {
            ipv4_prefix: settings.ipv4_prefix,
            ipv6_prefix: settings.ipv6_prefix,
            user_agent: settings.bind_user_agent,
        };
        let texts = Texts::for_lang(&settings.lang, &settings.texts);
        let script = page::script();
        let csp = respond::content_security_policy(&script);
        let timing = BotTiming {
            timeout: Duration::from_millis(settings.dns_timeout_ms),
            confirmed_secs: settings.dns_cache_secs,
            refused_secs: settings.dns_negative_secs,
        };
        let bots = GoodBots::new(
            &settings.good_bots,
            resolver,
            settings.dns_cache_capacity,
            settings.dns_concurrency,
            timing,
        );
        Ok(Ladder {
            rule,
            keys,
            texts,
            script,
            csp,
            replays: Mutex::new(ReplayCache::new(settings.replay_capacity)),
            farm: Mutex::new(FarmCounter::new(settings.farm_limit, settings.farm_window_secs, 65536)),
            pressure: AtomicU8::new(0),
            bots,
            metrics,
            settings,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ChallengeSettings {
        &self.settings
    }

    /// The pressure now, 0..=3.
    pub fn pressure(&self) -> u8 {
        self.pressure.load(Ordering::Relaxed)
    }

    /// The proof-of-work difficulty now.
    pub fn difficulty(&self) -> u8 {
        pow::difficulty_for(self.pressure(), self.settings.min_difficulty, self.settings.max_difficulty)
    }

    /// The binding of a request from `client`.
    pub fn binding(&self, parts: &Parts, client: IpAddr) -> Binding {
        self.rule.bind(client, user_agent(parts))
    }

    /// Whether `parts` carries a clearance for `binding` at `secs` (signature, binding, expiry).
    pub fn has_clearance(&self, parts: &Parts, binding: &Binding, secs: u64) -> bool {
        let mut buffer = token::buffer();
        cookies(&parts.headers, CLEARANCE_COOKIE)
            .any(|value| self.keys.verify(value, Kind::Clearance, binding, secs, &mut buffer).is_some())
    }

    /// A clearance cookie value for `binding` from `secs` on.
    pub fn clearance(&self, binding: &Binding, secs: u64) -> String {
        self.keys.sign(Kind::Clearance, binding, secs, secs.saturating_add(self.settings.clearance_secs), b"")
    }

    /// A proof-of-work challenge for `binding` at `secs` with today's difficulty.
    pub fn work_challenge(&self, binding: &Binding, secs: u64) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        pow::issue(&self.keys, binding, secs, self.settings.pow_secs, self.difficulty(), nonce)
    }

    /// Check a proof (for the verify step and the benchmark).
    pub fn check_proof(
        &self,
        binding: &Binding,
        challenge: &str,
        counter: u64,
        secs: u64,
    ) -> Result<(), pow::ProofError> {
        pow::verify(&self.keys, binding, challenge, counter, secs, &self.replays)
    }

    fn wants_work(&self, binding: &Binding, secs: u64) -> bool {
        !self.settings.no_js
            || self.pressure() >= self.settings.pow_at_pressure
            || self.farm.lock().unwrap_or_else(|p| p.into_inner()).farmed(binding.prefix(), secs)
    }

    fn count(&self, outcome: ChallengeOutcome) {
        self.metrics.challenge(outcome);
    }
}

impl Challenger for Ladder {
    fn is_cleared(&self, request: &Parts, client: IpAddr, now: SystemTime) -> bool {
        if self.settings.allow_networks.iter().any(|n| n.contains(&client)) {
            self.count(ChallengeOutcome::AllowedNetwork);
            return true;
        }
        let secs = unix_secs(now);
        // The binding is a SHA-256 over the client's prefix and user agent: only worth it for
        // a request that carries a clearance to check (most carry none).
        if cookies(&request.headers, CLEARANCE_COOKIE).next().is_some()
            && self.has_clearance(request, &self.binding(request, client), secs)
        {
            self.count(ChallengeOutcome::Cleared);
            return true;
        }
        match self.bots.check(client, user_agent(request), secs) {
            BotStatus::Verified => {
                self.count(ChallengeOutcome::GoodBot);
                true
            }
            BotStatus::Unverified => {
                self.count(ChallengeOutcome::BotUnverified);
                false
            }
            BotStatus::NotABot => false,
        }
    }

    fn challenge(&self, request: &Parts, client: IpAddr, now: SystemTime) -> Response<Full<Bytes>> {
        let secs = unix_secs(now);
        let binding = self.binding(request, client);
        let tls = request.extensions.get::<OverTls>().is_some();
        if request.uri.path() == VERIFY_PATH {
            return self.verify(request, &binding, secs, tls);
        }
        let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
        self.page(&binding, safe_return(target), 1, secs, tls, None)
    }

    fn set_pressure(&self, level: u8) {
        self.pressure.store(level.min(3), Ordering::Relaxed);
    }
}

impl Ladder {
    /// The challenge page for `binding`, sending it back to `return_to`; `failed` replaces
    /// the status line after a failed check.
    fn page(
        &self,
        binding: &Binding,
        return_to: &str,
        attempt: u8,
        secs: u64,
        tls: bool,
        failed: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let encoded: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        if self.wants_work(binding, secs) {
            self.count(ChallengeOutcome::PageWork);
            let challenge = self.work_challenge(binding, secs);
            let mode = Mode::Work {
                verify: format!("{VERIFY_PATH}?m=pow&r={encoded}&c={challenge}"),
                challenge,
                difficulty: self.difficulty(),
            };
            let status = failed.unwrap_or(&self.texts.working);
            let html = page::render(&self.settings.lang, &self.texts, &mode, status, &self.script);
            return respond::page(html, &self.csp, Vec::new());
        }
        self.count(ChallengeOutcome::PageCookie);
        let probe =
            self.keys.sign(Kind::Probe, binding, secs, secs.saturating_add(self.settings.probe_secs), b"");
        let cookie = respond::cookie(PROBE_COOKIE, &probe, self.settings.probe_secs, tls);
        let mode = Mode::Cookie { verify: format!("{VERIFY_PATH}?m=cookie&t={attempt}&r={encoded}") };
        let status = failed.unwrap_or(&self.texts.cookie_check);
        let html = page::render(&self.settings.lang, &self.texts, &mode, status, "");
        respond::page(html, &self.csp, vec![cookie])
    }

    fn verify(&self, request: &Parts, binding: &Binding, secs: u64, tls: bool) -> Response<Full<Bytes>> {
        let query = request.uri.query().unwrap_or("");
        let (mut method, mut attempt, mut return_to, mut challenge, mut counter) =
            (None, 1u8, None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()).take(8) {
            match &*key {
                "m" => method = Some(value.into_owned()),
                "t" => attempt = value.parse().unwrap_or(1),
                "r" => return_to = Some(value.into_owned()),
                "c" => challenge = Some(value.into_owned()),
                "n" => counter = value.parse::<u64>().ok(),
                _ => {}
            }
        }
        let return_to = safe_return(return_to.as_deref().unwrap_or("/"));
        match method.as_deref() {
            Some("cookie") => {
                let mut buffer = token::buffer();
                let probe_ok = cookies(&request.headers, PROBE_COOKIE)
                    .any(|v| self.keys.verify(v, Kind::Probe, binding, secs, &mut buffer).is_some());
                if probe_ok && !self.wants_work(binding, secs) {
                    self.farm.lock().unwrap_or_else(|p| p.into_inner()).note(binding.prefix(), secs);
                    self.count(ChallengeOutcome::PassedCookie);
                    return self.cleared(binding, return_to, secs, tls);
                }
                if probe_ok {
                    // The cookie check is not enough any more (pressure, farming).
                    return self.page(binding, return_to, 1, secs, tls, None);
                }
                if attempt < self.settings.no_js_tries {
                    return self.page(binding, return_to, attempt.saturating_add(1), secs, tls, None);
                }
                self.count(ChallengeOutcome::NoCookies);
                let html = page::render(
                    &self.settings.lang,
                    &self.texts,
                    &Mode::Message,
                    &self.texts.no_cookies,
                    "",
                );
                respond::refusal(html, &self.csp)
            }
            Some("pow") => {
                let result = match (challenge.as_deref(), counter) {
                    (Some(challenge), Some(counter)) => self.check_proof(binding, challenge, counter, secs),
                    _ => Err(pow::ProofError::Challenge),
                };
                match result {
                    Ok(()) => {
                        self.count(ChallengeOutcome::PassedWork);
                        self.cleared(binding, return_to, secs, tls)
                    }
                    Err(error) => {
                        self.count(match error {
                            pow::ProofError::Challenge => ChallengeOutcome::BadChallenge,
                            pow::ProofError::Work => ChallengeOutcome::BadWork,
                            pow::ProofError::Replayed => ChallengeOutcome::Replayed,
                        });
                        let failed = self.texts.failed.clone();
                        self.page(binding, return_to, 1, secs, tls, Some(&failed))
                    }
                }
            }
            _ => self.page(binding, return_to, 1, secs, tls, None),
        }
    }

    fn cleared(&self, binding: &Binding, return_to: &str, secs: u64, tls: bool) -> Response<Full<Bytes>> {
        let clearance = self.clearance(binding, secs);
        let cookies = vec![
            respond::cookie(CLEARANCE_COOKIE, &clearance, self.settings.clearance_secs, tls),
            respond::cookie(PROBE_COOKIE, "", 0, tls),
        ];
        respond::see_other(return_to, cookies)
    }
}

#[cfg(test)]
mod tests;
