//! Property tests: any accepted parameters give a valid, deterministic capture whose truth equals
//! an independent re-count; any parameters at all give Ok or InvalidParam, never a panic.

mod common;

use common::check_against_truth;
use proptest::prelude::*;
use rampart_trafficgen::{GenError, GenParams, Scenario, generate};

fn scenario() -> impl Strategy<Value = Scenario> {
    (0..Scenario::ALL.len()).prop_map(|i| Scenario::ALL[i])
}

prop_compose! {
    fn sane_params()(
        seed in any::<u64>(),
        duration in 0.01f64..0.6,
        bg in 0u64..6_000,
        attack in 0u64..40_000,
        start in 0.0f64..0.4,
        len in proptest::option::of(0.01f64..0.5),
        pmin in 0u16..1_600,
        pspan in 0u16..1_600,
        cap in proptest::option::of(0u64..3_000),
        nanos in any::<bool>(),
        reflectors in 1u32..200,
        on in 0.02f64..0.2,
        off in 0.0f64..0.2,
        v6 in proptest::option::of(0u8..=100),
    ) -> GenParams {
        GenParams {
            seed,
            duration_secs: duration,
            background_pps: bg,
            attack_pps: attack,
            attack_start_secs: start,
            attack_duration_secs: len,
            flood_payload_min: pmin,
            flood_payload_max: pmin.saturating_add(pspan),
            max_packets: cap,
            nanosecond: nanos,
            reflectors,
            pulse_on_secs: on,
            pulse_off_secs: off,
            ipv6_background_percent: v6,
            ..GenParams::default()
        }
    }
}

fn wild_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(0.0),
        Just(1e-12),
        Just(1e300),
        0.0f64..2.0,
    ]
}

prop_compose! {
    fn wild_params()(
        seed in any::<u64>(),
        duration in wild_f64(),
        start_unix in prop_oneof![Just(0u64), Just(u64::MAX), Just(4_294_967_290), 0u64..2_000_000_000],
        bg in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..2_000_000_000],
        attack in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..2_000_000_000],
        start in wild_f64(),
        len in proptest::option::of(wild_f64()),
        pmin in any::<u16>(),
        pmax in any::<u16>(),
        reflectors in prop_oneof![Just(0u32), Just(u32::MAX), 1u32..100_000],
        carpet in proptest::option::of(any::<u8>()),
        on in wild_f64(),
        off in wild_f64(),
        v6 in proptest::option::of(any::<u8>()),
        target in proptest::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
            any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
        ]),
        cap in 0u64..500,
    ) -> GenParams {
        GenParams {
            seed,
            duration_secs: duration,
            start_unix,
            background_pps: bg,
            attack_pps: attack,
            attack_start_secs: start,
            attack_duration_secs: len,
            flood_payload_min: pmin,
            flood_payload_max: pmax,
            reflectors,
            carpet_prefix_len: carpet,
            pulse_on_secs: on,
            pulse_off_secs: off,
            ipv6_background_percent: v6,
            target,
            max_packets: Some(cap),
            ..GenParams::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn accepted_params_give_valid_deterministic_captures(s in scenario(), p in sane_params()) {
        let mut a = Vec::new();
        let truth = generate(s, &p, &mut a).unwrap();
        check_against_truth(&a, &truth);
        let mut b = Vec::new();
        let again = generate(s, &p, &mut b).unwrap();
        prop_assert!(a == b);
        prop_assert_eq!(truth, again);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_params_give_ok_or_invalid_param(s in scenario(), p in wild_params()) {
        let mut out = Vec::new();
        match generate(s, &p, &mut out) {
            Ok(truth) => {
                check_against_truth(&out, &truth);
            }
            Err(GenError::InvalidParam { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
