//! nftables fallback.
