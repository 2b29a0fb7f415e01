//! HTTP/2 control-frame flood budgets, enforced in front of h2.
//!
//! h2 0.4 answers every PING and SETTINGS and ignores empty DATA, HEADERS and CONTINUATION
//! frames; it keeps at most one acknowledgement pending, so memory is bounded, but a client
//! may make it do that work as fast as it can send (Ping Flood CVE-2019-9512, Settings Flood
//! CVE-2019-9515, Empty Frames CVE-2019-9518) and h2 has no setting to stop it. So the
//! connection's byte stream passes through [`FrameMeter`] (a [`FrameGuard`] observing it), which parses only frame headers (and
//! the pad length of padded DATA) and counts, per one-second window: PINGs and SETTINGS that
//! are not acknowledgements, and frames that carry nothing and end nothing. Past a budget the
//! read fails, before h2 has seen the frame that broke it, and the connection closes with the
//! reason counted. HTTP/1 connections (no preface) pass untouched after their first byte.
//!
//! The meter holds a fixed few bytes whatever the input: a 9-byte header buffer and counters.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::{Metrics, Reason};
use crate::observe::Observer;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

/// Frames allowed per connection per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBudgets {
    /// PING frames that are not acknowledgements.
    pub pings: u32,
    /// SETTINGS frames that are not acknowledgements.
    pub settings: u32,
    /// DATA without END_STREAM carrying no data (only padding, or nothing), HEADERS and
    /// CONTINUATION without END_HEADERS carrying nothing.
    pub empty: u32,
}

/// Which budget a connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// Too many PINGs.
    Ping,
    /// Too many SETTINGS.
    Settings,
    /// Too many empty frames.
    Empty,
}

impl Flood {
    /// The rejection reason it is counted under.
    pub fn reason(self) -> Reason {
        match self {
            Flood::Ping => Reason::PingFlood,
            Flood::Settings => Reason::SettingsFlood,
            Flood::Empty => Reason::EmptyFrameFlood,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of the preface matched so far.
    Preface(u8),
    /// Not HTTP/2: nothing more to look at.
    Off,
    /// Reading a frame header: this many of its 9 bytes are in `head`.
    Head(u8),
    /// The first payload byte of a padded DATA frame (its pad length) is next; the frame's
    /// payload is this long.
    PadLength(u32),
    /// Skipping this many payload bytes.
    Skip(u32),
}

/// Counts HTTP/2 control frames in a client's byte stream against [`FrameBudgets`]: a pure
/// parser fed the bytes as they arrive, in any split, with the time they arrived.
#[derive(Debug, Clone)]
pub struct FrameMeter {
    budgets: FrameBudgets,
    state: State,
    head: [u8; 9],
    window_start: Option<Instant>,
    /// PINGs, SETTINGS, empty frames in the current window.
    counts: [u32; 3],
    tripped: Option<Flood>,
}

impl FrameMeter {
    /// A meter for a connection that has sent nothing yet.
    pub fn new(budgets: FrameBudgets) -> FrameMeter {
        FrameMeter {
            budgets,
            state: State::Preface(0),
            head: [0; 9],
            window_start: None,
            counts: [0; 3],
            tripped: None,
        }
    }

    /// Whether the connection turned out not to be HTTP/2 (nothing more is counted).
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Take in `bytes`, received at `now`. Once a budget is broken, every call returns it.
    pub fn feed(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), Flood> {
        if let Some(flood) = self.tripped {
            return Err(flood);
        }
        while !bytes.is_empty() {
            match self.state {
                State::Off => return Ok(()),
                State::Preface(matched) => {
                    let at = usize::from(matched);
                    let take = (PREFACE.len() - at).min(bytes.len());
                    if bytes[..take] != PREFACE[at..at + take] {
                        self.state = State::Off;
                        return Ok(());
                    }
                    bytes = &bytes[take..];
                    let matched = at + take;
                    self.state =
                        if matched == PREFACE.len() { State::Head(0) } else { State::Preface(matched as u8) };
                }
                State::Head(have) => {
                    let at = usize::from(have);
                    let take = (9 - at).min(bytes.len());
                    self.head[at..at + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if at + take < 9 {
                        self.state = State::Head((at + take) as u8);
                    } else {
                        self.state = self.frame(now)?;
                    }
                }
                State::PadLength(len) => {
                    let pad = u32::from(bytes[0]);
                    bytes = &bytes[1..];
                    // Padding only (or a pad length past the frame, which h2 refuses).
                    if pad + 1 >= len {
                        self.count(Flood::Empty, now)?;
                    }
                    self.state = skip(len - 1);
                }
                State::Skip(left) => {
                    let take = bytes.len().min(left as usize);
                    bytes = &bytes[take..];
                    self.state = skip(left - take as u32);
                }
            }
        }
        Ok(())
    }

    /// A whole frame header is in `head`: count it, and what to read next.
    fn frame(&mut self, now: Instant) -> Result<State, Flood> {
        let [l0, l1, l2, kind, flags, ..] = self.head;
        let len = u32::from_be_bytes([0, l0, l1, l2]);
        match kind {
            PING if flags & ACK == 0 => self.count(Flood::Ping, now)?,
            SETTINGS if flags & ACK == 0 => self.count(Flood::Settings, now)?,
            DATA if flags & END_STREAM == 0 => {
                if len == 0 {
                    self.count(Flood::Empty, now)?;
                } else if flags & PADDED != 0 {
                    return Ok(State::PadLength(len));
                }
            }
            HEADERS | CONTINUATION if len == 0 && flags & END_HEADERS == 0 => {
                self.count(Flood::Empty, now)?
            }
            _ => {}
        }
        Ok(skip(len))
    }

    fn count(&mut self, flood: Flood, now: Instant) -> Result<(), Flood> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= Duration::from_secs(1) {
            self.window_start = Some(now);
            self.counts = [0; 3];
        }
        let (slot, budget) = match flood {
            Flood::Ping => (0, self.budgets.pings),
            Flood::Settings => (1, self.budgets.settings),
            Flood::Empty => (2, self.budgets.empty),
        };
        self.counts[slot] += 1;
        if self.counts[slot] > budget {
            self.tripped = Some(flood);
            return Err(flood);
        }
        Ok(())
    }
}

fn skip(len: u32) -> State {
    if len == 0 { State::Head(0) } else { State::Skip(len) }
}

/// The observer (see [`crate::observe`]) that reads a client connection's stream through a
/// [`FrameMeter`] and fails the read that breaks a budget.
#[derive(Debug)]
pub struct FrameGuard {
    meter: FrameMeter,
    metrics: Arc<Metrics>,
}

impl FrameGuard {
    /// Meter what is read; a broken budget is counted in `metrics`.
    pub fn new(budgets: FrameBudgets, metrics: Arc<Metrics>) -> FrameGuard {
        FrameGuard { meter: FrameMeter::new(budgets), metrics }
    }
}

impl Observer for FrameGuard {
    fn on_read(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.meter.is_off() {
            return Ok(());
        }
        self.meter.feed(bytes, Instant::now()).map_err(|flood| {
            // Not a byte of this read reaches h2.
            self.metrics.reject(flood.reason());
            io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2 frame budget broken: {flood:?} flood"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUDGETS: FrameBudgets = FrameBudgets { pings: 5, settings: 3, empty: 4 };

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    /// What the meter should say, by a whole-frame reading of well-formed input.
    fn reference(frames: &[(u8, u8, Vec<u8>)]) -> Result<(), Flood> {
        let mut counts = [0u32; 3];
        for (kind, flags, payload) in frames {
            let flood = match (*kind, *flags) {
                (PING, f) if f & ACK == 0 => Some(Flood::Ping),
                (SETTINGS, f) if f & ACK == 0 => Some(Flood::Settings),
                (DATA, f) if f & END_STREAM == 0 => {
                    let empty = payload.is_empty()
                        || (f & PADDED != 0 && usize::from(payload[0]) + 1 >= payload.len());
                    empty.then_some(Flood::Empty)
                }
                (HEADERS | CONTINUATION, f) if payload.is_empty() && f & END_HEADERS == 0 => {
                    Some(Flood::Empty)
                }
                _ => None,
            };
            if let Some(flood) = flood {
                let (slot, budget) = match flood {
                    Flood::Ping => (0, BUDGETS.pings),
                    Flood::Settings => (1, BUDGETS.settings),
                    Flood::Empty => (2, BUDGETS.empty),
                };
                counts[slot] += 1;
                if counts[slot] > budget {
                    return Err(flood);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn each_budget_breaks_one_frame_past_it() {
        let now = Instant::now();
        for (kind, flags, payload, budget, flood) in [
            (PING, 0, vec![0u8; 8], BUDGETS.pings, Flood::Ping),
            (SETTINGS, 0, vec![], BUDGETS.settings, Flood::Settings),
            (DATA, 0, vec![], BUDGETS.empty, Flood::Empty),
            (DATA, PADDED, vec![3, 0, 0, 0], BUDGETS.empty, Flood::Empty),
            (CONTINUATION, 0, vec![], BUDGETS.empty, Flood::Empty),
            (HEADERS, 0, vec![], BUDGETS.empty, Flood::Empty),
        ] {
            let mut meter = FrameMeter::new(BUDGETS);
            let one = frame(kind, flags, &payload);
            assert_eq!(meter.feed(PREFACE, now), Ok(()));
            for _ in 0..budget {
                assert_eq!(meter.feed(&one, now), Ok(()), "{kind} {flags}");
            }
            assert_eq!(meter.feed(&one, now), Err(flood), "{kind} {flags}");
            // It stays broken.
            assert_eq!(meter.feed(b"", now), Err(flood));
        }
    }

    #[test]
    fn acknowledgements_and_frames_with_content_are_free() {
        let now = Instant::now();
        let mut meter = FrameMeter::new(BUDGETS);
        let frames: Vec<_> = (0..100)
            .flat_map(|_| {
                [
                    frame(PING, ACK, &[0; 8]),
                    frame(SETTINGS, ACK, &[]),
                    frame(DATA, 0, b"x"),
                    frame(DATA, END_STREAM, &[]),
                    frame(DATA, PADDED, &[1, b'x', 0]),
                    frame(HEADERS, END_HEADERS, &[0x82]),
                    frame(CONTINUATION, END_HEADERS, &[]),
                    frame(8, 0, &[0, 0, 0, 1]),
                ]
            })
            .collect();
        assert_eq!(meter.feed(&stream(&frames), now), Ok(()));
    }

    #[test]
    fn the_budget_is_per_second() {
        let start = Instant::now();
        let mut meter = FrameMeter::new(BUDGETS);
        meter.feed(PREFACE, start).unwrap();
        let ping = frame(PING, 0, &[0; 8]);
        for second in 0..10u64 {
            let now = start + Duration::from_millis(1000 * second + 10);
            for _ in 0..BUDGETS.pings {
                assert_eq!(meter.feed(&ping, now), Ok(()), "second {second}");
            }
        }
    }

    #[test]
    fn http1_is_not_looked_at() {
        let now = Instant::now();
        let mut meter = FrameMeter::new(BUDGETS);
        assert_eq!(meter.feed(b"POST / HTTP/1.1\r\n", now), Ok(()));
        assert!(meter.is_off());
        // Even bytes that would be a PING flood as frames.
        let flood = stream(&vec![frame(PING, 0, &[0; 8]); 100]);
        assert_eq!(meter.feed(&flood, now), Ok(()));
        // A prefix of "PRI" that then differs.
        let mut meter = FrameMeter::new(BUDGETS);
        assert_eq!(meter.feed(b"PRI * HTTP/1.1", now), Ok(()));
        assert!(meter.is_off());
    }

    fn any_frame() -> impl Strategy<Value = (u8, u8, Vec<u8>)> {
        (
            prop_oneof![Just(DATA), Just(HEADERS), Just(SETTINGS), Just(PING), Just(CONTINUATION), 0u8..12],
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..40),
        )
    }

    proptest! {
        /// Any split of a well-formed stream gives what the whole-frame reading gives.
        #[test]
        fn counts_do_not_depend_on_how_bytes_arrive(
            frames in prop::collection::vec(any_frame(), 0..60),
            cuts in prop::collection::vec(0usize..2000, 0..30),
        ) {
            let bytes = stream(&frames.iter().map(|(k, f, p)| frame(*k, *f, p)).collect::<Vec<_>>());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let now = Instant::now();
            let mut meter = FrameMeter::new(BUDGETS);
            let mut result = Ok(());
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                result = meter.feed(&bytes[at..cut], now);
                at = cut;
                if result.is_err() {
                    break;
                }
            }
            prop_assert_eq!(result, reference(&frames));
        }

        /// Random and mutated input: no panic (the meter holds no buffer that could grow).
        #[test]
        fn arbitrary_bytes_never_panic(
            frames in prop::collection::vec(any_frame(), 0..20),
            noise in prop::collection::vec(any::<u8>(), 0..600),
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..20),
            raw in any::<bool>(),
        ) {
            let mut bytes = if raw {
                let mut b = PREFACE.to_vec();
                b.extend_from_slice(&noise);
                b
            } else {
                stream(&frames.iter().map(|(k, f, p)| frame(*k, *f, p)).collect::<Vec<_>>())
            };
            for (at, x) in flips {
                let len = bytes.len();
                bytes[at % len] ^= x;
            }
            let now = Instant::now();
            let mut meter = FrameMeter::new(BUDGETS);
            for chunk in bytes.chunks(7) {
                let _ = meter.feed(chunk, now);
            }
        }
    }
}
