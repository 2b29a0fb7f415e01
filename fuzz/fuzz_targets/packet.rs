#![no_main]
//! The shared packet decoder on every link type, with the first byte choosing the link type.

use libfuzzer_sys::fuzz_target;
use rampart_telemetry::{LinkType, packet};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let links = [0, 1, 101, 108, 113, 228, 229, 276];
    let link = LinkType::from_pcap(links[usize::from(selector) % links.len()]);
    let _ = packet::decode(link, frame, frame.len() as u32);
});
