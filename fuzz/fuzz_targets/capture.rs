//! Reads every frame out of arbitrary bytes with both capture readers, which must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_telemetry::capture::{CaptureReader, CaptureSliceReader};

fuzz_target!(|data: &[u8]| {
    let Ok(mut slice) = CaptureSliceReader::new(data) else {
        assert!(CaptureReader::with_buffer_size(data, 64).is_err());
        return;
    };
    let mut stream = CaptureReader::with_buffer_size(data, 64).expect("both readers accept the header");
    let mut frames = 0usize;
    loop {
        let a = slice.next_frame();
        let b = stream.next_frame();
        match (a, b) {
            (Ok(Some(a)), Ok(Some(b))) => {
                assert_eq!(a, b);
                frames += 1;
            }
            (Ok(None), Ok(None)) => break,
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string());
                break;
            }
            (a, b) => panic!("readers disagree: {a:?} vs {b:?}"),
        }
    }
    // Every frame consumes at least 16 input bytes.
    assert!(frames <= data.len() / 16);
    assert_eq!(slice.stats(), stream.stats());
    assert!(slice.stats().bytes_read <= data.len() as u64);
});
