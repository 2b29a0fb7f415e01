//! The shield inside `rampart run` (`[shield]`): the mitigator pushes decisions into its ban
//! table, so `rampart ban` against the running daemon refuses the address at the shield within
//! a second (no store poll), other clients are served, and `rampart unban` lets it in again;
//! SIGHUP re-reads the shield's file without stopping the daemon.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{Guard, get_from, origin};

/// A shield file routing everything to `origin`.
fn shield_file(origin: std::net::SocketAddr) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.web]\nservers = [\"http://{origin}\"]\n[[route]]\nupstream = \"web\"\n"
    )
}

/// `rampart run` with `[mitigation]` and `[shield]` reading `shield_config`; returns the
/// daemon, its stderr lines and the shield's address once the control socket is up.
fn start_daemon(
    dir: &std::path::Path,
    shield_config: &std::path::Path,
) -> (Guard, std::sync::mpsc::Receiver<String>, String, std::path::PathBuf) {
    start_daemon_with(dir, shield_config, "")
}

/// The same, with `detection` (detection keys and tables) at the end of the daemon's file.
fn start_daemon_with(
    dir: &std::path::Path,
    shield_config: &std::path::Path,
    detection: &str,
) -> (Guard, std::sync::mpsc::Receiver<String>, String, std::path::PathBuf) {
    let data = dir.join("data");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "protected = [\"198.51.100.0/24\"]\n[mitigation]\n[shield]\nconfig = \"{}\"\ndrain_secs = 1\n{detection}",
            shield_config.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["run", "--sflow", "127.0.0.1:0", "--metrics", "off", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let (_stdout, stderr) = support::line_channels(&mut guard.0);
    let (mut shield, mut control) = (None, false);
    while shield.is_none() || !control {
        let line = stderr.recv_timeout(Duration::from_secs(20)).expect("daemon startup lines");
        if let Some(address) = line.strip_prefix("shield listening on ") {
            shield = Some(address.trim().to_owned());
        } else if line.starts_with("control socket ") {
            control = true;
        }
    }
    (guard, stderr, shield.unwrap(), config)
}

#[test]
fn a_ban_against_rampart_run_reaches_its_shield_within_a_second() {
    let dir = tempfile::Builder::new().prefix("rampart-run-shield-").tempdir().unwrap();
    let data = dir.path().join("data");
    let shield_config = dir.path().join("shield.toml");
    std::fs::write(&shield_config, shield_file(origin(256, "origin says hi"))).unwrap();
    let (mut guard, stderr, shield, config) = start_daemon(dir.path(), &shield_config);
    let (banned, other) = ("127.0.0.87:0", "127.0.0.88:0");
    assert!(get_from(banned, &shield).is_some_and(|a| a.starts_with("HTTP/1.1 200")));

    let rampart = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let asked = Instant::now();
    rampart(&["ban", "127.0.0.87", "--action", "discard", "--duration", "1h", "--reason", "test"]);
    let answered = asked.elapsed();
    // Bounded: 50 tries, 20 ms apart.
    let mut refused = None;
    for _ in 0..50 {
        if get_from(banned, &shield).is_none() {
            refused = Some(asked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = refused.expect("the ban did not reach the shield");
    println!(
        "ban in force at the shield {:.3} s after `rampart ban` started ({:.3} s for the command itself)",
        refused.as_secs_f64(),
        answered.as_secs_f64()
    );
    assert!(refused < Duration::from_secs(1), "{refused:?}");
    assert!(
        get_from(other, &shield).is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "another client was refused"
    );

    rampart(&["unban", "127.0.0.87"]);
    let asked = Instant::now();
    while get_from(banned, &shield).is_none() {
        assert!(asked.elapsed() < Duration::from_secs(1), "the unban did not reach the shield");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: the daemon stops its shield with everything else.
    let pid = guard.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    let mut saw_stop = false;
    while started.elapsed() < Duration::from_secs(15) {
        match stderr.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.contains("shield stopped") => saw_stop = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(saw_stop, "the daemon says its shield stopped");
    assert!(guard.0.wait().unwrap().success());
}

/// The next stderr line starting with `SIGHUP: `.
fn hangup_answer(stderr: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = stderr.recv_timeout(Duration::from_secs(10)).expect("a SIGHUP line");
        if let Some(rest) = line.strip_prefix("SIGHUP: ") {
            return rest.to_owned();
        }
    }
}

#[test]
fn sighup_reloads_the_shield_inside_rampart_run_and_a_bad_file_keeps_the_running_one() {
    let dir = tempfile::Builder::new().prefix("rampart-run-shield-hup-").tempdir().unwrap();
    let shield_config = dir.path().join("shield.toml");
    std::fs::write(&shield_config, shield_file(origin(64, "first origin"))).unwrap();
    let (mut guard, stderr, shield, _) = start_daemon(dir.path(), &shield_config);
    let client = "127.0.0.89:0";
    assert!(get_from(client, &shield).is_some_and(|a| a.ends_with("first origin")));
    let pid = guard.0.id().to_string();
    let hangup = || assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());

    std::fs::write(&shield_config, shield_file(origin(64, "second origin"))).unwrap();
    hangup();
    let answer = hangup_answer(&stderr);
    assert!(answer.contains("reloaded"), "{answer}");
    assert!(get_from(client, &shield).is_some_and(|a| a.ends_with("second origin")), "the new route is used");

    std::fs::write(&shield_config, "[[route]]\nupstream = \"nowhere\"\n").unwrap();
    hangup();
    let answer = hangup_answer(&stderr);
    assert!(answer.contains("kept the running configuration") && answer.contains("shield.toml"), "{answer}");
    assert!(get_from(client, &shield).is_some_and(|a| a.ends_with("second origin")), "still serving");
    assert!(guard.0.try_wait().unwrap().is_none(), "SIGHUP ended the daemon");
}

#[test]
fn the_detection_layers_threat_level_tightens_the_shield_inside_rampart_run() {
    // A scheduled window at `high` now: the daemon publishes the level, its shield reads it
    // within a second and, with `[snapshot] at_level = "high"`, answers GETs from the snapshot.
    let dir = tempfile::Builder::new().prefix("rampart-run-shield-threat-").tempdir().unwrap();
    let snapshot = dir.path().join("snapshot");
    std::fs::create_dir(&snapshot).unwrap();
    std::fs::write(snapshot.join("index.html"), "snapshot page").unwrap();
    let shield_config = dir.path().join("shield.toml");
    std::fs::write(
        &shield_config,
        format!(
            "{}[snapshot]\ndir = \"{}\"\nat_level = \"high\"\n",
            shield_file(origin(64, "live origin")),
            snapshot.display()
        ),
    )
    .unwrap();
    let window = "[[threat.window]]\nlevel = \"high\"\nfrom = \"2026-01-01T00:00:00Z\"\nuntil = \"2100-01-01T00:00:00Z\"\nreason = \"vote\"\n";
    let (_guard, stderr, shield, _) = start_daemon_with(dir.path(), &shield_config, window);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut said = false;
    while !said && Instant::now() < deadline {
        said = stderr.recv_timeout(Duration::from_secs(10)).is_ok_and(|l| l.starts_with("threat level high"));
    }
    assert!(said, "the daemon says it published the level");
    let file = dir.path().join("data").join("threat-level");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "high\n");
    // Bounded: the shield re-reads the file every second.
    let mut answer = None;
    for _ in 0..30 {
        answer = get_from("127.0.0.90:0", &shield);
        if answer.as_deref().is_some_and(|a| a.ends_with("snapshot page")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = answer.expect("an answer");
    assert!(answer.ends_with("snapshot page"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-rampart-snapshot"), "{answer}");
}
