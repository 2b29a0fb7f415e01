//! `rampart shield audit URL`: probe a public listener the way an attacker looks for the
//! internal face behind it, and report every internal target that answers.
//!
//! For each internal target (a host and a path), the probes try: the internal Host directly
//! and in other spellings (port, trailing dot, upper case), the absolute-form request target
//! under the public Host, path traversal from a public path in plain, encoded, double-encoded,
//! backslash and `;` parameter forms, HTTP/1.0 without Host, and HTTP/2 with `:authority` and
//! Host disagreeing (both ways). A probe finds a leak when the answer is not a refusal (400,
//! 403, 404, 405, 414, 416, 421, 429, 431, 5xx) and, if a marker is given, contains it.
//!
//! The probe list and the judgement are pure; [`run`] sends them, one connection each.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An internal service to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its host name (the Host an internal client sends).
    pub host: String,
    /// A path it answers, starting with `/`.
    pub path: String,
}

/// How a probe is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// These bytes over HTTP/1.x, one connection.
    Http1(Vec<u8>),
    /// An HTTP/2 (prior knowledge) request with this `:authority`, Host header and path.
    Http2 {
        /// `:authority`.
        authority: String,
        /// Host header, if any.
        host: Option<String>,
        /// Path.
        path: String,
    },
}

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What it tries, for the report.
    pub name: String,
    /// The target it looks for.
    pub target: Target,
    /// The request.
    pub wire: Wire,
}

/// A probe that reached an internal target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The probe.
    pub probe: Probe,
    /// The status it got.
    pub status: u16,
}

fn h1(target_line: &str, version: &str, host: Option<&str>) -> Vec<u8> {
    let mut text = format!("GET {target_line} {version}\r\n");
    if let Some(host) = host {
        text.push_str(&format!("Host: {host}\r\n"));
    }
    text.push_str("User-Agent: rampart-shield-audit\r\nConnection: close\r\n\r\n");
    text.into_bytes()
}

/// Every probe for `targets` behind a public listener known as `public_host`.
pub fn probes(targets: &[Target], public_host: &str) -> Vec<Probe> {
    let mut out = Vec::new();
    for target in targets {
        let host = target.host.as_str();
        let path = target.path.as_str();
        let rest = path.trim_start_matches('/');
        let mut add = |name: String, wire: Wire| out.push(Probe { name, target: target.clone(), wire });
        add("internal Host".into(), Wire::Http1(h1(path, "HTTP/1.1", Some(host))));
        add("internal Host with port".into(), Wire::Http1(h1(path, "HTTP/1.1", Some(&format!("{host}:80")))));
        add(
            "internal Host, trailing dot".into(),
            Wire::Http1(h1(path, "HTTP/1.1", Some(&format!("{host}.")))),
        );
        add(
            "internal Host, upper case".into(),
            Wire::Http1(h1(path, "HTTP/1.1", Some(&host.to_ascii_uppercase()))),
        );
        add(
            "absolute-form target, public Host".into(),
            Wire::Http1(h1(&format!("http://{host}{path}"), "HTTP/1.1", Some(public_host))),
        );
        let traversals = [
            format!("/public/../{rest}"),
            format!("/public/%2e%2e/{rest}"),
            format!("/public/%2E%2E/{rest}"),
            format!("/public/.%2e/{rest}"),
            format!("/public/%252e%252e/{rest}"),
            format!("/public%2f..%2f{rest}"),
            format!("/public\\..\\{rest}"),
            format!("/public;/../{rest}"),
            format!("/public/..;/{rest}"),
            format!("/./{rest}"),
            format!("//{rest}"),
        ];
        for traversal in traversals {
            for (label, h) in [("public Host", public_host), ("internal Host", host)] {
                add(format!("path {traversal:?}, {label}"), Wire::Http1(h1(&traversal, "HTTP/1.1", Some(h))));
            }
        }
        add("HTTP/1.0 without Host".into(), Wire::Http1(h1(path, "HTTP/1.0", None)));
        add(
            "HTTP/2 :authority internal, Host public".into(),
            Wire::Http2 { authority: host.into(), host: Some(public_host.into()), path: path.into() },
        );
        add(
            "HTTP/2 :authority public, Host internal".into(),
            Wire::Http2 { authority: public_host.into(), host: Some(host.into()), path: path.into() },
        );
        add(
            "HTTP/2 :authority internal".into(),
            Wire::Http2 { authority: host.into(), host: None, path: path.into() },
        );
    }
    out
}

/// Whether an answer means the probe reached something: not a refusal, and the marker in the
/// body if one is given.
pub fn reached(status: u16, body: &[u8], marker: Option<&str>) -> bool {
    let refused = matches!(status, 0 | 400 | 403 | 404 | 405 | 414 | 416 | 421 | 429 | 431) || status >= 500;
    if refused {
        return false;
    }
    match marker {
        Some(marker) => body.windows(marker.len().max(1)).any(|w| w == marker.as_bytes()),
        None => true,
    }
}

/// Status and body from an HTTP/1.x answer read to its end.
pub fn parse_http1(answer: &[u8]) -> (u16, &[u8]) {
    let status = answer
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&answer[answer.len()..], |i| &answer[i + 4..]);
    (status, body)
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read of an answer; enough for a status line and a marker.
const MAX_ANSWER: usize = 256 * 1024;

async fn send(address: SocketAddr, wire: &Wire) -> (u16, Vec<u8>) {
    let attempt = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        match wire {
            Wire::Http1(bytes) => {
                stream.write_all(bytes).await.ok()?;
                let mut answer = Vec::new();
                let mut buf = [0u8; 8192];
                while answer.len() < MAX_ANSWER {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = parse_http1(&answer);
                Some((status, body.to_vec()))
            }
            Wire::Http2 { authority, host, path } => {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                        .await
                        .ok()?;
                let driver = tokio::spawn(connection);
                let mut request = http::Request::get(format!("http://{authority}{path}"));
                if let Some(host) = host {
                    request = request.header(http::header::HOST, host.as_str());
                }
                let request = request.body(Full::new(Bytes::new())).ok()?;
                let response = sender.send_request(request).await.ok()?;
                let status = response.status().as_u16();
                let body =
                    response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                driver.abort();
                Some((status, body))
            }
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt).await.ok().flatten().unwrap_or((0, Vec::new()))
}

/// Send every probe to `address`, one connection each, and return those that reached an
/// internal target.
pub async fn run(address: SocketAddr, probes: &[Probe], marker: Option<&str>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for probe in probes {
        let (status, body) = send(address, &probe.wire).await;
        if reached(status, &body, marker) {
            findings.push(Finding { probe: probe.clone(), status });
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn probe_list_and_judgement() {
        let targets = [Target { host: "intranet.example".into(), path: "/admin".into() }];
        let probes = probes(&targets, "www.example");
        assert!(probes.len() > 20);
        assert!(
            probes.iter().any(|p| p.wire
                == Wire::Http1(h1("http://intranet.example/admin", "HTTP/1.1", Some("www.example"))))
        );
        assert!(reached(200, b"INTERNAL", Some("INTERNAL")));
        assert!(!reached(200, b"public", Some("INTERNAL")));
        assert!(!reached(404, b"INTERNAL", Some("INTERNAL")));
        assert!(reached(401, b"", None));
        assert_eq!(parse_http1(b"HTTP/1.1 200 OK\r\na: b\r\n\r\nbody"), (200, &b"body"[..]));
    }

    proptest! {
        /// Any answer bytes: parsing never panics.
        #[test]
        fn any_answer(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (_, body) = parse_http1(&bytes);
            prop_assert!(body.len() <= bytes.len());
        }
    }
}
