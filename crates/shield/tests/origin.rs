//! Origin protection through the real shield on loopback: a slow origin that counts its
//! concurrent requests stays within the limit however many clients come; holders of a
//! clearance (earned from the real challenge ladder) and of a session are served first; a
//! failing, overloaded or stopped origin is answered for with stale copies or the static
//! snapshot; the threat level and failed health checks bring stale copies sooner.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rampart_shield::{Config, Reason};
use support::*;
use tokio::net::TcpListener;

/// An origin that takes `delay` per request, counts requests in progress and their peak, and
/// fails (500) while `failing` is set. `/page` is cacheable, `/private` sets a cookie.
struct SlowOrigin {
    address: SocketAddr,
    peak: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Counting(Arc<AtomicUsize>);

impl Drop for Counting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn slow_origin(delay: Duration) -> SlowOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (c, p, s, f) = (Arc::clone(&current), Arc::clone(&peak), Arc::clone(&served), Arc::clone(&failing));
    let task = tokio::spawn(async move {
        // Connections live in the accept task's set: stopping the origin closes them all.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            while connections.try_join_next().is_some() {}
            let (c, p, s, f) = (Arc::clone(&c), Arc::clone(&p), Arc::clone(&s), Arc::clone(&f));
            connections.spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (c, p, s, f) = (Arc::clone(&c), Arc::clone(&p), Arc::clone(&s), Arc::clone(&f));
                    async move {
                        let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                        let _counting = Counting(Arc::clone(&c));
                        p.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        s.fetch_add(1, Ordering::SeqCst);
                        let mut response =
                            Response::new(Full::new(Bytes::from(format!("page {}", request.uri().path()))));
                        if f.load(Ordering::SeqCst) {
                            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            *response.body_mut() = Full::new(Bytes::from_static(b"broken"));
                        } else if request.uri().path() == "/private" {
                            response.headers_mut().insert("set-cookie", "id=1".parse().unwrap());
                        } else {
                            response.headers_mut().insert("cache-control", "max-age=1".parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    SlowOrigin { address, peak, served, failing, task }
}

fn config(origin: SocketAddr, extra_origin: &str, extra: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        {extra}
        [[listener]]
        address = "127.0.0.1:0"

        [upstream.web]
        servers = ["{origin}"]

        [upstream.web.origin]
        {extra_origin}

        [[route]]
        upstream = "web"

        [rate_limit]
        disabled = true
        "#
    ))
    .unwrap()
}

/// A kept-alive client with room for many parallel connections.
fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http()
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: String,
    cookie: Option<&str>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response =
        tokio::time::timeout(Duration::from_secs(30), client.request(request.body(Empty::new()).unwrap()))
            .await
            .expect("answer within 30 s")
            .expect("an answer");
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_never_push_the_origin_past_its_limit() {
    let origin = slow_origin(Duration::from_millis(40)).await;
    let shield = shield(config(
        origin.address,
        "max_concurrency = 6\nmin_concurrency = 1\ninitial_concurrency = 6\nqueue_size = 1000\nqueue_timeout_secs = 30",
        "",
    ))
    .await;
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let client = client.clone();
        let url = format!("http://{}/item/{i}", shield.address);
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                statuses.push(get(&client, url.clone(), None).await.0);
            }
            statuses
        });
    }
    let mut ok = 0;
    while let Some(statuses) = tasks.join_next().await {
        ok += statuses.unwrap().iter().filter(|s| **s == StatusCode::OK).count();
    }
    assert_eq!(ok, 180, "every request is served, waiting its turn");
    let peak = origin.peak.load(Ordering::SeqCst);
    assert!(peak <= 6, "the origin saw {peak} requests at once, above the limit of 6");
    assert!(peak >= 2, "the queue let requests through in parallel ({peak})");
    assert_eq!(origin.served.load(Ordering::SeqCst), 180);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_holders_are_served_before_anonymous_waiters() {
    // 300 ms a request: the session request arrives while the first anonymous one is at the
    // origin, with slack for a loaded machine.
    let origin = slow_origin(Duration::from_millis(300)).await;
    let shield = shield(config(
        origin.address,
        "max_concurrency = 1\nmin_concurrency = 1\nqueue_size = 100\nqueue_timeout_secs = 30\nsession_cookies = [\"sessionid\"]",
        "",
    ))
    .await;
    let client = client();
    let started = Instant::now();
    let mut anonymous = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        let url = format!("http://{}/anon/{i}", shield.address);
        anonymous.spawn(async move {
            get(&client, url, Some("theme=dark")).await;
            started.elapsed()
        });
    }
    // Let the anonymous requests take the origin and queue up, then a logged-in user comes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, _, _) =
        get(&client, format!("http://{}/account", shield.address), Some("a=1; sessionid=xyz")).await;
    let session_done = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    let mut after = 0;
    while let Some(done) = anonymous.join_next().await {
        after += usize::from(done.unwrap() > session_done);
    }
    // The anonymous request at the origin when the session came (and, on a slow machine, one
    // more) finishes first; the others waited behind the session.
    assert!(after >= 6, "only {after} of 8 anonymous requests finished after the session one");
    assert_eq!(origin.peak.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_answer_for_a_failing_overloaded_or_stopped_origin() {
    let origin = slow_origin(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "snapshot home").unwrap();
    std::fs::create_dir(dir.path().join("news")).unwrap();
    std::fs::write(dir.path().join("news/index.html"), "snapshot news").unwrap();
    let threat_file = dir.path().join("threat-level");
    let extra = format!(
        "[origin]\nthreat_file = {:?}\n[snapshot]\ndir = {:?}\nat_level = \"high\"\n",
        threat_file.display().to_string(),
        dir.path().display().to_string()
    );
    let shield = shield(config(
        origin.address,
        "max_concurrency = 1\nmin_concurrency = 1\nqueue_size = 0\nmax_stale_secs = 600",
        &extra,
    ))
    .await;
    let client = client();
    let url = |path: &str| format!("http://{}{path}", shield.address);
    let (status, headers, body) = get(&client, url("/page"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"page /page"[..]));
    assert!(headers.get("x-rampart-stale").is_none());
    let _ = get(&client, url("/private"), None).await;

    // Failing: the stale copy, marked, with its age; the uncacheable page gets the error.
    origin.failing.store(true, Ordering::SeqCst);
    let (status, headers, body) = get(&client, url("/page"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"page /page"[..]));
    assert_eq!(headers["x-rampart-stale"], "origin-error");
    assert!(headers.contains_key("age") && headers.contains_key("warning"));
    let (status, _, _) = get(&client, url("/private"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "a page that set a cookie is never kept");
    origin.failing.store(false, Ordering::SeqCst);

    // Overloaded (the only slot taken, no queue): stale copy, or 503 with Retry-After.
    let busy = {
        let client = client.clone();
        let url = url("/slow");
        tokio::spawn(async move { get(&client, url, None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, headers, _) = get(&client, url("/page"), None).await;
    assert_eq!(
        (status, headers.get("x-rampart-stale").map(|v| v.to_str().unwrap())),
        (StatusCode::OK, Some("overloaded"))
    );
    let (status, headers, _) = get(&client, url("/uncached"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(busy.await.unwrap().0, StatusCode::OK);
    assert!(shield.metrics.rejections(Reason::OriginOverloaded) >= 1);

    // The threat file at "high" puts the snapshot in front of a running origin.
    std::fs::write(&threat_file, "high\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, headers, body) = get(&client, url("/"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"snapshot home"[..]));
    assert_eq!(headers["x-rampart-snapshot"], "operator");
    std::fs::write(&threat_file, "normal\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, headers, body) = get(&client, url("/"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"page /"[..]));
    assert!(headers.get("x-rampart-snapshot").is_none());

    // Stopped: stale copy; the snapshot for what was never cached.
    drop(origin);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, headers, _) = get(&client, url("/page"), None).await;
    assert_eq!((status, headers["x-rampart-stale"].to_str().unwrap()), (StatusCode::OK, "origin-error"));
    let (status, headers, body) = get(&client, url("/news/"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"snapshot news"[..]));
    assert_eq!(headers["x-rampart-snapshot"], "origin-error");
    let (status, _, _) = get(&client, url("/nowhere"), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_threat_level_and_failed_health_checks_bring_stale_copies_sooner() {
    let origin = slow_origin(Duration::from_millis(300)).await;
    let config = Config::from_toml(&format!(
        r#"
        [origin]
        threat_level = "elevated"

        [[listener]]
        address = "127.0.0.1:0"

        [upstream.web]
        servers = ["{}"]
        health_check = {{ path = "/health", interval_secs = 0.2, timeout_secs = 2, fall = 1, rise = 1 }}

        [upstream.web.origin]
        max_concurrency = 1
        min_concurrency = 1
        queue_size = 10
        queue_timeout_secs = 30

        [[route]]
        upstream = "web"

        [rate_limit]
        disabled = true
        "#,
        origin.address
    ))
    .unwrap();
    let shield = shield(config).await;
    let client = client();
    let url = |path: &str| format!("http://{}{path}", shield.address);
    let (status, headers, _) = get(&client, url("/page"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-rampart-stale").is_none());

    // Elevated: a request that would have to queue gets the stale copy at once (at normal it
    // would wait its turn; the other tests show it).
    let busy = {
        let client = client.clone();
        let url = url("/slow");
        tokio::spawn(async move { get(&client, url, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, headers, body) = get(&client, url("/page"), None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"page /page"[..]));
    assert_eq!(headers["x-rampart-stale"], "overloaded");
    // Without a copy it still waits for the origin rather than failing.
    let (status, headers, _) = get(&client, url("/other"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-rampart-stale").is_none());
    assert_eq!(busy.await.unwrap().0, StatusCode::OK);

    // The health check fails: the pool has no server, the copy answers as "origin-down".
    origin.failing.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, headers, _) = get(&client, url("/page"), None).await;
        if headers.get("x-rampart-stale").is_some_and(|v| v == "origin-down") {
            assert_eq!(status, StatusCode::OK);
            break;
        }
        assert!(Instant::now() < deadline, "the failed health check never took the server out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = get(&client, url("/never-cached"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// `name=value` of every cookie `headers` set.
fn set_cookies(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearance_holders_are_served_before_anonymous_waiters() {
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
    let origin = slow_origin(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml(&format!(
        r#"
        [[listener]]
        address = "127.0.0.1:0"

        [upstream.web]
        servers = ["{}"]

        [upstream.web.origin]
        max_concurrency = 1
        min_concurrency = 1
        queue_size = 100
        queue_timeout_secs = 30

        [[route]]
        upstream = "web"

        [[route]]
        name = "guarded"
        path_prefix = "/guarded"
        upstream = "web"
        challenge = "always"

        [challenge]
        data_dir = "{}"

        [rate_limit]
        disabled = true
        "#,
        origin.address,
        dir.path().display()
    ))
    .unwrap();
    let shield = shield(config).await;
    let address = shield.address;
    let client = client();
    let send = |target: String, cookies: Vec<String>| {
        let client = client.clone();
        async move {
            let mut request = Request::get(format!("http://{address}{target}")).header("user-agent", UA);
            if !cookies.is_empty() {
                request = request.header("cookie", cookies.join("; "));
            }
            let response = client.request(request.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
            let (parts, body) = response.into_parts();
            (
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned(),
            )
        }
    };
    // Earn a clearance the way a browser without JavaScript does: the cookie check's page,
    // its meta refresh with the probe cookie, the clearance in the answer.
    let (_, headers, body) = send("/guarded/start".into(), vec![]).await;
    let start = body.find("url=").expect("a meta refresh") + 4;
    let refresh = body[start..start + body[start..].find('"').unwrap()].replace("&amp;", "&");
    let (_, headers, _) = send(refresh, set_cookies(&headers)).await;
    let clearance = set_cookies(&headers);
    assert!(clearance.iter().any(|c| c.starts_with("__rampart_clearance=")), "{clearance:?}");
    assert_eq!(origin.served.load(Ordering::SeqCst), 0, "the ladder answered, not the origin");

    let started = Instant::now();
    let mut anonymous = tokio::task::JoinSet::new();
    for i in 0..8 {
        let request = send(format!("/anon/{i}"), vec![]);
        anonymous.spawn(async move {
            assert_eq!(request.await.0, StatusCode::OK);
            started.elapsed()
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, _, _) = send("/account".into(), clearance).await;
    let cleared_done = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    let mut after = 0;
    while let Some(done) = anonymous.join_next().await {
        after += usize::from(done.unwrap() > cleared_done);
    }
    assert!(after >= 6, "only {after} of 8 anonymous requests finished after the cleared one");
    assert_eq!(origin.peak.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shields_own_503s_are_not_origin_errors_but_the_origins_500s_are() {
    let origin = slow_origin(Duration::from_millis(20)).await;
    let shield = shield(config(
        origin.address,
        "max_concurrency = 2\nmin_concurrency = 1\ninitial_concurrency = 2\nqueue_size = 0\ncache = false",
        "",
    ))
    .await;
    let flood = shield.flood.clone().expect("the flood defense is on by default");
    let client = client();
    // 60 at once against room for 2: the shield refuses most with its own 503.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (client, url) = (client.clone(), format!("http://{}/item/{i}", shield.address));
        tasks.spawn(async move { get(&client, url, None).await.0 });
    }
    let mut refused = 0;
    while let Some(status) = tasks.join_next().await {
        refused += usize::from(status.unwrap() == StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(refused >= 40, "only {refused} of 60 refused by admission");
    let health = flood.route_health("route0", std::time::SystemTime::now());
    assert!(!health.origin_unhealthy, "{refused} admission refusals counted as origin errors");
    // The origin's own 500s do count: the same shield sees the origin unhealthy.
    origin.failing.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut unhealthy = false;
    while !unhealthy && started.elapsed() < Duration::from_secs(5) {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..2 {
            let (client, url) = (client.clone(), format!("http://{}/fail/{i}", shield.address));
            batch.spawn(async move { get(&client, url, None).await.0 });
        }
        while let Some(status) = batch.join_next().await {
            assert_eq!(status.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        unhealthy = flood.route_health("route0", std::time::SystemTime::now()).origin_unhealthy;
    }
    assert!(unhealthy, "the origin's 500s made no difference");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_request_gives_back_its_connection_and_its_origin_place() {
    use tokio::io::AsyncWriteExt;
    // One place at the origin, and a short wait for it: a place kept by a client that left
    // would turn every later request into a refusal or a stale copy.
    let origin = slow_origin(Duration::from_millis(300)).await;
    let shield = shield(config(
        origin.address,
        "max_concurrency = 1\nmin_concurrency = 1\nqueue_size = 10\nqueue_timeout_secs = 2",
        "",
    ))
    .await;
    for i in 0..3 {
        let mut gone = tokio::net::TcpStream::connect(shield.address).await.unwrap();
        gone.write_all(format!("GET /gone/{i} HTTP/1.1\r\nhost: www.example\r\n\r\n").as_bytes())
            .await
            .unwrap();
        // At the origin by now; then the client closes without waiting for the answer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(gone);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while shield.metrics.open.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shield.metrics.open.get(), 0, "connections whose client left are closed");
    let (status, headers, body) = get(&client(), format!("http://{}/next", shield.address), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "page /next", "the origin answered: {headers:?}");
}
