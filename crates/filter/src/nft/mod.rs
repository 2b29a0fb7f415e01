//! The nftables fallback: the same plan as the XDP filter, as set elements with their own
//! timeouts (`flags interval, timeout`, so a range stays a range and a rule expires without
//! the daemon) and signature rules, in Rampart's own table (`inet rampart`), written in one
//! transaction per batch through `nft -j -f -` and read back after every batch.

pub mod batch;
pub mod driver;

pub use batch::{Desired, Element, NftSkip, TABLE};
pub use driver::{NftError, NftFilter, NftReport};
