//! The challenge ladder through the running shield on loopback: a route with
//! `challenge = "always"`, clients from their own 127.x addresses, the no-JavaScript cookie
//! check, the proof of work solved in Rust and by the page's own script (node), forged,
//! expired and foreign cookies, and good bots confirmed by a real DNS server (dnsmasq).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use rampart_shield::Config;
use rampart_shield::challenge::bots::confirm;
use rampart_shield::challenge::dns::HickoryResolver;
use rampart_shield::challenge::token::BindingRule;
use rampart_shield::challenge::{ChallengeSettings, Ladder, NoResolver, keys, pow};
use rampart_shield::metrics::ChallengeOutcome;
use support::*;

const UA: &str = "Mozilla/5.0 (Android 15; Mobile; rv:140.0) Gecko/140.0 Firefox/140.0";

/// A loopback address in the /24 of `source_address(n)`, host part `host`.
fn neighbour(n: u8, host: u8) -> IpAddr {
    let IpAddr::V4(base) = source_address(n) else { unreachable!() };
    let [a, b, c, _] = base.octets();
    IpAddr::V4(Ipv4Addr::new(a, b, c, host))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    /// `name=value` of every Set-Cookie that sets something.
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .filter(|c| !c.ends_with('='))
            .collect()
    }

    fn attribute(&self, name: &str) -> String {
        let start = self.body.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].replace("&amp;", "&")
    }

    fn refresh(&self) -> String {
        let start = self.body.find("url=").expect("a meta refresh") + 4;
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].replace("&amp;", "&")
    }
}

async fn get(from: IpAddr, shield: SocketAddr, target: &str, cookies: &[String], ua: &str) -> Answer {
    let client = client_from(from);
    let mut request = Request::get(format!("http://{shield}{target}")).header(header::USER_AGENT, ua);
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookies.join("; "));
    }
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(request.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("answer in time")
    .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body =
        String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

/// GET through a balancer at `from` that names `client` in X-Forwarded-For.
async fn get_via(from: IpAddr, client: IpAddr, shield: SocketAddr, target: &str, ua: &str) -> Answer {
    let connection = client_from(from);
    let request = Request::get(format!("http://{shield}{target}"))
        .header(header::USER_AGENT, ua)
        .header("x-forwarded-for", client.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = connection.request(request).await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body =
        String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

fn config(origin: &Origin, data_dir: &std::path::Path, extra: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        [[listener]]
        address = "127.0.0.1:0"

        [upstream.web]
        servers = ["{origin}"]

        [[route]]
        upstream = "web"

        [[route]]
        name = "guarded"
        path_prefix = "/guarded"
        upstream = "web"
        challenge = "always"

        [challenge]
        data_dir = "{dir}"
        min_difficulty = 8
        max_difficulty = 12
        {extra}
        "#,
        origin = origin.address,
        dir = data_dir.display(),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_check_proof_of_work_and_bad_cookies_through_the_shield() {
    let origin = origin_with("the origin's page").await;
    let dir = tempfile::tempdir().unwrap();
    let shield = shield(config(&origin, dir.path(), "")).await;
    let me = neighbour(1, 10);

    // An unguarded route goes straight through.
    assert_eq!(get(me, shield.address, "/open", &[], UA).await.body, "the origin's page");

    // The no-JavaScript path: page, refresh with the probe cookie, 303 with the clearance.
    let page = get(me, shield.address, "/guarded/a?x=1", &[], UA).await;
    assert_eq!(page.status, 503);
    assert!(page.body.contains("aria-live") && page.body.contains("<html lang=\"en\">"));
    let before = origin.requests.load(std::sync::atomic::Ordering::Relaxed);
    let verified = get(me, shield.address, &page.refresh(), &page.cookies(), UA).await;
    assert_eq!(verified.status, 303);
    assert_eq!(verified.headers[header::LOCATION], "/guarded/a?x=1");
    let clearance = verified.cookies();
    assert_eq!(
        origin.requests.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "the check never reaches the origin"
    );
    let through = get(me, shield.address, "/guarded/a?x=1", &clearance, UA).await;
    assert_eq!((through.status, through.body.as_str()), (200, "the origin's page"));

    // The same /24 and browser keeps the clearance; another /24 or another browser does not.
    let phone_moved = neighbour(1, 77);
    assert_eq!(get(phone_moved, shield.address, "/guarded/b", &clearance, UA).await.status, 200);
    assert_eq!(get(neighbour(2, 10), shield.address, "/guarded/b", &clearance, UA).await.status, 503);
    assert_eq!(get(me, shield.address, "/guarded/b", &clearance, "curl/8.0").await.status, 503);

    // A forged cookie (another key) and an expired one (the right key) do not pass.
    let binding = BindingRule::default().bind(me, UA.as_bytes());
    let now = rampart_shield::challenge::unix_secs(SystemTime::now());
    let metrics = Arc::new(rampart_shield::Metrics::default());
    let forger =
        Ladder::with_parts(ChallengeSettings::default(), &[[1u8; 32]], Arc::new(NoResolver), metrics.clone())
            .unwrap();
    let forged = format!("__rampart_clearance={}", forger.clearance(&binding, now));
    assert_eq!(get(me, shield.address, "/guarded/c", &[forged], UA).await.status, 503);
    let real_keys = keys::load_or_create(dir.path()).unwrap();
    let insider =
        Ladder::with_parts(ChallengeSettings::default(), &real_keys, Arc::new(NoResolver), metrics).unwrap();
    let fresh = format!("__rampart_clearance={}", insider.clearance(&binding, now));
    assert_eq!(
        get(me, shield.address, "/guarded/c", &[fresh], UA).await.status,
        200,
        "the key file is the shield's"
    );
    let expired = format!("__rampart_clearance={}", insider.clearance(&binding, now - 3601));
    assert_eq!(get(me, shield.address, "/guarded/c", &[expired], UA).await.status, 503);
    let garbage = "__rampart_clearance=AAAA; __rampart_clearance=%00%ff".to_owned();
    assert_eq!(get(me, shield.address, "/guarded/c", &[garbage], UA).await.status, 503);

    // Under pressure: the proof of work, solved here in Rust.
    let other = neighbour(3, 20);
    let page = get(other, shield.address, "/guarded/login", &[], UA).await;
    assert!(page.body.contains("http-equiv"), "calm: the cookie check");
    let metrics = shield.metrics.clone();
    set_pressure(&shield, 3).await;
    let page = get(other, shield.address, "/guarded/login", &[], UA).await;
    assert_eq!(page.status, 503);
    let challenge = page.attribute("data-challenge");
    let difficulty: u8 = page.attribute("data-difficulty").parse().unwrap();
    assert_eq!(difficulty, 12);
    let counter = pow::solve(&challenge, difficulty);
    let solved = format!("{}&n={counter}", page.attribute("data-verify"));
    let answer = get(other, shield.address, &solved, &[], UA).await;
    assert_eq!(answer.status, 303);
    assert_eq!(answer.headers[header::LOCATION], "/guarded/login");
    assert_eq!(get(other, shield.address, "/guarded/login", &answer.cookies(), UA).await.status, 200);
    assert_eq!(get(other, shield.address, &solved, &[], UA).await.status, 503, "no replay");
    assert_eq!(metrics.challenge_count(ChallengeOutcome::PassedWork), 1);
    assert_eq!(metrics.challenge_count(ChallengeOutcome::Replayed), 1);
    assert!(metrics.encode().contains("rampart_shield_challenges_total{outcome=\"PassedCookie\"} 1"));
    shield.shutdown().await;
}

/// Drive the running shield's pressure the way the flood defense will: through the
/// challenger the proxy holds.
async fn set_pressure(shield: &Running, level: u8) {
    shield.challenger.as_ref().expect("a challenger").set_pressure(level);
}

/// dnsmasq answering only from its command line (no upstream, no hosts file), on a free
/// loopback port; stopped by PID when dropped.
struct Dnsmasq {
    address: SocketAddr,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

fn dnsmasq(hosts: &[(&str, IpAddr)], ptrs: &[(IpAddr, &str)]) -> Option<Dnsmasq> {
    if !have_peer("dnsmasq") {
        return None;
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new("dnsmasq");
    command.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--conf-file=/dev/null",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--log-facility=-",
    ]);
    command.arg(format!("--port={port}"));
    command.arg(format!("--pid-file={}", dir.path().join("pid").display()));
    if rustix_is_root() {
        command.arg("--user=root");
    }
    for (name, address) in hosts {
        command.arg(format!("--host-record={name},{address}"));
    }
    for (address, name) in ptrs {
        let IpAddr::V4(v4) = address else { unreachable!() };
        let [a, b, c, d] = v4.octets();
        command.arg(format!("--ptr-record={d}.{c}.{b}.{a}.in-addr.arpa,{name}"));
    }
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let child = ChildGuard(command.spawn().expect("dnsmasq starts"));
    Some(Dnsmasq { address: SocketAddr::from(([127, 0, 0, 1], port)), _child: child, _dir: dir })
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Wait until `server` answers (dnsmasq binds a moment after it starts).
async fn until_answering(resolver: &HickoryResolver, name: &str) {
    use rampart_shield::challenge::bots::Resolve;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while resolver.forward(name.to_owned()).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "dnsmasq never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Addresses the DNS data names (documentation range: no traffic goes there). Loopback
/// addresses cannot serve: resolvers answer 127.in-addr.arpa themselves (RFC 6761).
fn doc(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, host))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_confirmed_reverse_dns_against_a_real_server() {
    let (real, liar, outsider) = (doc(5), doc(6), doc(7));
    let Some(dns) = dnsmasq(
        &[("crawl-1.googlebot.com", real), ("crawl-2.googlebot.com", real)],
        &[(liar, "crawl-2.googlebot.com"), (outsider, "googlebot.com.evil.example")],
    ) else {
        return;
    };
    let resolver = HickoryResolver::new(&[dns.address], Duration::from_secs(2)).unwrap();
    until_answering(&resolver, "crawl-1.googlebot.com").await;
    let domains = vec!["googlebot.com".to_owned()];
    assert!(confirm(&resolver, real, &domains).await, "PTR and A agree");
    assert!(!confirm(&resolver, liar, &domains).await, "its PTR name resolves elsewhere");
    assert!(!confirm(&resolver, outsider, &domains).await, "not inside googlebot.com");
    assert!(!confirm(&resolver, doc(8), &domains).await, "no PTR at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_good_bot_passes_a_fake_one_does_not() {
    // The shield sees these as the clients' addresses: a trusted balancer on loopback names
    // them in X-Forwarded-For.
    let (bot, fake) = (doc(15), doc(16));
    let Some(dns) = dnsmasq(&[("crawl-9.googlebot.com", bot)], &[(fake, "crawl-9.googlebot.com")]) else {
        return;
    };
    let resolver = HickoryResolver::new(&[dns.address], Duration::from_secs(2)).unwrap();
    until_answering(&resolver, "crawl-9.googlebot.com").await;
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("dns_servers = [\"{}\"]", dns.address);
    let mut config = config(&origin, dir.path(), &extra);
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let shield = shield(config).await;
    let balancer = neighbour(5, 5);
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    // The first request is challenged while the lookup runs; then the bot passes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get_via(balancer, bot, shield.address, "/guarded/sitemap.xml", googlebot).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503);
        assert!(std::time::Instant::now() < deadline, "the good bot was never confirmed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A fake claiming the same name is refused, however often it asks.
    for _ in 0..20 {
        assert_eq!(
            get_via(balancer, fake, shield.address, "/guarded/sitemap.xml", googlebot).await.status,
            503
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(shield.metrics.challenge_count(ChallengeOutcome::GoodBot) >= 1);
    shield.shutdown().await;
}

#[test]
fn the_pages_script_solves_what_the_server_checks() {
    if !have_peer("node") {
        return;
    }
    use rampart_shield::challenge::page::SOLVER_JS;
    let settings = ChallengeSettings { min_difficulty: 10, ..ChallengeSettings::default() };
    let ladder = Ladder::with_parts(
        settings,
        &[[5u8; 32]],
        Arc::new(NoResolver),
        Arc::new(rampart_shield::Metrics::default()),
    )
    .unwrap();
    let client: IpAddr = "198.51.100.20".parse().unwrap();
    let binding = ladder
        .binding(&Request::get("/").header(header::USER_AGENT, UA).body(()).unwrap().into_parts().0, client);
    let now = rampart_shield::challenge::unix_secs(SystemTime::now());
    let challenge = ladder.work_challenge(&binding, now);
    let long = "x".repeat(130);
    let script = format!(
        "{SOLVER_JS}\nfunction hex(H){{return H.map(function(w){{return (w>>>0).toString(16).padStart(8,'0');}}).join('');}}\n\
         console.log(hex(sha('abc')));console.log(hex(sha('{long}')));console.log(solve('{challenge}',10,0,100000000));"
    );
    let output = std::process::Command::new("node").arg("-e").arg(&script).output().expect("node runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    use sha2::Digest;
    assert_eq!(lines[0], hex(&sha2::Sha256::digest(b"abc")));
    assert_eq!(lines[1], hex(&sha2::Sha256::digest(long.as_bytes())));
    let counter: u64 = lines[2].parse().unwrap();
    assert_eq!(counter, pow::solve(&challenge, 10), "the first counter, as the Rust solver finds it");
    assert_eq!(ladder.check_proof(&binding, &challenge, counter, now), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_clearances_and_the_key_file_outlives_the_shield() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let running = shield(config(&origin, dir.path(), "")).await;
    let me = neighbour(6, 10);
    let page = get(me, running.address, "/guarded", &[], UA).await;
    let clearance = get(me, running.address, &page.refresh(), &page.cookies(), UA).await.cookies();
    assert_eq!(get(me, running.address, "/guarded", &clearance, UA).await.status, 200);
    // Same challenge settings: the ladder (pressure, replay cache) carries over.
    running.challenger.as_ref().unwrap().set_pressure(3);
    running.reloader.reload(config(&origin, dir.path(), "")).unwrap();
    assert_eq!(get(me, running.address, "/guarded", &clearance, UA).await.status, 200);
    assert!(
        get(neighbour(6, 11), running.address, "/guarded", &[], "other")
            .await
            .body
            .contains("data-challenge"),
        "still under pressure"
    );
    // Changed settings: a new ladder, but the key file is the same, so clearances hold.
    running.reloader.reload(config(&origin, dir.path(), "lang = \"de\"")).unwrap();
    assert_eq!(get(me, running.address, "/guarded", &clearance, UA).await.status, 200);
    assert!(get(neighbour(6, 12), running.address, "/guarded", &[], UA).await.body.contains("lang=\"de\""));
    running.shutdown().await;
    // A new shield on the same data directory honours them too.
    let again = shield(config(&origin, dir.path(), "")).await;
    assert_eq!(get(me, again.address, "/guarded", &clearance, UA).await.status, 200);
    again.shutdown().await;
}
