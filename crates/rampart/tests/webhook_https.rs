//! The daemon's webhook end to end over https: a TLS receiver on 127.0.0.1 with a certificate
//! from a CA made here (rcgen), trusted through `[outputs] webhook_ca_file`; the daemon is
//! fed an sFlow UDP flood on loopback and must POST the onset with the configured
//! `Authorization` header and a signature the receiver verifies on its own (HMAC-SHA256 of
//! `<timestamp>.<body>`). Also: a secret file readable by others stops the start, naming it.
#![cfg(unix)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
const TARGET: [u8; 4] = [198, 51, 100, 10];
const SAMPLING: u32 = 100;
const KEY: &[u8] = b"e2e signing key";

const CONFIG: &str = r#"
protected = ["198.51.100.0/24"]

[thresholds]
pps = 4000
udp_pps = 2000

[lifecycle]
onset_secs = 1
quiet_secs = 3
"#;

/// A CA (PEM) and an acceptor with a certificate it signed for 127.0.0.1.
fn tls_material() -> (String, TlsAcceptor) {
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
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
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

/// An https receiver on its own thread and runtime: answers 200, sends (headers, body) on.
fn https_receiver(acceptor: TlsAcceptor) -> (SocketAddr, Receiver<(HeaderMap, Vec<u8>)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await?.to_bytes().to_vec();
                            let _ = tx.send((headers, body));
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (addr, rx)
}

fn private_file(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn start(config: &Path, data: &Path) -> (Child, Receiver<String>, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "off", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rampart run");
    let (stdout, stderr) = support::line_channels(&mut child);
    let sflow = loop {
        let line = stderr.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
        if let Some(addr) = line.strip_prefix("listening for sFlow on ") {
            break addr.parse().unwrap();
        }
    };
    (child, stdout, sflow)
}

/// One sFlow v5 datagram of `samples` raw-header samples of 200-byte UDP packets to TARGET.
fn sflow_datagram(sequence: u32, samples: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
    for v in [5, 1] {
        put(&mut out, v);
    }
    out.extend_from_slice(&[192, 0, 2, 1]);
    for v in [0, sequence, sequence * 100, samples] {
        put(&mut out, v);
    }
    for i in 0..samples {
        let n = (sequence - 1) * samples + i + 1;
        let mut frame =
            vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0, 0x45, 0, 0, 200, 0, 1, 0, 0, 64, 17, 0, 0];
        frame.extend_from_slice(&[203, 0, 113, (n % 250) as u8 + 1]);
        frame.extend_from_slice(&TARGET);
        frame.extend_from_slice(&(40_000 + (n % 1000) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 80, 0, 180, 0, 0]);
        frame.resize(64, 0);
        let record_len = 16 + frame.len() as u32;
        for v in
            [1, 32 + 8 + record_len, n, 1, SAMPLING, n * SAMPLING, 0, 1, 2, 1, 1, record_len, 1, 218, 4, 64]
        {
            put(&mut out, v);
        }
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn posts_the_onset_over_https_with_authorization_and_a_valid_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, acceptor) = tls_material();
    let (addr, requests) = https_receiver(acceptor);
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    private_file(&dir.path().join("authorization"), "Bearer e2e-token\n");
    private_file(&dir.path().join("secret"), std::str::from_utf8(KEY).unwrap());
    let config = dir.path().join("rampart.toml");
    let d = dir.path().display();
    std::fs::write(
        &config,
        format!(
            "{CONFIG}\n[outputs]\nwebhook = \"https://{addr}/hook\"\nwebhook_ca_file = \"{d}/ca.pem\"\n\
             webhook_authorization_file = \"{d}/authorization\"\nwebhook_secret_file = \"{d}/secret\"\n"
        ),
    )
    .unwrap();
    let (mut child, stdout, sflow) = start(&config, &dir.path().join("data"));

    // The flood (5,000 UDP pps to TARGET) until the onset is printed, at most 15 s.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sequence = 1;
    let mut onset = None;
    while onset.is_none() && Instant::now() < deadline {
        socket.send_to(&sflow_datagram(sequence, 5), sflow).unwrap();
        sequence += 1;
        if let Ok(line) = stdout.recv_timeout(Duration::from_millis(100)) {
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == "onset" {
                onset = Some(event);
            }
        }
    }
    let onset = onset.expect("an onset within 15 s");
    let (headers, body) = requests.recv_timeout(Duration::from_secs(20)).expect("a webhook request");
    let _ = child.kill();
    let _ = child.wait();

    let posted: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(posted["event"], "onset");
    support::assert_valid("event", &posted);
    assert_eq!(posted["attack"]["id"], onset["attack"]["id"]);
    assert_eq!(headers["authorization"], "Bearer e2e-token");
    // The receiver's check, written from the documented scheme.
    let timestamp = headers["x-rampart-timestamp"].to_str().unwrap();
    let signature = headers["x-rampart-signature"].to_str().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(timestamp.parse::<u64>().unwrap().abs_diff(now) < 300, "{timestamp}");
    let mac = |body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let tag: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={tag}")
    };
    assert_eq!(signature, mac(&body));
    // A tampered body does not verify.
    let mut tampered = body.clone();
    tampered[body.len() / 2] ^= 1;
    assert_ne!(signature, mac(&tampered));
}

#[test]
fn a_secret_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "key").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{CONFIG}\n[outputs]\nwebhook = \"https://127.0.0.1:9/hook\"\nwebhook_secret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "off", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&secret.display().to_string()) && stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains("webhook_secret_file"), "{stderr}");
}
