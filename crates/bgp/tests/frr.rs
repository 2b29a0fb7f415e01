//! Interop with FRR: each test runs its own standalone `bgpd` (no zebra, its own config, pid
//! file and vty socket directory, loopback addresses and port) peered with Rampart's speaker,
//! and reads what it holds through `vtysh`.

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rampart_bgp::config::SpeakerConfig;
use rampart_bgp::driver::Speaker;
use rampart_contract::DecisionId;
use support::*;

const BGPD: &str = "/usr/lib/frr/bgpd";

struct Frr {
    dir: tempfile::TempDir,
    guard: ChildGuard,
    local: Ipv4Addr,
    port: u16,
}

impl Frr {
    fn start(local: Ipv4Addr, rampart: Ipv4Addr) -> Frr {
        Frr::start_with(local, rampart, None)
    }

    /// With `password`, the session is TCP-MD5 signed (RFC 2385; `neighbor X password`).
    fn start_with(local: Ipv4Addr, rampart: Ipv4Addr, password: Option<&str>) -> Frr {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(local);
        let families = ["ipv4 unicast", "ipv6 unicast", "ipv4 flowspec", "ipv6 flowspec"]
            .iter()
            .map(|f| format!(" address-family {f}\n  neighbor {rampart} activate\n exit-address-family\n"))
            .collect::<String>();
        let text = format!(
            "frr defaults traditional\nhostname rampart-test\n!\nrouter bgp 64513\n bgp router-id 192.0.2.252\n no bgp ebgp-requires-policy\n neighbor {rampart} remote-as 64512\n neighbor {rampart} ebgp-multihop 5\n neighbor {rampart} passive\n neighbor {rampart} timers 3 9\n{password}{families}!\n",
            password = password.map(|p| format!(" neighbor {rampart} password {p}\n")).unwrap_or_default(),
        );
        std::fs::write(dir.path().join("bgpd.conf"), text).unwrap();
        let guard = Frr::spawn(&dir, local, port);
        let frr = Frr { dir, guard, local, port };
        wait_until(Duration::from_secs(10), "vtysh answers", || frr.vtysh("show bgp summary").map(|_| ()));
        frr
    }

    fn spawn(dir: &tempfile::TempDir, local: Ipv4Addr, port: u16) -> ChildGuard {
        let log = std::fs::File::create(dir.path().join("bgpd.log")).unwrap();
        let _ = std::fs::remove_file(dir.path().join("bgpd.vty"));
        ChildGuard::spawn(
            "bgpd",
            Command::new(BGPD)
                .arg("-f")
                .arg(dir.path().join("bgpd.conf"))
                .arg("-i")
                .arg(dir.path().join("bgpd.pid"))
                .arg("--vty_socket")
                .arg(dir.path())
                .args(["-Z", "-S", "-P", "0", "-l"])
                .arg(local.to_string())
                .arg("-p")
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(log),
        )
    }

    fn restart(&mut self) {
        self.guard.kill();
        self.guard = Frr::spawn(&self.dir, self.local, self.port);
        wait_until(Duration::from_secs(10), "vtysh answers after restart", || {
            self.vtysh("show bgp summary").map(|_| ())
        });
    }

    fn vtysh(&self, command: &str) -> Result<String, String> {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.path())
            .arg("-c")
            .arg(command)
            .output()
            .map_err(|e| format!("vtysh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// FlowSpec entries (their lines, timing lines left out) and unicast routes (next hop
    /// and communities), as FRR prints them.
    fn routes(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut out = BTreeMap::new();
        for family in ["ipv4", "ipv6"] {
            let text = self.vtysh(&format!("show bgp {family} flowspec detail"))?;
            let mut entry: Option<Vec<String>> = None;
            let finish = |entry: Option<Vec<String>>, out: &mut BTreeMap<String, Vec<String>>| {
                if let Some(lines) = entry
                    && let Some((key, rest)) = lines.split_first()
                {
                    out.insert(key.clone(), rest.to_vec());
                }
            };
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with("BGP flowspec entry") {
                    finish(entry.take(), &mut out);
                    entry = Some(Vec::new());
                } else if line.is_empty()
                    || line.starts_with("received for")
                    || line.starts_with("Displayed")
                    || line.contains("installed in PBR")
                {
                    continue;
                } else if let Some(e) = entry.as_mut() {
                    e.push(line.to_string());
                }
            }
            finish(entry, &mut out);

            let json = self.vtysh(&format!("show bgp {family} unicast json"))?;
            let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
            let Some(routes) = value["routes"].as_object() else { continue };
            for prefix in routes.keys() {
                let text = self.vtysh(&format!("show bgp {family} unicast {prefix}"))?;
                let lines = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        l.contains(" from ")
                            || l.starts_with("Community:")
                            || l.starts_with("Large Community:")
                    })
                    .map(|l| l.split(" from ").next().unwrap_or(l).to_string())
                    .collect();
                out.insert(prefix.clone(), lines);
            }
        }
        Ok(out)
    }
}

/// What FRR shows for the fixture's decisions, in its words (it names no traffic-rate-packets
/// action: `UNK:128, 12`; it adds NO_EXPORT to blackhole routes, per RFC 7999).
fn expected(ids: &[u64]) -> BTreeMap<String, Vec<String>> {
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let blackhole =
        |nh: &str| lines(&[nh, "Community: 64512:7 blackhole no-export", "Large Community: 64512:1:2"]);
    let all: Vec<(u64, Vec<String>)> = vec![
        (
            1,
            lines(&[
                "Destination Address 203.0.113.10/32",
                "IP Protocol = 17",
                "Destination Port >= 1024 , <= 65535",
                "Source Port = 53",
                "Packet Length >= 500 , <= 1500",
                "Packet Fragment = 2,&∋ ! 4",
                "FS:rate 1000000.000000",
            ]),
        ),
        (2, [vec!["198.51.100.7/32".to_string()], blackhole("192.0.2.66")].concat()),
        (3, lines(&["Destination Address 2001:db8:1::/48/off 0", "FS:rate 0.000000"])),
        (
            4,
            lines(&[
                "Destination Address 203.0.113.11/32",
                "IP Protocol = 6",
                "Destination Port = 80",
                "TCP Flags = 2,&∋ ! 16",
                "FS:redirect VRF RT:64512:100",
            ]),
        ),
        (5, lines(&["Destination Address 203.0.113.12/32", "FS:marking 46"])),
        (6, lines(&["Destination Address 203.0.113.13/32", "UNK:128, 12"])),
        (7, lines(&["Destination Address 203.0.113.14/32", "FS:redirect IP 0x0", "NLRI NH 192.0.2.9"])),
        (8, [vec!["2001:db8::9/128".to_string()], blackhole("2001:db8::66")].concat()),
    ];
    // Keyed by their first line: the destination of a flow entry, the prefix of a route.
    all.into_iter().filter(|(id, _)| ids.contains(id)).map(|(_, v)| (v[0].clone(), v[1..].to_vec())).collect()
}

fn wait_for(frr: &Frr, want: &BTreeMap<String, Vec<String>>, what: &str, timeout: Duration) {
    wait_until(timeout, what, || {
        let got = frr.routes()?;
        if &got == want { Ok(()) } else { Err(format!("FRR holds {got:#?}\nwanted {want:#?}")) }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn frr_holds_exactly_the_announced_routes_and_nothing_after_withdrawal() {
    if !peer_available(BGPD) || !peer_available("vtysh") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let mut frr = Frr::start(router, rampart);
    let rt = runtime();
    let config: SpeakerConfig =
        toml::from_str(&speaker_toml(rampart, frr.local, frr.port, 64513, "")).unwrap();
    let speaker = rt.block_on(Speaker::start(config)).unwrap();
    let decisions = fixture();
    speaker.set_active(&decisions);
    let all: Vec<u64> = (1..=8).collect();
    wait_for(&frr, &expected(&all), "all fixture routes in FRR", Duration::from_secs(15));
    speaker.withdraw(DecisionId(2));
    speaker.withdraw(DecisionId(4));
    wait_for(&frr, &expected(&[1, 3, 5, 6, 7, 8]), "decisions 2 and 4 withdrawn", Duration::from_secs(10));
    speaker.set_active(&[]);
    wait_for(&frr, &BTreeMap::new(), "everything withdrawn", Duration::from_secs(10));

    speaker.set_active(&decisions[..4]);
    wait_for(&frr, &expected(&[1, 2, 3, 4]), "four routes", Duration::from_secs(10));
    frr.restart();
    wait_for(&frr, &expected(&[1, 2, 3, 4]), "routes back after bgpd restarted", Duration::from_secs(20));
    rt.block_on(speaker.shutdown(Duration::from_secs(5)));
    wait_for(&frr, &BTreeMap::new(), "clean shutdown withdrew everything", Duration::from_secs(10));
}

#[test]
fn frr_ends_with_exactly_the_active_set_after_speaker_kill_and_restart() {
    if !peer_available(BGPD) || !peer_available("vtysh") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let frr = Frr::start(router, rampart);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("speaker.toml");
    std::fs::write(&config, speaker_toml(rampart, frr.local, frr.port, 64513, "")).unwrap();
    let decisions_path = dir.path().join("decisions.json");
    let write = |ids: &[u64]| {
        let ds: Vec<_> = fixture().into_iter().filter(|d| ids.contains(&d.id.0)).collect();
        std::fs::write(&decisions_path, serde_json::to_string(&ds).unwrap()).unwrap();
    };
    let start = || {
        ChildGuard::spawn(
            "speaker",
            Command::new(speaker_example()).arg(&config).arg(&decisions_path).stderr(Stdio::null()),
        )
    };
    write(&[1, 2, 6]);
    let mut first = start();
    wait_for(&frr, &expected(&[1, 2, 6]), "first speaker's routes", Duration::from_secs(15));
    first.kill();
    write(&[2, 7, 8]);
    let _second = start();
    wait_for(&frr, &expected(&[2, 7, 8]), "exactly the new active set", Duration::from_secs(20));
}

#[test]
fn frr_reads_both_redirect_to_ip_encodings() {
    if !peer_available(BGPD) || !peer_available("vtysh") {
        return;
    }
    let rt = runtime();
    let redirect = fixture().into_iter().filter(|d| d.id.0 == 7).collect::<Vec<_>>();
    for (encoding, want) in [
        ("next_hop", vec!["FS:redirect IP 0x0", "NLRI NH 192.0.2.9"]),
        ("address_community", vec!["NH:192.0.2.9:0"]),
    ] {
        let (rampart, router) = loopback_pair();
        let frr = Frr::start(router, rampart);
        let extra = format!("redirect_ip = \"{encoding}\"");
        let config: SpeakerConfig =
            toml::from_str(&speaker_toml(rampart, frr.local, frr.port, 64513, &extra)).unwrap();
        let speaker = rt.block_on(Speaker::start(config)).unwrap();
        speaker.set_active(&redirect);
        let want: BTreeMap<String, Vec<String>> = [(
            "Destination Address 203.0.113.14/32".to_string(),
            want.iter().map(|s| s.to_string()).collect(),
        )]
        .into_iter()
        .collect();
        wait_for(&frr, &want, &format!("redirect encoded as {encoding}"), Duration::from_secs(15));
        rt.block_on(speaker.shutdown(Duration::from_secs(5)));
    }
}

/// TCP-MD5 against FRR's `neighbor X password`: the right password gets the routes in; a wrong
/// one or none never gets a session (bgpd's kernel drops the SYNs).
#[test]
fn a_tcp_md5_session_with_frr_comes_up_only_with_the_right_password() {
    if !peer_available(BGPD) || !peer_available("vtysh") {
        return;
    }
    const PASSWORD: &str = "frr-md5-test-key";
    let (rampart, router) = loopback_pair();
    let frr = Frr::start_with(router, rampart, Some(PASSWORD));
    let rt = runtime();
    let speaker_with = |extra: &str| {
        let config: SpeakerConfig =
            toml::from_str(&speaker_toml(rampart, frr.local, frr.port, 64513, extra)).unwrap();
        rt.block_on(Speaker::start(config)).unwrap()
    };
    let started = std::time::Instant::now();
    let right = speaker_with(&format!("password = \"{PASSWORD}\""));
    right.set_active(&fixture()[..2]);
    wait_for(&frr, &expected(&[1, 2]), "routes over the signed session", Duration::from_secs(15));
    eprintln!("right password: routes in FRR after {:?}", started.elapsed());
    rt.block_on(right.shutdown(Duration::from_secs(5)));
    wait_for(&frr, &BTreeMap::new(), "clean shutdown withdrew the routes", Duration::from_secs(10));

    let wrong = speaker_with("password = \"not the key\"");
    let none = speaker_with("");
    wrong.set_active(&fixture()[..2]);
    none.set_active(&fixture()[..2]);
    let watched = wait_for_dropped_connects(&wrong, "wrong password: SYN dropped")
        + wait_for_dropped_connects(&none, "no password: SYN dropped");
    eprintln!("wrong and missing password: sessions down, watched {watched:?}");
    let summary = frr.vtysh("show bgp neighbors").unwrap();
    assert!(!summary.contains("BGP state = Established"), "{summary}");
    assert!(frr.routes().unwrap().is_empty(), "no route without the right key");
}
