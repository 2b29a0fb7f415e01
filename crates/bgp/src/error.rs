//! What can go wrong decoding or building BGP messages.

use thiserror::Error;

/// A message or attribute that cannot be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended inside a field.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// The 16-byte marker was not all ones.
    #[error("bad message marker")]
    BadMarker,
    /// The header's length is outside 19..=4096 or does not fit the message type.
    #[error("bad message length {0}")]
    BadLength(u16),
    /// An unknown message type.
    #[error("unknown message type {0}")]
    BadType(u8),
    /// A field holds a value the protocol does not allow.
    #[error("invalid {field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// FlowSpec components out of strictly increasing type order (RFC 8955 section 4.2).
    #[error("flowspec component type {found} after {previous}")]
    ComponentOrder { previous: u8, found: u8 },
    /// A traffic-rate that is NaN, negative or infinite.
    #[error("traffic rate {0} is not a finite, non-negative number")]
    BadRate(f32),
    /// The message would exceed BGP's 4096-byte limit.
    #[error("message of {0} bytes exceeds 4096")]
    TooLong(usize),
}

pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> CodecError {
    CodecError::Invalid { field, detail: detail.into() }
}
