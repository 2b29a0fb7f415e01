//! The harness against the bare origin (no proxy: every flood must reach it, every browser
//! must succeed, mitigation never comes) and against a site that challenges everyone without
//! its cookie (browsers must get through once each, the flood must be counted as challenged
//! from its first second).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_floodharness::browser::BrowserPlan;
use rampart_floodharness::origin::{ORIGIN_MARKER, Route};
use rampart_floodharness::{FloodKind, FloodPlan, Origin, OriginConfig, Scenario, run_scenario};
use tokio::net::TcpListener;

fn quick_browsers() -> BrowserPlan {
    BrowserPlan {
        clients: 6,
        think: (Duration::from_millis(50), Duration::from_millis(200)),
        login_one_in: 5,
        ..BrowserPlan::default()
    }
}

fn quick_flood(kind: FloodKind) -> FloodPlan {
    FloodPlan { workers: 8, ..FloodPlan::new(kind, 200, Duration::from_millis(1500)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flood_reaches_a_bare_origin() {
    for kind in FloodKind::ALL {
        let slow = kind == FloodKind::CacheBusting;
        let origin = Origin::start(OriginConfig {
            search_delay: Duration::from_millis(20),
            slow_per_in_flight: slow.then_some(Duration::from_millis(2)),
            ..OriginConfig::default()
        })
        .await
        .unwrap();
        let scenario = Scenario {
            target: origin.address(),
            target_name: "origin".into(),
            host: None,
            browsers: quick_browsers(),
            flood: quick_flood(kind),
            warmup: Duration::from_millis(500),
            cooldown: Duration::from_millis(300),
        };
        let report = run_scenario(&scenario, &origin).await.unwrap();
        println!("{}", report.text());
        let flood = report.flood_total;
        assert!(flood.total() > 50, "{kind:?}: only {} flood requests", flood.total());
        assert_eq!(flood.origin, flood.total(), "{kind:?}: every flood request reaches a bare origin");
        assert_eq!(report.mitigation_secs, None, "{kind:?}");
        let legit = &report.legit_all;
        assert!(legit.requests > 20, "{kind:?}: {legit:?}");
        assert_eq!(legit.succeeded, legit.requests, "{kind:?}: {legit:?}");
        assert_eq!(legit.challenged + legit.blocked + legit.throttled, 0);
        // The origin saw them all: the flood's route carries at least the flood.
        let route = match kind {
            FloodKind::GetFlood => Route::Page,
            FloodKind::Distributed => Route::Article,
            FloodKind::LoginFlood => Route::Login,
            FloodKind::CacheBusting => Route::Search,
        };
        let floor = if kind == FloodKind::Distributed { flood.total() / 3 } else { flood.total() };
        assert!(report.origin.route(route) >= floor, "{kind:?}: {:?}", report.origin);
        assert!(report.origin.total() >= flood.total() + legit.requests);
        assert!(report.origin.max_in_flight >= 1);
        assert!(report.origin_series.iter().sum::<u64>() > 0);
        if slow {
            // Eight workers stuck on a slowing search: the origin held several at once.
            assert!(report.origin.max_in_flight >= 4, "{:?}", report.origin);
        }
    }
}

/// A site that, without its `clear` cookie, answers with a no-JavaScript challenge (a meta
/// refresh setting the cookie), and with it answers as the origin does.
async fn challenging_site() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let cleared = request
                        .headers()
                        .get("cookie")
                        .and_then(|c| c.to_str().ok())
                        .is_some_and(|c| c.split("; ").any(|p| p == "clear=1"));
                    let response = if cleared {
                        Response::builder()
                            .header(ORIGIN_MARKER, "1")
                            .body(Full::new(Bytes::from_static(b"page")))
                    } else {
                        let back = request.uri().path_and_query().map_or("/".to_owned(), |p| p.to_string());
                        Response::builder()
                            .status(403)
                            .header("set-cookie", "clear=1; Path=/; Max-Age=3600")
                            .body(Full::new(Bytes::from(format!(
                                r#"<html><meta http-equiv="refresh" content="0; url={back}"></html>"#
                            ))))
                    };
                    Ok::<_, Infallible>(response.unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_followed_by_browsers_and_counted_for_floods() {
    let site = challenging_site().await;
    let origin = Origin::start(OriginConfig::default()).await.unwrap();
    let scenario = Scenario {
        target: site,
        target_name: "challenging".into(),
        host: None,
        browsers: BrowserPlan { login_one_in: 0, ..quick_browsers() },
        flood: quick_flood(FloodKind::GetFlood),
        warmup: Duration::from_millis(300),
        cooldown: Duration::from_millis(200),
    };
    let report = run_scenario(&scenario, &origin).await.unwrap();
    println!("{}", report.text());
    let legit = &report.legit_all;
    // Each browser is challenged exactly once (its first request), then keeps its cookie.
    assert_eq!(legit.challenged, u64::from(scenario.browsers.clients), "{legit:?}");
    assert_eq!(legit.succeeded, legit.requests, "{legit:?}");
    assert_eq!(legit.blocked, 0, "a followed challenge is not a block: {legit:?}");
    // Attackers keep no cookies: every flood request meets the challenge.
    assert!(report.flood_total.total() > 50);
    assert_eq!(report.flood_total.challenged, report.flood_total.total());
    assert_eq!(report.mitigation_secs, Some(0));
    // Nothing reached the (unused) origin.
    assert_eq!(report.origin.total(), 0);
}

#[tokio::test]
async fn refuses_targets_outside_loopback() {
    let origin = Origin::start(OriginConfig::default()).await.unwrap();
    let scenario = Scenario {
        target: "192.0.2.10:80".parse().unwrap(),
        target_name: "elsewhere".into(),
        host: None,
        browsers: quick_browsers(),
        flood: quick_flood(FloodKind::GetFlood),
        warmup: Duration::ZERO,
        cooldown: Duration::ZERO,
    };
    assert!(run_scenario(&scenario, &origin).await.is_err());
    assert!(
        Origin::start(OriginConfig { listen: "192.0.2.10:0".parse().unwrap(), ..OriginConfig::default() })
            .await
            .is_err()
    );
}
