//! The attack lifecycle of one target, as a pure state machine: seconds over a limit make a
//! candidate, `onset_secs` consecutive ones an attack; while it lasts, a new vector or a peak
//! 10 % higher is an update; `quiet_secs` seconds under every limit end it. The engine feeds it
//! one closed second at a time and acts on the returned [`Step`].

use std::collections::BTreeSet;

use rampart_contract::{Confidence, Trigger, Vector};

/// What the engine saw of the target in one closed second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// First and last packet times in the second, Unix nanoseconds.
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The confidence of the target's profile so far (its signature's).
    pub confidence: Confidence,
}

impl Seen {
    fn bps(self) -> u64 {
        self.bytes.saturating_mul(8)
    }
}

/// What one second did to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing to report (a candidate grew, an attack went on unchanged, a quiet second).
    Quiet,
    /// The attack starts: report the onset.
    Onset,
    /// The attack changed enough to report.
    Update,
    /// The attack is over: report its end and forget the target.
    End,
    /// A candidate fell under its limits before becoming an attack: forget it.
    Forget,
}

/// What the last report said, to tell when an update is worth sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reported {
    peak_pps: u64,
    peak_bps: u64,
    vectors: usize,
    /// Whether the signature had enough evidence to act on.
    backed: bool,
}

/// A target over a limit (a candidate) or under attack.
#[derive(Debug, Clone)]
pub(super) struct TargetState {
    /// Consecutive seconds over a limit in the current run.
    streak: u32,
    pub first_over: u64,
    pub first_ns: u64,
    pub last_over: u64,
    pub trigger: Trigger,
    /// Traffic of the seconds over a limit so far (candidate) or of the attack.
    pub packets: u64,
    pub bytes: u64,
    /// Traffic of seconds under the limits since the last one over: part of the attack only
    /// if another second over a limit follows.
    pending_packets: u64,
    pending_bytes: u64,
    pub vectors: BTreeSet<Vector>,
    pub current_pps: u64,
    pub current_bps: u64,
    pub peak_pps: u64,
    pub peak_bps: u64,
    pub end_ns: u64,
    /// Set once the onset was reported.
    reported: Option<Reported>,
}

impl TargetState {
    /// A target first seen over a limit at `second`.
    pub fn new(second: u64, seen: Seen, trigger: Trigger) -> Self {
        TargetState {
            streak: 0,
            first_over: second,
            first_ns: seen.first_ns,
            last_over: second,
            trigger,
            packets: 0,
            bytes: 0,
            pending_packets: 0,
            pending_bytes: 0,
            vectors: BTreeSet::new(),
            current_pps: 0,
            current_bps: 0,
            peak_pps: 0,
            peak_bps: 0,
            end_ns: seen.last_ns,
            reported: None,
        }
    }

    /// A second over a limit: `trigger` is its first crossing, `vectors` adds what the second
    /// shows.
    pub fn over(
        &mut self,
        second: u64,
        seen: Seen,
        trigger: Trigger,
        onset_secs: u32,
        vectors: impl FnOnce(&mut BTreeSet<Vector>),
    ) -> Step {
        if self.reported.is_none() && (self.streak == 0 || self.last_over + 1 != second) {
            // A new run of seconds over a limit.
            self.streak = 0;
            self.first_over = second;
            self.first_ns = seen.first_ns;
            self.trigger = trigger;
            self.packets = 0;
            self.bytes = 0;
            self.vectors.clear();
            self.peak_pps = 0;
            self.peak_bps = 0;
        }
        self.streak = self.streak.saturating_add(1);
        self.last_over = second;
        self.end_ns = seen.last_ns;
        self.packets = self.packets.saturating_add(self.pending_packets).saturating_add(seen.packets);
        self.bytes = self.bytes.saturating_add(self.pending_bytes).saturating_add(seen.bytes);
        self.pending_packets = 0;
        self.pending_bytes = 0;
        self.current_pps = seen.packets;
        self.current_bps = seen.bps();
        self.peak_pps = self.peak_pps.max(seen.packets);
        self.peak_bps = self.peak_bps.max(seen.bps());
        vectors(&mut self.vectors);
        let now = Reported {
            peak_pps: self.peak_pps,
            peak_bps: self.peak_bps,
            vectors: self.vectors.len(),
            backed: seen.confidence > Confidence::Insufficient,
        };
        match self.reported {
            None if self.streak >= onset_secs => {
                self.reported = Some(now);
                Step::Onset
            }
            None => Step::Quiet,
            Some(before) => {
                let grew = |now: u64, before: u64| now as f64 >= before as f64 * 1.1 && now > before;
                // A signature now backed by enough evidence (thinly sampled telemetry) is news
                // too: mitigation waits for one it can act on.
                if now.vectors != before.vectors
                    || now.backed != before.backed
                    || grew(now.peak_pps, before.peak_pps)
                    || grew(now.peak_bps, before.peak_bps)
                {
                    self.reported = Some(now);
                    Step::Update
                } else {
                    Step::Quiet
                }
            }
        }
    }

    /// A second under every limit.
    pub fn under(&mut self, second: u64, seen: Seen, quiet_secs: u32) -> Step {
        if self.reported.is_none() {
            return Step::Forget;
        }
        self.pending_packets = self.pending_packets.saturating_add(seen.packets);
        self.pending_bytes = self.pending_bytes.saturating_add(seen.bytes);
        if second.saturating_sub(self.last_over) >= u64::from(quiet_secs) { Step::End } else { Step::Quiet }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{EventTime, Level, Metric};

    fn trigger(second: u64) -> Trigger {
        Trigger::new(Level::Host, Metric::Pps, 500, 100, EventTime::from_unix_secs(second))
    }

    fn seen(second: u64, packets: u64) -> Seen {
        let ns = second * 1_000_000_000;
        Seen {
            first_ns: ns,
            last_ns: ns + 999_000_000,
            packets,
            bytes: packets.saturating_mul(60),
            confidence: Confidence::High,
        }
    }

    /// Drives a target through `seconds` (`Some(pps)` over a limit, `None` under), returning
    /// the steps.
    fn drive(seconds: &[Option<u64>], onset: u32, quiet: u32) -> (Vec<Step>, Option<TargetState>) {
        let mut state: Option<TargetState> = None;
        let mut steps = Vec::new();
        for (i, s) in seconds.iter().enumerate() {
            let second = 100 + i as u64;
            let step = match (s, state.as_mut()) {
                (Some(pps), None) => {
                    let mut fresh = TargetState::new(second, seen(second, *pps), trigger(second));
                    let step = fresh.over(second, seen(second, *pps), trigger(second), onset, |_| {});
                    state = Some(fresh);
                    step
                }
                (Some(pps), Some(st)) => st.over(second, seen(second, *pps), trigger(second), onset, |v| {
                    v.insert(Vector::UdpFlood);
                }),
                (None, Some(st)) => st.under(second, seen(second, 3), quiet),
                (None, None) => Step::Quiet,
            };
            if matches!(step, Step::End | Step::Forget) {
                state = None;
            }
            steps.push(step);
        }
        (steps, state)
    }

    #[test]
    fn onset_needs_consecutive_seconds_and_a_gap_restarts_the_count() {
        use Step::*;
        let (steps, state) = drive(&[Some(500), None, Some(500), Some(500), Some(500)], 3, 10);
        assert_eq!(steps, [Quiet, Forget, Quiet, Quiet, Onset]);
        let state = state.unwrap();
        assert_eq!((state.first_over, state.packets, state.peak_pps), (102, 1500, 500));
        assert_eq!(state.trigger.since, EventTime::from_unix_secs(102));
    }

    #[test]
    fn updates_only_on_new_vectors_or_ten_percent_higher_peaks() {
        use Step::*;
        let (steps, _) =
            drive(&[Some(1000), Some(1000), Some(1050), Some(1200), Some(1250), Some(1400)], 1, 10);
        // Onset; the second second adds udp_flood; 1050 is under 10 % more than 1000, 1200 is
        // over it; 1250 is under 10 % more than 1200, 1400 over it.
        assert_eq!(steps, [Onset, Update, Quiet, Update, Quiet, Update]);
    }

    #[test]
    fn quiet_seconds_end_the_attack_and_count_only_when_it_resumes() {
        use Step::*;
        let (steps, state) = drive(&[Some(500), None, None, Some(500), None, None, None], 1, 3);
        // The second burst adds udp_flood (see `drive`): an update, not a new attack.
        assert_eq!(steps, [Onset, Quiet, Quiet, Update, Quiet, Quiet, End]);
        assert!(state.is_none());
        // The two quiet seconds between bursts belong to the attack: 500 + 3 + 3 + 500.
        let (_, state) = drive(&[Some(500), None, None, Some(500)], 1, 3);
        assert_eq!(state.unwrap().packets, 1006);
    }

    #[test]
    fn the_end_is_quiet_secs_after_the_last_second_over() {
        for quiet in 1..6u32 {
            let mut seconds = vec![Some(500)];
            seconds.extend(std::iter::repeat_n(None, quiet as usize));
            let (steps, _) = drive(&seconds, 1, quiet);
            assert_eq!(steps.last(), Some(&Step::End), "{quiet}");
            assert_eq!(steps.iter().filter(|s| **s == Step::End).count(), 1, "{quiet}");
        }
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut state = TargetState::new(1, seen(1, u64::MAX), trigger(1));
        state.over(1, seen(1, u64::MAX), trigger(1), 1, |_| {});
        state.over(2, seen(2, u64::MAX), trigger(2), 1, |_| {});
        assert_eq!((state.packets, state.peak_bps), (u64::MAX, u64::MAX));
    }
}
