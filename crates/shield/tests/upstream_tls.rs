//! `https://` upstreams (issue 11 §1): a TLS origin on 127.0.0.1 with a certificate the test
//! generates for `localhost`; the shield verifies it against the upstream's `ca_file`, sends
//! `localhost` as SNI, speaks HTTP/2 when asked to (ALPN); a wrong CA is an upstream failure
//! (502, counted) whose reason names the certificate.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_shield::{Config, Reason};
use support::*;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// A TLS origin answering `sni=<name> alpn=<protocol> version=<HTTP version>`.
struct TlsOrigin {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_origin(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> TlsOrigin {
    let chain = vec![cert.cert.der().clone()];
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().unwrap_or("-").to_owned();
                let alpn = session
                    .alpn_protocol()
                    .map_or("-".to_owned(), |p| String::from_utf8_lossy(p).into_owned());
                let service = service_fn(move |request: Request<Incoming>| {
                    let text = format!("sni={sni} alpn={alpn} version={:?}", request.version());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsOrigin { address, task }
}

fn config(origin: SocketAddr, ca: &Path, extra: &str) -> Config {
    Config::from_toml(&format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [upstream.web]\nservers = [\"https://localhost:{}\"]\nca_file = {:?}\n{extra}\n\
         [[route]]\nname = \"web\"\nupstream = \"web\"\n",
        origin.port(),
        ca.display().to_string(),
    ))
    .unwrap()
}

async fn get(shield: &Running) -> (u16, String) {
    let client = client_from(source_address(3));
    let response = client.get(format!("http://{}/", shield.address).parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_verified_by_its_ca_file_with_sni_and_optional_h2() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let origin = tls_origin(&cert).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("origin-ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();

    let http1 = shield(config(origin.address, &ca, "")).await;
    let (status, text) = get(&http1).await;
    assert_eq!(status, 200, "{text}");
    // Without http2, no ALPN is offered: HTTP/1.1 as with a plain origin.
    assert_eq!(text, "sni=localhost alpn=- version=HTTP/1.1");
    http1.shutdown().await;

    let h2 = shield(config(origin.address, &ca, "http2 = true")).await;
    let (status, text) = get(&h2).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, "sni=localhost alpn=h2 version=HTTP/2.0");
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_an_upstream_failure_that_names_the_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let origin = tls_origin(&cert).await;
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let config = config(origin.address, &wrong, "");

    let running = shield(config.clone()).await;
    let before = running.metrics.rejections(Reason::UpstreamUnavailable);
    let (status, text) = get(&running).await;
    assert_eq!((status, text.as_str()), (502, "upstream failed\n"));
    assert_eq!(running.metrics.rejections(Reason::UpstreamUnavailable), before + 1);
    running.shutdown().await;

    // What the shield logs for it: the reason from deep in the error's chain.
    let client = rampart_shield::origin::client::client(&config.upstreams[0]);
    let request = Request::get(format!("https://localhost:{}/", origin.address.port()))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let error = client.request(request).await.unwrap_err();
    let text = rampart_shield::origin::client::describe(&error);
    assert!(text.contains("invalid peer certificate"), "{text}");
}
