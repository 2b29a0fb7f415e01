//! Fingerprints on loopback: a rustls ClientHello's JA4 checked against Wireshark's dissection
//! of the same bytes, and the fingerprints of a real TLS + HTTP/2 client reaching the origin
//! through the shield (while a client cannot choose its own).

mod support;

use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_shield::Config;
use rampart_shield::fingerprint::tls;
use sha2::{Digest, Sha256};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The records rustls sends first for `name`.
fn captured_hello(name: &str) -> Vec<u8> {
    let config = Arc::new(client_config(rustls::RootCertStore::empty()));
    let server_name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut connection = rustls::ClientConnection::new(config, server_name).unwrap();
    let mut bytes = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut bytes).unwrap();
    }
    bytes
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn numbers(field: &str) -> Vec<u16> {
    field
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix("0x") {
            Some(hex) => u16::from_str_radix(hex, 16).unwrap(),
            None => s.parse().unwrap(),
        })
        .collect()
}

#[test]
fn ja4_of_a_rustls_hello_matches_wiresharks_dissection() {
    if !have_peer("tshark") || !have_peer("text2pcap") {
        return;
    }
    let hello = captured_hello("www.example");
    let ours = tls::parse(&hello).unwrap().unwrap().ja4();

    // The same bytes as the payload of a TCP segment to port 443, dissected by tshark.
    let dir = tempfile::tempdir().unwrap();
    let dump: String = hello
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:06x} {}\n", i * 16, hex.join(" "))
        })
        .collect();
    std::fs::write(dir.path().join("hello.txt"), dump).unwrap();
    let pcap = dir.path().join("hello.pcap");
    let status = Command::new("text2pcap")
        .args(["-q", "-T", "40000,443"])
        .arg(dir.path().join("hello.txt"))
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(status.success());
    let output = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", "tcp.port==443,tls", "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,"])
        .args(["-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.extension.type"])
        .args(["-e", "tls.handshake.sig_hash_alg", "-e", "tls.handshake.extensions.supported_version"])
        .args(["-e", "tls.handshake.extensions_alpn_str", "-e", "tls.handshake.extensions_server_name"])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
    assert_eq!(fields.len(), 6, "{text:?}");
    let mut ciphers: Vec<u16> = numbers(fields[0]).into_iter().filter(|c| !grease(*c)).collect();
    let extensions: Vec<u16> = numbers(fields[1]).into_iter().filter(|e| !grease(*e)).collect();
    let algorithms = numbers(fields[2]);
    let version = numbers(fields[3]).into_iter().filter(|v| !grease(*v)).max().unwrap();
    let alpn = fields[4].split(',').next().unwrap();
    assert_eq!(version, 0x0304);
    assert_eq!(fields[5], "www.example");
    ciphers.sort_unstable();
    let mut sorted: Vec<u16> = extensions.iter().copied().filter(|e| *e != 0 && *e != 16).collect();
    sorted.sort_unstable();
    let hex = |list: &[u16]| list.iter().map(|v| format!("{v:04x}")).collect::<Vec<_>>().join(",");
    let expected = format!(
        "t13d{:02}{:02}{}{}_{}_{}",
        ciphers.len(),
        extensions.len(),
        &alpn[..1],
        &alpn[alpn.len() - 1..],
        short_hash(&hex(&ciphers)),
        short_hash(&format!("{}_{}", hex(&sorted), hex(&algorithms)))
    );
    eprintln!("rustls (ring) ClientHello: {ours}");
    assert_eq!(ours, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_reach_the_origin_and_cannot_be_forged() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["www.example".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[listener.certificate]]\ncert = {:?}\nkey = {:?}\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [upstream.web]\nservers = [\"http://{}\"]\n[[route]]\nupstream = \"web\"\n",
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        origin.address
    );
    let shield = shield(Config::from_toml(&text).unwrap()).await;
    let expected_ja4 = tls::parse(&captured_hello("www.example")).unwrap().unwrap().ja4();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(roots)));
    let tcp = TcpStream::connect(shield.addresses[0]).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("www.example".to_string()).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    for _ in 0..2 {
        let request = Request::get("https://www.example/headers")
            .header("x-rampart-ja4", "forged")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text =
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(text.contains(&format!("x-rampart-ja4: {expected_ja4}\n")), "{text}");
        assert!(!text.contains("forged"), "{text}");
        let h2 = text
            .lines()
            .find_map(|l| l.strip_prefix("x-rampart-h2-fingerprint: "))
            .unwrap_or_else(|| panic!("no HTTP/2 fingerprint in {text}"));
        let parts: Vec<&str> = h2.split('|').collect();
        assert_eq!(parts.len(), 4, "{h2}");
        // hyper's client always turns server push off (SETTINGS_ENABLE_PUSH = 0).
        assert!(parts[0].split(';').any(|s| s == "2:0"), "{h2}");
        let mut pseudo: Vec<&str> = parts[3].split(',').collect();
        pseudo.sort_unstable();
        assert_eq!(pseudo, ["a", "m", "p", "s"], "{h2}");
    }

    // Plaintext HTTP/1.1: no fingerprint, and the client's own header is dropped.
    let plain = shield.addresses[1];
    let mut stream = TcpStream::connect(plain).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /headers HTTP/1.1\r\nHost: www.example\r\nX-Rampart-JA4: forged\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(!out.contains("x-rampart-ja4") && !out.contains("forged"), "{out}");
}
