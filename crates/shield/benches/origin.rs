//! The per-request cost of origin protection and fingerprints, on one core: JA4 of a rustls
//! ClientHello, the HTTP/2 fingerprint of a preface, one admission through an upstream's limit
//! and queue (uncontended), and one stale-cache store and lookup.
//!
//! `cargo bench -p rampart-shield --bench origin`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rampart_shield::fingerprint::{http2, tls};
use rampart_shield::origin::cache::{CacheSettings, StaleCache, Stored, key, storable};
use rampart_shield::origin::{LimitSettings, OriginGuard, Priority};
use tokio_rustls::rustls;

fn rustls_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("www.example".to_string()).unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut bytes = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut bytes).unwrap();
    }
    bytes
}

fn h2_preface() -> Vec<u8> {
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    let mut bytes = http2::PREFACE.to_vec();
    let settings: Vec<u8> = [(1u16, 65536u32), (2, 0), (4, 6291456), (6, 262144)]
        .iter()
        .flat_map(|(i, v)| [&i.to_be_bytes()[..], &v.to_be_bytes()[..]].concat())
        .collect();
    bytes.extend(frame(0x4, 0, 0, &settings));
    bytes.extend(frame(0x8, 0, 0, &15663105u32.to_be_bytes()));
    let mut block = vec![0x82, 0x41, 11];
    block.extend_from_slice(b"www.example");
    block.extend_from_slice(&[0x87, 0x84]);
    bytes.extend(frame(0x1, 0x5, 1, &block));
    bytes
}

fn rate(label: &str, n: u64, elapsed: Duration) {
    let per_second = n as f64 / elapsed.as_secs_f64();
    println!("{label:<44} {:>12.0} /s  {:>8.0} ns each", per_second, 1e9 / per_second);
}

fn main() {
    let n = 200_000u64;
    let hello = rustls_hello();
    let started = Instant::now();
    for _ in 0..n {
        black_box(tls::parse(black_box(&hello)).unwrap().unwrap().ja4());
    }
    rate("JA4 of a rustls ClientHello (parse + hash)", n, started.elapsed());

    let preface = h2_preface();
    let started = Instant::now();
    for _ in 0..n {
        black_box(http2::fingerprint(black_box(&preface)).unwrap());
    }
    rate("HTTP/2 fingerprint of a preface", n, started.elapsed());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let guard = OriginGuard::new(LimitSettings::default(), 1024);
    let started = runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            let mut permit = guard.acquire(Priority::Anonymous, Duration::from_secs(5)).await.unwrap();
            permit.sent();
            permit.answered(false);
            drop(permit);
        }
        started
    });
    rate("admission: acquire, latency sample, release", n, started.elapsed());

    let mut cache = StaleCache::new(CacheSettings::default());
    let request = HeaderMap::new();
    let mut response = HeaderMap::new();
    response.insert("cache-control", "max-age=60".parse().unwrap());
    response.insert("content-type", "text/html".parse().unwrap());
    let body = Bytes::from(vec![b'x'; 4096]);
    let started = Instant::now();
    for i in 0..n {
        let k = key(Some("www.example"), &format!("/page/{}", i % 10_000));
        let policy = storable(&request, StatusCode::OK, &response).unwrap();
        let stored = Stored { status: StatusCode::OK, headers: response.clone(), body: body.clone(), policy };
        cache.insert(k.clone(), stored, Duration::from_secs(i));
        black_box(cache.stale(&k, &request, Duration::from_secs(i), Duration::MAX));
    }
    rate("stale cache: store a 4 KiB answer and look it up", n, started.elapsed());
}
