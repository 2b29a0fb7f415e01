//! `rampart shield` as a user runs it: the quick start proxies to an origin and drains on
//! SIGTERM; a bad configuration is a short message naming the key, and a non-zero exit.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::http::{Guard, get_from, origin};

#[test]
fn quick_start_proxies_and_drains_on_sigterm() {
    let origin = origin(1, "origin says hi");
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["shield", "--listen", "127.0.0.1:0", "--upstream", &format!("http://{origin}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(line.contains("listening on"), "{line}");
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("origin says hi"), "{answer}");
    let status = Command::new("kill").args(["-TERM", &guard.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = guard.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("SIGTERM: draining"), "{rest}");
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shield.toml");
    std::fs::write(
        &path,
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.web]\nservers = [\"127.0.0.1:1\"]\n[[route]]\nupstream = \"missing\"\n",
    )
    .unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_rampart")).args(["shield", "--config"]).arg(&path).output().unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("route[0].upstream"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    let output = Command::new(env!("CARGO_BIN_EXE_rampart")).args(["shield"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));
}

#[test]
fn audit_reports_an_internal_target_that_answers() {
    let origin = origin(200, "origin says hi");
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["shield", "--listen", "127.0.0.1:0", "--upstream", &format!("http://{origin}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line.trim().rsplit(' ').next().unwrap().to_owned();
    // The quick start sends every host to the one origin: "intranet.example" answers.
    let output = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "shield",
            "audit",
            &format!("http://{address}"),
            "--target",
            "intranet.example/admin",
            "--marker",
            "says hi",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("LEAK intranet.example/admin: internal Host answered 200"), "{stdout}");
    // A marker no answer carries: nothing found, success.
    let output = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "shield",
            "audit",
            &format!("http://{address}"),
            "--target",
            "intranet.example/admin",
            "--marker",
            "no such text",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

/// `--decisions DIR`: an operator's `rampart ban` of an address is refused by the shield
/// within about a second, other clients are not, and `rampart unban` lets it in again.
#[test]
fn decisions_from_the_store_ban_and_unban_within_a_second() {
    let dir = tempfile::Builder::new().prefix("rampart-shield-bans-").tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("rampart.toml");
    std::fs::write(&config, "protected = [\"198.51.100.0/24\"]\n[mitigation]\n").unwrap();
    let origin = origin(64, "origin says hi");
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["shield", "--listen", "127.0.0.1:0", "--upstream", &format!("http://{origin}"), "--decisions"])
        .arg(&data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let shield = line.trim().rsplit(' ').next().unwrap().to_owned();
    let (banned, other) = ("127.0.0.77:0", "127.0.0.78:0");
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
    rampart(&["ban", "127.0.0.77", "--action", "discard", "--duration", "1h", "--reason", "test"]);
    let banned_at = std::time::Instant::now();
    while get_from(banned, &shield).is_some() {
        assert!(banned_at.elapsed() < Duration::from_secs(5), "the ban did not reach the shield");
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("ban in force at the shield {:.2} s after `rampart ban`", banned_at.elapsed().as_secs_f64());
    assert!(
        get_from(other, &shield).is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "another client was refused"
    );

    rampart(&["unban", "127.0.0.77"]);
    let unbanned_at = std::time::Instant::now();
    while get_from(banned, &shield).is_none() {
        assert!(unbanned_at.elapsed() < Duration::from_secs(5), "the unban did not reach the shield");
        std::thread::sleep(Duration::from_millis(100));
    }
}
