//! Protocol hardening limits, all on by default (the `[limits]` table of the configuration).
//!
//! The defaults are chosen so that browsers never notice: a browser sends a whole request head
//! in one packet, keeps at most 6 HTTP/1.1 connections per host, uploads far faster than
//! 500 bytes a second, and uses a handful of HTTP/2 streams at once.

use std::time::Duration;

use serde::Deserialize;

/// Every hardening limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hardening {
    /// From the first byte of a request head (or from accept, or the end of the previous
    /// response) to its end, whatever the pace (slowloris).
    pub header_timeout_secs: f64,
    /// Bytes a request head may take (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// Header fields in one request.
    pub max_headers: usize,
    /// Length of the request target.
    pub max_uri_bytes: usize,
    /// A request body must be received whole within this many seconds.
    pub body_timeout_secs: f64,
    /// After `body_grace_secs`, a body must arrive at least this fast on average (slow POST).
    pub body_min_rate: u64,
    /// Seconds a body may take before its minimum rate applies.
    pub body_grace_secs: f64,
    /// While the client has response bytes waiting, it must take them at least this fast on
    /// average over each window of `send_grace_secs` (slow read).
    pub send_min_rate: u64,
    /// The window over which the response read rate is measured.
    pub send_grace_secs: f64,
    /// A connection without a request in flight and without traffic this long is closed.
    pub idle_timeout_secs: f64,
    /// The TLS handshake must finish within this many seconds.
    pub tls_handshake_timeout_secs: f64,
    /// Connections open at once, overall; beyond it the shield stops accepting (the kernel's
    /// backlog holds the rest).
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: u32,
    /// Connections open at once from one IPv4 /24 or IPv6 /64.
    pub max_connections_per_prefix: u32,
    /// HTTP/2 streams open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams the client may reset before the server took them (Rapid Reset,
    /// CVE-2023-44487); past it the connection gets GOAWAY.
    pub h2_max_pending_reset_streams: usize,
    /// HTTP/2 streams the server resets because of client errors before it sends GOAWAY
    /// (MadeYouReset, CVE-2025-8671).
    pub h2_max_local_error_resets: usize,
    /// Streams a client may cancel (RST_STREAM after the request started) per connection
    /// within `h2_reset_window_secs` before the shield closes it.
    pub h2_max_cancelled_streams: u32,
    /// The window of `h2_max_cancelled_streams`.
    pub h2_reset_window_secs: f64,
    /// Bytes of the decoded header list of one request, across CONTINUATION frames.
    pub h2_max_header_list_bytes: u32,
    /// Bytes the server buffers per stream towards a slow client.
    pub h2_max_send_buffer: usize,
    /// PING frames (not acknowledgements) one HTTP/2 connection may send a second.
    pub h2_max_pings_per_sec: u32,
    /// SETTINGS frames (not acknowledgements) one HTTP/2 connection may send a second.
    pub h2_max_settings_per_sec: u32,
    /// Frames that carry and end nothing (empty DATA, HEADERS, CONTINUATION) one HTTP/2
    /// connection may send a second.
    pub h2_max_empty_frames_per_sec: u32,
    /// A Range header may name at most this many ranges.
    pub max_ranges: usize,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            header_timeout_secs: 10.0,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            body_timeout_secs: 300.0,
            body_min_rate: 500,
            body_grace_secs: 10.0,
            send_min_rate: 500,
            send_grace_secs: 10.0,
            idle_timeout_secs: 60.0,
            tls_handshake_timeout_secs: 10.0,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_connections_per_prefix: 1024,
            h2_max_concurrent_streams: 100,
            h2_max_pending_reset_streams: 20,
            h2_max_local_error_resets: 100,
            h2_max_cancelled_streams: 200,
            h2_reset_window_secs: 10.0,
            h2_max_header_list_bytes: 16 * 1024,
            h2_max_send_buffer: 256 * 1024,
            // Browsers send one SETTINGS per connection and PING rarely (keep-alive, a
            // bandwidth probe); empty frames without an end flag have no use at all.
            h2_max_pings_per_sec: 100,
            h2_max_settings_per_sec: 50,
            h2_max_empty_frames_per_sec: 100,
            max_ranges: 16,
        }
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

impl Hardening {
    /// Whole-head deadline.
    pub fn header_timeout(&self) -> Duration {
        secs(self.header_timeout_secs)
    }
    /// Whole-body deadline.
    pub fn body_timeout(&self) -> Duration {
        secs(self.body_timeout_secs)
    }
    /// Body grace period.
    pub fn body_grace(&self) -> Duration {
        secs(self.body_grace_secs)
    }
    /// Response read-rate window.
    pub fn send_grace(&self) -> Duration {
        secs(self.send_grace_secs)
    }
    /// Idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        secs(self.idle_timeout_secs)
    }
    /// TLS handshake deadline.
    pub fn tls_handshake_timeout(&self) -> Duration {
        secs(self.tls_handshake_timeout_secs)
    }
    /// The per-second HTTP/2 control-frame budgets.
    pub fn h2_frame_budgets(&self) -> crate::h2_frames::FrameBudgets {
        crate::h2_frames::FrameBudgets {
            pings: self.h2_max_pings_per_sec,
            settings: self.h2_max_settings_per_sec,
            empty: self.h2_max_empty_frames_per_sec,
        }
    }
    /// Window for counting cancelled HTTP/2 streams.
    pub fn h2_reset_window(&self) -> Duration {
        secs(self.h2_reset_window_secs)
    }

    /// The first out-of-range value: (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let durations = [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("body_grace_secs", self.body_grace_secs),
            ("send_grace_secs", self.send_grace_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("tls_handshake_timeout_secs", self.tls_handshake_timeout_secs),
            ("h2_reset_window_secs", self.h2_reset_window_secs),
        ];
        for (key, value) in durations {
            if !(value.is_finite() && value > 0.0 && value < 1e9) {
                return Err((key.into(), "must be a positive number of seconds".into()));
            }
        }
        if self.max_header_bytes < 8192 {
            return Err((
                "max_header_bytes".into(),
                "must be at least 8192 (hyper's smallest buffer)".into(),
            ));
        }
        let counts = [
            ("max_headers", self.max_headers as u64),
            ("max_uri_bytes", self.max_uri_bytes as u64),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_address", u64::from(self.max_connections_per_address)),
            ("max_connections_per_prefix", u64::from(self.max_connections_per_prefix)),
            ("h2_max_concurrent_streams", u64::from(self.h2_max_concurrent_streams)),
            ("h2_max_cancelled_streams", u64::from(self.h2_max_cancelled_streams)),
            ("h2_max_header_list_bytes", u64::from(self.h2_max_header_list_bytes)),
            ("h2_max_send_buffer", self.h2_max_send_buffer as u64),
            ("h2_max_pings_per_sec", u64::from(self.h2_max_pings_per_sec)),
            ("h2_max_settings_per_sec", u64::from(self.h2_max_settings_per_sec)),
            ("h2_max_empty_frames_per_sec", u64::from(self.h2_max_empty_frames_per_sec)),
            ("max_ranges", self.max_ranges as u64),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err((key.into(), "must be at least 1".into()));
            }
        }
        Ok(())
    }
}
