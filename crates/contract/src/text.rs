//! Text for people, rendered from the typed values (the engine builds no sentences).

use crate::attack::Attack;
use crate::signature::{Confidence, FragmentMatch, Signature};
use crate::target::{Direction, Target};
use crate::trigger::Level;

/// "inbound tcp_syn_pps 50000 > threshold 10000 for host since 2026-01-01T00:00:01Z
/// (1 consecutive second needed)", plus the threat level when a raised one made the
/// difference.
pub fn explanation(attack: &Attack) -> String {
    let t = &attack.trigger;
    let scope = match (&attack.target, attack.direction, t.level) {
        (_, Direction::Outbound, _) => "traffic sent by the protected host".to_owned(),
        (Target::Group { name, .. }, _, _) => {
            format!("group `{name}` (hosts each under their own thresholds)")
        }
        (_, _, Level::Prefix) => "prefix (hosts each under their own thresholds)".to_owned(),
        (_, _, Level::WidePrefix) => "wide prefix (prefixes each under their own thresholds)".to_owned(),
        (_, _, Level::Network) => "protected network (prefixes each under their own thresholds)".to_owned(),
        _ => "host".to_owned(),
    };
    let limit = match t.baseline {
        Some(normal) => format!(
            "{} ({normal:.0}/s learned normal, {:.1}x)",
            t.threshold,
            t.threshold as f64 / normal.max(1.0)
        ),
        None => format!("threshold {}", t.threshold),
    };
    let mut text = format!(
        "{} {} {} > {limit} for {scope} since {} ({} consecutive second{} needed)",
        attack.direction,
        t.counter_name(),
        t.value,
        t.since,
        t.sustained_secs,
        if t.sustained_secs == 1 { "" } else { "s" }
    );
    if let Some(threat) = &t.threat {
        let reason = threat.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
        text += &format!("; threat level {}{reason}: thresholds at {} %", threat.level, threat.percent);
    }
    if let Some(c) = &attack.campaign {
        text += &format!(
            "; pulse {} of the campaign that began with attack #{} (previous: #{})",
            c.pulse, c.first, c.previous
        );
    }
    text
}

/// "dst 198.51.100.10/32, proto 6, dst port 80, tcp flags 0x02/0xff, length 40-63".
pub fn signature(s: &Signature) -> String {
    let mut fields: Vec<String> = Vec::new();
    let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(" ");
    if !s.src_prefixes.is_empty() {
        fields.push(format!("src {}", join(&mut s.src_prefixes.iter().map(ToString::to_string))));
    }
    if s.dst_prefixes.is_empty() {
        fields.push("dst any".to_owned());
    } else {
        fields.push(format!("dst {}", join(&mut s.dst_prefixes.iter().map(ToString::to_string))));
    }
    if let Some(p) = s.protocol {
        fields.push(format!("proto {p}"));
    }
    if !s.src_ports.is_empty() {
        fields.push(format!("src port {}", join(&mut s.src_ports.iter().map(ToString::to_string))));
    }
    if !s.dst_ports.is_empty() {
        fields.push(format!("dst port {}", join(&mut s.dst_ports.iter().map(ToString::to_string))));
    }
    if let Some(f) = s.tcp_flags {
        if f.mask == 0xff {
            fields.push(format!("tcp flags 0x{:02x}", f.value));
        } else {
            fields.push(format!("tcp flags 0x{:02x}/0x{:02x}", f.value, f.mask));
        }
    }
    match s.fragment {
        Some(FragmentMatch::NonInitial) => fields.push("non-initial fragments".into()),
        Some(FragmentMatch::NotNonInitial) => fields.push("not fragments".into()),
        None => {}
    }
    if let Some(r) = s.packet_len {
        fields.push(format!("length {}-{}", r.min, r.max));
    }
    fields.join(", ")
}

/// "medium: 412 packets observed, each field covers at least 97.5 % of the attack (95 %
/// confidence)".
pub fn confidence(s: &Signature) -> String {
    if s.samples < Confidence::MIN_SAMPLES {
        return format!(
            "{}: {} packets observed, fewer than the {} a vector is named from",
            s.confidence,
            s.samples,
            Confidence::MIN_SAMPLES
        );
    }
    format!(
        "{}: {} packets observed, each field covers at least {:.1} % of the attack (95 % confidence)",
        s.confidence,
        s.samples,
        100.0 * Confidence::coverage_bound(s.samples)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{LengthRange, PortRange, TcpFlags};
    use crate::{AttackId, EventTime, Metric, ThreatContext, ThreatLevel, Trigger};

    fn attack(target: Target, level: Level, baseline: Option<f64>) -> Attack {
        let since = EventTime::from_unix_secs(1_767_225_601);
        let mut trigger = Trigger::new(level, Metric::Pps, 50_000, 20_000, since);
        trigger.baseline = baseline;
        trigger.sustained_secs = 2;
        Attack::new(AttackId(1), target, Direction::Inbound, trigger)
    }

    #[test]
    fn explains_with_dates_levels_and_threat() {
        let host = attack(Target::Host("198.51.100.10".parse().unwrap()), Level::Host, None);
        assert_eq!(
            explanation(&host),
            "inbound pps 50000 > threshold 20000 for host since 2026-01-01T00:00:01Z \
             (2 consecutive seconds needed)"
        );
        let mut prefix =
            attack(Target::Prefix("198.51.100.0/24".parse().unwrap()), Level::Prefix, Some(5000.0));
        prefix.trigger.threat =
            Some(ThreatContext { level: ThreatLevel::High, reason: Some("vote".into()), percent: 50 });
        assert_eq!(
            explanation(&prefix),
            "inbound prefix_pps_vs_baseline 50000 > 20000 (5000/s learned normal, 4.0x) for prefix \
             (hosts each under their own thresholds) since 2026-01-01T00:00:01Z (2 consecutive seconds \
             needed); threat level high (vote): thresholds at 50 %"
        );
    }

    #[test]
    fn confidence_text() {
        let s = Signature::default().with_samples(412);
        assert_eq!(
            confidence(&s),
            "medium: 412 packets observed, each field covers at least 97.5 % of the attack (95 % confidence)"
        );
        assert_eq!(
            confidence(&Signature::default().with_samples(3)),
            "insufficient: 3 packets observed, fewer than the 32 a vector is named from"
        );
    }

    #[test]
    fn signature_text() {
        let s = Signature {
            dst_prefixes: vec!["198.51.100.10/32".parse().unwrap()],
            protocol: Some(6),
            dst_ports: vec![PortRange::single(80)],
            tcp_flags: Some(TcpFlags::exact(0x02)),
            packet_len: Some(LengthRange { min: 48, max: 63 }),
            ..Signature::default()
        };
        assert_eq!(signature(&s), "dst 198.51.100.10/32, proto 6, dst port 80, tcp flags 0x02, length 48-63");
    }
}
