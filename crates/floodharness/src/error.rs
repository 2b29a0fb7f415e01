//! The harness's errors.

use std::net::SocketAddr;

/// What can go wrong driving a scenario.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The harness only sends to 127.0.0.0/8 and ::1; this target is neither.
    #[error("{0} is not a loopback address: the flood harness only sends to 127.0.0.0/8 and ::1")]
    NotLoopback(SocketAddr),
    /// A source address outside loopback was asked for.
    #[error("source {0} is not a loopback address")]
    SourceNotLoopback(std::net::IpAddr),
    /// Binding, connecting or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the address.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection closed, malformed answer).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built (bad header value or target).
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// No answer within the request timeout.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The plan asks for something the harness refuses (zero clients, an unbounded run).
    #[error("plan: {0}")]
    Plan(String),
}
