//! Learned baselines through the engine, in simulated event time: days of traffic in seconds
//! of test time, one aggregated record per host per second.

use std::net::IpAddr;

use rampart_contract::EventTime;
use rampart_detect::{AttackEvent, DetectConfig, Engine, EventKind, Target};
use rampart_telemetry::{TrafficRecord, UnixNanos};

/// 2026-01-01 00:00:00 UTC.
const DAY0: u64 = 1_767_225_600;
const DAY: u64 = 86_400;
const WEB: [u8; 4] = [198, 51, 100, 80];

/// Static thresholds out of the way, so only the baselines decide.
fn config() -> DetectConfig {
    let text = "protected = [\"198.51.100.0/24\"]\n\
                [thresholds]\npps = 100000000\nmbps = 1000000\ntcp_pps = 100000000\n\
                tcp_ack_pps = 100000000\ntcp_syn_pps = 100000000\nnew_flows = 100000000\n\
                [baseline]\nfactor = 3.0\nmin_pps = 1000\nwarmup_secs = 3600\n";
    DetectConfig::from_toml_str(text, "baselines.toml").unwrap()
}

/// `pps` packets of established web traffic (TCP ACK, 1000 bytes) to `dst` in second `s`.
fn web(s: u64, dst: [u8; 4], pps: u64) -> TrafficRecord {
    TrafficRecord {
        start: UnixNanos::from_secs(s),
        end: UnixNanos::from_secs(s),
        src: IpAddr::from([203, 0, 113, 9]),
        dst: IpAddr::from(dst),
        protocol: 6,
        src_port: Some(40_000),
        dst_port: Some(443),
        tcp_flags: 0x18,
        packets: pps,
        bytes: pps * 1000,
        ..TrafficRecord::EMPTY
    }
}

/// Feeds seconds `from..until` with `rate(s)` packets each; returns the events.
fn feed(engine: &mut Engine, from: u64, until: u64, rate: impl Fn(u64) -> u64) -> Vec<AttackEvent> {
    let mut events = Vec::new();
    for s in from..until {
        let record = web(s, WEB, rate(s));
        events.extend(engine.advance(record.start));
        engine.observe(&record);
    }
    events.extend(engine.advance(UnixNanos::from_secs(until)));
    events
}

fn onsets(events: &[AttackEvent]) -> Vec<&AttackEvent> {
    events.iter().filter(|e| e.kind == EventKind::Onset).collect()
}

#[test]
fn a_slow_legitimate_ramp_raises_nothing_and_a_step_does() {
    let mut engine = Engine::new(config());
    // Two hours steady at 2000 pps, then four hours growing 1 % a minute (to about 22 000).
    let ramp_start = DAY0 + 7200;
    let ramp = |s: u64| {
        if s < ramp_start { 2000 } else { (2000.0 * 1.01f64.powf((s - ramp_start) as f64 / 60.0)) as u64 }
    };
    let ramp_end = ramp_start + 4 * 3600;
    let events = feed(&mut engine, DAY0, ramp_end, ramp);
    assert!(onsets(&events).is_empty(), "{:#?}", onsets(&events));
    let top = ramp(ramp_end - 1);
    assert!(top > 20_000, "{top}");
    assert!(engine.baseline_of(IpAddr::from(WEB), ramp_end).is_some());
    // A flood: five times the current level at once.
    let events = feed(&mut engine, ramp_end, ramp_end + 20, |_| 5 * top);
    let onsets = onsets(&events);
    assert_eq!(onsets.len(), 1, "{events:#?}");
    let a = &onsets[0].attack;
    assert_eq!(a.target, Target::Host(IpAddr::from(WEB)));
    assert_eq!(a.trigger.counter_name(), "pps_vs_baseline");
    assert_eq!(a.start, EventTime::from_unix_secs(ramp_end));
    let normal = a.trigger.baseline.unwrap();
    assert!(normal > 0.8 * top as f64 && normal < 1.2 * top as f64, "{normal} vs {top}");
    let explanation = rampart_contract::text::explanation(a);
    assert!(explanation.contains("learned normal"), "{explanation}");
}

#[test]
fn baselines_are_off_until_warmed_up_and_when_disabled() {
    // The same step after ten minutes of history: no baseline yet, no alert.
    let mut engine = Engine::new(config());
    let events = feed(&mut engine, DAY0, DAY0 + 600, |_| 2000);
    let events = [events, feed(&mut engine, DAY0 + 600, DAY0 + 620, |_| 20_000)].concat();
    assert!(onsets(&events).is_empty(), "{events:#?}");

    let mut off = config();
    off.baseline.enabled = false;
    let mut engine = Engine::new(off);
    let events = feed(&mut engine, DAY0, DAY0 + 7200, |_| 2000);
    let events = [events, feed(&mut engine, DAY0 + 7200, DAY0 + 7220, |_| 20_000)].concat();
    assert!(onsets(&events).is_empty(), "{events:#?}");
    assert!(engine.baseline_of(IpAddr::from(WEB), DAY0 + 7200).is_none());
}

#[test]
fn a_daily_peak_is_normal_at_its_hour_only() {
    // 2000 pps all day, 8000 pps (four times) from 09:00 to 10:00 UTC, for four days.
    let daily = |s: u64| if (s % DAY) / 3600 == 9 { 8000 } else { 2000 };
    let mut engine = Engine::new(config());
    let events = feed(&mut engine, DAY0, DAY0 + 4 * DAY, daily);
    // The first morning is a surprise (no seasonal history yet), over when the surge is; the
    // later ones are normal.
    let all = onsets(&events);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].attack.start, EventTime::from_unix_secs(DAY0 + 9 * 3600));
    let end = events.iter().find(|e| e.kind == EventKind::End).expect("the first surge ends");
    assert!(end.attack.end < EventTime::from_unix_secs(DAY0 + 10 * 3600 + 1), "{}", end.attack.end);
    // Day five: the same jump at 15:00 is an attack.
    let at_15 = DAY0 + 4 * DAY + 15 * 3600;
    let events = feed(&mut engine, DAY0 + 4 * DAY, at_15, daily);
    assert!(onsets(&events).is_empty(), "{:#?}", onsets(&events));
    let events = feed(&mut engine, at_15, at_15 + 30, |_| 8000);
    assert_eq!(onsets(&events).len(), 1, "{events:#?}");
    assert_eq!(onsets(&events)[0].attack.trigger.counter_name(), "pps_vs_baseline");
    // The peak hour learned from capped seconds: a flood at 09:00 is still one.
    let day5_9 = DAY0 + 5 * DAY + 9 * 3600;
    feed(&mut engine, at_15 + 30, day5_9, daily);
    let events = feed(&mut engine, day5_9, day5_9 + 30, |_| 50_000);
    assert_eq!(onsets(&events).len(), 1, "{events:#?}");
}

#[test]
fn baselines_survive_a_restart() {
    let mut engine = Engine::new(config());
    feed(&mut engine, DAY0, DAY0 + 2 * 3600, |_| 2000);
    let snapshot = engine.baseline_snapshot();
    assert!(!snapshot.is_empty());

    // A restarted engine with the snapshot judges a step at once ...
    let later = DAY0 + 2 * 3600 + 300;
    let mut restarted = Engine::new(config());
    restarted.restore_baselines(&snapshot).unwrap();
    let events = feed(&mut restarted, later, later + 10, |_| 20_000);
    assert_eq!(onsets(&events).len(), 1, "{events:#?}");
    // ... one without it cannot.
    let mut amnesiac = Engine::new(config());
    let events = feed(&mut amnesiac, later, later + 10, |_| 20_000);
    assert!(onsets(&events).is_empty());
    // A damaged snapshot is refused, not half-loaded.
    assert!(Engine::new(config()).restore_baselines(&snapshot[..snapshot.len() / 2]).is_err());
}

#[test]
fn the_signature_collateral_is_the_share_of_normal_traffic_it_matches() {
    let mut engine = Engine::new(config());
    // Normal: 1800 pps of established traffic and 200 new connections (SYN) per second.
    let mut events = Vec::new();
    for s in DAY0..DAY0 + 7200 {
        for record in
            [web(s, WEB, 1800), TrafficRecord { tcp_flags: 0x02, bytes: 200 * 60, ..web(s, WEB, 200) }]
        {
            events.extend(engine.advance(record.start));
            engine.observe(&record);
        }
    }
    assert!(onsets(&events).is_empty());
    // A SYN flood at 200 000 pps: the signature (TCP, SYN) also matches the normal SYNs, 10 %.
    let flood_start = DAY0 + 7200;
    for s in flood_start..flood_start + 10 {
        for record in [
            web(s, WEB, 1800),
            TrafficRecord { tcp_flags: 0x02, bytes: 200_000 * 60, ..web(s, WEB, 200_000) },
        ] {
            events.extend(engine.advance(record.start));
            engine.observe(&record);
        }
    }
    events.extend(engine.finish());
    let end = events.iter().find(|e| e.kind == EventKind::End).expect("the flood ends");
    let s = &end.attack.signature;
    assert_eq!((s.protocol, s.tcp_flags), (Some(6), Some(rampart_contract::TcpFlags::exact(0x02))));
    let c = s.collateral.as_ref().expect("a baselined target has a collateral estimate");
    assert!((c.baseline_pps - 2000.0).abs() < 200.0, "{c:?}");
    assert!((c.percent - 10.0).abs() < 2.0, "{c:?}");
}

#[test]
fn a_raised_threat_level_lowers_the_baseline_factor() {
    // 2.5 times normal: under the factor of 3, over the 2 it becomes at threat level high.
    for (level, alerts) in [(rampart_detect::ThreatLevel::Normal, 0), (rampart_detect::ThreatLevel::High, 1)]
    {
        let mut engine = Engine::new(config());
        feed(&mut engine, DAY0, DAY0 + 7200, |_| 2000);
        engine.set_threat_level(level);
        let events = feed(&mut engine, DAY0 + 7200, DAY0 + 7220, |_| 5000);
        assert_eq!(onsets(&events).len(), alerts, "{level:?}: {events:#?}");
    }
}
