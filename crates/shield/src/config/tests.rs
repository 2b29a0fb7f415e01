//! The configuration's tests: the file and the quick start, and errors naming the key.

use super::*;

#[test]
fn quick_start() {
    let config = Config::quick("127.0.0.1:8080".parse().unwrap(), "http://127.0.0.1:9000").unwrap();
    assert_eq!(config.upstreams[0].servers, ["127.0.0.1:9000"]);
    assert!(config.upstreams[0].tls.is_none());
    let https = Config::quick("127.0.0.1:8080".parse().unwrap(), "https://origin.example").unwrap();
    assert_eq!(https.upstreams[0].servers, ["origin.example:443"]);
    assert!(https.upstreams[0].tls.as_ref().is_some_and(|t| t.ca_file.is_none()));
    assert!(Config::quick("127.0.0.1:8080".parse().unwrap(), "ftp://x:1").is_err());
    assert!(Config::quick("127.0.0.1:8080".parse().unwrap(), "http://x:1/path").is_err());
}

#[test]
fn full_file_and_route_order() {
    let config = Config::from_toml(
        r#"
        trusted_proxies = ["10.0.0.0/8"]
        internal_networks = ["10.0.0.0/8"]
        metrics = "127.0.0.1:9100"

        [[listener]]
        address = "127.0.0.1:8443"

        [upstream.web]
        servers = ["http://127.0.0.1:9000", "127.0.0.1:9001"]
        health_check = { path = "/health", interval_secs = 1 }

        [upstream.admin]
        servers = ["127.0.0.1:9002"]
        internal = true

        [[route]]
        path_prefix = "/"
        upstream = "web"

        [[route]]
        name = "admin"
        host = "Intranet.Example"
        path_prefix = "/admin"
        upstream = "admin"
        internal = true
        rate = { per_second = 2, burst = 5 }

        [limits]
        header_timeout_secs = 5

        [rate_limit]
        per_address = { per_second = 10, burst = 20 }
        "#,
    )
    .unwrap();
    assert_eq!(config.routes[0].name, "admin");
    assert_eq!(config.routes[0].host.as_deref(), Some("intranet.example"));
    assert_eq!(config.upstreams.len(), 2);
    assert_eq!(config.hardening.header_timeout_secs, 5.0);
    assert_eq!(config.rate_limits.per_address, Some(Rate { per_second: 10.0, burst: 20 }));
    assert_eq!(config.rate_limits.per_prefix, RateLimits::default().per_prefix);
}

#[test]
fn origin_protection_keys() {
    let config = Config::from_toml(
        r#"
        [[listener]]
        address = "127.0.0.1:1"
        [upstream.web]
        servers = ["127.0.0.1:2"]
        [upstream.web.origin]
        max_concurrency = 10
        min_concurrency = 2
        queue_size = 0
        queue_timeout_secs = 0.5
        session_cookies = ["sid"]
        cache = false
        [[route]]
        upstream = "web"
        [origin]
        threat_level = "elevated"
        threat_file = "/var/lib/rampart/threat-level"
        [snapshot]
        dir = "/srv/snapshot"
        at_level = "high"
        "#,
    )
    .unwrap();
    let origin = &config.upstreams[0].origin;
    assert_eq!((origin.limit.min, origin.limit.max, origin.limit.initial), (2, 10, 10));
    assert_eq!((origin.queue_size, origin.queue_timeout), (0, Duration::from_millis(500)));
    assert_eq!(origin.session_cookies, ["sid"]);
    assert!(origin.cache.is_none());
    assert_eq!(config.protection.threat_level, ThreatLevel::Elevated);
    let snapshot = config.protection.snapshot.as_ref().unwrap();
    assert_eq!((snapshot.always, snapshot.at_level), (false, Some(ThreatLevel::High)));
    let base = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.web]\nservers = [\"127.0.0.1:2\"]\n[[route]]\nupstream = \"web\"\n";
    for (extra, key) in [
        ("[upstream.web.origin]\nmax_concurrency = 0\n", "upstream.web.origin.max_concurrency"),
        (
            "[upstream.web.origin]\nmin_concurrency = 5\nmax_concurrency = 4\n",
            "upstream.web.origin.min_concurrency",
        ),
        ("[upstream.web.origin]\nqueue_timeout_secs = 0\n", "upstream.web.origin.queue_timeout_secs"),
        ("[upstream.web.origin]\nsession_cookies = [\"a=b\"]\n", "upstream.web.origin.session_cookies[0]"),
        ("[origin]\nthreat_level = \"severe\"\n", "severe"),
    ] {
        let message = Config::from_toml(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(message.contains(key), "{message} should name {key}");
    }
}

#[test]
fn errors_name_the_key() {
    let base = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.web]\nservers = [\"127.0.0.1:2\"]\n";
    let cases = [
        (format!("{base}[[route]]\nupstream = \"nope\"\n"), "route[0].upstream"),
        (format!("{base}[[route]]\nupstream = \"web\"\npath_prefix = \"x\"\n"), "route[0].path_prefix"),
        (
            format!("{base}[[route]]\nupstream = \"web\"\n[limits]\nheader_timeout_secs = 0\n"),
            "limits.header_timeout_secs",
        ),
        (
            format!("{base}[[route]]\nupstream = \"web\"\nrate = {{ per_second = 0, burst = 1 }}\n"),
            "route[0].rate.per_second",
        ),
    ];
    for (text, key) in cases {
        let message = Config::from_toml(&text).unwrap_err().to_string();
        assert!(message.contains(key), "{message} should name {key}");
    }
    let message = Config::from_toml(&format!("{base}[[route]]\nupstream = \"web\"\nbogus = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("bogus"), "{message}");
}

#[test]
fn https_upstreams_and_their_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["origin.example".into()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let not_pem = dir.path().join("empty.pem");
    std::fs::write(&not_pem, "nothing here\n").unwrap();
    let file = |servers: &str, extra: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.web]\nservers = [{servers}]\n{extra}\n[[route]]\nupstream = \"web\"\n"
        )
    };
    let config = Config::from_toml(&file(
        "\"https://origin.example\"",
        &format!("ca_file = {:?}\nhttp2 = true", ca_path.display().to_string()),
    ))
    .unwrap();
    let tls = config.upstreams[0].tls.as_ref().unwrap();
    assert_eq!(config.upstreams[0].servers, ["origin.example:443"]);
    assert_eq!((tls.ca_certs.len(), tls.http2), (1, true));
    for (servers, extra, key) in [
        ("\"https://a:1\", \"http://b:1\"", String::new(), "upstream.web.servers[1]"),
        ("\"http://a:1\"", format!("ca_file = {:?}", ca_path.display().to_string()), "upstream.web.ca_file"),
        ("\"a:1\"", "http2 = true".into(), "upstream.web.http2"),
        ("\"https://a:1\"", "ca_file = \"/nonexistent/ca.pem\"".into(), "cannot read"),
        ("\"https://a:1\"", format!("ca_file = {:?}", not_pem.display().to_string()), "holds no certificate"),
    ] {
        let message = Config::from_toml(&file(servers, &extra)).unwrap_err().to_string();
        assert!(message.contains(key), "{message} should name {key}");
    }
}
