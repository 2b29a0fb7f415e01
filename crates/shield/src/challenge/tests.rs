//! The ladder driven in simulated time: requests in, responses out.

use super::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

fn ladder(settings: ChallengeSettings) -> Ladder {
    Ladder::with_parts(settings, &[[42u8; 32]], Arc::new(NoResolver), Arc::new(Metrics::default())).unwrap()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn request(target: &str, cookies: &[String]) -> Parts {
    let mut builder = Request::get(target).header(header::USER_AGENT, UA);
    for cookie in cookies {
        builder = builder.header(header::COOKIE, cookie.as_str());
    }
    builder.body(()).unwrap().into_parts().0
}

fn client(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `name=value` pairs of the response's Set-Cookie headers.
fn set_cookies(response: &Response<Full<Bytes>>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='))
        .collect()
}

fn body(response: Response<Full<Bytes>>) -> String {
    let bytes = futures_lite_block(response.into_body().collect()).unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn futures_lite_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

/// The `url=` of the page's meta refresh, HTML-unescaped.
fn refresh_target(html: &str) -> String {
    let start = html.find("url=").unwrap() + 4;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

fn attribute(html: &str, name: &str) -> String {
    let start = html.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

#[test]
fn the_cookie_check_issues_a_clearance_and_returns_to_the_page() {
    let ladder = ladder(ChallengeSettings::default());
    let me = client("198.51.100.7");
    let first = request("/news?id=3", &[]);
    assert!(!ladder.is_cleared(&first, me, at(1000)));
    let page = ladder.challenge(&first, me, at(1000));
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let probe = set_cookies(&page);
    assert_eq!(probe.len(), 1);
    assert!(probe[0].starts_with("__rampart_probe="));
    let set_cookie = page.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && !set_cookie.contains("Secure")
    );
    let html = body(page);
    let next = refresh_target(&html);
    assert!(next.starts_with("/.rampart/challenge/verify?m=cookie&t=1&r=%2Fnews%3Fid%3D3"), "{next}");

    let verify = request(&next, &probe);
    let answer = ladder.challenge(&verify, me, at(1001));
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[header::LOCATION], "/news?id=3");
    let clearance = set_cookies(&answer);
    assert_eq!(clearance.len(), 1);
    assert!(clearance[0].starts_with("__rampart_clearance="));

    let back = request("/news?id=3", &clearance);
    assert!(ladder.is_cleared(&back, me, at(1002)));
    // Same /24, same browser: still cleared. Another /24, another browser, or later: not.
    assert!(ladder.is_cleared(&back, client("198.51.100.250"), at(1002)));
    assert!(!ladder.is_cleared(&back, client("198.51.101.7"), at(1002)));
    let mut other_ua = back.clone();
    other_ua.headers.insert(header::USER_AGENT, "curl/8".parse().unwrap());
    assert!(!ladder.is_cleared(&other_ua, me, at(1002)));
    assert!(!ladder.is_cleared(&back, me, at(1000 + 3600 + 1)));
    assert_eq!(ladder.metrics.challenge_count(ChallengeOutcome::PassedCookie), 1);
}

#[test]
fn a_client_without_cookies_gets_bounded_tries_then_the_reason() {
    let ladder = ladder(ChallengeSettings::default());
    let me = client("192.0.2.1");
    let mut target = refresh_target(&body(ladder.challenge(&request("/", &[]), me, at(50))));
    for attempt in 2..=3 {
        let page = ladder.challenge(&request(&target, &[]), me, at(51));
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        target = refresh_target(&body(page));
        assert!(target.contains(&format!("t={attempt}")), "{target}");
    }
    let last = ladder.challenge(&request(&target, &[]), me, at(52));
    assert_eq!(last.status(), StatusCode::FORBIDDEN);
    let html = body(last);
    assert!(html.contains("did not keep this site&#39;s cookie"), "{html}");
    assert!(!html.contains("http-equiv"), "no more refreshing");
}

#[test]
fn proof_of_work_under_pressure_once_per_challenge() {
    let ladder =
        ladder(ChallengeSettings { min_difficulty: 4, max_difficulty: 10, ..ChallengeSettings::default() });
    ladder.set_pressure(2);
    assert_eq!(ladder.difficulty(), 8);
    let me = client("2001:db8:5:1::9");
    let page = ladder.challenge(&request("/login", &[]), me, at(500));
    assert!(set_cookies(&page).is_empty());
    let html = body(page);
    assert!(html.contains("<script>") && html.contains("<noscript>"));
    let challenge = attribute(&html, "data-challenge");
    let verify = attribute(&html, "data-verify");
    assert_eq!(attribute(&html, "data-difficulty"), "8");
    let counter = pow::solve(&challenge, 8);
    let solved = format!("{verify}&n={counter}");
    // A phone moving inside its /48 keeps going.
    let answer = ladder.challenge(&request(&solved, &[]), client("2001:db8:5:ffff::1"), at(510));
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[header::LOCATION], "/login");
    let again = ladder.challenge(&request(&solved, &[]), me, at(511));
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE, "a replay gets a fresh challenge");
    assert_eq!(ladder.metrics.challenge_count(ChallengeOutcome::Replayed), 1);
    let wrong = format!("{verify}&n={}", counter + 1);
    let wrong_answer = ladder.challenge(&request(&wrong, &[]), me, at(512));
    assert_ne!(wrong_answer.status(), StatusCode::SEE_OTHER);
    let late = body(ladder.challenge(&request("/login", &[]), me, at(500)));
    let late_challenge = attribute(&late, "data-challenge");
    let late_solved = format!("{}&n={}", attribute(&late, "data-verify"), pow::solve(&late_challenge, 8));
    let expired = ladder.challenge(&request(&late_solved, &[]), me, at(500 + 301));
    assert_ne!(expired.status(), StatusCode::SEE_OTHER);
    assert_eq!(ladder.metrics.challenge_count(ChallengeOutcome::BadChallenge), 1);
}

#[test]
fn farming_the_cookie_check_moves_a_prefix_to_work() {
    let ladder = ladder(ChallengeSettings { farm_limit: 3, ..ChallengeSettings::default() });
    let me = client("203.0.113.5");
    for _ in 0..3 {
        let page = ladder.challenge(&request("/", &[]), me, at(100));
        let probe = set_cookies(&page);
        let next = refresh_target(&body(page));
        assert_eq!(ladder.challenge(&request(&next, &probe), me, at(100)).status(), StatusCode::SEE_OTHER);
    }
    let html = body(ladder.challenge(&request("/", &[]), me, at(101)));
    assert!(html.contains("data-challenge"), "the fourth gets the proof of work");
    let elsewhere = body(ladder.challenge(&request("/", &[]), client("192.0.2.5"), at(101)));
    assert!(elsewhere.contains("http-equiv=\"refresh\""));
}

#[test]
fn tls_cookies_are_secure_and_allowed_networks_pass() {
    let ladder = ladder(ChallengeSettings {
        allow_networks: vec!["192.0.2.0/28".parse().unwrap()],
        ..ChallengeSettings::default()
    });
    let mut parts = request("/", &[]);
    parts.extensions.insert(OverTls);
    let page = ladder.challenge(&parts, client("198.51.100.1"), at(1));
    assert!(page.headers()[header::SET_COOKIE].to_str().unwrap().ends_with("; Secure"));
    assert!(ladder.is_cleared(&parts, client("192.0.2.3"), at(1)));
    assert!(!ladder.is_cleared(&parts, client("192.0.2.30"), at(1)));
}

#[test]
fn the_page_speaks_the_configured_language() {
    let ladder = ladder(ChallengeSettings { lang: "de".into(), ..ChallengeSettings::default() });
    let html = body(ladder.challenge(&request("/", &[]), client("192.0.2.1"), at(1)));
    assert!(html.contains("<html lang=\"de\">") && html.contains("Einen Moment bitte"), "{html}");
}

#[test]
fn no_open_redirect() {
    for (target, expected) in [
        ("/a/b?c=d", "/a/b?c=d"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("/.rampart/challenge/verify?m=cookie", "/"),
        ("", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        assert_eq!(safe_return(target), expected, "{target:?}");
    }
    let ladder = ladder(ChallengeSettings::default());
    let me = client("192.0.2.1");
    let page = ladder.challenge(&request("/", &[]), me, at(1));
    let probe = set_cookies(&page);
    let evil = "/.rampart/challenge/verify?m=cookie&t=1&r=%2F%2Fevil.example%2F";
    let answer = ladder.challenge(&request(evil, &probe), me, at(2));
    assert_eq!(answer.headers()[header::LOCATION], "/");
}

proptest! {
    #[test]
    fn random_verify_queries_never_clear_or_panic(query in "[a-z0-9=&%._~-]{0,200}", cookie in "[ -~]{0,120}") {
        let ladder = ladder(ChallengeSettings::default());
        let target = format!("{VERIFY_PATH}?{query}");
        let Ok(request) = Request::get(target.as_str()).header(header::COOKIE, cookie.as_str()).body(()) else {
            return Ok(());
        };
        let parts = request.into_parts().0;
        let answer = ladder.challenge(&parts, client("192.0.2.1"), at(10));
        prop_assert_ne!(answer.status(), StatusCode::SEE_OTHER);
        prop_assert!(!ladder.is_cleared(&parts, client("192.0.2.1"), at(10)));
        let location = answer.headers().get(header::LOCATION);
        prop_assert!(location.is_none());
    }

    #[test]
    fn safe_return_only_gives_local_paths(target in "\\PC{0,60}") {
        let out = safe_return(&target);
        prop_assert!(out.starts_with('/'));
        prop_assert!(!out.starts_with("//") && !out.starts_with("/\\"));
    }
}
