//! A minimal HTTP/1.1 server for `GET /metrics`: one request per connection, bounded request
//! size, bounded time, bounded concurrent connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request accepted (head plus body).
const MAX_REQUEST: usize = 16 * 1024;
/// Connections served at once; more wait in the kernel backlog.
const MAX_CONNECTIONS: usize = 32;
/// Time a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request: what the server needs of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Parses a complete request head (`None` if incomplete or malformed); returns the request and
/// the declared body length.
pub fn parse_head(data: &[u8]) -> Option<(Request, usize, usize)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(data.get(..end)?).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    request_line.next().filter(|v| v.starts_with("HTTP/1."))?;
    let mut content_length = 0usize;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().ok()?;
        }
    }
    Some((Request { method, path, body: Vec::new() }, end + 4, content_length))
}

/// Reads one request (head and `Content-Length` body) from `stream`.
pub async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut data = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some((mut request, body_start, length)) = parse_head(&data) {
            if length > MAX_REQUEST {
                return None;
            }
            while data.len() < body_start.saturating_add(length) {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(chunk.get(..n)?);
            }
            request.body = data.get(body_start..body_start + length)?.to_vec();
            return Some(request);
        }
        if data.len() > MAX_REQUEST {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(chunk.get(..n)?);
    }
}

/// Serves `GET /metrics` with `render()`'s text until `stop` fires.
pub async fn serve_metrics(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((mut stream, _)) = accepted else { continue };
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let render = render.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Some(request)) = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await
            else {
                return;
            };
            let (status, body) = match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/metrics") => ("200 OK", render()),
                ("GET", _) => ("404 Not Found", "not found; try /metrics\n".to_owned()),
                _ => ("405 Method Not Allowed", "only GET\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener, with an operator-worded error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("cannot serve metrics on {addr}: the address is already in use (choose another with --metrics ADDR, or --metrics off)")
        }
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot serve metrics on {addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        ),
        _ => anyhow::anyhow!("cannot serve metrics on {addr}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_heads() {
        let (request, start, length) =
            parse_head(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((request.method.as_str(), request.path.as_str(), start, length), ("POST", "/hook", 51, 2));
        assert!(parse_head(b"GET /metrics HTTP/1.1\r\n").is_none());
        assert!(parse_head(b"GET /metrics\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn head_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_head(&bytes);
        }
    }
}
