//! Interop with BIRD 2: each test starts its own `bird` (own directory, config, control
//! socket, loopback addresses and port) peered with Rampart's speaker, and reads what BIRD
//! holds through `birdc`.

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rampart_bgp::config::SpeakerConfig;
use rampart_bgp::driver::Speaker;
use rampart_contract::{Action, DecisionId, Scope};
use support::*;

struct Bird {
    dir: tempfile::TempDir,
    guard: ChildGuard,
    config: PathBuf,
    local: Ipv4Addr,
    port: u16,
}

/// The first routes wait for the session: a connect refused while BIRD starts its protocol
/// backs off 1, 2, 4, 8 s, so on a loaded machine the session can come up after 15 s (seen
/// once in CI).
const SESSION_UP_SECS: u64 = 40;

impl Bird {
    /// BIRD listening on `local:port` for Rampart at `rampart`; `validate` turns on FlowSpec
    /// validation (RFC 8955 section 6) for IPv4.
    fn start(local: Ipv4Addr, rampart: Ipv4Addr, validate: bool) -> Bird {
        Bird::start_with(local, rampart, validate, None, None)
    }

    /// With `rampart_port`, BIRD connects to Rampart listening there instead of waiting; with
    /// `password`, the session is TCP-MD5 signed (RFC 2385).
    fn start_with(
        local: Ipv4Addr,
        rampart: Ipv4Addr,
        validate: bool,
        rampart_port: Option<u16>,
        password: Option<&str>,
    ) -> Bird {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(local);
        let flow4 = if validate {
            "import all; export none; validate on; base table master4;"
        } else {
            "import all; export none;"
        };
        let text = format!(
            r#"router id 192.0.2.254;
log "{log}" all;
protocol device {{}}
ipv4 table master4 {{ trie on; }};
ipv6 table master6;
flow4 table flowtab4;
flow6 table flowtab6;
protocol bgp rampart {{
  local {local} port {port} as 64513;
  # The listening socket on `local` only: on the wildcard address (BIRD's default) its port
  # can collide with any connection's ephemeral port on the machine (seen once in CI while
  # load tools ran beside it: "bind: Address already in use").
  strict bind on;
  neighbor {rampart} {neighbor_port} as 64512;
  multihop;
  {passive}
  {password}
  hold time 9;
  # After a failed session BIRD waits `error wait time` before it accepts or opens another
  # (60 s by default): on a loaded machine one early failure outlasted the test's wait.
  error wait time 1, 5;
  graceful restart on;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
  flow4 {{ table flowtab4; {flow4} }};
  flow6 {{ table flowtab6; import all; export none; }};
}}
"#,
            log = dir.path().join("bird.log").display(),
            neighbor_port = rampart_port.map(|p| format!("port {p}")).unwrap_or_default(),
            passive = if rampart_port.is_some() { "connect delay time 1;" } else { "passive on;" },
            password = password.map(|p| format!("password \"{p}\";")).unwrap_or_default(),
        );
        let config = dir.path().join("bird.conf");
        std::fs::write(&config, text).unwrap();
        let guard = Bird::spawn(dir.path(), &config);
        let bird = Bird { dir, guard, config, local, port };
        wait_until(Duration::from_secs(10), "birdc answers", || bird.birdc("show status").map(|_| ()));
        bird
    }

    fn spawn(dir: &Path, config: &Path) -> ChildGuard {
        ChildGuard::spawn(
            "bird",
            Command::new("bird")
                .arg("-c")
                .arg(config)
                .arg("-s")
                .arg(dir.join("bird.ctl"))
                .arg("-P")
                .arg(dir.join("bird.pid"))
                .arg("-f"),
        )
    }

    /// `kill -9` and start again with the same configuration.
    fn restart(&mut self) {
        self.guard.kill();
        let _ = std::fs::remove_file(self.dir.path().join("bird.ctl"));
        self.guard = Bird::spawn(self.dir.path(), &self.config);
        wait_until(Duration::from_secs(10), "birdc answers after restart", || {
            self.birdc("show status").map(|_| ())
        });
    }

    fn birdc(&self, command: &str) -> Result<String, String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(command.split(' '))
            .output()
            .map_err(|e| format!("birdc: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            return Err(text);
        }
        Ok(text)
    }

    /// Every route of every table: its header (NLRI and, when BIRD judged it so,
    /// `unreachable`) mapped to its communities, in BIRD's words.
    fn routes(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut out = BTreeMap::new();
        for table in ["master4", "master6", "flowtab4", "flowtab6"] {
            let text = self.birdc(&format!("show route table {table} all"))?;
            let mut current: Option<String> = None;
            for line in text.lines() {
                if line.starts_with("BIRD ") || line.starts_with("Table ") || line.trim().is_empty() {
                    continue;
                }
                if !line.starts_with('\t') && !line.starts_with(' ') {
                    let head = line.split(" [").next().unwrap_or(line);
                    let head = head.split_whitespace().collect::<Vec<_>>().join(" ");
                    out.insert(head.clone(), Vec::new());
                    current = Some(head);
                } else if let Some(key) = &current {
                    let attr = line.trim();
                    if (attr.starts_with("BGP.community")
                        || attr.starts_with("BGP.ext_community")
                        || attr.starts_with("BGP.large_community")
                        || attr.starts_with("BGP.next_hop"))
                        && let Some(v) = out.get_mut(key)
                    {
                        v.push(attr.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    fn wait_for(&self, want: &BTreeMap<String, Vec<String>>, what: &str, timeout: Duration) {
        wait_until(timeout, what, || {
            let got = self.routes()?;
            if &got == want {
                Ok(())
            } else {
                // What the session went through, for a failure on a machine we cannot watch.
                let protocol = self.birdc("show protocols all rampart").unwrap_or_else(|e| e);
                let log = std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default();
                let tail: Vec<&str> =
                    log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
                Err(format!(
                    "BIRD holds {got:#?}\nwanted {want:#?}\n{protocol}\nbird.log (last lines):\n{}",
                    tail.join("\n")
                ))
            }
        });
    }
}

/// What BIRD should show for the fixture's decisions, by id: written out from the RFCs
/// (rates as IEEE floats: 1e6 = 0x49742400, 1000 = 0x447a0000), not from Rampart's encoder.
fn expected(ids: &[u64]) -> BTreeMap<String, Vec<String>> {
    let common = |ext: Option<&str>| {
        let mut v = vec!["BGP.community: (64512,7)".to_string()];
        if let Some(e) = ext {
            v.push(format!("BGP.ext_community: {e}"));
        }
        v.push("BGP.large_community: (64512, 1, 2)".to_string());
        v
    };
    let all: Vec<(u64, &str, Vec<String>)> = vec![
        (
            1,
            "flow4 { dst 203.0.113.10/32; proto 17; dport 1024..65535; sport 53; length 500..1500; fragment is_fragment && !first_fragment; }",
            common(Some("(generic, 0x80060000, 0x49742400)")),
        ),
        (
            2,
            "198.51.100.7/32 unreachable",
            vec![
                "BGP.next_hop: 192.0.2.66".into(),
                "BGP.community: (65535,666) (64512,7)".into(),
                "BGP.large_community: (64512, 1, 2)".into(),
            ],
        ),
        (3, "flow6 { dst 2001:db8:1::/48; }", common(Some("(generic, 0x80060000, 0x0)"))),
        (
            4,
            "flow4 { dst 203.0.113.11/32; proto 6; dport 80; tcp flags 0x2/0x2 && 0x0/0x10; }",
            common(Some("(generic, 0x8008fc00, 0x64)")),
        ),
        (5, "flow4 { dst 203.0.113.12/32; }", common(Some("(generic, 0x80090000, 0x2e)"))),
        (6, "flow4 { dst 203.0.113.13/32; }", common(Some("(generic, 0x800c0000, 0x447a0000)"))),
        (7, "flow4 { dst 203.0.113.14/32; }", common(Some("(generic, 0x8000000, 0x0)"))),
        (
            8,
            "2001:db8::9/128 unreachable",
            vec![
                "BGP.next_hop: 2001:db8::66".into(),
                "BGP.community: (65535,666) (64512,7)".into(),
                "BGP.large_community: (64512, 1, 2)".into(),
            ],
        ),
    ];
    all.into_iter().filter(|(id, _, _)| ids.contains(id)).map(|(_, k, v)| (k.to_string(), v)).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn in_process_speaker(rt: &tokio::runtime::Runtime, local: Ipv4Addr, bird: &Bird, extra: &str) -> Speaker {
    let config: SpeakerConfig =
        toml::from_str(&speaker_toml(local, bird.local, bird.port, 64513, extra)).unwrap();
    rt.block_on(Speaker::start(config)).unwrap()
}

#[test]
fn bird_holds_exactly_the_announced_routes_and_nothing_after_withdrawal() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    let decisions = fixture();
    assert!(speaker.set_active(&decisions).is_empty());
    let all: Vec<u64> = (1..=8).collect();
    bird.wait_for(&expected(&all), "all fixture routes in BIRD", Duration::from_secs(SESSION_UP_SECS));

    // Withdrawal of one decision, then reconciliation to a subset, then to nothing.
    speaker.withdraw(DecisionId(1));
    bird.wait_for(&expected(&[2, 3, 4, 5, 6, 7, 8]), "decision 1 withdrawn", Duration::from_secs(10));
    speaker.set_active(&decisions[4..6]);
    bird.wait_for(&expected(&[5, 6]), "reconciled to decisions 5 and 6", Duration::from_secs(10));
    speaker.set_active(&[]);
    bird.wait_for(&BTreeMap::new(), "everything withdrawn", Duration::from_secs(10));

    // A clean shutdown withdraws what is active.
    speaker.set_active(&decisions);
    bird.wait_for(&expected(&all), "fixture back", Duration::from_secs(10));
    rt.block_on(speaker.shutdown(Duration::from_secs(5)));
    bird.wait_for(&BTreeMap::new(), "clean shutdown withdrew everything", Duration::from_secs(10));
    let protocol = bird.birdc("show protocols all rampart").unwrap();
    assert!(protocol.contains("Administrative shutdown"), "{protocol}");
}

#[test]
fn bird_validates_flowspec_when_the_unicast_route_is_present() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, true);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    let decisions = vec![
        decision(1, Scope::Prefix("203.0.113.0/24".parse().unwrap()), Action::Blackhole),
        decision(2, Scope::Address("203.0.113.20".parse().unwrap()), Action::Discard),
        decision(3, Scope::Address("198.51.100.50".parse().unwrap()), Action::Discard),
    ];
    speaker.set_active(&decisions);
    let flow = |dst: &str, valid: bool| {
        let key = if valid {
            format!("flow4 {{ dst {dst}; }}")
        } else {
            format!("flow4 {{ dst {dst}; }} unreachable")
        };
        (
            key,
            vec![
                "BGP.community: (64512,7)".to_string(),
                "BGP.ext_community: (generic, 0x80060000, 0x0)".to_string(),
                "BGP.large_community: (64512, 1, 2)".to_string(),
            ],
        )
    };
    let mut want: BTreeMap<String, Vec<String>> =
        [flow("203.0.113.20/32", true), flow("198.51.100.50/32", false)].into_iter().collect();
    want.insert(
        "203.0.113.0/24 unreachable".into(),
        vec![
            "BGP.next_hop: 192.0.2.66".into(),
            "BGP.community: (65535,666) (64512,7)".into(),
            "BGP.large_community: (64512, 1, 2)".into(),
        ],
    );
    bird.wait_for(
        &want,
        "the covered rule valid, the uncovered one not",
        Duration::from_secs(SESSION_UP_SECS),
    );
    // Without the unicast route the rule is no longer valid.
    speaker.withdraw(DecisionId(1));
    want.remove("203.0.113.0/24 unreachable");
    let (k, v) = flow("203.0.113.20/32", true);
    want.remove(&k);
    want.insert(format!("{k} unreachable"), v);
    bird.wait_for(&want, "rule invalid once the unicast route is gone", Duration::from_secs(10));
}

#[test]
fn bird_restart_gets_the_routes_back() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let mut bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    speaker.set_active(&fixture());
    let all: Vec<u64> = (1..=8).collect();
    bird.wait_for(&expected(&all), "fixture in BIRD", Duration::from_secs(SESSION_UP_SECS));
    bird.restart();
    bird.wait_for(&expected(&all), "routes back after BIRD restarted", Duration::from_secs(SESSION_UP_SECS));
}

#[test]
fn speaker_killed_and_restarted_leaves_exactly_the_active_set() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("speaker.toml");
    std::fs::write(&config, speaker_toml(rampart, bird.local, bird.port, 64513, "graceful_restart = 120"))
        .unwrap();
    let decisions_path = dir.path().join("decisions.json");
    let write = |ids: &[u64]| {
        let ds: Vec<_> = fixture().into_iter().filter(|d| ids.contains(&d.id.0)).collect();
        std::fs::write(&decisions_path, serde_json::to_string(&ds).unwrap()).unwrap();
    };
    let start =
        || ChildGuard::spawn("speaker", Command::new(speaker_example()).arg(&config).arg(&decisions_path));
    write(&[1, 2, 3, 4]);
    let mut first = start();
    bird.wait_for(&expected(&[1, 2, 3, 4]), "first speaker's routes", Duration::from_secs(SESSION_UP_SECS));
    first.kill();
    // While Rampart is down, graceful restart keeps its routes at the router.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(bird.routes().unwrap().len(), 4, "graceful restart keeps the routes while Rampart restarts");
    write(&[3, 4, 5, 8]);
    let mut second = start();
    bird.wait_for(
        &expected(&[3, 4, 5, 8]),
        "exactly the new active set (stale routes flushed)",
        Duration::from_secs(20),
    );
    second.terminate(Duration::from_secs(5));
    // With graceful restart a clean stop leaves the routes to the router's restart timer.
    assert_eq!(bird.routes().unwrap().len(), 4);
}

#[test]
fn bird_drops_routes_when_their_decisions_expire() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let mut decisions = fixture();
    // Decision 5 expires in five seconds, decision 6 expired already; the others stay.
    decisions[4].expires = Some(rampart_contract::EventTime::from_unix_micros(
        (now + Duration::from_secs(5)).as_micros() as u64,
    ));
    decisions[5].expires = Some(rampart_contract::EventTime::from_unix_micros(now.as_micros() as u64));
    speaker.set_active(&decisions);
    bird.wait_for(&expected(&[1, 2, 3, 4, 5, 7, 8]), "all but the expired decision", Duration::from_secs(10));
    bird.wait_for(&expected(&[1, 2, 3, 4, 7, 8]), "decision 5 withdrawn at expiry", Duration::from_secs(10));
}

#[test]
fn bird_connects_to_a_passive_speaker() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let listen_port = free_port(rampart);
    let bird = Bird::start_with(router, rampart, false, Some(listen_port), None);
    let rt = runtime();
    let extra = "mode = \"passive\"";
    let mut config: SpeakerConfig =
        toml::from_str(&speaker_toml(rampart, bird.local, bird.port, 64513, extra)).unwrap();
    config.listen = Some(std::net::SocketAddr::from((rampart, listen_port)));
    let speaker = rt.block_on(Speaker::start(config)).unwrap();
    speaker.set_active(&fixture()[..2]);
    bird.wait_for(&expected(&[1, 2]), "routes over the connection BIRD opened", Duration::from_secs(20));
    assert_eq!(speaker.status()[0].state, rampart_bgp::session::State::Established);
}

#[test]
fn a_full_budget_keeps_the_first_decisions_and_reports_the_rest() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "rule_budget = 2");
    let f = fixture();
    // Priority order: 5, then 1, then 2 (refused: the budget holds two rules).
    speaker.set_active(&[f[4].clone(), f[0].clone(), f[1].clone()]);
    bird.wait_for(&expected(&[5, 1]), "the first two decisions", Duration::from_secs(SESSION_UP_SECS));
    let status = &speaker.status()[0];
    assert!(status.refused_total >= 1, "refusals are counted");
    assert_eq!(status.last_refused.len(), 1);
    assert_eq!(status.last_refused[0].route.decision, DecisionId(2));
    assert_eq!(status.last_refused[0].why, rampart_bgp::rib::Refusal::OverBudget);
    // A withdrawal frees a place: the refused decision gets it.
    speaker.withdraw(DecisionId(5));
    bird.wait_for(&expected(&[1, 2]), "decision 2 takes the freed place", Duration::from_secs(10));
}

#[test]
fn bird_reloading_its_import_gets_the_routes_again_by_route_refresh() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    speaker.set_active(&fixture());
    let all: Vec<u64> = (1..=8).collect();
    bird.wait_for(&expected(&all), "fixture in BIRD", Duration::from_secs(SESSION_UP_SECS));
    let text = std::fs::read_to_string(&bird.config).unwrap();
    let reconfigure = |from: &str, to: &str| {
        std::fs::write(&bird.config, text.replace(from, to)).unwrap();
        let out = bird.birdc("configure").unwrap();
        assert!(out.contains("Reconfigured"), "{out}");
    };
    // Import none: BIRD drops the flow routes it holds.
    reconfigure("flow4 { table flowtab4; import all;", "flow4 { table flowtab4; import none;");
    bird.wait_for(&expected(&[2, 8, 3]), "IPv4 flow routes filtered out", Duration::from_secs(10));
    // Import all again: BIRD asks for the routes with a ROUTE-REFRESH, Rampart resends them.
    reconfigure("flow4 { table flowtab4; import none;", "flow4 { table flowtab4; import all;");
    bird.wait_for(&expected(&all), "flow routes back after the route refresh", Duration::from_secs(10));
    assert_eq!(speaker.status()[0].established_count, 1, "the same session: no reconnection");
}

#[test]
fn bird_accepts_a_rule_in_the_two_byte_length_form() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start(router, rampart, false);
    let rt = runtime();
    let speaker = in_process_speaker(&rt, rampart, &bird, "");
    // 60 port ranges: about 370 bytes of NLRI, past the one-byte length's 239.
    let ranges: Vec<rampart_contract::PortRange> =
        (0..60u16).map(|i| rampart_contract::PortRange { first: 2000 + 4 * i, last: 2001 + 4 * i }).collect();
    let sig = rampart_contract::Signature {
        dst_prefixes: vec!["203.0.113.50/32".parse().unwrap()],
        protocol: Some(17),
        dst_ports: ranges.clone(),
        ..rampart_contract::Signature::default()
    };
    let d = decision(42, Scope::Signature(Box::new(sig)), Action::Discard);
    let route = &rampart_bgp::route::Route::from_decision(&d).unwrap()[0];
    let rampart_bgp::route::RouteKey::Flow(rule) = &route.key else { panic!("a flow rule") };
    let mut wire = Vec::new();
    rule.encode(&mut wire).unwrap();
    assert!(wire[0] >= 0xf0 && wire.len() > 240, "two-byte length form, {} bytes", wire.len());
    speaker.set_active(&[d]);
    let header = wait_until(Duration::from_secs(SESSION_UP_SECS), "the long rule in BIRD", || {
        let routes = bird.routes()?;
        routes
            .keys()
            .find(|k| k.contains("dst 203.0.113.50/32"))
            .cloned()
            .ok_or_else(|| format!("{routes:#?}"))
    });
    // BIRD shortens long rules on display: what it shows must be the start of the ranges.
    let all = ranges.iter().map(|r| format!("{}..{}", r.first, r.last)).collect::<Vec<_>>().join(",");
    let shown =
        header.split("dport ").nth(1).unwrap_or("").trim_end_matches('}').trim_end_matches(" ...").trim_end();
    assert!(shown.len() > 100 && all.starts_with(shown), "{header}");
    assert!(!header.contains("unreachable"), "{header}");
    assert_eq!(speaker.status()[0].established_count, 1, "the session stayed up");
}

const PASSWORD: &str = "rampart md5 test key";

/// TCP-MD5 (RFC 2385): with BIRD's `password`, the speaker with the same password (from a
/// private file) gets its routes in; one with a wrong password or none never gets a session,
/// since BIRD's kernel drops its unsigned or wrongly signed SYNs.
#[test]
fn a_tcp_md5_session_comes_up_only_with_the_right_password() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let bird = Bird::start_with(router, rampart, false, None, Some(PASSWORD));
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let file = password_file(dir.path(), PASSWORD);

    let started = std::time::Instant::now();
    let extra = format!("password_file = \"{}\"", file.display());
    let speaker = in_process_speaker(&rt, rampart, &bird, &extra);
    speaker.set_active(&fixture()[..2]);
    bird.wait_for(&expected(&[1, 2]), "routes over the signed session", Duration::from_secs(SESSION_UP_SECS));
    eprintln!("right password: routes in BIRD after {:?}", started.elapsed());
    rt.block_on(speaker.shutdown(Duration::from_secs(5)));
    bird.wait_for(&BTreeMap::new(), "clean shutdown withdrew the routes", Duration::from_secs(10));

    // A wrong password and none, side by side: neither session ever comes up.
    let wrong = in_process_speaker(&rt, rampart, &bird, "password = \"not the key\"");
    let none = in_process_speaker(&rt, rampart, &bird, "");
    wrong.set_active(&fixture()[..2]);
    none.set_active(&fixture()[..2]);
    let watched = wait_for_dropped_connects(&wrong, "wrong password: SYN dropped");
    let watched = watched + wait_for_dropped_connects(&none, "no password: SYN dropped");
    eprintln!("wrong and missing password: sessions down, watched {watched:?}");
    let protocol = bird.birdc("show protocols rampart").unwrap();
    assert!(!protocol.contains("Established"), "{protocol}");
    assert!(bird.routes().unwrap().is_empty(), "no route without the right key");
}

/// The passive side: BIRD connects with its password to the speaker's listener, which holds
/// the key for BIRD's address before it listens.
#[test]
fn bird_connects_to_a_passive_speaker_with_tcp_md5() {
    if !peer_available("bird") || !peer_available("birdc") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let listen_port = free_port(rampart);
    let bird = Bird::start_with(router, rampart, false, Some(listen_port), Some(PASSWORD));
    let rt = runtime();
    let extra = format!("mode = \"passive\"\npassword = \"{PASSWORD}\"");
    let mut config: SpeakerConfig =
        toml::from_str(&speaker_toml(rampart, bird.local, bird.port, 64513, &extra)).unwrap();
    config.listen = Some(std::net::SocketAddr::from((rampart, listen_port)));
    let speaker = rt.block_on(Speaker::start(config)).unwrap();
    speaker.set_active(&fixture()[..2]);
    bird.wait_for(
        &expected(&[1, 2]),
        "routes over the signed connection BIRD opened",
        Duration::from_secs(20),
    );
    assert_eq!(speaker.status()[0].state, rampart_bgp::session::State::Established);
}
