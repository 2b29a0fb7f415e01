//! WebSocket upgrades through the shield: the handshake reaches the origin with only the
//! upgrade's own hop-by-hop headers, the 101 comes back, bytes flow both ways, and a tunnel
//! idle past `idle_timeout_secs` is closed.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_shield::Reason;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that switches every request to an echo tunnel, saying in `x-saw` which
/// hop-by-hop headers reached it.
async fn echo_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: at most 16 connections.
        for _ in 0..16 {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = service_fn(|mut request: Request<hyper::body::Incoming>| async move {
                    let saw: Vec<String> = ["connection", "upgrade", "x-hop", "keep-alive"]
                        .iter()
                        .filter_map(|h| {
                            request.headers().get(*h).map(|v| format!("{h}={}", v.to_str().unwrap_or("?")))
                        })
                        .collect();
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let mut io = TokioIo::new(upgraded);
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let response = Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header("connection", "upgrade, x-origin-hop")
                        .header("x-origin-hop", "secret")
                        .header("upgrade", "websocket")
                        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                        .header("x-saw", saw.join("; "))
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    address
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "closed before the end of the head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled_and_closed_when_idle() {
    websocket_through(true).await;
}

#[tokio::test]
async fn websocket_upgrades_work_on_an_http1_only_listener_too() {
    websocket_through(false).await;
}

/// A WebSocket session through a listener that also takes h2c, or HTTP/1 only.
async fn websocket_through(h2c: bool) {
    let origin = echo_origin().await;
    let mut config =
        rampart_shield::Config::quick("127.0.0.1:0".parse().unwrap(), &format!("http://{origin}")).unwrap();
    config.hardening.idle_timeout_secs = 1.0;
    config.listeners[0].h2c = h2c;
    let shield = shield(config).await;
    let mut stream = TcpStream::connect(shield.address).await.unwrap();
    stream
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: www.example\r\nConnection: keep-alive, Upgrade, X-Hop\r\nX-Hop: secret\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    assert!(!head.contains("x-origin-hop"), "the origin's hop-by-hop header came through: {head}");
    // The origin saw the upgrade and nothing else hop-by-hop.
    let saw = head.lines().find(|l| l.starts_with("x-saw:")).unwrap();
    assert!(saw.contains("connection=upgrade") && saw.contains("upgrade=websocket"), "{saw}");
    assert!(!saw.contains("x-hop") && !saw.contains("keep-alive"), "{saw}");
    // Bytes both ways, several times.
    for round in 0..5 {
        let message = format!("frame {round}");
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo)).await.unwrap().unwrap();
        assert_eq!(echo, message.as_bytes());
    }
    assert_eq!(shield.metrics.open.get(), 1, "a tunnel counts as its open connection");
    // Idle: the tunnel is closed after about a second without a byte.
    let quiet = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    let closed_after = quiet.elapsed();
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
        "{closed_after:?}"
    );
    assert!(shield.metrics.rejections(Reason::Idle) >= 1);
    // The connection kept its slot while the tunnel lasted, and gave it back with it.
    let gone = Instant::now();
    while shield.metrics.open.get() > 0 {
        assert!(gone.elapsed() < Duration::from_secs(3), "the tunnel's connection is still counted open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shield.shutdown().await;
}
