//! Daemon metrics: counters shared by the tasks, rendered in the Prometheus text format.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rampart_detect::{EngineStats, TrafficRates};
use rampart_ingest::CollectorKind;
use rampart_telemetry::{DatagramDecoder, Exporter, ExporterStats, TrafficRecord, UnixNanos};

use super::webhook::WebhookStats;

/// One collector's counters.
#[derive(Debug)]
pub struct CollectorMetrics {
    pub kind: CollectorKind,
    pub listen: Mutex<SocketAddr>,
    /// Live counts, updated per datagram.
    pub datagrams: AtomicU64,
    pub records: AtomicU64,
    /// Datagrams the kernel dropped on the socket (buffer full), as of the last scrape.
    pub socket_drops: AtomicU64,
    /// Decoder statistics summed over exporters (and unattributed datagrams), refreshed at most
    /// about once a second while datagrams arrive.
    pub decoder: Mutex<ExporterStats>,
}

impl CollectorMetrics {
    pub fn new(kind: CollectorKind, listen: SocketAddr) -> Self {
        CollectorMetrics {
            kind,
            listen: Mutex::new(listen),
            datagrams: AtomicU64::new(0),
            records: AtomicU64::new(0),
            socket_drops: AtomicU64::new(0),
            decoder: Mutex::new(ExporterStats::default()),
        }
    }
}

/// Everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct Metrics {
    pub collectors: Mutex<Vec<Arc<CollectorMetrics>>>,
    pub engine: Mutex<EngineStats>,
    pub active_attacks: AtomicU64,
    /// Attacks by vector, counted once per attack and vector.
    pub attacks_by_vector: Mutex<BTreeMap<String, u64>>,
    /// Events by kind: onset, update, end.
    pub events: [AtomicU64; 3],
    pub store_errors: AtomicU64,
    pub inbound_pps: AtomicU64,
    pub inbound_bps: AtomicU64,
    /// Rates of the engine's last closed second: all protected hosts, then each group.
    pub traffic: Mutex<(TrafficRates, Vec<(String, TrafficRates)>)>,
    pub webhook: Option<Arc<WebhookStats>>,
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Tracks which vectors each ongoing attack has been counted for, and the active count.
#[derive(Debug, Default)]
pub struct AttackTally {
    counted: HashMap<u64, BTreeSet<String>>,
}

impl AttackTally {
    /// Accounts one event (`kind` is `onset`, `update` or `end`) of attack `id` with `vectors`.
    pub fn event(&mut self, metrics: &Metrics, kind: &str, id: u64, vectors: &[String]) {
        let index = match kind {
            "onset" => 0,
            "update" => 1,
            _ => 2,
        };
        if let Some(counter) = metrics.events.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let counted = self.counted.entry(id).or_default();
        if let Ok(mut by_vector) = metrics.attacks_by_vector.lock() {
            for vector in vectors {
                if counted.insert(vector.clone()) {
                    *by_vector.entry(vector.clone()).or_default() += 1;
                }
            }
        }
        if kind == "end" {
            self.counted.remove(&id);
        }
        metrics.active_attacks.store(self.counted.len() as u64, Ordering::Relaxed);
    }
}

/// Inbound traffic rate over whole wall-clock seconds.
#[derive(Debug, Default)]
pub struct RateMeter {
    second: u64,
    packets: u64,
    bits: u64,
}

impl RateMeter {
    /// Counts `record` (sampling-scaled) if it is inbound to `protected` (everything is when
    /// nothing is protected).
    pub fn add(&mut self, record: &TrafficRecord, protected: &[ipnet::IpNet]) {
        if protected.is_empty() || protected.iter().any(|n| n.contains(&record.dst)) {
            let scale = u64::from(record.sampling_rate.max(1));
            self.packets = self.packets.saturating_add(record.packets.saturating_mul(scale));
            self.bits = self.bits.saturating_add(record.bytes.saturating_mul(scale).saturating_mul(8));
        }
    }

    /// At wall time `now`: when a new second began, returns the finished second's (pps, bps).
    pub fn tick(&mut self, now: UnixNanos) -> Option<(u64, u64)> {
        let second = now.secs();
        if second == self.second {
            return None;
        }
        let rates = if self.second + 1 == second { (self.packets, self.bits) } else { (0, 0) };
        *self = RateMeter { second, packets: 0, bits: 0 };
        Some(rates)
    }
}

/// Wraps a collector's decoder to count datagrams and records live and publish its statistics.
pub struct CountingDecoder {
    inner: Box<dyn DatagramDecoder>,
    metrics: Arc<CollectorMetrics>,
    published_second: u64,
    since_publish: u32,
}

impl std::fmt::Debug for CountingDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingDecoder").field("metrics", &self.metrics).finish_non_exhaustive()
    }
}

impl CountingDecoder {
    pub fn new(inner: Box<dyn DatagramDecoder>, metrics: Arc<CollectorMetrics>) -> Self {
        CountingDecoder { inner, metrics, published_second: 0, since_publish: 0 }
    }

    fn publish(&mut self) {
        let mut total = self.inner.unattributed_stats();
        for (_, stats) in self.inner.exporter_stats() {
            total.absorb(&stats);
        }
        if let Ok(mut decoder) = self.metrics.decoder.lock() {
            *decoder = total;
        }
        self.since_publish = 0;
    }
}

impl DatagramDecoder for CountingDecoder {
    fn decode_datagram(
        &mut self,
        from: IpAddr,
        datagram: &[u8],
        received: UnixNanos,
        out: &mut Vec<TrafficRecord>,
    ) {
        let before = out.len();
        self.inner.decode_datagram(from, datagram, received, out);
        self.metrics.datagrams.fetch_add(1, Ordering::Relaxed);
        self.metrics.records.fetch_add(out.len().saturating_sub(before) as u64, Ordering::Relaxed);
        self.since_publish += 1;
        // The summary allocates: once a second (or every 4096 datagrams), not per datagram.
        if received.secs() != self.published_second || self.since_publish >= 4096 {
            self.published_second = received.secs();
            self.publish();
        }
    }

    fn exporter_stats(&self) -> Vec<(Exporter, ExporterStats)> {
        self.inner.exporter_stats()
    }

    fn unattributed_stats(&self) -> ExporterStats {
        self.inner.unattributed_stats()
    }
}

/// A collector counter: name, help, getter.
type CollectorCounter = (&'static str, &'static str, fn(&CollectorMetrics) -> &AtomicU64);

/// A decoder counter: name, help, getter.
type DecoderCounter = (&'static str, &'static str, fn(&ExporterStats) -> u64);

/// The Prometheus text exposition of `metrics`.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::with_capacity(4096);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let collectors: Vec<Arc<CollectorMetrics>> =
        metrics.collectors.lock().map(|c| c.clone()).unwrap_or_default();
    let label = |c: &CollectorMetrics| {
        let listen = c.listen.lock().map(|l| l.to_string()).unwrap_or_default();
        format!("collector=\"{}\",listen=\"{listen}\"", format!("{:?}", c.kind).to_lowercase())
    };
    let collector_counters: [CollectorCounter; 3] = [
        ("datagrams", "Export datagrams received.", |c| &c.datagrams),
        ("records", "Traffic records decoded.", |c| &c.records),
        ("socket_drops", "Datagrams the kernel dropped: socket buffer full.", |c| &c.socket_drops),
    ];
    for (name, help, get) in collector_counters {
        let metric = format!("rampart_collector_{name}_total");
        family(&mut out, &metric, "counter", help);
        for c in &collectors {
            let _ = writeln!(out, "{metric}{{{}}} {}", label(c), get(c).load(Ordering::Relaxed));
        }
    }
    let decoder_counters: [DecoderCounter; 6] = [
        ("datagrams", "Datagrams seen by the decoder.", |s| s.datagrams),
        ("records", "Records produced by the decoder.", |s| s.records),
        ("decode_errors", "Datagrams, samples or records that could not be decoded.", |s| s.decode_errors),
        ("unknown_template_records", "Flow records dropped for want of their template.", |s| {
            s.unknown_template_records
        }),
        ("sequence_gaps", "Sequence units missing between export datagrams.", |s| s.sequence_gaps),
        ("drops", "Packets the exporters' samplers reported dropping.", |s| s.drops),
    ];
    for (name, help, get) in decoder_counters {
        let metric = format!("rampart_decoder_{name}_total");
        family(&mut out, &metric, "counter", help);
        for c in &collectors {
            let value = c.decoder.lock().map(|s| get(&s)).unwrap_or(0);
            let _ = writeln!(out, "{metric}{{{}}} {value}", label(c));
        }
    }
    let engine = metrics.engine.lock().map(|e| e.clone()).unwrap_or_default();
    let engine_counters = [
        ("records", "Records observed by the detection engine.", engine.records),
        ("transit_records", "Records neither to nor from a protected network.", engine.transit_records),
        ("late_shares", "Record shares whose second was already closed.", engine.late_shares),
        ("overflow_hosts", "Hosts beyond max_hosts in a second.", engine.overflow_hosts),
        ("dropped_shares", "Shares lost to a full prefix overflow table.", engine.dropped_shares),
        ("dropped_candidates", "Candidates not tracked: max_attacks reached.", engine.dropped_candidates),
    ];
    for (name, help, value) in engine_counters {
        family(&mut out, &format!("rampart_engine_{name}_total"), "counter", help);
        let _ = writeln!(out, "rampart_engine_{name}_total {value}");
    }
    family(&mut out, "rampart_engine_peak_hosts", "gauge", "Most hosts tracked in one second.");
    let _ = writeln!(out, "rampart_engine_peak_hosts {}", engine.peak_hosts);
    family(&mut out, "rampart_active_attacks", "gauge", "Attacks ongoing now.");
    let _ = writeln!(out, "rampart_active_attacks {}", metrics.active_attacks.load(Ordering::Relaxed));
    family(
        &mut out,
        "rampart_attacks_total",
        "counter",
        "Attacks detected, by vector (an attack counts once per vector).",
    );
    if let Ok(by_vector) = metrics.attacks_by_vector.lock() {
        for (vector, count) in by_vector.iter() {
            let _ = writeln!(out, "rampart_attacks_total{{vector=\"{vector}\"}} {count}");
        }
    }
    family(&mut out, "rampart_attack_events_total", "counter", "Attack events, by kind.");
    for (kind, counter) in ["onset", "update", "end"].iter().zip(&metrics.events) {
        let _ = writeln!(
            out,
            "rampart_attack_events_total{{kind=\"{kind}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    family(&mut out, "rampart_store_errors_total", "counter", "Event batches the store failed to record.");
    let _ = writeln!(out, "rampart_store_errors_total {}", metrics.store_errors.load(Ordering::Relaxed));
    family(
        &mut out,
        "rampart_inbound_packets_per_second",
        "gauge",
        "Inbound packets in the last whole second (sampling-scaled).",
    );
    let _ =
        writeln!(out, "rampart_inbound_packets_per_second {}", metrics.inbound_pps.load(Ordering::Relaxed));
    family(
        &mut out,
        "rampart_inbound_bits_per_second",
        "gauge",
        "Inbound IP bits in the last whole second (sampling-scaled).",
    );
    let _ = writeln!(out, "rampart_inbound_bits_per_second {}", metrics.inbound_bps.load(Ordering::Relaxed));
    let (all, groups) = metrics.traffic.lock().map(|t| t.clone()).unwrap_or_default();
    let scopes: Vec<(String, TrafficRates)> = std::iter::once(("all".to_owned(), all))
        .chain(groups.into_iter().map(|(name, rates)| (format!("group:{name}"), rates)))
        .collect();
    type RateGetter = fn(&TrafficRates) -> (u64, u64);
    let rate_families: [(&str, &str, RateGetter); 3] = [
        ("packets", "Packets", |r| (r.inbound_pps, r.outbound_pps)),
        ("bits", "IP bits", |r| (r.inbound_bps, r.outbound_bps)),
        ("new_flows", "New flows", |r| (r.inbound_flows, r.outbound_flows)),
    ];
    for (name, what, get) in rate_families {
        let metric = format!("rampart_traffic_{name}_per_second");
        let help = format!(
            "{what} per second to (inbound) and from (outbound) protected hosts in the engine's last closed \
             second, for all of them (scope=\"all\") and per host group (sampling-scaled)."
        );
        family(&mut out, &metric, "gauge", &help);
        for (scope, rates) in &scopes {
            let (inbound, outbound) = get(rates);
            let scope = label_value(scope);
            let _ = writeln!(out, "{metric}{{scope=\"{scope}\",direction=\"inbound\"}} {inbound}");
            let _ = writeln!(out, "{metric}{{scope=\"{scope}\",direction=\"outbound\"}} {outbound}");
        }
    }
    family(&mut out, "rampart_baseline_keys", "gauge", "Hosts and groups with a learned baseline.");
    let _ = writeln!(out, "rampart_baseline_keys {}", engine.baseline_keys);
    family(
        &mut out,
        "rampart_baseline_untracked_total",
        "counter",
        "Hosts not baselined because the baseline table was full.",
    );
    let _ = writeln!(out, "rampart_baseline_untracked_total {}", engine.baseline_untracked);
    if let Some(webhook) = &metrics.webhook {
        let webhook_counters = [
            ("delivered", "Events delivered to the webhook.", &webhook.delivered),
            ("failed_attempts", "Webhook attempts that failed.", &webhook.failed_attempts),
            ("abandoned", "Events given up after every attempt failed.", &webhook.abandoned),
            ("dropped", "Events dropped from the full webhook queue.", &webhook.dropped),
        ];
        for (name, help, counter) in webhook_counters {
            family(&mut out, &format!("rampart_webhook_{name}_total"), "counter", help);
            let _ = writeln!(out, "rampart_webhook_{name}_total {}", counter.load(Ordering::Relaxed));
        }
        family(&mut out, "rampart_webhook_queued", "gauge", "Events waiting for the webhook.");
        let _ = writeln!(out, "rampart_webhook_queued {}", webhook.queued.load(Ordering::Relaxed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_each_vector_once_per_attack() {
        let metrics = Metrics::default();
        let mut tally = AttackTally::default();
        tally.event(&metrics, "onset", 1, &["udp_flood".into()]);
        tally.event(&metrics, "update", 1, &["udp_flood".into(), "dns_amplification".into()]);
        tally.event(&metrics, "onset", 2, &["udp_flood".into()]);
        assert_eq!(metrics.active_attacks.load(Ordering::Relaxed), 2);
        tally.event(&metrics, "end", 1, &["udp_flood".into(), "dns_amplification".into()]);
        assert_eq!(metrics.active_attacks.load(Ordering::Relaxed), 1);
        let text = render(&metrics);
        assert!(text.contains("rampart_attacks_total{vector=\"udp_flood\"} 2\n"), "{text}");
        assert!(text.contains("rampart_attacks_total{vector=\"dns_amplification\"} 1\n"), "{text}");
        assert!(text.contains("rampart_active_attacks 1\n"), "{text}");
        assert!(text.contains("rampart_attack_events_total{kind=\"onset\"} 2\n"), "{text}");
    }

    #[test]
    fn renders_collectors_and_every_line_is_well_formed() {
        let metrics = Metrics::default();
        let collector =
            Arc::new(CollectorMetrics::new(CollectorKind::Sflow, "127.0.0.1:6343".parse().unwrap()));
        collector.datagrams.store(5, Ordering::Relaxed);
        collector.decoder.lock().unwrap().decode_errors = 2;
        metrics.collectors.lock().unwrap().push(collector);
        let text = render(&metrics);
        assert!(text.contains(
            "rampart_collector_datagrams_total{collector=\"sflow\",listen=\"127.0.0.1:6343\"} 5\n"
        ));
        assert!(text.contains(
            "rampart_decoder_decode_errors_total{collector=\"sflow\",listen=\"127.0.0.1:6343\"} 2\n"
        ));
        assert!(text.contains("rampart_traffic_packets_per_second{scope=\"all\",direction=\"inbound\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn group_rates_are_labelled_and_escaped() {
        let metrics = Metrics::default();
        let web = TrafficRates { inbound_pps: 1280, outbound_bps: 8_000, ..TrafficRates::default() };
        *metrics.traffic.lock().unwrap() = (web, vec![("web \"front\"".to_owned(), web)]);
        let text = render(&metrics);
        assert!(
            text.contains("rampart_traffic_packets_per_second{scope=\"all\",direction=\"inbound\"} 1280\n")
        );
        assert!(text.contains(
            "rampart_traffic_bits_per_second{scope=\"group:web \\\"front\\\"\",direction=\"outbound\"} 8000\n"
        ), "{text}");
    }

    #[test]
    fn rate_meter_reports_whole_seconds() {
        let mut meter = RateMeter::default();
        assert!(meter.tick(UnixNanos::from_secs(100)).is_some());
        let record = TrafficRecord { packets: 2, bytes: 100, sampling_rate: 10, ..TrafficRecord::EMPTY };
        meter.add(&record, &[]);
        meter.add(&record, &["10.0.0.0/8".parse().unwrap()]); // not inbound: dst is unspecified
        assert_eq!(meter.tick(UnixNanos(100_500_000_000)), None);
        assert_eq!(meter.tick(UnixNanos::from_secs(101)), Some((20, 8000)));
        assert_eq!(meter.tick(UnixNanos::from_secs(105)), Some((0, 0)));
    }
}
