//! WebSocket upgrades (HTTP/1.1 `Upgrade: websocket`): once the origin answers 101, the
//! client's and the origin's connections are spliced, byte for byte, until either side closes
//! or no byte moves for the idle timeout. The tunnel counts as a request in flight on its
//! client connection, so the connection keeps its slot under the per-address, per-prefix and
//! overall caps while it lasts, and a draining shield waits for it (up to the drain time).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderMap;
use http::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::metrics::{Metrics, Reason};
use crate::observe::{Observed, Observer};
use crate::watch::Activity;

/// Whether `headers` ask to switch to WebSocket: `Upgrade: websocket` and `upgrade` among the
/// `Connection` tokens.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

/// Put back the two hop-by-hop headers an upgrade needs on the next hop (after every
/// hop-by-hop header was removed).
pub fn set_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// The observer (see [`crate::observe`]) that notes when bytes last moved through a stream.
struct Touch {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Touch {
    fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Observer for Touch {
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !bytes.is_empty() {
            self.touch();
        }
        Ok(())
    }

    fn on_written(&mut self, n: usize) -> io::Result<()> {
        if n > 0 {
            self.touch();
        }
        Ok(())
    }
}

/// Holds a request slot on the client connection for the tunnel's life.
struct Holding(Arc<Activity>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Splice the client's upgraded connection and the origin's until one closes or `idle`
/// passes without a byte either way (counted as `Idle`).
pub fn spawn(
    client: OnUpgrade,
    origin: OnUpgrade,
    idle: Duration,
    activity: Arc<Activity>,
    metrics: Arc<Metrics>,
) {
    activity.inflight.fetch_add(1, Ordering::Relaxed);
    let holding = Holding(activity);
    tokio::spawn(async move {
        let _holding = holding;
        // Both hand over their sockets once the 101 is written and read.
        let Ok((client, origin)) = tokio::time::timeout(idle, async { tokio::join!(client, origin) }).await
        else {
            return;
        };
        let (Ok(client), Ok(origin)) = (client, origin) else { return };
        let base = Instant::now();
        let last_ms = Arc::new(AtomicU64::new(0));
        let mut client = Observed::new(TokioIo::new(client), Touch { base, last_ms: Arc::clone(&last_ms) });
        let mut origin = Observed::new(TokioIo::new(origin), Touch { base, last_ms: Arc::clone(&last_ms) });
        let watch = async {
            loop {
                let last = base + Duration::from_millis(last_ms.load(Ordering::Relaxed));
                if last.elapsed() >= idle {
                    return;
                }
                tokio::time::sleep_until(last + idle).await;
            }
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut origin) => {}
            _ = watch => metrics.reject(Reason::Idle),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn only_a_websocket_upgrade_named_in_connection_counts() {
        assert!(wants_websocket(&headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(wants_websocket(&headers(&[
            ("connection", "x"),
            ("connection", "upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!wants_websocket(&headers(&[("upgrade", "websocket")])), "Connection must name it");
        assert!(!wants_websocket(&headers(&[("connection", "upgrade"), ("upgrade", "h2c")])));
        assert!(!wants_websocket(&headers(&[("connection", "upgrades"), ("upgrade", "websocket")])));
        let mut h = headers(&[("connection", "close"), ("upgrade", "h2c")]);
        set_upgrade_headers(&mut h);
        assert!(wants_websocket(&h));
        assert_eq!(h.get_all(header::CONNECTION).iter().count(), 1);
    }
}
