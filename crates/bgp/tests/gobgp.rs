//! Interop with GoBGP: each test starts its own `gobgpd` (own directory, config, loopback
//! addresses, BGP and API ports) peered with Rampart's speaker, and reads its RIB through the
//! `gobgp` CLI.

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use rampart_bgp::config::SpeakerConfig;
use rampart_bgp::driver::Speaker;
use rampart_contract::DecisionId;
use support::*;

struct GoBgp {
    dir: tempfile::TempDir,
    guard: ChildGuard,
    local: Ipv4Addr,
    port: u16,
    api_port: u16,
}

impl GoBgp {
    fn start(local: Ipv4Addr, rampart: Ipv4Addr) -> GoBgp {
        GoBgp::start_with(local, rampart, None)
    }

    /// With `password`, the session is TCP-MD5 signed (RFC 2385; GoBGP's `auth-password`).
    fn start_with(local: Ipv4Addr, rampart: Ipv4Addr, password: Option<&str>) -> GoBgp {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(local);
        let api_port = free_port(local);
        let families = ["ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"]
            .iter()
            .map(|f| format!("  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n"))
            .collect::<String>();
        let text = format!(
            r#"[global.config]
  as = 64513
  router-id = "192.0.2.253"
  port = {port}
  local-address-list = ["{local}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{rampart}"
    peer-as = 64512
{password}  [neighbors.transport.config]
    passive-mode = true
    local-address = "{local}"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 5
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
{families}"#,
            password = password.map(|p| format!("    auth-password = \"{p}\"\n")).unwrap_or_default(),
        );
        std::fs::write(dir.path().join("gobgpd.toml"), text).unwrap();
        let guard = GoBgp::spawn(&dir, local, api_port);
        let g = GoBgp { dir, guard, local, port, api_port };
        wait_until(Duration::from_secs(10), "gobgp answers", || g.gobgp(&["global"]).map(|_| ()));
        g
    }

    fn spawn(dir: &tempfile::TempDir, local: Ipv4Addr, api_port: u16) -> ChildGuard {
        let log = std::fs::File::create(dir.path().join("gobgpd.log")).unwrap();
        ChildGuard::spawn(
            "gobgpd",
            Command::new("gobgpd")
                .arg("-f")
                .arg(dir.path().join("gobgpd.toml"))
                .arg("--api-hosts")
                .arg(format!("{local}:{api_port}"))
                .stdout(Stdio::null())
                .stderr(log),
        )
    }

    fn restart(&mut self) {
        self.guard.kill();
        self.guard = GoBgp::spawn(&self.dir, self.local, self.api_port);
        wait_until(Duration::from_secs(10), "gobgp answers after restart", || {
            self.gobgp(&["global"]).map(|_| ())
        });
    }

    fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("gobgp")
            .arg("-u")
            .arg(self.local.to_string())
            .arg("-p")
            .arg(self.api_port.to_string())
            .args(args)
            .output()
            .map_err(|e| format!("gobgp: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every route of the four families: network → (next hop, attributes), as `gobgp global
    /// rib` prints them (columns found from the header line).
    fn routes(&self) -> Result<BTreeMap<String, (String, String)>, String> {
        let mut out = BTreeMap::new();
        for family in ["ipv4", "ipv6", "ipv4-flowspec", "ipv6-flowspec"] {
            let text = self.gobgp(&["global", "rib", "-a", family])?;
            let mut lines = text.lines();
            let Some(header) = lines.next() else { continue };
            if header.contains("Network not in table") {
                continue;
            }
            let col = |name: &str| header.find(name).ok_or_else(|| format!("no {name} column in {header:?}"));
            let (nh, path, attrs) = (col("Next Hop")?, col("AS_PATH")?, col("Attrs")?);
            for line in lines {
                if line.len() < attrs {
                    continue;
                }
                let network = line[3..nh].trim().to_string();
                out.insert(network, (line[nh..path].trim().to_string(), line[attrs..].trim().to_string()));
            }
        }
        Ok(out)
    }

    fn wait_for(&self, want: &BTreeMap<String, (String, String)>, what: &str, timeout: Duration) {
        wait_until(timeout, what, || {
            let got = self.routes()?;
            if &got == want { Ok(()) } else { Err(format!("GoBGP holds {got:#?}\nwanted {want:#?}")) }
        });
    }
}

/// What GoBGP shows for the fixture's decisions, in its words. GoBGP names neither
/// traffic-rate-packets (0x800c) nor redirect-to-next-hop (0x0800): it prints them as raw
/// numbers (the community's low 56 bits).
fn expected(ids: &[u64]) -> BTreeMap<String, (String, String)> {
    let flow = |ext: &str| {
        (
            "fictitious".to_string(),
            format!(
                "[{{Origin: i}} {{Communities: 64512:7}} {{Extcomms: [{ext}]}} {{LargeCommunity: [ 64512:1:2]}}]"
            ),
        )
    };
    let blackhole = |nh: &str| {
        (
            nh.to_string(),
            "[{Origin: i} {Communities: blackhole, 64512:7} {LargeCommunity: [ 64512:1:2]}]".to_string(),
        )
    };
    let all = vec![
        (
            1,
            "[destination: 203.0.113.10/32][protocol: ==udp][destination-port: >=1024&<=65535][source-port: ==53][packet-length: >=500&<=1500][fragment: =is-fragment&!first-fragment]",
            flow("rate: 1000000.000000"),
        ),
        (2, "198.51.100.7/32", blackhole("192.0.2.66")),
        (3, "[destination: 2001:db8:1::/48/0]", flow("discard")),
        (
            4,
            "[destination: 203.0.113.11/32][protocol: ==tcp][destination-port: ==80][tcp-flags: =S&!A]",
            flow("redirect: 64512:100"),
        ),
        (5, "[destination: 203.0.113.12/32]", flow("remark: 46")),
        (6, "[destination: 203.0.113.13/32]", flow(&(0x000c_0000_447a_0000u64).to_string())),
        (7, "[destination: 203.0.113.14/32]", flow("0")),
        (8, "2001:db8::9/128", blackhole("2001:db8::66")),
    ];
    all.into_iter().filter(|(id, _, _)| ids.contains(id)).map(|(_, k, v)| (k.to_string(), v)).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

#[test]
fn gobgp_holds_exactly_the_announced_routes_and_nothing_after_withdrawal() {
    if !peer_available("gobgpd") || !peer_available("gobgp") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let mut gobgp = GoBgp::start(router, rampart);
    let rt = runtime();
    let config: SpeakerConfig =
        toml::from_str(&speaker_toml(rampart, gobgp.local, gobgp.port, 64513, "")).unwrap();
    let speaker = rt.block_on(Speaker::start(config)).unwrap();
    let decisions = fixture();
    speaker.set_active(&decisions);
    let all: Vec<u64> = (1..=8).collect();
    gobgp.wait_for(&expected(&all), "all fixture routes in GoBGP", Duration::from_secs(15));
    speaker.withdraw(DecisionId(1));
    speaker.withdraw(DecisionId(8));
    gobgp.wait_for(&expected(&[2, 3, 4, 5, 6, 7]), "decisions 1 and 8 withdrawn", Duration::from_secs(10));
    speaker.set_active(&[]);
    gobgp.wait_for(&BTreeMap::new(), "everything withdrawn", Duration::from_secs(10));

    // GoBGP restarted: the routes come back by themselves.
    speaker.set_active(&decisions[..3]);
    gobgp.wait_for(&expected(&[1, 2, 3]), "three routes", Duration::from_secs(10));
    gobgp.restart();
    gobgp.wait_for(&expected(&[1, 2, 3]), "routes back after GoBGP restarted", Duration::from_secs(20));
    rt.block_on(speaker.shutdown(Duration::from_secs(5)));
    gobgp.wait_for(&BTreeMap::new(), "clean shutdown withdrew everything", Duration::from_secs(10));
}

#[test]
fn gobgp_ends_with_exactly_the_active_set_after_speaker_kill_and_restart() {
    if !peer_available("gobgpd") || !peer_available("gobgp") {
        return;
    }
    let (rampart, router) = loopback_pair();
    let gobgp = GoBgp::start(router, rampart);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("speaker.toml");
    std::fs::write(&config, speaker_toml(rampart, gobgp.local, gobgp.port, 64513, "")).unwrap();
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
    write(&[1, 2, 5]);
    let mut first = start();
    gobgp.wait_for(&expected(&[1, 2, 5]), "first speaker's routes", Duration::from_secs(15));
    first.kill();
    write(&[2, 3, 4]);
    let _second = start();
    gobgp.wait_for(&expected(&[2, 3, 4]), "exactly the new active set", Duration::from_secs(20));
}

/// TCP-MD5 against GoBGP's `auth-password`: the right password gets the routes in; a wrong one
/// or none never gets a session (GoBGP's kernel drops the SYNs).
#[test]
fn a_tcp_md5_session_with_gobgp_comes_up_only_with_the_right_password() {
    if !peer_available("gobgpd") || !peer_available("gobgp") {
        return;
    }
    const PASSWORD: &str = "gobgp md5 test key";
    let (rampart, router) = loopback_pair();
    let gobgp = GoBgp::start_with(router, rampart, Some(PASSWORD));
    let rt = runtime();
    let speaker_with = |extra: &str| {
        let config: SpeakerConfig =
            toml::from_str(&speaker_toml(rampart, gobgp.local, gobgp.port, 64513, extra)).unwrap();
        rt.block_on(Speaker::start(config)).unwrap()
    };
    let started = std::time::Instant::now();
    let right = speaker_with(&format!("password = \"{PASSWORD}\""));
    right.set_active(&fixture()[..2]);
    gobgp.wait_for(&expected(&[1, 2]), "routes over the signed session", Duration::from_secs(15));
    eprintln!("right password: routes in GoBGP after {:?}", started.elapsed());
    rt.block_on(right.shutdown(Duration::from_secs(5)));
    gobgp.wait_for(&BTreeMap::new(), "clean shutdown withdrew the routes", Duration::from_secs(10));

    let wrong = speaker_with("password = \"not the key\"");
    let none = speaker_with("");
    wrong.set_active(&fixture()[..2]);
    none.set_active(&fixture()[..2]);
    let watched = wait_for_dropped_connects(&wrong, "wrong password: SYN dropped")
        + wait_for_dropped_connects(&none, "no password: SYN dropped");
    eprintln!("wrong and missing password: sessions down, watched {watched:?}");
    let neighbor = gobgp.gobgp(&["neighbor"]).unwrap();
    assert!(!neighbor.contains("Establ"), "{neighbor}");
    assert!(gobgp.routes().unwrap().is_empty(), "no route without the right key");
}
