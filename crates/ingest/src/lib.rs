//! Thin async drivers around the telemetry decoders.
#![forbid(unsafe_code)]
