//! Daemon metrics: counters shared by the tasks, encoded by `prometheus-client` in the
//! OpenMetrics text format. Attack events and attacks by vector are live counter families
//! labelled with the detection crate's enums; everything the tasks publish as snapshots
//! (collectors, decoder, engine, rates, webhook, HTTP) is read at scrape time by a collector.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rampart_detect::{EngineStats, EventKind, TrafficRates, Vector};
use rampart_ingest::CollectorKind;
use rampart_telemetry::{DatagramDecoder, Exporter, ExporterStats, TrafficRecord, UnixNanos};

use crate::http::ConnectionStats;
use crate::webhook::WebhookStats;

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
    /// What each input let through or dropped before decoding (unknown exporters,
    /// implausible records).
    pub inputs: Mutex<Vec<Arc<rampart_ingest::inputs::InputStats>>>,
    /// Interfaces captured through AF_PACKET rings.
    pub captures: Mutex<Vec<Arc<rampart_ingest::InterfaceStats>>>,
    pub engine: Mutex<EngineStats>,
    pub active_attacks: AtomicU64,
    /// Attacks by vector, counted once per attack and vector.
    pub attacks_by_vector: Family<VectorLabels, Counter>,
    /// Events by kind: onset, update, end (all three shown from the start).
    pub events: Family<EventLabels, Counter>,
    pub store_errors: AtomicU64,
    pub inbound_pps: AtomicU64,
    pub inbound_bps: AtomicU64,
    /// Rates of the engine's last closed second: all protected hosts, then each group.
    pub traffic: Mutex<(TrafficRates, Vec<(String, TrafficRates)>)>,
    pub webhook: Option<Arc<WebhookStats>>,
    /// The metrics server's own connections.
    pub http: Arc<ConnectionStats>,
    /// Decisions and refusals, when mitigation is on.
    pub mitigation: Option<Arc<rampart_mitigate::MitigationStats>>,
    pub script: Option<Arc<rampart_mitigate::script::ScriptStats>>,
    /// The host filter's counters, when `[filter]` is on.
    pub filter: Option<Arc<crate::filter::FilterStats>>,
    /// The BGP speaker (its peers' sessions, routes and refusals), when `[bgp]` is on.
    pub bgp: Option<Arc<rampart_bgp::driver::Speaker>>,
}

/// The `kind` label of `rampart_attack_events_total`: the engine's event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindLabel(pub EventKind);

impl KindLabel {
    pub const fn name(self) -> &'static str {
        match self.0 {
            EventKind::Onset => "onset",
            EventKind::Update => "update",
            EventKind::End => "end",
        }
    }
}

// `EventKind` has no `Hash`; its name identifies it.
impl Hash for KindLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.name())
    }
}

/// The `vector` label of `rampart_attacks_total`: the vector's JSON name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VectorLabel(pub Vector);

impl EncodeLabelValue for VectorLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: KindLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct VectorLabels {
    pub vector: VectorLabel,
}

/// Tracks which vectors each ongoing attack has been counted for, and the active count.
#[derive(Debug, Default)]
pub struct AttackTally {
    counted: HashMap<u64, BTreeSet<Vector>>,
}

impl AttackTally {
    /// Accounts one event of attack `id` with `vectors`.
    pub fn event(&mut self, metrics: &Metrics, kind: EventKind, id: u64, vectors: &[Vector]) {
        metrics.events.get_or_create(&EventLabels { kind: KindLabel(kind) }).inc();
        let counted = self.counted.entry(id).or_default();
        for &vector in vectors {
            if counted.insert(vector) {
                metrics.attacks_by_vector.get_or_create(&VectorLabels { vector: VectorLabel(vector) }).inc();
            }
        }
        if kind == EventKind::End {
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

/// The registry `/metrics` encodes: prefix `rampart_`, the live families and a collector for
/// the snapshots. Counter names get `_total` from the encoder.
pub fn registry(metrics: &Arc<Metrics>) -> Registry {
    let mut registry = Registry::with_prefix("rampart");
    // Every kind from the start, so a dashboard sees zeros rather than no series.
    for kind in [EventKind::Onset, EventKind::Update, EventKind::End] {
        drop(metrics.events.get_or_create(&EventLabels { kind: KindLabel(kind) }));
    }
    registry.register(
        "attacks",
        "Attacks detected, by vector (an attack counts once per vector).",
        metrics.attacks_by_vector.clone(),
    );
    registry.register("attack_events", "Attack events, by kind.", metrics.events.clone());
    registry.register_collector(Box::new(Snapshots(metrics.clone())));
    registry
}

/// The OpenMetrics text of `registry`.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(8192);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// A capture counter: name, help, and where it is in the shared stats.
type CaptureCounter = (&'static str, &'static str, fn(&rampart_ingest::InterfaceStats) -> &AtomicU64);

/// Per captured interface: frames read, records handed on, frames not IP or undecodable, and
/// frames the kernel dropped because the ring was full.
fn encode_captures(metrics: &Metrics, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let captures: Vec<_> = metrics.captures.lock().map(|c| c.clone()).unwrap_or_default();
    let counters: [CaptureCounter; 6] = [
        ("capture_packets", "Frames read from the interface's AF_PACKET rings.", |s| &s.frames),
        ("capture_records", "Traffic records decoded from captured frames (after sampling).", |s| &s.records),
        ("capture_non_ip", "Captured frames that were not IP (ARP, LLDP...).", |s| &s.non_ip),
        ("capture_decode_errors", "Captured IP frames that did not decode.", |s| &s.decode_errors),
        ("capture_kernel_drops", "Frames the kernel dropped: the capture ring was full.", |s| {
            &s.kernel_drops
        }),
        ("capture_bad_blocks", "Ring blocks whose frame chain was malformed.", |s| &s.bad_blocks),
    ];
    for (name, help, get) in counters {
        let mut family =
            encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
        for capture in &captures {
            let labels = [("interface", capture.interface.clone())];
            ConstCounter::new(get(capture).load(Ordering::Relaxed)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// Per input: datagrams from sources that are not configured exporters (in total and for the
/// heaviest sources) and records dropped as implausible, by reason.
fn encode_inputs(metrics: &Metrics, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    use prometheus_client::metrics::MetricType;
    use rampart_telemetry::plausibility::ImplausibleReason;
    let inputs: Vec<_> =
        metrics.inputs.lock().map(|i| i.iter().map(|s| s.snapshot()).collect()).unwrap_or_default();
    let labels = |i: &rampart_ingest::inputs::InputSnapshot| {
        [("collector", collector_name(i.protocol).to_owned()), ("listen", i.listen.to_string())]
    };
    {
        let mut family = encoder.encode_descriptor(
            "input_unknown_exporter_datagrams",
            "Datagrams dropped before decoding: their source is not a configured exporter.",
            None,
            MetricType::Counter,
        )?;
        for input in &inputs {
            ConstCounter::new(input.unknown_exporter).encode(family.encode_family(&labels(input))?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "input_unknown_source_datagrams",
            "Datagrams from unconfigured sources, for the heaviest sources (source=\"other\": the rest).",
            None,
            MetricType::Counter,
        )?;
        for input in &inputs {
            let [collector, listen] = labels(input);
            let sources = input.unknown_sources.iter().map(|(ip, n)| (ip.to_string(), *n));
            for (source, n) in sources.chain(std::iter::once(("other".to_owned(), input.unknown_other))) {
                let l = [collector.clone(), listen.clone(), ("source", source)];
                ConstCounter::new(n).encode(family.encode_family(&l)?)?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "input_implausible_records",
        "Records dropped as implausible (more than the exporter or its link can carry, or malformed), by reason.",
        None,
        MetricType::Counter,
    )?;
    for input in &inputs {
        let [collector, listen] = labels(input);
        for reason in ImplausibleReason::ALL {
            let l = [collector.clone(), listen.clone(), ("reason", reason.name().to_owned())];
            ConstCounter::new(input.implausible.get(reason)).encode(family.encode_family(&l)?)?;
        }
    }
    Ok(())
}

/// Reads the shared snapshots at scrape time.
#[derive(Debug)]
struct Snapshots(Arc<Metrics>);

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn collector_name(kind: CollectorKind) -> &'static str {
    match kind {
        CollectorKind::Sflow => "sflow",
        CollectorKind::Netflow => "netflow",
        CollectorKind::Ipfix => "ipfix",
    }
}

impl Collector for Snapshots {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let metrics = &self.0;
        let collectors: Vec<Arc<CollectorMetrics>> =
            metrics.collectors.lock().map(|c| c.clone()).unwrap_or_default();
        let labels: Vec<[(&str, String); 2]> = collectors
            .iter()
            .map(|c| {
                let listen = c.listen.lock().map(|l| l.to_string()).unwrap_or_default();
                [("collector", collector_name(c.kind).to_owned()), ("listen", listen)]
            })
            .collect();
        let collector_counters: [CollectorCounter; 3] = [
            ("datagrams", "Export datagrams received.", |c| &c.datagrams),
            ("records", "Traffic records decoded.", |c| &c.records),
            ("socket_drops", "Datagrams the kernel dropped: socket buffer full.", |c| &c.socket_drops),
        ];
        for (name, help, get) in collector_counters {
            let name = format!("collector_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (c, labels) in collectors.iter().zip(&labels) {
                ConstCounter::new(get(c).load(Ordering::Relaxed)).encode(family.encode_family(labels)?)?;
            }
        }
        let decoder_counters: [DecoderCounter; 6] = [
            ("datagrams", "Datagrams seen by the decoder.", |s| s.datagrams),
            ("records", "Records produced by the decoder.", |s| s.records),
            ("decode_errors", "Datagrams, samples or records that could not be decoded.", |s| {
                s.decode_errors
            }),
            ("unknown_template_records", "Flow records dropped for want of their template.", |s| {
                s.unknown_template_records
            }),
            ("sequence_gaps", "Sequence units missing between export datagrams.", |s| s.sequence_gaps),
            ("drops", "Packets the exporters' samplers reported dropping.", |s| s.drops),
        ];
        for (name, help, get) in decoder_counters {
            let name = format!("decoder_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (c, labels) in collectors.iter().zip(&labels) {
                let value = c.decoder.lock().map(|s| get(&s)).unwrap_or(0);
                ConstCounter::new(value).encode(family.encode_family(labels)?)?;
            }
        }
        encode_inputs(metrics, &mut encoder)?;
        encode_captures(metrics, &mut encoder)?;
        let engine = metrics.engine.lock().map(|e| e.clone()).unwrap_or_default();
        let engine_counters = [
            ("records", "Records observed by the detection engine.", engine.records),
            ("transit_records", "Records neither to nor from a protected network.", engine.transit_records),
            ("late_shares", "Record shares whose second was already closed.", engine.late_shares),
            ("overflow_hosts", "Hosts beyond max_hosts in a second.", engine.overflow_hosts),
            ("dropped_shares", "Shares lost to a full prefix overflow table.", engine.dropped_shares),
            (
                "future_shares",
                "Shares of seconds beyond the engine's open window, dropped.",
                engine.future_shares,
            ),
            ("dropped_candidates", "Candidates not tracked: max_attacks reached.", engine.dropped_candidates),
        ];
        for (name, help, value) in engine_counters {
            counter(&mut encoder, &format!("engine_{name}"), help, value)?;
        }
        gauge(&mut encoder, "engine_peak_hosts", "Most hosts tracked in one second.", engine.peak_hosts)?;
        gauge(
            &mut encoder,
            "active_attacks",
            "Attacks ongoing now.",
            metrics.active_attacks.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "store_errors",
            "Event batches the store failed to record.",
            metrics.store_errors.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "inbound_packets_per_second",
            "Inbound packets in the last whole second (sampling-scaled).",
            metrics.inbound_pps.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "inbound_bits_per_second",
            "Inbound IP bits in the last whole second (sampling-scaled).",
            metrics.inbound_bps.load(Ordering::Relaxed),
        )?;
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
            let name = format!("traffic_{name}_per_second");
            let help = format!(
                "{what} per second to (inbound) and from (outbound) protected hosts in the engine's last closed \
                 second, for all of them (scope=\"all\") and per host group (sampling-scaled)."
            );
            let mut family = encoder.encode_descriptor(
                &name,
                &help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (scope, rates) in &scopes {
                let (inbound, outbound) = get(rates);
                for (direction, value) in [("inbound", inbound), ("outbound", outbound)] {
                    let labels = [("scope", scope.as_str()), ("direction", direction)];
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        gauge(
            &mut encoder,
            "baseline_keys",
            "Hosts and groups with a learned baseline.",
            engine.baseline_keys,
        )?;
        counter(
            &mut encoder,
            "baseline_untracked",
            "Hosts not baselined because the baseline table was full.",
            engine.baseline_untracked,
        )?;
        if let Some(webhook) = &metrics.webhook {
            let webhook_counters = [
                ("delivered", "Events delivered to the webhook.", &webhook.delivered),
                ("failed_attempts", "Webhook attempts that failed.", &webhook.failed_attempts),
                ("abandoned", "Events given up after every attempt failed.", &webhook.abandoned),
                ("dropped", "Events dropped from the full webhook queue.", &webhook.dropped),
            ];
            for (name, help, value) in webhook_counters {
                counter(&mut encoder, &format!("webhook_{name}"), help, value.load(Ordering::Relaxed))?;
            }
            gauge(
                &mut encoder,
                "webhook_queued",
                "Events waiting for the webhook.",
                webhook.queued.load(Ordering::Relaxed),
            )?;
        }
        if let Some(mitigation) = &metrics.mitigation {
            crate::mitigation::encode_metrics(mitigation, metrics.script.as_deref(), &mut encoder)?;
        }
        if let Some(speaker) = &metrics.bgp {
            crate::mitigation::encode_bgp_metrics(speaker, &mut encoder)?;
        }
        if let Some(filter) = &metrics.filter {
            crate::filter::encode_metrics(filter, &mut encoder)?;
        }
        let http = &metrics.http;
        let http_counters = [
            ("accepted", "Connections the metrics server accepted.", &http.accepted),
            ("evicted", "Idle or slow metrics connections closed to make room for a new one.", &http.evicted),
            ("shed", "Metrics connections refused at once: every slot was answering a request.", &http.shed),
            (
                "timed_out",
                "Metrics connections closed by the header, idle or write timeout.",
                &http.timed_out,
            ),
        ];
        for (name, help, value) in http_counters {
            counter(
                &mut encoder,
                &format!("metrics_connections_{name}"),
                help,
                value.load(Ordering::Relaxed),
            )?;
        }
        gauge(
            &mut encoder,
            "metrics_connections_open",
            "Connections open to the metrics server.",
            http.open.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Arc<Metrics>) -> String {
        render(&registry(metrics)).unwrap()
    }

    #[test]
    fn tally_counts_each_vector_once_per_attack() {
        let metrics = Arc::new(Metrics::default());
        let registry = registry(&metrics);
        let mut tally = AttackTally::default();
        let (udp, dns) = (Vector::UdpFlood, Vector::DnsAmplification);
        tally.event(&metrics, EventKind::Onset, 1, &[udp]);
        tally.event(&metrics, EventKind::Update, 1, &[udp, dns]);
        tally.event(&metrics, EventKind::Onset, 2, &[udp]);
        assert_eq!(metrics.active_attacks.load(Ordering::Relaxed), 2);
        tally.event(&metrics, EventKind::End, 1, &[udp, dns]);
        assert_eq!(metrics.active_attacks.load(Ordering::Relaxed), 1);
        let text = render(&registry).unwrap();
        assert!(text.contains("\nrampart_attacks_total{vector=\"udp_flood\"} 2\n"), "{text}");
        assert!(text.contains("\nrampart_attacks_total{vector=\"dns_amplification\"} 1\n"), "{text}");
        assert!(text.contains("\nrampart_active_attacks 1\n"), "{text}");
        assert!(text.contains("\nrampart_attack_events_total{kind=\"onset\"} 2\n"), "{text}");
        assert!(text.contains("\nrampart_attack_events_total{kind=\"end\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE rampart_attacks counter\n"), "{text}");
    }

    #[test]
    fn renders_collectors_and_every_line_is_well_formed() {
        let metrics =
            Arc::new(Metrics { webhook: Some(Arc::new(WebhookStats::default())), ..Metrics::default() });
        let collector =
            Arc::new(CollectorMetrics::new(CollectorKind::Sflow, "127.0.0.1:6343".parse().unwrap()));
        collector.datagrams.store(5, Ordering::Relaxed);
        collector.decoder.lock().unwrap().decode_errors = 2;
        metrics.collectors.lock().unwrap().push(collector);
        let text = text(&metrics);
        assert!(
            text.contains(
                "rampart_collector_datagrams_total{collector=\"sflow\",listen=\"127.0.0.1:6343\"} 5\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "rampart_decoder_decode_errors_total{collector=\"sflow\",listen=\"127.0.0.1:6343\"} 2\n"
        ));
        assert!(text.contains("rampart_traffic_packets_per_second{scope=\"all\",direction=\"inbound\"} 0\n"));
        assert!(text.contains("\nrampart_attack_events_total{kind=\"update\"} 0\n"), "{text}");
        assert!(text.contains("\nrampart_webhook_delivered_total 0\n"), "{text}");
        assert!(text.contains("\nrampart_metrics_connections_evicted_total 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn group_rates_are_labelled_and_escaped() {
        let metrics = Arc::new(Metrics::default());
        let web = TrafficRates { inbound_pps: 1280, outbound_bps: 8_000, ..TrafficRates::default() };
        *metrics.traffic.lock().unwrap() = (web, vec![("web \"front\"".to_owned(), web)]);
        let text = text(&metrics);
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
