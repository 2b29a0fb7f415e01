//! The flood defense's core driven in simulated time through the four floods of issue 12 §5:
//! in each, the first mined rule appears within 5 s of flood start, matches at least 99 % of the
//! flood and at most 0.1 % of the baseline sample, and no legitimate request during the flood
//! is refused.

use std::net::IpAddr;

use http::HeaderMap;

use super::FloodConfig;
use super::engine::FloodEngine;
use super::features::{RequestView, extract, labels};
use crate::defense::{ClientFingerprints, FloodVerdict};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| ALPHABET[self.below(62) as usize] as char).collect()
    }
}

const BROWSERS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const LANGUAGES: [&str; 4] = ["de-DE,de;q=0.9", "en-US,en;q=0.8", "fr-FR,fr;q=0.9,en;q=0.5", "de-CH"];
const BROWSER_ORDER: [&str; 6] =
    ["host", "user-agent", "accept", "accept-language", "accept-encoding", "cookie"];
const TOOL_ORDER: [&str; 4] = ["host", "accept-encoding", "accept", "user-agent"];

struct Req {
    method: &'static str,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client: IpAddr,
}

fn headers(order: &[&'static str], ua: &str, language: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for name in order {
        let value = match *name {
            "host" => "www.example",
            "user-agent" => ua,
            "accept-language" => language,
            "cookie" => "session=abc",
            _ => "*/*",
        };
        map.append(http::HeaderName::from_static(name), value.parse().unwrap());
    }
    map
}

fn legit(rng: &mut Rng) -> Req {
    let ua = rng.pick(&BROWSERS);
    let language = rng.pick(&LANGUAGES);
    let (method, path, query) = match rng.below(100) {
        0..=29 => ("GET", "/".to_owned(), None),
        30..=59 => ("GET", format!("/news/{}", rng.below(5000)), None),
        60..=74 => {
            ("GET", "/search".to_owned(), Some(format!("q={}", rng.pick(&["budget", "vote", "law", "news"]))))
        }
        75..=84 => ("GET", format!("/static/app.{}.js", rng.pick(&["a1", "b2"])), None),
        85..=89 => ("GET", "/report".to_owned(), Some(format!("year={}", 2000 + rng.below(26)))),
        90..=91 => ("POST", "/login".to_owned(), None),
        _ => ("GET", format!("/members/{}", rng.below(600)), None),
    };
    // Browsers: everything but the cookie sometimes; the Safari order puts accept first.
    let mut order: Vec<&'static str> = BROWSER_ORDER.to_vec();
    if rng.below(3) == 0 {
        order.pop();
    }
    if ua.contains("Safari/605") {
        order.swap(1, 2);
    }
    let client = if rng.below(4) == 0 {
        IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001,
            0xdb8,
            rng.below(4000) as u16,
            1,
            0,
            0,
            0,
            rng.below(9) as u16,
        ))
    } else {
        let net = rng.pick(&["198.51.100", "203.0.113"]);
        format!("{net}.{}", rng.below(256)).parse().unwrap()
    };
    Req { method, path, query, headers: headers(&order, ua, language), client }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flood {
    RandomQueryOneBot,
    DistributedOneHeaderOrder,
    LoginPost,
    CacheBusting,
    /// 93 % the GET bot, 7 % the login POST tool: the first rule can cover the bot only.
    TwoFamilies,
}

fn flood_request(kind: Flood, rng: &mut Rng) -> Req {
    match kind {
        Flood::TwoFamilies if rng.below(100) < 93 => flood_request(Flood::RandomQueryOneBot, rng),
        Flood::TwoFamilies => flood_request(Flood::LoginPost, rng),
        Flood::RandomQueryOneBot => Req {
            method: "GET",
            path: "/search".into(),
            query: Some(format!("{}={}", rng.token(4), rng.token(12))),
            headers: headers(&TOOL_ORDER, "FloodBot/2.1 (+http://bot.example)", ""),
            client: format!("192.0.2.{}", rng.below(64)).parse().unwrap(),
        },
        Flood::DistributedOneHeaderOrder => Req {
            method: "GET",
            path: "/".into(),
            query: None,
            headers: headers(&TOOL_ORDER, rng.pick(&BROWSERS), ""),
            client: IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x8000 + rng.below(30_000) as u16,
                rng.below(65_000) as u16,
                0,
                0,
                0,
                1,
            )),
        },
        Flood::LoginPost => Req {
            method: "POST",
            path: "/login".into(),
            query: None,
            headers: headers(&["host", "user-agent", "content-type", "accept"], BROWSERS[0], ""),
            client: IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x9999,
                rng.below(9000) as u16,
                0,
                0,
                0,
                7,
            )),
        },
        Flood::CacheBusting => {
            let ua = rng.pick(&BROWSERS);
            let language = rng.pick(&LANGUAGES);
            Req {
                method: "GET",
                path: "/report".into(),
                query: Some(format!("_={}{}", 1_700_000_000 + rng.below(1_000_000), rng.token(6))),
                headers: headers(&BROWSER_ORDER[..5], ua, language),
                client: format!("203.0.113.{}", rng.below(256)).parse().unwrap(),
            }
        }
    }
}

fn request_view<'a>(req: &'a Req, fingerprints: &'a ClientFingerprints) -> RequestView<'a> {
    RequestView {
        method: req.method,
        path: &req.path,
        query: req.query.as_deref(),
        headers: Some(&req.headers),
        user_agent: None,
        client: req.client,
        fingerprints: Some(fingerprints),
    }
}

fn view(req: &Req, fingerprints: &ClientFingerprints) -> super::features::Features {
    extract(&request_view(req, fingerprints))
}

struct Result {
    first_rule_after_ms: u64,
    flood_matched_share: f64,
    impacted_baseline: f64,
    legit_refused: usize,
    legit_during: usize,
}

fn run(kind: Flood, flood_rps: u64, slow_origin: bool) -> Result {
    run_mining(kind, flood_rps, slow_origin, false)
}

/// `deferred`: mining handed out as jobs, each run and applied right after the request that
/// made it (as the shield's miner does a moment later).
fn run_mining(kind: Flood, flood_rps: u64, slow_origin: bool, deferred: bool) -> Result {
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 300;
    let mut engine = FloodEngine::new(config);
    engine.set_defer_mining(deferred);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ kind as u64);
    let fingerprints = ClientFingerprints::default();
    let start_ms: u64 = 1_796_000_000_000;
    let legit_rps = 40;
    let warm_secs = 420;
    let flood_secs = 12;
    let flood_start = start_ms + warm_secs * 1000;
    let mut flood_features = Vec::new();
    let (mut legit_refused, mut legit_during) = (0, 0);
    for second in 0..warm_secs + flood_secs {
        let base = start_ms + second * 1000;
        let flooding = base >= flood_start;
        let mut arrivals: Vec<(u64, bool)> =
            (0..legit_rps + rng.below(10)).map(|_| (base + rng.below(1000), false)).collect();
        if flooding {
            arrivals.extend((0..flood_rps).map(|_| (base + rng.below(1000), true)));
        }
        arrivals.sort_unstable();
        for (now_ms, is_flood) in arrivals {
            let req = if is_flood { flood_request(kind, &mut rng) } else { legit(&mut rng) };
            let features = view(&req, &fingerprints);
            let outcome = engine.check("web", Some("www.example"), &features, req.client, now_ms);
            if let Some((id, true)) = outcome.rule {
                engine.show(id, &labels(&request_view(&req, &fingerprints)));
            }
            for job in engine.take_mining_jobs() {
                engine.apply_mined(job.run());
            }
            if is_flood {
                flood_features.push(features);
            } else if flooding {
                legit_during += 1;
                if outcome.verdict != FloodVerdict::Pass {
                    legit_refused += 1;
                }
            }
            if outcome.verdict == FloodVerdict::Pass {
                let latency = if slow_origin && is_flood { 2500.0 } else { 30.0 };
                engine.observe_response("web", 200, latency, now_ms);
            }
        }
        engine.tick(base + 1000);
    }
    let events = engine.take_events();
    let created: Vec<_> = events.iter().filter(|e| e.event == "rule_created").collect();
    assert!(!created.is_empty(), "{kind:?}: no rule; events {events:?}");
    assert!(engine.active_rules().all(|r| !r.shown.is_empty()), "every rule shows what it matches");
    let first =
        engine.active_rules().chain(engine.recent_rules()).min_by_key(|r| r.id).expect("a rule").clone();
    let matched = flood_features.iter().filter(|f| first.signature.matches(f)).count();
    eprintln!(
        "{kind:?}: rule {} after {} ms: {:?}, impacted baseline {:.4} %, rung {:?}, matched {}",
        first.id,
        first.created_ms - flood_start,
        first.shown,
        first.impacted_baseline * 100.0,
        first.rung,
        first.matched,
    );
    Result {
        first_rule_after_ms: first.created_ms.saturating_sub(flood_start),
        flood_matched_share: matched as f64 / flood_features.len() as f64,
        impacted_baseline: first.impacted_baseline,
        legit_refused,
        legit_during,
    }
}

fn check(kind: Flood, flood_rps: u64, slow_origin: bool) {
    let result = run(kind, flood_rps, slow_origin);
    assert!(result.first_rule_after_ms <= 5000, "{kind:?}: rule after {} ms", result.first_rule_after_ms);
    assert!(result.flood_matched_share >= 0.99, "{kind:?}: matched {}", result.flood_matched_share);
    assert!(result.impacted_baseline <= 0.001, "{kind:?}: impact {}", result.impacted_baseline);
    assert!(
        result.legit_refused * 1000 <= result.legit_during,
        "{kind:?}: {} of {} legitimate requests refused",
        result.legit_refused,
        result.legit_during
    );
}

#[test]
fn get_flood_with_random_queries_and_one_bot() {
    check(Flood::RandomQueryOneBot, 800, false);
}

#[test]
fn distributed_flood_with_browser_agents_and_one_header_order() {
    check(Flood::DistributedOneHeaderOrder, 1500, false);
}

#[test]
fn deferred_mining_makes_the_same_rule_as_mining_in_the_request() {
    let inline = run_mining(Flood::LoginPost, 400, false, false);
    let deferred = run_mining(Flood::LoginPost, 400, false, true);
    assert_eq!(deferred.first_rule_after_ms, inline.first_rule_after_ms);
    assert_eq!(deferred.impacted_baseline, inline.impacted_baseline);
    assert_eq!(deferred.flood_matched_share, inline.flood_matched_share);
    assert_eq!(deferred.legit_refused, inline.legit_refused);
}

#[test]
fn login_post_flood() {
    check(Flood::LoginPost, 400, false);
}

#[test]
fn cache_busting_flood_on_a_slow_origin_under_the_rate_limit() {
    // 60 flood requests a second beside 40-50 legitimate ones stays under the rate trigger
    // (max(3 x baseline, 100)); the origin's latency is what trips it.
    check(Flood::CacheBusting, 60, true);
}

#[test]
fn the_ladder_escalates_and_the_rule_expires_after_the_flood() {
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 300;
    config.ladder.hold_secs = 5;
    let mut engine = FloodEngine::new(config);
    let mut rng = Rng(42);
    let fingerprints = ClientFingerprints::default();
    let start: u64 = 1_796_000_000_000;
    let mut verdicts = Vec::new();
    for second in 0..520u64 {
        let base = start + second * 1000;
        let flooding = (400..430).contains(&second);
        for i in 0..(40 + if flooding { 600 } else { 0 }) {
            let is_flood = flooding && i >= 40;
            let req =
                if is_flood { flood_request(Flood::RandomQueryOneBot, &mut rng) } else { legit(&mut rng) };
            let now = base + rng.below(1000);
            let outcome = engine.check("web", None, &view(&req, &fingerprints), req.client, now);
            if is_flood {
                verdicts.push((second, outcome.verdict));
            }
        }
        engine.tick(base + 1000);
    }
    let kinds: Vec<&str> = engine.take_events().iter().map(|e| e.event).collect();
    assert!(kinds.contains(&"rule_created") && kinds.contains(&"escalated"), "{kinds:?}");
    assert!(verdicts.iter().any(|(_, v)| *v == FloodVerdict::Block), "reached block");
    assert!(verdicts.iter().any(|(_, v)| matches!(v, FloodVerdict::Throttle { .. })));
    assert_eq!(kinds.last(), Some(&"expired"), "{kinds:?}");
    assert_eq!(engine.active_rules().count(), 0);
    assert!(engine.recent_rules().count() >= 1);
}

#[test]
fn a_flood_starting_late_in_a_calm_second_stays_out_of_the_baseline_sample() {
    // A small sample (under 1,000: a rule may match none of it), and the flood's first 60
    // requests in the last 100 ms of a second that stays under the trigger.
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 30;
    config.mine.min_baseline_samples = 150;
    let mut engine = FloodEngine::new(config);
    let mut rng = Rng(7);
    let fingerprints = ClientFingerprints::default();
    let start: u64 = 1_796_000_000_000;
    let flood_second = 40;
    let mut flood_features = Vec::new();
    for second in 0..flood_second + 6 {
        let base = start + second * 1000;
        let mut arrivals: Vec<(u64, bool)> = (0..20).map(|_| (base + rng.below(1000), false)).collect();
        if second == flood_second - 1 {
            arrivals.extend((0..60).map(|_| (base + 900 + rng.below(100), true)));
        } else if second >= flood_second {
            arrivals.extend((0..600).map(|_| (base + rng.below(1000), true)));
        }
        arrivals.sort_unstable();
        for (now_ms, is_flood) in arrivals {
            let req =
                if is_flood { flood_request(Flood::RandomQueryOneBot, &mut rng) } else { legit(&mut rng) };
            let features = view(&req, &fingerprints);
            if is_flood {
                flood_features.push(features);
            }
            engine.check("web", None, &features, req.client, now_ms);
        }
        engine.tick(base + 1000);
    }
    let samples = &engine.samples()["web"];
    assert!(samples.len() >= 150, "{} samples", samples.len());
    let bot = flood_features[0].get(super::features::Attr::UserAgent);
    assert!(
        samples.iter().all(|f| f.get(super::features::Attr::UserAgent) != bot),
        "flood requests in the baseline sample: {} of {}; events {:?}",
        samples.iter().filter(|f| f.get(super::features::Attr::UserAgent) == bot).count(),
        samples.len(),
        engine.take_events()
    );
    let events = engine.take_events();
    assert!(events.iter().any(|e| e.event == "rule_created"), "{events:?}");
}

/// Drive `defense` (the driver, with its data directory) through `seconds` of traffic from
/// `from_ms`: `legit_rps` browsers and, when `flood` is set, `flood_rps` of it. The flood's
/// verdicts, in order.
fn drive(
    defense: &super::FloodDefense,
    rng: &mut Rng,
    from_ms: u64,
    seconds: u64,
    flood: Option<(Flood, u64)>,
) -> Vec<FloodVerdict> {
    use std::time::{Duration, UNIX_EPOCH};
    let fingerprints = ClientFingerprints::default();
    let mut verdicts = Vec::new();
    for second in 0..seconds {
        let base = from_ms + second * 1000;
        let mut arrivals: Vec<(u64, bool)> = (0..40).map(|_| (base + rng.below(1000), false)).collect();
        if let Some((_, rps)) = flood {
            arrivals.extend((0..rps).map(|_| (base + rng.below(1000), true)));
        }
        arrivals.sort_unstable();
        for (now_ms, is_flood) in arrivals {
            let req = match flood {
                Some((kind, _)) if is_flood => flood_request(kind, rng),
                _ => legit(rng),
            };
            let now = UNIX_EPOCH + Duration::from_millis(now_ms);
            let verdict = defense.check("web", None, &request_view(&req, &fingerprints), now);
            // The miner's thread would take a queued job within milliseconds.
            defense.mine_queued();
            if is_flood {
                verdicts.push(verdict);
            }
        }
        defense.tick(UNIX_EPOCH + Duration::from_millis(base + 1000));
    }
    verdicts
}

#[test]
fn a_restart_mid_flood_keeps_the_rule() {
    use std::time::{Duration, UNIX_EPOCH};
    let dir = tempfile::tempdir().unwrap();
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 300;
    config.data_dir = Some(dir.path().to_owned());
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    let start: u64 = 1_796_000_000_000;
    let mut rng = Rng(11);
    let defense = super::FloodDefense::new_at(config.clone(), &[], at(start));
    drive(&defense, &mut rng, start, 400, None);
    let flood = Some((Flood::RandomQueryOneBot, 800));
    drive(&defense, &mut rng, start + 400_000, 8, flood);
    let stopped_ms = start + 408_000;
    let before = defense.rules(at(stopped_ms));
    assert_eq!(before.active.len(), 1, "{before:?}");
    let rule = before.active[0].clone();
    assert!(rule.rung > super::Rung::RateLimit, "escalated during the flood: {:?}", rule.rung);
    defense.save().unwrap();
    drop(defense);

    // Back 2 s later, the flood still on: the same rule, same rung, refusing from the first
    // request, no new rule mined.
    let again = super::FloodDefense::new_at(config, &[], at(stopped_ms + 2000));
    let restored = again.rules(at(stopped_ms + 2000));
    assert_eq!(restored.active.len(), 1);
    let kept = &restored.active[0];
    assert_eq!((kept.id, kept.rung, &kept.signature), (rule.id, rule.rung, &rule.signature));
    assert_eq!(kept.restored_ms, Some(stopped_ms + 2000));
    let verdicts = drive(&again, &mut rng, stopped_ms + 2000, 3, flood);
    let passed = verdicts.iter().filter(|v| **v == FloodVerdict::Pass).count();
    assert!(
        passed * 100 <= verdicts.len(),
        "{passed} of {} flood requests passed after the restart",
        verdicts.len()
    );
    let after = again.rules(at(stopped_ms + 5000));
    assert_eq!(after.rules_made, 0, "no new rule needed: {after:?}");
    assert!(after.active[0].matched > rule.matched, "its match count goes on");
    // `rampart shield rules` reads the file: it shows the rule, restored.
    let file = super::persist::read_rules(dir.path()).unwrap().unwrap();
    assert_eq!(file.active[0].restored_ms, Some(stopped_ms + 2000));

    // Down past its holds (three rungs x 60 s of quiet), it comes back as a recent rule only.
    let late = super::FloodDefense::new_at(
        FloodConfig { data_dir: Some(dir.path().to_owned()), ..FloodConfig::default() },
        &[],
        at(stopped_ms + 600_000),
    );
    let late_rules = late.rules(at(stopped_ms + 600_000));
    assert!(late_rules.active.is_empty(), "{late_rules:?}");
    assert!(late_rules.recent.iter().any(|r| r.id == rule.id && r.expired_ms.is_some()));
}

#[test]
fn a_mixed_flood_gets_a_rule_per_family_legit_traffic_untouched() {
    let mut config = FloodConfig::default();
    config.learn.warmup_secs = 300;
    let mut engine = FloodEngine::new(config);
    let mut rng = Rng(0x5eed);
    let fingerprints = ClientFingerprints::default();
    let start_ms: u64 = 1_796_000_000_000;
    let (warm_secs, flood_secs, flood_rps) = (420, 12, 1000);
    let flood_start = start_ms + warm_secs * 1000;
    let mut flood = Vec::new();
    let (mut legit_refused, mut legit_during) = (0, 0);
    for second in 0..warm_secs + flood_secs {
        let base = start_ms + second * 1000;
        let flooding = base >= flood_start;
        let mut arrivals: Vec<(u64, bool)> =
            (0..40 + rng.below(10)).map(|_| (base + rng.below(1000), false)).collect();
        if flooding {
            arrivals.extend((0..flood_rps).map(|_| (base + rng.below(1000), true)));
        }
        arrivals.sort_unstable();
        for (now_ms, is_flood) in arrivals {
            let req = if is_flood { flood_request(Flood::TwoFamilies, &mut rng) } else { legit(&mut rng) };
            let features = view(&req, &fingerprints);
            let outcome = engine.check("web", None, &features, req.client, now_ms);
            if let Some((id, true)) = outcome.rule {
                engine.show(id, &labels(&request_view(&req, &fingerprints)));
            }
            if is_flood {
                flood.push((req.method, now_ms, features));
            } else if flooding {
                legit_during += 1;
                legit_refused += usize::from(outcome.verdict != FloodVerdict::Pass);
            }
        }
        engine.tick(base + 1000);
    }
    let mut rules: Vec<_> = engine.active_rules().chain(engine.recent_rules()).cloned().collect();
    rules.sort_by_key(|r| r.id);
    for rule in &rules {
        eprintln!(
            "rule {} after {} ms: {:?}, impacted baseline {:.4} %, matched {}; {}",
            rule.id,
            rule.created_ms - flood_start,
            rule.shown,
            rule.impacted_baseline * 100.0,
            rule.matched,
            rule.why
        );
    }
    assert!(rules.len() >= 2, "one rule per family: {rules:?}");
    assert!(rules.len() <= 4, "bounded per route");
    assert!(rules.iter().all(|r| r.impacted_baseline <= 0.001));
    let family_share = |method: &str, rule: &super::Rule| {
        let family: Vec<_> = flood.iter().filter(|(m, _, _)| *m == method).collect();
        family.iter().filter(|(_, _, f)| rule.signature.matches(f)).count() as f64 / family.len() as f64
    };
    let (first, second) = (&rules[0], &rules[1]);
    assert!(family_share("GET", first) >= 0.99, "the first rule covers the bot");
    assert!(family_share("POST", second) >= 0.99, "the second covers what the first left");
    assert!(
        second.created_ms - flood_start <= 5000,
        "second rule after {} ms",
        second.created_ms - flood_start
    );
    assert!(second.why.contains("no rule matched"), "{}", second.why);
    // Once the second rule is in force, all but a sliver of the flood is matched.
    let after: Vec<_> = flood.iter().filter(|(_, t, _)| *t > second.created_ms).collect();
    let unmatched = after.iter().filter(|(_, _, f)| !rules.iter().any(|r| r.signature.matches(f))).count();
    assert!(unmatched * 100 <= after.len(), "{unmatched} of {} flood requests unmatched", after.len());
    assert!(
        legit_refused * 1000 <= legit_during,
        "{legit_refused} of {legit_during} legitimate requests refused"
    );
}
