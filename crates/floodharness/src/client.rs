//! One HTTP/1.1 keep-alive connection from a chosen source address, on hyper's client
//! connection (so headers go out in the order the caller set them: a browser's order is part of
//! what a shield may fingerprint).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::HarnessError;
use crate::origin::ORIGIN_MARKER;
use crate::sources::connect_from;

/// Longest response body kept (a challenge page or a site page; the rest is drained unread).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the harness keeps of an answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, up to [`MAX_BODY_BYTES`].
    pub body: Bytes,
}

impl Answer {
    /// Whether the origin itself produced this answer (it marks every response it writes).
    pub fn from_origin(&self) -> bool {
        self.headers.contains_key(ORIGIN_MARKER)
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers.get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok())
    }
}

/// A keep-alive HTTP/1.1 connection from one source address.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    /// Connects to `target` from `source` within `timeout`.
    pub async fn open(
        source: IpAddr,
        target: SocketAddr,
        timeout: Duration,
    ) -> Result<Connection, HarnessError> {
        let stream = tokio::time::timeout(timeout, connect_from(source, target))
            .await
            .map_err(|_| HarnessError::Timeout)??;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(TokioIo::new(stream))
            .await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender, driver })
    }

    /// Whether another request can go on this connection.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads its answer within `timeout`.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, HarnessError> {
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            // A body over the cap is cut: the answer's kind is known from its head and start.
            let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok::<_, HarnessError>(Answer { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| HarnessError::Timeout)?
    }
}
