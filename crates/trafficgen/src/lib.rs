//! Deterministic traffic generator (see the crate description).
#![forbid(unsafe_code)]
