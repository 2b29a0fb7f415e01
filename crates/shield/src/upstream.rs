//! Upstream pools: round robin over the servers that pass their active health checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{HealthCheck, Upstream};
use crate::metrics::{Metrics, ServerLabel};

/// One origin server.
#[derive(Debug)]
pub struct Server {
    /// `host:port`.
    pub authority: String,
    /// The same, parsed once for the requests' URIs (`None` if it is not a URI authority:
    /// such a server's requests are refused as bad targets).
    pub uri_authority: Option<http::uri::Authority>,
    healthy: AtomicBool,
    /// Consecutive check results in the direction opposite to the current state.
    streak: AtomicU32,
}

/// A pool of servers.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The same as a URI scheme.
    pub uri_scheme: http::uri::Scheme,
    /// Its servers.
    pub servers: Vec<Server>,
    health_check: Option<HealthCheck>,
    /// The connector health checks use (the upstream's TLS, if any).
    connector: crate::origin::client::OriginConnector,
    next: AtomicUsize,
}

impl Pool {
    /// A pool from its configuration; every server starts healthy.
    pub fn new(upstream: &Upstream) -> Pool {
        Pool {
            name: upstream.name.clone(),
            scheme: if upstream.tls.is_some() { "https" } else { "http" },
            uri_scheme: if upstream.tls.is_some() {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            connector: crate::origin::client::connector(upstream),
            servers: upstream
                .servers
                .iter()
                .map(|a| Server {
                    authority: a.clone(),
                    uri_authority: a.parse().ok(),
                    healthy: AtomicBool::new(true),
                    streak: AtomicU32::new(0),
                })
                .collect(),
            health_check: upstream.health_check.clone(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next healthy server, round robin; `None` when none is healthy.
    pub fn pick(&self) -> Option<&Server> {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &self.servers[(start + i) % n]).find(|s| s.healthy.load(Ordering::Relaxed))
    }

    /// Record one check result for `server` (index), applying the rise/fall hysteresis.
    pub fn record(&self, server: usize, passed: bool, check: &HealthCheck) {
        let Some(server) = self.servers.get(server) else { return };
        let healthy = server.healthy.load(Ordering::Relaxed);
        if passed == healthy {
            server.streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = server.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if healthy { check.fall } else { check.rise };
        if streak >= needed {
            server.healthy.store(passed, Ordering::Relaxed);
            server.streak.store(0, Ordering::Relaxed);
        }
    }

    /// Whether server `index` is up.
    pub fn is_healthy(&self, index: usize) -> bool {
        self.servers.get(index).is_some_and(|s| s.healthy.load(Ordering::Relaxed))
    }

    /// Check every server forever at the configured interval (returns at once without a
    /// health check configured).
    pub async fn run_health_checks(self: Arc<Self>, metrics: Arc<Metrics>) {
        let Some(check) = self.health_check.clone() else { return };
        let timeout = Duration::from_secs_f64(check.timeout_secs);
        let client: Client<_, Empty<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build(self.connector.clone());
        let mut tick = tokio::time::interval(Duration::from_secs_f64(check.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (index, server) in self.servers.iter().enumerate() {
                let uri = format!("{}://{}{}", self.scheme, server.authority, check.path);
                let passed = match uri.parse::<http::Uri>() {
                    Ok(uri) => matches!(
                        tokio::time::timeout(timeout, client.get(uri)).await,
                        Ok(Ok(response)) if response.status().is_success() || response.status().is_redirection()
                    ),
                    Err(_) => false,
                };
                self.record(index, passed, &check);
                let label = ServerLabel { upstream: self.name.clone(), server: server.authority.clone() };
                metrics.healthy.get_or_create(&label).set(i64::from(self.is_healthy(index)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_unhealthy_with_hysteresis() {
        let check = HealthCheck { path: "/".into(), interval_secs: 1.0, timeout_secs: 1.0, fall: 2, rise: 2 };
        let pool = Pool::new(&Upstream {
            name: "web".into(),
            servers: vec!["a:1".into(), "b:1".into()],
            tls: None,
            health_check: Some(check.clone()),
            internal: false,
            origin: crate::origin::OriginSettings::default(),
        });
        let picks: Vec<_> = (0..4).map(|_| pool.pick().unwrap().authority.clone()).collect();
        assert_eq!(picks, ["a:1", "b:1", "a:1", "b:1"]);
        pool.record(0, false, &check);
        assert!(pool.is_healthy(0));
        pool.record(0, false, &check);
        assert!(!pool.is_healthy(0));
        assert!((0..4).all(|_| pool.pick().unwrap().authority == "b:1"));
        pool.record(1, false, &check);
        pool.record(1, false, &check);
        assert!(pool.pick().is_none());
        pool.record(0, true, &check);
        pool.record(0, true, &check);
        assert_eq!(pool.pick().unwrap().authority, "a:1");
    }
}
