//! Export sequence numbers: how many units went missing between datagrams.
//!
//! The standards are clear (v5: flows before this packet; v9: export packets; IPFIX: data
//! records before this message), real exporters are not: softflowd stamps v9 and IPFIX
//! messages with the record count *including* the message's own records, some v9 exporters
//! count records, some IPFIX exporters leave options records out. Instead of reporting a gap on
//! every datagram of such an exporter, the tracker scores each counting convention by how often
//! it predicts the next sequence number exactly, and measures gaps with the best one. A datagram
//! that a credible convention predicts exactly is in sequence.

/// Counting conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqMode {
    /// Next = previous + 1 (NetFlow v9 per RFC 3954).
    Packets,
    /// Next = previous + the previous datagram's data records (IPFIX per RFC 7011).
    AllBefore,
    /// As `AllBefore`, counting flow records only (v5; options records left out).
    FlowsBefore,
    /// The number already includes this datagram's data records (softflowd).
    AllAfter,
    /// As `AllAfter`, flow records only.
    FlowsAfter,
}

const MODES: usize = 5;

impl SeqMode {
    fn index(self) -> usize {
        self as usize
    }

    /// Backward jumps up to this many units are late datagrams, not exporter restarts.
    fn reorder_window(self) -> u32 {
        match self {
            SeqMode::Packets => 256,
            _ => 65_536,
        }
    }
}

pub(crate) const V5_MODES: &[SeqMode] = &[SeqMode::FlowsBefore];
pub(crate) const V9_MODES: &[SeqMode] =
    &[SeqMode::Packets, SeqMode::AllBefore, SeqMode::FlowsBefore, SeqMode::AllAfter, SeqMode::FlowsAfter];
pub(crate) const IPFIX_MODES: &[SeqMode] =
    &[SeqMode::AllBefore, SeqMode::FlowsBefore, SeqMode::AllAfter, SeqMode::FlowsAfter];

/// One datagram as the tracker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqObservation {
    pub seq: u32,
    /// Data records, options records included.
    pub all: u32,
    /// Data records of (non-options) data templates.
    pub flows: u32,
    /// False when a set with an unknown template hid how many records the datagram held.
    pub counts_known: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    last: Option<SeqObservation>,
    scores: [u16; MODES],
}

/// Scores are halved when one reaches this, so the tracker keeps adapting.
const SCORE_CAP: u16 = 1024;

impl SeqTracker {
    fn expected(mode: SeqMode, last: &SeqObservation, cur: &SeqObservation) -> Option<u32> {
        match mode {
            SeqMode::Packets => Some(last.seq.wrapping_add(1)),
            SeqMode::AllBefore => last.counts_known.then(|| last.seq.wrapping_add(last.all)),
            SeqMode::FlowsBefore => last.counts_known.then(|| last.seq.wrapping_add(last.flows)),
            SeqMode::AllAfter => cur.counts_known.then(|| last.seq.wrapping_add(cur.all)),
            SeqMode::FlowsAfter => cur.counts_known.then(|| last.seq.wrapping_add(cur.flows)),
        }
    }

    /// Records a datagram; returns the units missing before it.
    pub(crate) fn observe(&mut self, cur: SeqObservation, modes: &[SeqMode]) -> u64 {
        let Some(last) = self.last else {
            self.last = Some(cur);
            return 0;
        };
        let score = |s: &Self, m: SeqMode| s.scores.get(m.index()).copied().unwrap_or(0);
        // Best convention so far; ties go to the earlier (standard) one.
        let best = modes.iter().copied().fold(None::<SeqMode>, |best, m| match best {
            Some(b) if score(self, b) >= score(self, m) => Some(b),
            _ => Some(m),
        });
        let Some(best) = best else {
            self.last = Some(cur);
            return 0;
        };
        let best_score = score(self, best);
        let mut in_sequence = false;
        for &mode in modes {
            if Self::expected(mode, &last, &cur) == Some(cur.seq) {
                // Once a convention has proven itself, rare coincidences of the others must not
                // hide real losses.
                if best_score < 8 || score(self, mode).saturating_mul(4) >= best_score {
                    in_sequence = true;
                }
                if let Some(s) = self.scores.get_mut(mode.index()) {
                    *s += 1;
                    if *s >= SCORE_CAP {
                        self.scores.iter_mut().for_each(|s| *s /= 2);
                    }
                }
            }
        }
        if in_sequence {
            self.last = Some(cur);
            return 0;
        }
        let Some(expected) = Self::expected(best, &last, &cur) else {
            // Unknown record counts: resynchronise without judging.
            self.last = Some(cur);
            return 0;
        };
        let diff = cur.seq.wrapping_sub(expected) as i32;
        if diff > 0 {
            self.last = Some(cur);
            diff as u64
        } else if diff.unsigned_abs() <= best.reorder_window() {
            // A late or duplicated datagram: keep waiting for the one after the newest.
            0
        } else {
            // A big jump backward: the exporter restarted.
            self.last = Some(cur);
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(seq: u32, all: u32) -> SeqObservation {
        SeqObservation { seq, all, flows: all, counts_known: true }
    }

    #[test]
    fn v9_packet_counter_gaps() {
        let mut t = SeqTracker::default();
        let mut gaps = 0;
        for seq in [1, 2, 3, 5, 6, 9, 10] {
            gaps += t.observe(obs(seq, 7), V9_MODES);
        }
        assert_eq!(gaps, 3);
    }

    #[test]
    fn wraparound_is_not_a_gap() {
        let mut t = SeqTracker::default();
        let mut gaps = 0;
        for seq in [u32::MAX - 1, u32::MAX, 0, 1, 3] {
            gaps += t.observe(obs(seq, 5), V9_MODES);
        }
        assert_eq!(gaps, 1);
    }

    #[test]
    fn restart_and_reorder_are_not_gaps() {
        let mut t = SeqTracker::default();
        let mut gaps = 0;
        for seq in [1_000_000, 1_000_001, 1_000_003, 1_000_002, 1_000_004, 0, 1, 2] {
            gaps += t.observe(obs(seq, 3), V9_MODES);
        }
        // Only 1_000_002 was missing when 1_000_003 arrived; it came late.
        assert_eq!(gaps, 1);
    }

    #[test]
    fn ipfix_records_before_and_after_conventions() {
        // RFC 7011: seq = records sent before this message.
        let mut t = SeqTracker::default();
        let counts = [30, 12, 30, 7, 30, 30, 1, 4];
        let mut seq = 100u32;
        let mut gaps = 0;
        for (i, &n) in counts.iter().enumerate() {
            if i == 5 {
                seq += 30; // one message lost
            }
            gaps += t.observe(obs(seq, n), IPFIX_MODES);
            seq += n;
        }
        assert_eq!(gaps, 30);

        // softflowd: seq = records sent including this message.
        let mut t = SeqTracker::default();
        let mut sent = 0u32;
        let mut gaps = 0;
        for (i, &n) in counts.iter().enumerate() {
            sent += n;
            if i == 5 {
                continue; // lost
            }
            gaps += t.observe(obs(sent, n), IPFIX_MODES);
        }
        assert_eq!(gaps, 30);
    }

    #[test]
    fn unknown_counts_resynchronise() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(obs(0, 10), IPFIX_MODES), 0);
        let hidden = SeqObservation { seq: 10, all: 0, flows: 0, counts_known: false };
        assert_eq!(t.observe(hidden, IPFIX_MODES), 0);
        assert_eq!(t.observe(obs(500, 10), IPFIX_MODES), 0);
        assert_eq!(t.observe(obs(510, 10), IPFIX_MODES), 0);
    }
}
