//! The script actuator (notifications): runs an external program for every decision change,
//! the change as one JSON document on its standard input.
//!
//! The program can neither stall detection nor bring the daemon down: runs are queued
//! (bounded; when full the newest is dropped and counted) and executed one at a time on a
//! thread of their own; each has a timeout, after which its whole process group is killed;
//! what it writes to stdout and stderr is read and thrown away (the first line of stderr is
//! logged), so filling a pipe cannot block it or us; its exit status is counted.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_contract::{Attack, Decision, DecisionId, SchemaVersion};
use serde::Serialize;

use crate::actuator::{Actuator, ActuatorError, Applied};
use crate::config::ScriptConfig;

/// Counters of the script runs.
#[derive(Debug, Default)]
pub struct ScriptStats {
    pub runs: AtomicU64,
    /// Exited with a non-zero status or by a signal (other than our timeout).
    pub failures: AtomicU64,
    /// Killed at the timeout.
    pub timeouts: AtomicU64,
    /// Not run: the queue was full.
    pub dropped: AtomicU64,
    /// Could not be started at all.
    pub spawn_errors: AtomicU64,
}

/// What the script reads on its standard input (and the webhook receives).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Notice<'a> {
    pub schema_version: SchemaVersion,
    /// `enact`, `withdraw` or `reconcile`.
    pub change: &'static str,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<DecisionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<&'a Attack>,
}

impl<'a> Notice<'a> {
    /// A decision put into effect (or, in dry run, that would have been).
    pub fn enact(applied: &Applied<'a>) -> Notice<'a> {
        Notice {
            schema_version: SchemaVersion,
            change: "enact",
            dry_run: applied.dry_run,
            decision: Some(applied.decision),
            decision_id: None,
            attack: applied.attack,
        }
    }

    /// A decision taken out of effect.
    pub fn withdraw(id: DecisionId, dry_run: bool) -> Notice<'static> {
        Notice {
            schema_version: SchemaVersion,
            change: "withdraw",
            dry_run,
            decision: None,
            decision_id: Some(id),
            attack: None,
        }
    }
}

/// Bytes of a script's output kept for the log; the rest is read and dropped.
const KEEP_OUTPUT: usize = 512;

/// Runs the configured script for each change.
#[derive(Debug)]
pub struct ScriptActuator {
    queue: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    pub stats: Arc<ScriptStats>,
}

impl ScriptActuator {
    /// Starts the worker thread.
    pub fn start(config: ScriptConfig) -> Result<ScriptActuator, ActuatorError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue);
        let stats = Arc::new(ScriptStats::default());
        let worker_stats = stats.clone();
        let worker = std::thread::Builder::new()
            .name("rampart-script".into())
            .spawn(move || work(&config.path, config.timeout, &rx, &worker_stats))
            .map_err(|e| ActuatorError(format!("cannot start the script thread: {e}")))?;
        Ok(ScriptActuator { queue: Some(tx), worker: Some(worker), stats })
    }

    fn push(&self, notice: &Notice<'_>) -> Result<(), ActuatorError> {
        let body = serde_json::to_vec(notice).map_err(|e| ActuatorError(e.to_string()))?;
        let Some(queue) = &self.queue else { return Err(ActuatorError("stopped".into())) };
        match queue.try_send(body) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Err(ActuatorError("script queue full: notification dropped".into()))
            }
            Err(TrySendError::Disconnected(_)) => Err(ActuatorError("the script thread is gone".into())),
        }
    }

    /// Waits until every queued run is done (shutdown, tests).
    pub fn finish(mut self) {
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Actuator for ScriptActuator {
    fn name(&self) -> &str {
        "script"
    }

    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
        self.push(&Notice::enact(applied))
    }

    fn withdraw(&mut self, id: DecisionId, dry_run: bool) -> Result<(), ActuatorError> {
        self.push(&Notice::withdraw(id, dry_run))
    }

    /// A notification has nothing to reconcile.
    fn reconcile(&mut self, _active: &[Decision]) -> Result<(), ActuatorError> {
        Ok(())
    }

    fn in_dry_run(&self) -> bool {
        true
    }
}

fn work(path: &std::path::Path, timeout: Duration, rx: &Receiver<Vec<u8>>, stats: &ScriptStats) {
    while let Ok(body) = rx.recv() {
        stats.runs.fetch_add(1, Ordering::Relaxed);
        match run_once(path, timeout, body) {
            Outcome::Success => {}
            Outcome::Failed(why) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: script {}: {why}", path.display());
            }
            Outcome::TimedOut => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: script {}: killed after {} ms", path.display(), timeout.as_millis());
            }
            Outcome::NotStarted(why) => {
                stats.spawn_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("rampart: script {}: cannot start: {why}", path.display());
            }
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Success,
    Failed(String),
    TimedOut,
    NotStarted(String),
}

/// Reads `pipe` to its end, keeping the first bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = KEEP_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                }
            }
        }
        kept
    })
}

fn run_once(path: &std::path::Path, timeout: Duration, body: Vec<u8>) -> Outcome {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(path);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        // Its own process group: the timeout kills whatever it started too.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::NotStarted(e.to_string()),
    };
    let pid = rustix::process::Pid::from_child(&child);
    // Written from a thread: a script that never reads would block a full pipe.
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        })
    });
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Outcome::Failed(format!("cannot wait for it: {e}")),
        }
    };
    // Whatever it left running in its group goes too (the pipes close with them).
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The readers end once every holder of the pipes is gone; detached if something escaped
    // the group, so a stray grandchild holds a thread, never this worker.
    let first_line = |handle: Option<JoinHandle<Vec<u8>>>| -> String {
        let Some(handle) = handle else { return String::new() };
        let until = Instant::now() + Duration::from_millis(200);
        while !handle.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !handle.is_finished() {
            return String::new();
        }
        let bytes = handle.join().unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().next().unwrap_or("").chars().take(200).collect()
    };
    let _ = first_line(stdout);
    let error_line = first_line(stderr);
    if let Some(writer) = writer
        && writer.is_finished()
    {
        let _ = writer.join();
    }
    match status {
        None => Outcome::TimedOut,
        Some(status) if status.success() => Outcome::Success,
        Some(status) => {
            let said = if error_line.is_empty() { String::new() } else { format!(": {error_line}") };
            Outcome::Failed(format!("{status}{said}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{Action, EventTime, Origin, Scope};
    use std::path::PathBuf;

    fn decision() -> Decision {
        Decision {
            id: DecisionId(9),
            scope: Scope::Address("203.0.113.7".parse().unwrap()),
            action: Action::Discard,
            origin: Origin::Operator { name: "root".into() },
            created: EventTime::from_unix_secs(1),
            expires: None,
            reason: "test".into(),
        }
    }

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn actuator(path: PathBuf, timeout_ms: u64, queue: usize) -> ScriptActuator {
        ScriptActuator::start(ScriptConfig { path, timeout: Duration::from_millis(timeout_ms), queue })
            .unwrap()
    }

    #[test]
    fn the_script_gets_the_json_of_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let path = script(dir.path(), "ok.sh", &format!("cat > {}", out.display()));
        let mut a = actuator(path, 5_000, 4);
        let d = decision();
        a.apply(&Applied { decision: &d, attack: None, dry_run: true }).unwrap();
        let stats = a.stats.clone();
        a.finish();
        let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(got["change"], "enact");
        assert_eq!(got["dry_run"], true);
        assert_eq!(got["decision"]["id"], 9);
        assert_eq!(got["decision"]["scope"]["address"], "203.0.113.7");
        assert_eq!(stats.runs.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failures.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn slow_failing_crashing_and_flooding_scripts_are_contained() {
        let dir = tempfile::tempdir().unwrap();
        let d = decision();
        let applied = Applied { decision: &d, attack: None, dry_run: false };
        // Slow, and it leaves a child behind: both killed at the timeout.
        let marker = dir.path().join("survivor");
        let slow =
            script(dir.path(), "slow.sh", &format!("(sleep 3; touch {}) &\nsleep 30", marker.display()));
        let mut a = actuator(slow, 300, 4);
        let started = Instant::now();
        a.apply(&applied).unwrap();
        assert!(started.elapsed() < Duration::from_millis(100), "apply must not wait for the script");
        let stats = a.stats.clone();
        a.finish();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(stats.timeouts.load(Ordering::Relaxed), 1);
        std::thread::sleep(Duration::from_millis(3_200).saturating_sub(started.elapsed()));
        assert!(!marker.exists(), "the script's child outlived the timeout");

        // Failing, crashing (killed by a signal), flooding its output, never reading stdin.
        let fail = script(dir.path(), "fail.sh", "echo nope >&2; exit 3");
        let crash = script(dir.path(), "crash.sh", "kill -SEGV $$");
        let flood =
            script(dir.path(), "flood.sh", "head -c 50000000 /dev/zero; head -c 5000000 /dev/zero >&2");
        for (path, failures) in [(fail, 1), (crash, 1), (flood, 0)] {
            let mut a = actuator(path.clone(), 10_000, 4);
            a.apply(&applied).unwrap();
            let stats = a.stats.clone();
            a.finish();
            assert_eq!(stats.failures.load(Ordering::Relaxed), failures, "{}", path.display());
            assert_eq!(stats.timeouts.load(Ordering::Relaxed), 0, "{}", path.display());
        }

        // A missing program: counted, nothing else.
        let mut a = actuator(dir.path().join("missing"), 1_000, 4);
        a.apply(&applied).unwrap();
        let stats = a.stats.clone();
        a.finish();
        assert_eq!(stats.spawn_errors.load(Ordering::Relaxed), 1);

        // A full queue drops (and counts) rather than blocks.
        let slow = script(dir.path(), "slow2.sh", "sleep 30");
        let mut a = actuator(slow, 200, 1);
        let started = Instant::now();
        let results: Vec<_> = (0..20).map(|_| a.apply(&applied)).collect();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(results.iter().any(|r| r.is_err()));
        let stats = a.stats.clone();
        a.finish();
        assert!(stats.dropped.load(Ordering::Relaxed) >= 17, "{}", stats.dropped.load(Ordering::Relaxed));
    }
}
