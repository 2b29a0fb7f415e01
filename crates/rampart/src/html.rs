//! `analyze --html`: a self-contained report (no scripts, no external assets) with a traffic
//! chart per attacked target and the fingerprint of each attack.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ipnet::IpNet;
use rampart_contract::{Attack, Direction, EventTime};
use rampart_telemetry::TrafficRecord;

/// An attack target as a matcher: its networks (a host, a prefix, a group's prefixes) and
/// the direction of its traffic.
#[derive(Debug, Clone)]
struct TargetMatcher {
    label: String,
    networks: Vec<IpNet>,
    outbound: bool,
}

impl TargetMatcher {
    /// Outbound attacks chart what the host sent, the others what their prefixes received.
    fn of(attack: &Attack) -> Self {
        let outbound = attack.direction == Direction::Outbound;
        Self { label: series_label(attack), networks: attack.target.prefixes(), outbound }
    }

    fn matches(&self, record: &TrafficRecord) -> bool {
        let ip = if self.outbound { record.src } else { record.dst };
        self.networks.iter().any(|n| n.contains(&ip))
    }
}

/// The key of an attack's series: its direction and target.
fn series_label(attack: &Attack) -> String {
    format!("{} {}", attack.direction, attack.target)
}

/// Per-second packets and bytes of each attacked target (inbound to it, or sent by it for
/// outbound attacks), for the charts.
#[derive(Debug, Default)]
pub struct TargetSeries {
    targets: Vec<TargetMatcher>,
    /// target index -> second -> (packets, bytes)
    points: Vec<BTreeMap<u64, (u64, u64)>>,
}

impl TargetSeries {
    /// The targets of `attacks`.
    pub fn new(attacks: &[Attack]) -> Self {
        let mut matchers: Vec<TargetMatcher> = Vec::new();
        for attack in attacks {
            let matcher = TargetMatcher::of(attack);
            if !matchers.iter().any(|m| m.label == matcher.label) {
                matchers.push(matcher);
            }
        }
        let points = vec![BTreeMap::new(); matchers.len()];
        Self { targets: matchers, points }
    }

    pub fn add(&mut self, record: &TrafficRecord) {
        for (index, target) in self.targets.iter().enumerate() {
            if target.matches(record) {
                let Some(points) = self.points.get_mut(index) else { continue };
                let point = points.entry(record.start.secs()).or_default();
                point.0 += record.scaled_packets();
                point.1 += record.scaled_bytes();
            }
        }
    }

    fn series(&self, attack: &Attack) -> Option<&BTreeMap<u64, (u64, u64)>> {
        let label = series_label(attack);
        self.targets.iter().position(|t| t.label == label).and_then(|i| self.points.get(i))
    }
}

/// The whole report as one HTML document.
pub fn render(capture: &str, attacks: &[Attack], series: &TargetSeries) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let title = format!("Rampart analysis of {capture}");
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    let _ = write!(html, "<p>{} attack(s) found.</p>", attacks.len());
    if !attacks.is_empty() {
        html.push_str("<table><tr><th>#</th><th>target</th><th>vectors</th><th>start</th><th>duration</th><th>peak pps</th><th>peak Mbps</th><th>packets</th><th>bytes</th></tr>");
        for (i, attack) in attacks.iter().enumerate() {
            let _ = write!(
                html,
                "<tr><td><a href=\"#a{i}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                escape(&attack.target.to_string()),
                escape(&vectors(attack)),
                utc(attack.start),
                attack.duration_secs(),
                attack.peak_pps,
                attack.peak_bps as f64 / 1e6,
                attack.packets,
                attack.bytes,
            );
        }
        html.push_str("</table>");
    }
    for (i, attack) in attacks.iter().enumerate() {
        let _ = write!(
            html,
            "<section id=\"a{i}\"><h2>Attack {} on {}: {}</h2><p>{}</p>",
            i + 1,
            escape(&attack.target.to_string()),
            escape(&vectors(attack)),
            escape(&rampart_contract::text::explanation(attack))
        );
        if let Some(points) = series.series(attack) {
            let (start, end) = (attack.start.as_unix_secs_f64(), attack.end.as_unix_secs_f64());
            html.push_str(&chart("packets per second", points, |p| p.0 as f64, start, end));
            html.push_str(&chart("megabits per second", points, |p| p.1 as f64 * 8.0 / 1e6, start, end));
        }
        let _ = write!(
            html,
            "<h3>Mitigation signature</h3><p>{}</p><pre>{}</pre><h3>Fingerprint</h3><pre>{}</pre></section>",
            escape(&rampart_contract::text::signature(&attack.signature)),
            escape(&serde_json::to_string_pretty(&attack.signature).unwrap_or_default()),
            escape(&serde_json::to_string_pretty(attack).unwrap_or_default())
        );
    }
    html.push_str("</body></html>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
td:nth-child(2),td:nth-child(3){text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto}\
svg{background:#fafafa;border:1px solid #ddd;margin:.5em 0}.attack{fill:#f4c7c3}.line{fill:none;stroke:#1a5fb4;stroke-width:1.5}";

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 180.0;
const MARGIN: f64 = 50.0;

/// An SVG line chart of one metric over the capture, with the attack window shaded.
fn chart(
    title: &str,
    points: &BTreeMap<u64, (u64, u64)>,
    metric: impl Fn(&(u64, u64)) -> f64,
    start: f64,
    end: f64,
) -> String {
    let (Some((&first, _)), Some((&last, _))) = (points.first_key_value(), points.last_key_value()) else {
        return String::new();
    };
    let span = (last - first).max(1) as f64;
    let max = points.values().map(&metric).fold(0.0, f64::max).max(1e-9);
    let x = |second: f64| MARGIN + (second - first as f64) / span * (WIDTH - 2.0 * MARGIN);
    let y = |value: f64| HEIGHT - 20.0 - value / max * (HEIGHT - 40.0);
    let mut svg = format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{title}\">");
    let (shade_from, shade_to) = (x(start.floor().max(first as f64)), x(end.ceil().min(last as f64)));
    let _ = write!(
        svg,
        "<rect class=\"attack\" x=\"{shade_from:.1}\" y=\"20\" width=\"{:.1}\" height=\"{:.1}\"/>",
        (shade_to - shade_from).max(1.0),
        HEIGHT - 40.0
    );
    // Seconds without traffic are zero, not interpolated.
    let mut path = String::new();
    let mut previous: Option<u64> = None;
    for (&second, point) in points {
        if let Some(previous) = previous
            && second > previous + 1
        {
            let _ = write!(
                path,
                "{:.1},{:.1} {:.1},{:.1} ",
                x((previous + 1) as f64),
                y(0.0),
                x((second - 1) as f64),
                y(0.0)
            );
        }
        let _ = write!(path, "{:.1},{:.1} ", x(second as f64), y(metric(point)));
        previous = Some(second);
    }
    let _ = write!(
        svg,
        "<polyline class=\"line\" points=\"{path}\"/><text x=\"{MARGIN}\" y=\"14\" font-size=\"12\">{title} (peak {})</text>\
<text x=\"{MARGIN}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        human(max),
        HEIGHT - 4.0,
        utc(EventTime::from_unix_secs(first)),
        WIDTH - MARGIN,
        HEIGHT - 4.0,
        utc(EventTime::from_unix_secs(last))
    );
    svg
}

fn vectors(attack: &Attack) -> String {
    attack.vectors.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
}

fn human(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.1}"),
    }
}

/// ISO 8601 in UTC: `2026-01-01T00:00:00.500Z`.
fn utc(time: EventTime) -> String {
    time.to_rfc3339()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_contract::{AttackId, Level, Metric, Target, Trigger};
    use rampart_telemetry::UnixNanos;
    use std::net::IpAddr;

    fn attack(target: Target, direction: Direction) -> Attack {
        let since = EventTime::from_unix_secs(102);
        let mut a = Attack::new(
            AttackId(1),
            target,
            direction,
            Trigger::new(Level::Host, Metric::Pps, 1000, 500, since),
        );
        a.end = EventTime::from_unix_secs(108);
        a
    }

    #[test]
    fn series_follow_direction_and_group_prefixes() {
        let record = |src: [u8; 4], dst: [u8; 4]| TrafficRecord {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            packets: 1,
            bytes: 100,
            ..TrafficRecord::EMPTY
        };
        let group = Target::Group {
            name: "web".into(),
            prefixes: vec!["198.51.100.0/28".parse().unwrap(), "198.51.100.64/28".parse().unwrap()],
        };
        let attacks = [
            attack(Target::Host("198.51.100.66".parse().unwrap()), Direction::Outbound),
            attack(group, Direction::Inbound),
        ];
        let mut series = TargetSeries::new(&attacks);
        series.add(&record([198, 51, 100, 66], [203, 0, 113, 1]));
        series.add(&record([203, 0, 113, 1], [198, 51, 100, 66]));
        series.add(&record([203, 0, 113, 1], [198, 51, 100, 70]));
        series.add(&record([203, 0, 113, 1], [198, 51, 100, 2]));
        assert_eq!(series.series(&attacks[0]).map(|p| p[&0]), Some((1, 100)));
        assert_eq!(series.series(&attacks[1]).map(|p| p[&0]), Some((3, 300)));
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(EventTime::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(utc(EventTime::from_unix_micros(1_767_225_600_500_000)), "2026-01-01T00:00:00.500Z");
    }

    #[test]
    fn report_is_self_contained_and_escaped() {
        let mut attack = attack(
            Target::Group { name: "<script>".into(), prefixes: vec!["198.51.100.10/32".parse().unwrap()] },
            Direction::Inbound,
        );
        attack.vectors = vec![rampart_contract::Vector::SynFlood];
        attack.signature.protocol = Some(6);
        let mut series = TargetSeries::new(std::slice::from_ref(&attack));
        for second in 100..110u64 {
            series.add(&TrafficRecord {
                start: UnixNanos::from_secs(second),
                end: UnixNanos::from_secs(second),
                dst: "198.51.100.10".parse().unwrap(),
                packets: 1000,
                bytes: 60_000,
                ..TrafficRecord::EMPTY
            });
        }
        let html = render("x<y>.pcap", &[attack], &series);
        assert!(html.contains("<svg") && html.contains("polyline"));
        assert!(html.contains("x&lt;y&gt;.pcap") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("http"));
    }
}
