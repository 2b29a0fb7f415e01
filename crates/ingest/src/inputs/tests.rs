use super::*;
use proptest::prelude::*;
use std::time::Duration;

const TARGET: [u8; 4] = [198, 51, 100, 10];

/// A NetFlow v5 datagram (24-byte header + one 48-byte record per entry) of flows
/// (packets, octets, duration ms) to TARGET:80, exported at Unix second 1_700_000_000.
pub(super) fn netflow_v5(flows: &[(u32, u32, u32)], sampling_interval: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&(flows.len() as u16).to_be_bytes());
    out.extend_from_slice(&100_000u32.to_be_bytes()); // uptime ms
    out.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // sequence
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&sampling_interval.to_be_bytes());
    for &(packets, octets, duration_ms) in flows {
        out.extend_from_slice(&[203, 0, 113, 7]);
        out.extend_from_slice(&TARGET);
        out.extend_from_slice(&[0; 4]); // next hop
        out.extend_from_slice(&[0, 1, 0, 2]); // interfaces
        out.extend_from_slice(&packets.to_be_bytes());
        out.extend_from_slice(&octets.to_be_bytes());
        out.extend_from_slice(&(100_000 - duration_ms).to_be_bytes()); // first
        out.extend_from_slice(&100_000u32.to_be_bytes()); // last
        out.extend_from_slice(&40_000u16.to_be_bytes());
        out.extend_from_slice(&80u16.to_be_bytes());
        out.extend_from_slice(&[0, 0, 17, 0]); // pad, flags, UDP, tos
        out.extend_from_slice(&[0; 8]); // AS, masks, pad
    }
    out
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn guard(exporters: &[ExporterConfig]) -> (GuardedDecoder, Arc<InputStats>) {
    let stats = Arc::new(InputStats::new(CollectorKind::Netflow, "127.0.0.1:2055".parse().unwrap()));
    let table = ExporterTable::new(exporters, PlausibilityLimits::default());
    let decoder = GuardedDecoder::new(Box::new(FlowDecoder::default()), table, stats.clone());
    (decoder, stats)
}

const NOW: UnixNanos = UnixNanos(1_700_000_000_000_000_000);

#[test]
fn the_forged_datagram_is_dropped_from_strangers_and_from_exporters() {
    // The 72-byte datagram: one record of 4e9 packets.
    let forged = netflow_v5(&[(4_000_000_000, 4_000_000_000, 0)], 0);
    assert_eq!(forged.len(), 72);
    let exporter: ExporterConfig = "192.0.2.1".parse().unwrap();
    let (mut decoder, stats) = guard(&[exporter]);
    let mut out = Vec::new();
    // (a) from an exporter nobody configured: not even decoded.
    decoder.decode_datagram(ip("192.0.2.66"), &forged, NOW, &mut out);
    assert!(out.is_empty());
    assert!(decoder.inner.exporter_stats().is_empty(), "decoded: {:?}", decoder.inner.exporter_stats());
    // (b) from the configured one: decoded, found implausible.
    decoder.decode_datagram(ip("192.0.2.1"), &forged, NOW, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Same claim with plausible packet sizes and a sampling override: the rate gives it away.
    let scaled = netflow_v5(&[(4_000_000, 400_000_000, 0)], 0);
    let mut sampled = guard(&["192.0.2.1=1000".parse().unwrap()]);
    sampled.0.decode_datagram(ip("192.0.2.1"), &scaled, NOW, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(sampled.1.implausible().get(ImplausibleReason::RecordRate), 1);

    let snapshot = stats.snapshot();
    assert_eq!(snapshot.datagrams, 2);
    assert_eq!(snapshot.unknown_exporter, 1);
    assert_eq!(snapshot.unknown_sources, vec![(ip("192.0.2.66"), 1)]);
    assert_eq!(snapshot.records, 0);
    assert_eq!(snapshot.implausible.get(ImplausibleReason::PacketSize), 1);
    let exporter = snapshot.exporters.iter().find(|e| e.exporter == "192.0.2.1/0").unwrap();
    assert_eq!(exporter.stats.records, 1, "decoded, then dropped");
    assert_eq!(exporter.implausible.get(ImplausibleReason::PacketSize), 1);
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["implausible"]["packet_size"], 1);
    assert_eq!(json["unknown_exporter"], 1);
    let summary = drop_summary(&[stats]);
    assert!(
        summary.contains("dropped 1 datagrams from unknown exporters (top source 192.0.2.66: 1)"),
        "{summary}"
    );
    assert!(summary.contains("packet_size=1"), "{summary}");
}

#[test]
fn sampling_overrides_apply_to_flow_records_of_the_exporter_or_prefix() {
    let (mut decoder, stats) = guard(&[
        "192.0.2.0/28=100".parse().unwrap(),
        "192.0.2.1=1000".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ]);
    let datagram = netflow_v5(&[(10, 1000, 1000)], 5);
    let mut out = Vec::new();
    decoder.decode_datagram(ip("192.0.2.1"), &datagram, NOW, &mut out);
    decoder.decode_datagram(ip("192.0.2.2"), &datagram, NOW, &mut out);
    decoder.decode_datagram(ip("2001:db8::1"), &datagram, NOW, &mut out);
    decoder.decode_datagram(ip("192.0.2.17"), &datagram, NOW, &mut out);
    let rates: Vec<u32> = out.iter().map(|r| r.sampling_rate).collect();
    // Most specific entry wins; no override: the exporter's own interval.
    assert_eq!(rates, [1000, 100, 5]);
    assert_eq!(stats.snapshot().unknown_exporter, 1);
}

#[test]
fn without_exporters_only_loopback_sources_count() {
    let (mut decoder, stats) = guard(&[]);
    let datagram = netflow_v5(&[(10, 1000, 1000)], 0);
    let mut out = Vec::new();
    for source in ["127.0.0.1", "127.0.0.9", "::1", "192.0.2.1", "10.0.0.1"] {
        decoder.decode_datagram(ip(source), &datagram, NOW, &mut out);
    }
    assert_eq!(out.len(), 3);
    assert_eq!(stats.snapshot().unknown_exporter, 2);
}

#[test]
fn the_unknown_source_table_is_bounded_and_keeps_heavy_sources() {
    let mut counts = SourceCounts::default();
    for i in 0..100_000u32 {
        counts.count(IpAddr::V4(Ipv4Addr::from(i)));
        if i % 3 == 0 {
            counts.count(ip("192.0.2.99"));
        }
    }
    assert!(counts.sources.len() <= MAX_UNKNOWN_SOURCES);
    assert_eq!(counts.total(), 100_000 + 33_334);
    assert_eq!(counts.sorted().first(), Some(&(ip("192.0.2.99"), 33_334)));
}

#[test]
fn listen_addresses_and_validation() {
    let config = InputConfig::default();
    let addresses = config.addresses();
    assert_eq!(addresses.len(), 6);
    assert!(addresses.iter().all(|(_, a)| a.ip().is_loopback()));
    config.validate().unwrap();
    assert!(config.notice().contains("loopback"));

    let open = InputConfig { listen: Some(ip("0.0.0.0")), ..InputConfig::default() };
    let error = open.validate().unwrap_err().to_string();
    assert!(error.contains("0.0.0.0:6343") && error.contains("exporter"), "{error}");
    let open = InputConfig { exporters: vec!["192.0.2.0/28".parse().unwrap()], ..open };
    open.validate().unwrap();
    assert_eq!(open.addresses().len(), 3);
    assert!(open.notice().contains("192.0.2.0/28"), "{}", open.notice());
    let explicit = InputConfig {
        sflow: Some("[::]:6343".parse().unwrap()),
        netflow: None,
        ipfix: None,
        ..InputConfig::default()
    };
    assert!(matches!(explicit.validate(), Err(InputError::NoExporters { .. })));
    let off = InputConfig { sflow: None, netflow: None, ipfix: None, ..InputConfig::default() };
    assert!(matches!(off.validate(), Err(InputError::NoInput)));
    let insane = InputConfig {
        exporters: vec![ExporterConfig {
            sampling: Some(5_000_000),
            ..ExporterConfig::new(parse_prefix("192.0.2.1").unwrap())
        }],
        ..InputConfig::default()
    };
    assert!(insane.validate().unwrap_err().to_string().contains("192.0.2.1/32"));
}

#[test]
fn parsing() {
    assert_eq!(parse_bits_per_second("10G"), Ok(10_000_000_000));
    assert_eq!(parse_bits_per_second("2.5G"), Ok(2_500_000_000));
    assert_eq!(parse_bits_per_second("400Gbit/s"), Ok(400_000_000_000));
    assert_eq!(parse_bits_per_second("100 Mbps"), Ok(100_000_000));
    assert_eq!(parse_bits_per_second("1000"), Ok(1000));
    for bad in ["", "G", "10X", "-1G", "0", "1e3"] {
        assert!(parse_bits_per_second(bad).is_err(), "{bad}");
    }
    let e: ExporterConfig = "192.0.2.7/24=64".parse().unwrap();
    assert_eq!((e.prefix.to_string(), e.sampling), ("192.0.2.0/24".into(), Some(64)));
    assert_eq!("192.0.2.1=0".parse::<ExporterConfig>(), Err("\"0\" is not a sampling rate ≥ 1".to_string()));
    assert_eq!(
        "nowhere".parse::<ExporterConfig>(),
        Err("\"nowhere\" is not an IP address or prefix".to_string())
    );
    assert_eq!("6343".parse::<ListenOn>(), Ok(ListenOn::Port(6343)));
    assert_eq!("[::1]:9".parse::<ListenOn>(), Ok(ListenOn::Addr("[::1]:9".parse().unwrap())));
}

#[test]
fn an_interface_speed_caps_the_exporter() {
    let exporter = ExporterConfig {
        interface_speed: Some(1_000_000_000),
        ..ExporterConfig::new(parse_prefix("192.0.2.1").unwrap())
    };
    let (mut decoder, stats) = guard(&[exporter]);
    let mut out = Vec::new();
    // 100 Mbit/s each over 1 s: ten fit in 1 Gbit/s, the eleventh does not (nor what follows).
    let datagram = netflow_v5(&[(10_000, 12_500_000, 1000)], 0);
    for _ in 0..12 {
        decoder.decode_datagram(ip("192.0.2.1"), &datagram, NOW, &mut out);
    }
    assert_eq!(out.len(), 10);
    assert_eq!(stats.implausible().get(ImplausibleReason::ExporterRate), 2);
    // A new second, a new budget.
    decoder.decode_datagram(ip("192.0.2.1"), &datagram, UnixNanos(NOW.0 + 1_000_000_000), &mut out);
    assert_eq!(out.len(), 11);
}

/// Binds on 127.0.0.1, sends from 127.0.0.1 (configured) and 127.0.0.3 (not), over real sockets.
#[tokio::test]
async fn inputs_bind_guard_and_report() {
    let config = InputConfig {
        sflow: None,
        netflow: Some("127.0.0.1:0".parse().unwrap()),
        ipfix: None,
        exporters: vec!["127.0.0.1=10".parse().unwrap()],
        receive_buffer: 1 << 20,
        ..InputConfig::default()
    };
    let mut layered = Vec::new();
    let inputs = Inputs::bind_with(&config, &mut |kind, addr, decoder| {
        layered.push((kind, addr));
        decoder
    })
    .unwrap();
    assert_eq!(inputs.listening(), layered);
    let (_, addr) = inputs.listening()[0];
    let stats = inputs.stats()[0].clone();
    let (sink, mut batches) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = inputs.spawn(sink, stop_rx);
    let trusted = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    let good = netflow_v5(&[(10, 1000, 1000)], 0);
    let forged = netflow_v5(&[(4_000_000_000, 4_000_000_000, 0)], 0);
    for _ in 0..5 {
        stranger.send_to(&good, addr).unwrap();
        trusted.send_to(&forged, addr).unwrap();
        trusted.send_to(&good, addr).unwrap();
    }
    let mut records = Vec::new();
    while records.len() < 5 {
        let batch = tokio::time::timeout(Duration::from_secs(10), batches.recv()).await.unwrap().unwrap();
        records.extend(batch);
    }
    assert!(records.iter().all(|r| r.sampling_rate == 10 && r.packets == 10));
    // Kernel drops are read from the OS while the socket is open.
    assert_eq!(stats.snapshot().socket_drops, Some(0));
    stop_tx.send(true).unwrap();
    let reports = running.join().await;
    assert_eq!(reports.len(), 1);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.datagrams, 15);
    assert_eq!(snapshot.unknown_exporter, 5);
    assert_eq!(snapshot.unknown_sources, vec![(ip("127.0.0.3"), 5)]);
    assert_eq!(snapshot.records, 5);
    assert_eq!(snapshot.implausible.total(), 5);
    assert_eq!(snapshot.decode.datagrams, 10);
}

proptest! {
    /// Random and mutated datagrams from a configured exporter never panic, and what passes
    /// stays within the caps (per record and per arrival second).
    #[test]
    fn hostile_datagrams_never_exceed_the_caps(
        datagrams in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                (proptest::collection::vec((any::<u32>(), any::<u32>(), 0u32..100_000), 1..5), any::<u16>(),
                 proptest::collection::vec((0usize..300, any::<u8>()), 0..6))
                    .prop_map(|(flows, interval, flips)| {
                        let mut d = netflow_v5(&flows, interval);
                        for (at, byte) in flips {
                            let len = d.len();
                            if let Some(b) = d.get_mut(at % len) { *b = byte; }
                        }
                        d
                    }),
            ],
            1..40,
        ),
        sampling in proptest::option::of(1u32..2_000_000),
    ) {
        let exporter = ExporterConfig { sampling, ..ExporterConfig::new(parse_prefix("192.0.2.1").unwrap()) };
        let (mut decoder, _) = guard(&[exporter]);
        let limits = PlausibilityLimits::default();
        let mut out = Vec::new();
        let (mut pps, mut bps) = (0u128, 0u128);
        for datagram in &datagrams {
            let before = out.len();
            decoder.decode_datagram(ip("192.0.2.1"), datagram, NOW, &mut out);
            for record in &out[before..] {
                let load = plausibility::check_record(record, &limits);
                prop_assert!(load.is_ok(), "{record:?}");
                let load = load.unwrap();
                pps += u128::from(load.pps);
                bps += u128::from(load.bps);
                prop_assert!(!record.dst.is_unspecified());
            }
        }
        prop_assert!(pps <= u128::from(limits.max_pps) && bps <= u128::from(limits.max_bps));
    }
}
