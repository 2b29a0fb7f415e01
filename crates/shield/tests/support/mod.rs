//! Shared test rig: a small hyper origin, a shield running in the test's runtime, peers
//! started by PID with Drop guards, and the skip-or-fail rule for missing peer binaries.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rampart_shield::{BanTable, Config, Metrics, Shield};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The origin: `/echo` returns the request body, `/headers` the request headers as
/// `name: value` lines, `/big` 1 MiB, anything else `ok`. Counts the requests it sees.
pub struct Origin {
    pub address: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn origin_answer(
    request: Request<Incoming>,
    text: &'static str,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let body = match path.as_str() {
        "/echo" => request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default(),
        "/headers" => {
            let mut text = String::new();
            for (name, value) in request.headers() {
                text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            Bytes::from(text)
        }
        "/big" => Bytes::from(vec![b'x'; 1 << 20]),
        _ => Bytes::from_static(text.as_bytes()),
    };
    Ok(Response::new(Full::new(body)))
}

pub async fn origin() -> Origin {
    origin_with("ok").await
}

/// An origin whose default answer is `text`.
pub async fn origin_with(text: &'static str) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    origin_answer(request, text)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin { address, requests, task }
}

/// A shield running in this runtime; dropping it shuts it down.
pub struct Running {
    pub address: SocketAddr,
    pub addresses: Vec<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub metrics_addr: Option<SocketAddr>,
    pub bans: Arc<BanTable>,
    pub challenger: Option<Arc<dyn rampart_shield::defense::Challenger>>,
    pub reloader: rampart_shield::Reloader,
    pub flood: Option<Arc<rampart_shield::flood::FloodDefense>>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Ask it to drain and wait until it has.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

pub async fn shield(config: Config) -> Running {
    let bans = Arc::new(BanTable::new());
    let shield = Shield::bind(config, Arc::clone(&bans) as Arc<dyn rampart_shield::BanList>).await.unwrap();
    let addresses = shield.local_addrs();
    let metrics = shield.metrics();
    let metrics_addr = shield.metrics_addr();
    let challenger = shield.challenger();
    let reloader = shield.reloader();
    let flood = shield.flood();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(shield.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Running {
        address: addresses[0],
        addresses,
        metrics,
        metrics_addr,
        bans,
        challenger,
        reloader,
        flood,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A quick-start configuration in front of `origin`, on a free loopback port.
pub fn quick(origin: &Origin) -> Config {
    Config::quick("127.0.0.1:0".parse().unwrap(), &format!("http://{}", origin.address)).unwrap()
}

/// An HTTP/1.1 client whose connections come from `source` (a 127.x.y.z of its own, so its
/// per-address and per-prefix counts are not the attacker's).
pub fn client_from(source: IpAddr) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(source));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector)
}

/// GET `url` with a fresh connection from `source`: status and latency.
pub async fn probe(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = match tokio::time::timeout(Duration::from_secs(5), client.get(url.parse().unwrap())).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        _ => 0,
    };
    (status, started.elapsed())
}

/// A child process killed (by its PID) when dropped, also on panic.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `binary` is on PATH; when it is not, fail under CI or RAMPART_REQUIRE_PEERS=1,
/// otherwise print a skip message and return false.
pub fn have_peer(binary: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false);
    if !found {
        let required = std::env::var_os("CI").is_some()
            || std::env::var("RAMPART_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(!required, "{binary} is not installed (needed: RAMPART_REQUIRE_PEERS=1 or CI is set)");
        eprintln!("skipped: {binary} is not installed");
    }
    found
}

/// A loopback source address unique to this process and `n`, outside 127.0.0.0/24.
pub fn source_address(n: u8) -> IpAddr {
    let pid = std::process::id();
    IpAddr::V4(std::net::Ipv4Addr::new(127, 100 + (pid % 100) as u8, n, (1 + (pid / 100) % 250) as u8))
}
