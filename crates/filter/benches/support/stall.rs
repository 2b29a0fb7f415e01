//! Stall watchers for the filter benchmark, as cyclictest measures latency: one thread pinned
//! to each CPU at real-time priority wakes every [`PERIOD`], runs the filter program once over
//! a frame (BPF_PROG_TEST_RUN) and records how late it woke and what the program said. A
//! real-time thread preempts any ordinary task, so lateness beyond the wake-up cost is the
//! CPU unable to schedule: kernel work that does not yield (freeing a large map in one go is
//! the suspect), not the other processes of a busy machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_filter::xdp::TestRunner;

/// Between two runs of a watcher.
pub const PERIOD: Duration = Duration::from_micros(500);
/// The real-time priority of the watchers (SCHED_FIFO).
const PRIORITY: i32 = 50;

/// What one watcher saw.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    pub cpu: usize,
    pub runs: u64,
    /// The longest time between two completed runs, and when it ended (since the start).
    pub worst_gap: Duration,
    pub worst_at: Duration,
    /// Gaps over 1 ms and over 10 ms.
    pub over_1ms: u64,
    pub over_10ms: u64,
    /// Runs whose verdict was not the one expected.
    pub wrong: u64,
    /// Whether the thread got real-time priority (without it, gaps include ordinary
    /// scheduling).
    pub realtime: bool,
    /// Gaps over [`LISTED`]: when each ended (CLOCK_MONOTONIC, the same clock in every
    /// process, so the loader's steps can be matched to them) and how long it was.
    pub long: Vec<(Duration, Duration)>,
}

/// Gaps at least this long are listed with when they ended.
pub const LISTED: Duration = Duration::from_millis(5);

/// CLOCK_MONOTONIC now (what `Instant` reads, as a value another process can compare).
pub fn monotonic() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec the call writes; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Watchers running until [`Watchers::stop`].
pub struct Watchers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Watch>>,
}

fn pin_and_raise(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set, which CPU_SET then fills; both act on this
    // local value only.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the number of CPUs, inside the set's CPU_SETSIZE bits.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is this thread; `set` is a valid cpu_set_t of the size given.
    let pinned = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0;
    let param = libc::sched_param { sched_priority: PRIORITY };
    // SAFETY: pid 0 is this thread; `param` is a valid sched_param for SCHED_FIFO.
    let raised = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    pinned && raised
}

impl Watchers {
    /// One watcher per runner, the i-th pinned to CPU i, running `frame` and expecting
    /// `verdict`.
    pub fn start(runners: Vec<TestRunner>, frame: &[u8], verdict: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = runners
            .into_iter()
            .enumerate()
            .map(|(cpu, runner)| {
                let (stop, frame) = (Arc::clone(&stop), frame.to_vec());
                std::thread::spawn(move || {
                    let realtime = pin_and_raise(cpu);
                    let mut w = Watch { cpu, realtime, ..Watch::default() };
                    let start = Instant::now();
                    let mut last = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(PERIOD);
                        let ok = runner.run(&frame, 1).is_ok_and(|(v, _)| v == verdict);
                        let now = Instant::now();
                        let gap = now - last;
                        last = now;
                        w.runs += 1;
                        w.wrong += u64::from(!ok);
                        w.over_1ms += u64::from(gap > Duration::from_millis(1));
                        w.over_10ms += u64::from(gap > Duration::from_millis(10));
                        if gap >= LISTED && w.long.len() < 64 {
                            w.long.push((monotonic(), gap));
                        }
                        if gap > w.worst_gap {
                            w.worst_gap = gap;
                            w.worst_at = now - start;
                        }
                    }
                    w
                })
            })
            .collect();
        Watchers { stop, threads }
    }

    pub fn stop(self) -> Vec<Watch> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().filter_map(|t| t.join().ok()).collect()
    }
}

/// One line per watcher.
pub fn report(phase: &str, watches: &[Watch]) {
    for w in watches {
        println!(
            "  {phase:<44}cpu {}: {:>7} runs, worst gap {:>7.2} ms (at {:>6.2} s), gaps > 1 ms: {:>4}, > 10 ms: {:>3}, wrong verdicts: {}{}",
            w.cpu,
            w.runs,
            w.worst_gap.as_secs_f64() * 1e3,
            w.worst_at.as_secs_f64(),
            w.over_1ms,
            w.over_10ms,
            w.wrong,
            if w.realtime { "" } else { " (no real-time priority: gaps include scheduling)" }
        );
        for (end, gap) in &w.long {
            println!(
                "  {phase:<44}  cpu {}: gap {:>7.2} ms ending at monotonic {:.3} s",
                w.cpu,
                gap.as_secs_f64() * 1e3,
                end.as_secs_f64()
            );
        }
    }
}

/// The watcher process: `FILTER_WATCH=PROGRAM_ID,SECONDS,HEX_FRAME` runs watchers on every
/// CPU over the program of that id for that long and prints their lines. Watching from a
/// process of its own keeps the loader's own locks (its memory map, its allocator) out of
/// the figures: what remains is the CPUs.
pub fn child_main(spec: &str) {
    let mut parts = spec.split(',');
    let id: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let secs: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let hex = parts.next().unwrap_or("");
    let frame: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runners = (0..cpus).filter_map(|_| TestRunner::from_program_id(id).ok()).collect();
    let w = Watchers::start(runners, &frame, 1);
    std::thread::sleep(Duration::from_secs_f64(secs));
    report("", &w.stop());
}

/// Watchers in a process of their own for `secs` over `frame` (expecting a drop).
pub struct Child(std::process::Child);

impl Child {
    pub fn start(program_id: u32, secs: f64, frame: &[u8]) -> Option<Self> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let exe = std::env::current_exe().ok()?;
        let child = std::process::Command::new(exe)
            .env("FILTER_WATCH", format!("{program_id},{secs},{hex}"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // Time for it to start its threads before the work begins.
        std::thread::sleep(Duration::from_millis(300));
        Some(Child(child))
    }

    /// Waits for it and prints its lines under `phase`.
    pub fn finish(self, phase: &str) {
        match self.0.wait_with_output() {
            Ok(out) => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    println!("  {phase:<44}{}", line.trim_start());
                }
            }
            Err(e) => println!("  {phase}: the watcher process failed: {e}"),
        }
    }
}
