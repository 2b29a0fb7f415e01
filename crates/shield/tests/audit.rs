//! Segmentation: an internal route behind the public listener must not answer any of the
//! audit's probes; a deliberately misconfigured shield (the route not marked internal) must
//! be caught by the same audit.

mod support;

use rampart_shield::Config;
use rampart_shield::audit::{Target, probes, run};
use support::*;

fn config(public: &Origin, internal: &Origin, mark_internal: bool) -> Config {
    let text = format!(
        "internal_networks = [\"10.0.0.0/8\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nh2c = true\n\
         [upstream.web]\nservers = [\"http://{}\"]\n\
         [upstream.admin]\nservers = [\"http://{}\"]\ninternal = {mark_internal}\n\
         [[route]]\nupstream = \"web\"\n\
         [[route]]\nname = \"admin\"\nhost = \"intranet.example\"\nupstream = \"admin\"\ninternal = {mark_internal}\n\
         [[route]]\nname = \"admin-path\"\npath_prefix = \"/admin\"\nupstream = \"admin\"\ninternal = {mark_internal}\n",
        public.address, internal.address
    );
    Config::from_toml(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shield_passes_its_own_audit_and_the_audit_finds_a_leak() {
    let public = origin_with("public page").await;
    let internal = origin_with("INTERNAL admin console").await;
    let targets = [
        Target { host: "intranet.example".into(), path: "/".into() },
        Target { host: "www.example".into(), path: "/admin".into() },
    ];
    let probes = probes(&targets, "www.example");

    let shield = shield(config(&public, &internal, true)).await;
    let findings = run(shield.address, &probes, Some("INTERNAL")).await;
    assert!(findings.is_empty(), "internal routes answered: {findings:#?}");
    assert_eq!(internal.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    shield.shutdown().await;

    let leaky = shield_for_leak(&public, &internal).await;
    let findings = run(leaky.address, &probes, Some("INTERNAL")).await;
    let names: Vec<_> = findings.iter().map(|f| f.probe.name.as_str()).collect();
    eprintln!("misconfigured shield: {} findings: {names:?}", findings.len());
    assert!(names.contains(&"internal Host"));
    assert!(names.contains(&"HTTP/2 :authority internal"));
    assert!(names.contains(&"absolute-form target, public Host"));
    leaky.shutdown().await;
}

async fn shield_for_leak(public: &Origin, internal: &Origin) -> Running {
    shield(config(public, internal, false)).await
}
