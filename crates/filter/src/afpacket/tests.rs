//! The ring against the kernel, on loopback (needs root or CAP_NET_RAW, as CI has).

use std::time::{Duration, Instant};

use super::*;

fn require_root() -> bool {
    match Ring::open(&RingConfig::new("lo")) {
        Ok(_) => true,
        Err(RingError::Permission { .. })
            if std::env::var_os("RAMPART_REQUIRE_PEERS").is_none() && std::env::var_os("CI").is_none() =>
        {
            eprintln!("skipped: AF_PACKET needs root or CAP_NET_RAW");
            false
        }
        Err(error) => panic!("cannot open a ring on lo: {error}"),
    }
}

#[test]
fn names_are_checked() {
    assert!(matches!(interface_index(""), Err(RingError::BadName { .. })));
    assert!(matches!(interface_index("a-name-far-too-long"), Err(RingError::BadName { .. })));
    assert!(matches!(interface_index("nul\0"), Err(RingError::BadName { .. })));
    let missing = interface_index("rampart-nope0").unwrap_err();
    assert!(matches!(missing, RingError::NoSuchInterface { .. }));
    assert!(missing.to_string().contains("rampart-nope0"), "{missing}");
}

#[test]
fn bad_ring_sizes_are_refused() {
    let mut config = RingConfig::new("lo");
    config.block_size = 5000;
    assert!(matches!(Ring::open(&config), Err(RingError::BadRing { .. })));
    let mut config = RingConfig::new("lo");
    config.frame_size = 100;
    assert!(matches!(Ring::open(&config), Err(RingError::BadRing { .. })));
}

/// UDP datagrams sent to ourselves on loopback come back through the ring, with their bytes,
/// spread over a fanout group of two sockets, and the counters add up. Loopback shows each
/// datagram twice: leaving (PACKET_OUTGOING) and arriving (PACKET_HOST).
#[test]
fn captures_loopback_datagrams_through_a_fanout_group() {
    if !require_root() {
        return;
    }
    let mut config = RingConfig::new("lo");
    config.block_size = 1 << 20;
    config.block_count = 8;
    config.promiscuous = false;
    let mut rings = Ring::open_group(&config, 2).unwrap();
    assert!(rings[0].fanout_group().is_some());
    assert_eq!(rings[0].fanout_group(), rings[1].fanout_group());
    // A ring alone joins no group.
    assert_eq!(Ring::open_group(&config, 1).unwrap()[0].fanout_group(), None);
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Several source ports, so the flow hash has something to spread.
    let senders: Vec<_> = (0..8).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let source_ports: Vec<u16> = senders.iter().map(|s| s.local_addr().unwrap().port()).collect();
    let payload = *b"rampart-afpacket-test-payload";
    for i in 0..200 {
        senders[i % senders.len()].send_to(&payload, ("127.0.0.1", port)).unwrap();
    }
    drop(sender);
    let (mut seen, mut outgoing) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen + outgoing < 400 && Instant::now() < deadline {
        for ring in rings.iter_mut() {
            if let Some(block) = ring.next_block(Duration::from_millis(20)).unwrap() {
                let mut frames = block.frames().unwrap();
                for frame in frames.by_ref() {
                    // Loopback frames carry a zeroed Ethernet header: IPv4 + UDP + payload.
                    // Other processes use lo too: only UDP from our senders to our port.
                    let ip = frame.data.get(frame.network_offset..).unwrap_or_default();
                    let udp = ip.get(20..).unwrap_or_default();
                    if frame.hatype == 772
                        && ip.get(9) == Some(&17)
                        && udp.len() >= 8 + payload.len()
                        && udp[2..4] == port.to_be_bytes()
                        && source_ports.contains(&u16::from_be_bytes([udp[0], udp[1]]))
                    {
                        assert_eq!(&udp[8..8 + payload.len()], &payload);
                        assert_eq!(frame.protocol, 0x0800);
                        match frame.pkttype {
                            0 => seen += 1,
                            4 => outgoing += 1,
                            other => panic!("packet type {other}"),
                        }
                    }
                }
                assert_eq!(frames.error(), None);
            }
        }
    }
    let stats: Vec<RingStats> = rings.iter_mut().map(|r| r.stats().unwrap()).collect();
    let delivered: u64 = stats.iter().map(|s| s.delivered).sum();
    let drops: u64 = stats.iter().map(|s| s.drops).sum();
    assert!(seen <= 200 && outgoing <= 200, "{seen} {outgoing}");
    // lo is shared with every process on the host: if its traffic filled a ring, what we
    // missed must be counted as dropped.
    if drops == 0 {
        assert_eq!((seen, outgoing), (200, 200));
    }
    assert!(seen + outgoing + drops >= 400, "seen {seen} + {outgoing}, dropped {drops}");
    assert!(delivered >= seen + outgoing, "delivered {delivered}");
}

/// A ring nobody reads fills up: the kernel drops what does not fit, and `stats` says so;
/// every datagram is either delivered or counted as dropped.
#[test]
fn a_full_ring_counts_kernel_drops() {
    if !require_root() {
        return;
    }
    let mut config = RingConfig::new("lo");
    config.block_size = 4096;
    config.block_count = 2;
    config.frame_size = 2048;
    config.block_timeout = Duration::from_secs(10);
    config.promiscuous = false;
    let mut ring = Ring::open(&config).unwrap();
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..500 {
        sender.send_to(&[7u8; 200], ("127.0.0.1", port)).unwrap();
    }
    let stats = ring.stats().unwrap();
    assert!(stats.drops > 0, "{stats:?}");
    // Each datagram crosses lo twice (leaving and arriving); other loopback traffic may add.
    assert!(stats.delivered + stats.drops >= 1000, "{stats:?}");
    // Reading again adds nothing that was already counted.
    let again = ring.stats().unwrap();
    assert!(again.drops >= stats.drops && again.delivered >= stats.delivered);
}
