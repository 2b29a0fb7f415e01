//! Webhook sender tests against local receivers on 127.0.0.1 (plain and TLS with a CA made
//! here by rcgen).

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;

/// One request as the receiver saw it, with the status it answered.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
}

/// A receiver answering `failures` 500s first, then 200s; every request goes on the channel.
async fn receiver(
    tls: Option<TlsAcceptor>,
    failures: usize,
) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, served, tls) = (tx.clone(), served.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (tx, served) = (tx.clone(), served.clone());
                    async move {
                        let headers = request.headers().clone();
                        let body = request.into_body().collect().await?.to_bytes().to_vec();
                        let status = if served.fetch_add(1, Ordering::SeqCst) < failures { 500 } else { 200 };
                        let _ = tx.send(Received { headers, body, status });
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(tls) => {
                        // A client that does not trust us fails the handshake: nothing to serve.
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// A CA (its PEM) and a TLS acceptor with a certificate it signed for 127.0.0.1.
fn tls_receiver_material() -> (String, TlsAcceptor) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn settings(url: &str) -> WebhookSettings {
    WebhookSettings {
        url: parse_url(url).unwrap(),
        capacity: 8,
        attempts: 5,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        ca_file: None,
        authorization: None,
        secret: None,
    }
}

/// Waits (at most 10 s) until `done` holds.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn delivers_over_https_with_authorization_and_a_verifiable_signature() {
    let (ca_pem, acceptor) = tls_receiver_material();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let (addr, mut received) = receiver(Some(acceptor), 0).await;
    let mut settings = settings(&format!("https://{addr}/hook"));
    settings.ca_file = Some(ca_file);
    settings.authorization = Some(Secret::new(b"Bearer t0ken".to_vec()));
    settings.secret = Some(Secret::new(b"shared key".to_vec()));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (queue, _task) = start(settings, stop).unwrap();
    let body = r#"{"event":"onset","attack":{"id":1}}"#;
    queue.push(body.into());
    wait_until(|| queue.stats.delivered.load(Ordering::Relaxed) == 1).await;
    assert_eq!(queue.stats.delivered.load(Ordering::Relaxed), 1);
    let request = received.recv().await.unwrap();
    assert_eq!(request.body, body.as_bytes());
    assert_eq!(request.headers["authorization"], "Bearer t0ken");
    assert_eq!(request.headers["content-type"], "application/json");
    let timestamp = request.headers[TIMESTAMP_HEADER].to_str().unwrap();
    let signature = request.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64, "{signature}");
    assert!(verify(b"shared key", timestamp, signature, &request.body, unix_now(), 300));
    // What a receiver must reject: another body, another key, a replay long after.
    assert!(!verify(
        b"shared key",
        timestamp,
        signature,
        br#"{"event":"end","attack":{"id":1}}"#,
        unix_now(),
        300
    ));
    assert!(!verify(b"other key", timestamp, signature, &request.body, unix_now(), 300));
    assert!(!verify(b"shared key", timestamp, signature, &request.body, unix_now() + 3600, 300));
    let later = (timestamp.parse::<u64>().unwrap() + 1).to_string();
    assert!(!verify(b"shared key", &later, signature, &request.body, unix_now(), 300));
}

#[tokio::test]
async fn an_untrusted_certificate_is_not_delivered_to() {
    let (_ca_pem, acceptor) = tls_receiver_material();
    let (addr, _received) = receiver(Some(acceptor), 0).await;
    let mut settings = settings(&format!("https://{addr}/hook"));
    settings.attempts = 2;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (queue, _task) = start(settings, stop).unwrap();
    queue.push("{}".into());
    wait_until(|| queue.stats.abandoned.load(Ordering::Relaxed) == 1).await;
    assert_eq!(queue.stats.abandoned.load(Ordering::Relaxed), 1);
    assert_eq!(queue.stats.failed_attempts.load(Ordering::Relaxed), 2);
    assert_eq!(queue.stats.delivered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn retries_after_500s_until_delivered() {
    let (addr, mut received) = receiver(None, 2).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (queue, _task) = start(settings(&format!("http://{addr}/hook")), stop).unwrap();
    queue.push(r#"{"event":"onset"}"#.into());
    queue.push(r#"{"event":"end"}"#.into());
    wait_until(|| queue.stats.delivered.load(Ordering::Relaxed) == 2).await;
    assert_eq!(queue.stats.delivered.load(Ordering::Relaxed), 2);
    assert_eq!(queue.stats.failed_attempts.load(Ordering::Relaxed), 2);
    assert_eq!(queue.stats.abandoned.load(Ordering::Relaxed), 0);
    let mut got = Vec::new();
    while let Ok(request) = received.try_recv() {
        got.push((request.status, String::from_utf8(request.body).unwrap()));
        // Unsigned without a key.
        assert!(!request.headers.contains_key(SIGNATURE_HEADER));
    }
    let got: Vec<(u16, &str)> = got.iter().map(|(s, b)| (*s, b.as_str())).collect();
    assert_eq!(
        got,
        [
            (500, r#"{"event":"onset"}"#),
            (500, r#"{"event":"onset"}"#),
            (200, r#"{"event":"onset"}"#),
            (200, r#"{"event":"end"}"#)
        ]
    );
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    // Nothing listens on this port once the listener is dropped: every connect fails.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = settings(&format!("http://127.0.0.1:{port}/"));
    settings.attempts = 3;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (queue, _task) = start(settings, stop).unwrap();
    queue.push("{}".into());
    wait_until(|| queue.stats.abandoned.load(Ordering::Relaxed) == 1).await;
    assert_eq!(queue.stats.abandoned.load(Ordering::Relaxed), 1);
    assert_eq!(queue.stats.failed_attempts.load(Ordering::Relaxed), 3);
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_it() {
    let queue = WebhookQueue::new(2);
    for i in 0..5 {
        queue.push(format!("{{\"n\":{i}}}"));
    }
    assert_eq!(queue.stats.dropped.load(Ordering::Relaxed), 3);
    assert_eq!(queue.stats.queued.load(Ordering::Relaxed), 2);
    assert_eq!(queue.pop().as_deref(), Some("{\"n\":3}"));
    assert_eq!(queue.pop().as_deref(), Some("{\"n\":4}"));
    assert_eq!(queue.pop(), None);
}

#[test]
fn parses_urls() {
    let url = parse_url("https://alerts.example:8443/hooks/rampart?x=1").unwrap();
    assert_eq!(
        (url.host_str(), url.port(), url.path()),
        (Some("alerts.example"), Some(8443), "/hooks/rampart")
    );
    assert_eq!(parse_url("http://[::1]:9/x").unwrap().host_str(), Some("[::1]"));
    assert_eq!(parse_url("http://alerts.example").unwrap().port_or_known_default(), Some(80));
    let error = parse_url("https://user:hunter2@h/").unwrap_err();
    assert!(!error.contains("hunter2") && error.contains("webhook_authorization_file"), "{error}");
    for bad in [
        "ftp://x/",
        "http://",
        "http://:80/",
        "http://u:p@h/",
        "http://u@h/",
        "http://h:99999/",
        "h/x",
        "file:///x",
    ] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn secret_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "Bearer abc\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_secret_file(&path, "outputs.webhook_secret_file").unwrap_err().to_string();
        assert!(error.contains("chmod 600") && error.contains(&path.display().to_string()), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let secret = read_secret_file(&path, "k").unwrap();
    assert_eq!(secret.expose(), b"Bearer abc");
    assert_eq!(format!("{secret:?}"), "Secret(10 bytes)");
    let error = read_secret_file(dir.path(), "k").unwrap_err().to_string();
    assert!(error.contains("not a regular file"), "{error}");
    std::fs::write(&path, vec![b'a'; 5000]).unwrap();
    let error = read_secret_file(&path, "k").unwrap_err().to_string();
    assert!(error.contains("5000 bytes"), "{error}");
    let error = read_secret_file(&dir.path().join("none"), "k").unwrap_err().to_string();
    assert!(error.contains("cannot read"), "{error}");
}

#[test]
fn queue_drops_the_oldest() {
    let mut queue = BoundedQueue::new(2);
    assert_eq!(queue.push(1), None);
    assert_eq!(queue.push(2), None);
    assert_eq!(queue.push(3), Some(1));
    assert_eq!((queue.pop(), queue.pop(), queue.pop()), (Some(2), Some(3), None));
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
    let delays: Vec<u128> = (1..=6).map(|r| backoff(r, base, max).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(backoff(u32::MAX, base, max), max);
}

#[test]
fn signature_matches_a_known_vector() {
    // Independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
    let signature = sign(b"key", 1_700_000_000, b"{}");
    assert_eq!(signature, "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae");
    assert!(verify(b"key", "1700000000", &signature, b"{}", 1_700_000_100, 300));
    assert!(!verify(b"key", "1700000000", "sha256=zz", b"{}", 1_700_000_000, 300));
    assert!(!verify(b"key", "1700000000", &signature.replace("sha256=", "sha1="), b"{}", 1_700_000_000, 300));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn url_parser_and_verifier_never_panic(text in ".{0,64}") {
        let _ = parse_url(&text);
        let _ = parse_url(&format!("https://{text}"));
        let _ = verify(b"k", &text, &text, text.as_bytes(), 0, 300);
    }

    #[test]
    fn queue_never_exceeds_capacity(capacity in 1usize..8, pushes in 0usize..40) {
        let mut queue = BoundedQueue::new(capacity);
        let mut dropped = 0;
        for i in 0..pushes {
            dropped += usize::from(queue.push(i).is_some());
            prop_assert!(queue.len() <= capacity);
        }
        prop_assert_eq!(dropped + queue.len(), pushes);
    }
}
