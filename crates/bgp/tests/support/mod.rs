//! Helpers for the interop tests: finding peers (or failing when CI requires them), unique
//! loopback addresses and free ports, child processes stopped by PID on drop, decisions, and
//! polling until a router shows what is expected.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rampart_contract::{
    Action, AttackId, Decision, DecisionId, EventTime, Origin, PortRange, Scope, Signature, TcpFlags,
};

/// Whether `binary` can run; when it cannot, fails if CI requires peers, else says so.
pub fn peer_available(binary: &str) -> bool {
    let found = Path::new(binary).is_absolute() && Path::new(binary).exists()
        || std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).exists()));
    if !found {
        let required = std::env::var_os("RAMPART_REQUIRE_PEERS").is_some_and(|v| v == "1")
            || std::env::var_os("CI").is_some();
        assert!(!required, "{binary} is not installed and RAMPART_REQUIRE_PEERS/CI requires it");
        eprintln!("skipping: {binary} is not installed");
    }
    found
}

static NEXT: AtomicU8 = AtomicU8::new(0);

/// Two loopback addresses no other test run uses: 127.X.Y.{2n+1, 2n+2} from the process id
/// and a per-process counter.
pub fn loopback_pair() -> (Ipv4Addr, Ipv4Addr) {
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let x = 16 + ((pid >> 8) % 200) as u8;
    let y = (pid & 0xff) as u8;
    let z = 2 * (n % 120) + 1;
    (Ipv4Addr::new(127, x, y, z), Ipv4Addr::new(127, x, y, z + 1))
}

/// A TCP port free on `addr` (bound, then released).
pub fn free_port(addr: Ipv4Addr) -> u16 {
    TcpListener::bind(SocketAddr::from((addr, 0))).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// A child process, killed (SIGKILL) and reaped when dropped, also on panic.
pub struct ChildGuard {
    pub child: Option<Child>,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, command: &mut Command) -> ChildGuard {
        let child = command.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        ChildGuard { child: Some(child), name: name.to_string() }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9`, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a clean shutdown), then wait at most `grace` before SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns `Ok`, or panics with the last error after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not reached after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The speaker example, built by `cargo test` next to the test binaries.
pub fn speaker_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).map(|d| d.join("examples").join("speaker")).unwrap();
    assert!(path.exists(), "{} missing: run through cargo test", path.display());
    path
}

pub fn decision(id: u64, scope: Scope, action: Action) -> Decision {
    Decision {
        id: DecisionId(id),
        scope,
        action,
        origin: Origin::Attack { attack: AttackId(id) },
        created: EventTime::from_unix_secs(1_700_000_000),
        expires: None,
        reason: "interop test".into(),
    }
}

/// One decision of every kind the speaker announces.
pub fn fixture() -> Vec<Decision> {
    let dns_flood = Signature {
        dst_prefixes: vec!["203.0.113.10/32".parse().unwrap()],
        protocol: Some(17),
        src_ports: vec![PortRange::single(53)],
        dst_ports: vec![PortRange { first: 1024, last: 65535 }],
        fragment: Some(rampart_contract::FragmentMatch::NonInitial),
        packet_len: Some(rampart_contract::LengthRange { min: 500, max: 1500 }),
        ..Signature::default()
    };
    let syn_flood = Signature {
        dst_prefixes: vec!["203.0.113.11/32".parse().unwrap()],
        protocol: Some(6),
        dst_ports: vec![PortRange::single(80)],
        tcp_flags: Some(TcpFlags { value: 0x02, mask: 0x12 }),
        ..Signature::default()
    };
    vec![
        decision(
            1,
            Scope::Signature(Box::new(dns_flood)),
            Action::RateLimitBytes { bytes_per_sec: 1_000_000 },
        ),
        decision(2, Scope::Address("198.51.100.7".parse().unwrap()), Action::Blackhole),
        decision(3, Scope::Prefix("2001:db8:1::/48".parse().unwrap()), Action::Discard),
        decision(
            4,
            Scope::Signature(Box::new(syn_flood)),
            Action::RedirectVrf {
                route_target: rampart_contract::RouteTarget::As2 { asn: 64512, value: 100 },
            },
        ),
        decision(5, Scope::Address("203.0.113.12".parse().unwrap()), Action::Mark { dscp: 46 }),
        decision(
            6,
            Scope::Address("203.0.113.13".parse().unwrap()),
            Action::RateLimitPackets { packets_per_sec: 1000 },
        ),
        decision(
            7,
            Scope::Address("203.0.113.14".parse().unwrap()),
            Action::RedirectNextHop { next_hop: "192.0.2.9".parse().unwrap() },
        ),
        decision(8, Scope::Address("2001:db8::9".parse().unwrap()), Action::Blackhole),
    ]
}

/// A `[[peers]]` entry of the speaker's TOML.
pub fn speaker_toml(local: Ipv4Addr, peer: Ipv4Addr, port: u16, peer_as: u32, extra: &str) -> String {
    format!(
        r#"local_as = 64512
router_id = "192.0.2.1"

[[peers]]
name = "peer"
address = "{peer}"
port = {port}
peer_as = {peer_as}
local_address = "{local}"
hold_time = 9
communities = ["64512:7"]
large_communities = ["64512:1:2"]
blackhole_next_hop_v4 = "192.0.2.66"
blackhole_next_hop_v6 = "2001:db8::66"
{extra}
"#
    )
}

/// A TCP-MD5 password file (mode 0600, as the speaker requires) in `dir`.
pub fn password_file(dir: &Path, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("bgp-password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Waits until every peer of `speaker` has had a connection attempt time out, which is what a
/// TCP-MD5 mismatch looks like from the connecting side (the peer's kernel drops the SYN
/// unanswered: no refusal, no BGP error), and checks no session ever came up meanwhile.
/// Returns how long the session was watched staying down.
pub fn wait_for_dropped_connects(speaker: &rampart_bgp::driver::Speaker, what: &str) -> Duration {
    let started = Instant::now();
    wait_until(Duration::from_secs(20), what, || {
        let status = speaker.status();
        for peer in &status {
            assert_eq!(peer.established_count, 0, "{what}: the session came up: {peer:?}");
        }
        if status.iter().all(|p| p.last_error.as_deref().is_some_and(|e| e.contains("timed out"))) {
            Ok(())
        } else {
            Err(format!("{status:#?}"))
        }
    });
    started.elapsed()
}
