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
            "  {phase:<44} cpu {}: {:>7} runs, worst gap {:>7.2} ms (at {:>6.2} s), gaps > 1 ms: {:>4}, > 10 ms: {:>3}, wrong verdicts: {}{}",
            w.cpu,
            w.runs,
            w.worst_gap.as_secs_f64() * 1e3,
            w.worst_at.as_secs_f64(),
            w.over_1ms,
            w.over_10ms,
            w.wrong,
            if w.realtime { "" } else { " (no real-time priority: gaps include scheduling)" }
        );
    }
}
