//! The XDP layer of a build without the program: every entry point says why it is missing.

use std::path::Path;

use super::{Attachment, Options, Status, XdpError, unavailable_reason};

fn unavailable() -> XdpError {
    XdpError::Unavailable(unavailable_reason().unwrap_or("no XDP program in this build"))
}

/// Stands in for the loaded filter; it cannot be constructed.
#[derive(Debug)]
pub struct XdpFilter(());

impl XdpFilter {
    /// Always [`XdpError::Unavailable`].
    pub fn open(_options: Options) -> Result<Self, XdpError> {
        Err(unavailable())
    }
}

/// Always [`XdpError::Unavailable`].
pub fn status(_pin_dir: &Path, _boot_now_ns: u64) -> Result<Status, XdpError> {
    Err(unavailable())
}

/// Always [`XdpError::Unavailable`].
pub fn detach(_pin_dir: &Path, _purge: bool) -> Result<Vec<Attachment>, XdpError> {
    Err(unavailable())
}
