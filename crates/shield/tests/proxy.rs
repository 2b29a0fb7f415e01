//! The proxy on loopback: HTTP/1.1 and HTTP/2 (h2c and TLS with ALPN), streaming bodies,
//! forwarding headers, hop-by-hop removal, rate limits, bans, segmentation, graceful drain.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_shield::{Config, Reason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_request(address: std::net::SocketAddr, text: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_forwarding_headers_and_hop_by_hop() {
    let origin = origin().await;
    let shield = shield(quick(&origin)).await;
    let answer = raw_request(
        shield.address,
        "GET /headers HTTP/1.1\r\nHost: www.example\r\nConnection: close, X-Private\r\nX-Private: secret\r\n\
         Keep-Alive: 5\r\nX-Forwarded-For: 203.0.113.66\r\nForwarded: for=203.0.113.66\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-forwarded-for: 127.0.0.1\n"), "spoofed XFF must be replaced: {answer}");
    assert!(answer.contains("forwarded: for=127.0.0.1;proto=http;host=\"www.example\"\n"), "{answer}");
    assert!(answer.contains("host: www.example\n"), "{answer}");
    assert!(answer.contains("x-forwarded-proto: http\n"), "{answer}");
    assert!(
        !answer.contains("x-private"),
        "a header named in Connection must not reach the origin: {answer}"
    );
    assert!(!answer.contains("keep-alive"), "{answer}");
    // Dot segments and encodings that could reach another path are refused, not forwarded.
    let before = origin.requests.load(Ordering::Relaxed);
    for target in ["/a/../headers", "/a/%2e%2e/headers", "/a/%252e%252e/x", "/public;/../x"] {
        let answer = raw_request(
            shield.address,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    assert_eq!(origin.requests.load(Ordering::Relaxed), before);
    assert_eq!(shield.metrics.rejections(Reason::SuspiciousPath), 4);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_over_http1_and_h2c() {
    let origin = origin().await;
    let shield = shield(quick(&origin)).await;
    // A body sent in chunks over time arrives whole (a fast enough client is never cut).
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for i in 0..5u8 {
            let _ = tx.send(Bytes::from(vec![b'a' + i; 10_000])).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let body = ChannelBody(rx);
    let stream = TcpStream::connect(shield.address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::post("/echo").header("host", "www.example").body(body).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), 50_000);
    assert_eq!(echoed[49_999], b'e');

    // HTTP/2 with prior knowledge; a 1 MiB response streams back.
    let stream = TcpStream::connect(shield.address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = Request::get("http://www.example/big").body(Full::new(Bytes::new())).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes().len(), 1 << 20);
    let request =
        Request::post("http://www.example/echo").body(Full::new(Bytes::from_static(b"over h2"))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "over h2");
    shield.shutdown().await;
}

/// A request body fed from a channel, chunk by chunk.
#[derive(Debug)]
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sni_and_alpn_h2() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["www.example", "other.example"] {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert_path = dir.path().join(format!("{name}.pem"));
        let key_path = dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        files.push((name, cert_path, key_path, cert.cert.der().clone()));
    }
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[listener.certificate]]\ncert = {:?}\nkey = {:?}\n\
         [[listener.certificate]]\ncert = {:?}\nkey = {:?}\nnames = [\"other.example\"]\n\
         [upstream.web]\nservers = [\"http://{}\"]\n[[route]]\nupstream = \"web\"\n",
        files[0].1, files[0].2, files[1].1, files[1].2, origin.address
    );
    let shield = shield(Config::from_toml(&text).unwrap()).await;
    for (name, _, _, der) in &files {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(shield.address).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        // Verification against this name's certificate only: the SNI picked the right one.
        let tls = connector.connect(server_name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("https://{name}/headers")).body(Full::new(Bytes::new())).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        let text =
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(text.contains("x-forwarded-proto: https\n"), "{text}");
        assert!(text.contains(&format!("host: {name}\n")), "{text}");
    }
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_bans_apply_to_open_connections() {
    let origin = origin().await;
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.web]\nservers = [\"http://{}\"]\n\
         [[route]]\nupstream = \"web\"\n\
         [[route]]\nname = \"login\"\npath_prefix = \"/login\"\nupstream = \"web\"\nrate = {{ per_second = 0.2, burst = 2 }}\n\
         [rate_limit]\nper_address = {{ per_second = 1, burst = 20 }}\n",
        origin.address
    );
    let shield = shield(Config::from_toml(&text).unwrap()).await;
    let stream = TcpStream::connect(shield.address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        sender.ready().await.unwrap();
        let response = sender
            .send_request(Request::get("/login").header("host", "x").body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=5).contains(&retry), "{retry}");
        }
        let _ = response.into_body().collect().await;
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(shield.metrics.rejections(Reason::RateRoute), 1);
    // The address limit: 20 at once, then 429.
    let mut refused = 0;
    for _ in 0..30 {
        sender.ready().await.unwrap();
        let response = sender
            .send_request(Request::get("/").header("host", "x").body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        refused += usize::from(response.status() == StatusCode::TOO_MANY_REQUESTS);
        let _ = response.into_body().collect().await;
    }
    assert!((10..=13).contains(&refused), "{refused}");
    assert!(shield.metrics.rejections(Reason::RateAddress) >= 10);
    // A ban reaches the connection already open at its next request.
    shield.bans.set(vec!["127.0.0.0/8".parse().unwrap()]);
    sender.ready().await.unwrap();
    let response = sender
        .send_request(Request::get("/").header("host", "x").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(shield.metrics.rejections(Reason::Banned), 1);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_answer_only_internal_networks_or_listeners() {
    let origin = origin().await;
    let source = source_address(1);
    let text = format!(
        "internal_networks = [\"{source}/32\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\ninternal = true\n\
         [upstream.web]\nservers = [\"http://{0}\"]\n\
         [upstream.admin]\nservers = [\"http://{0}\"]\ninternal = true\n\
         [[route]]\nupstream = \"web\"\n\
         [[route]]\nname = \"admin\"\nhost = \"intranet.example\"\nupstream = \"admin\"\ninternal = true\n",
        origin.address
    );
    let shield = shield(Config::from_toml(&text).unwrap()).await;
    let public = shield.addresses[0];
    let internal_listener = shield.addresses[1];
    let ask = |address: std::net::SocketAddr, host: &'static str| async move {
        raw_request(address, &format!("GET /headers HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
            .await
    };
    assert!(ask(public, "intranet.example").await.starts_with("HTTP/1.1 404"));
    assert!(ask(public, "www.example").await.starts_with("HTTP/1.1 200"));
    assert!(ask(internal_listener, "intranet.example").await.starts_with("HTTP/1.1 200"));
    // From an internal network on the public listener.
    let client = client_from(source);
    let (status, _) = probe(&client, &format!("http://{public}/headers")).await;
    assert_eq!(status, 200);
    let request = Request::get(format!("http://{public}/headers"))
        .header("host", "intranet.example")
        .body(Empty::new())
        .unwrap();
    assert_eq!(client.request(request).await.unwrap().status(), StatusCode::OK);
    assert_eq!(shield.metrics.rejections(Reason::InternalOnly), 1);
    shield.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_request_in_progress() {
    let origin = origin().await;
    let shield = shield(quick(&origin)).await;
    let stream = TcpStream::connect(shield.address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let request = Request::post("/echo").header("host", "x").body(ChannelBody(rx)).unwrap();
    let pending = tokio::spawn(async move { sender.send_request(request).await });
    tx.send(Bytes::from_static(b"first half, ")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let address = shield.address;
    let drained = tokio::spawn(shield.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Not accepting any more...
    assert!(TcpStream::connect(address).await.is_err());
    // ...but the request in flight completes.
    tx.send(Bytes::from_static(b"second half")).await.unwrap();
    drop(tx);
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "first half, second half");
    tokio::time::timeout(Duration::from_secs(5), drained).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_routes_without_dropping_connections() {
    let first = origin_with("first origin").await;
    let second = origin_with("second origin").await;
    let config = |origin: &Origin| {
        Config::from_toml(&format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.web]\nservers = [\"http://{}\"]\n[[route]]\nupstream = \"web\"\n",
            origin.address
        ))
        .unwrap()
    };
    let bans = Arc::new(rampart_shield::BanTable::new());
    let running = rampart_shield::Shield::bind(config(&first), bans).await.unwrap();
    let address = running.local_addrs()[0];
    let reloader = running.reloader();
    let task = tokio::spawn(running.run(std::future::pending(), Duration::from_secs(1)));
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut ask = async move || {
        sender.ready().await.unwrap();
        let response = sender
            .send_request(Request::get("/").header("host", "x").body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    };
    assert_eq!(ask().await, "first origin");
    // A listener change needs a restart and is refused; the running configuration stays.
    let mut moved = config(&second);
    moved.listeners[0].address = "127.0.0.1:1".parse().unwrap();
    assert!(reloader.reload(moved).is_err());
    assert_eq!(ask().await, "first origin");
    reloader.reload(config(&second)).unwrap();
    // The same kept-alive connection, the new route.
    assert_eq!(ask().await, "second origin");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_gives_the_client_address_from_trusted_balancers_only() {
    let origin = origin().await;
    let text = |trusted: &str| {
        format!(
            "trusted_proxies = [{trusted}]\n[[listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
             [upstream.web]\nservers = [\"http://{}\"]\n[[route]]\nupstream = \"web\"\n",
            origin.address
        )
    };
    let shield = shield(Config::from_toml(&text("\"127.0.0.0/8\"")).unwrap()).await;
    let request = "GET /headers HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n";
    let answer =
        raw_request(shield.address, &format!("PROXY TCP4 198.51.100.7 192.0.2.1 5555 80\r\n{request}")).await;
    assert!(answer.contains("x-forwarded-for: 198.51.100.7\n"), "{answer}");
    let mut v2 = rampart_shield::proxy_protocol::encode_v2(
        "[2001:db8::7]:5555".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    );
    v2.extend_from_slice(request.as_bytes());
    let mut stream = TcpStream::connect(shield.address).await.unwrap();
    stream.write_all(&v2).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("x-forwarded-for: 2001:db8::7\n"), "{answer}");
    // The header's client is the one banned and capped.
    shield.bans.set(vec!["198.51.100.0/24".parse().unwrap()]);
    let answer =
        raw_request(shield.address, &format!("PROXY TCP4 198.51.100.7 192.0.2.1 5555 80\r\n{request}")).await;
    assert_eq!(answer, "");
    // No header: closed without an answer.
    assert_eq!(raw_request(shield.address, request).await, "");
    assert_eq!(shield.metrics.rejections(Reason::ProxyProtocol), 1);
    shield.shutdown().await;
    // From a peer that is not a trusted balancer, a header is refused.
    let shield = shield_untrusted(&text("")).await;
    let answer =
        raw_request(shield.address, &format!("PROXY TCP4 198.51.100.7 192.0.2.1 5555 80\r\n{request}")).await;
    assert_eq!(answer, "");
    assert_eq!(shield.metrics.rejections(Reason::ProxyProtocol), 1);
    shield.shutdown().await;
}

async fn shield_untrusted(text: &str) -> Running {
    shield(Config::from_toml(text).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listener_counts_requests_rejections_and_latency() {
    let origin = origin().await;
    let mut config = quick(&origin);
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    let shield = shield(config).await;
    let client = client_from(source_address(9));
    assert_eq!(probe(&client, &format!("http://{}/", shield.address)).await.0, 200);
    let answer =
        raw_request(shield.address, "GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"));
    let metrics = raw_request(
        shield.metrics_addr.unwrap(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("rampart_shield_requests_total{route=\"default\",class=\"2xx\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rampart_shield_rejected_total{reason=\"SuspiciousPath\"} 1"), "{metrics}");
    assert!(
        metrics.contains("rampart_shield_upstream_latency_seconds_count{route=\"default\"} 1"),
        "{metrics}"
    );
    shield.shutdown().await;
}
