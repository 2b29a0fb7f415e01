//! Caps on concurrent connections per client address and per prefix (IPv4 /24, IPv6 /64).
//!
//! Pure bookkeeping: an entry exists only while its count is above zero, so the table never
//! holds more entries than there are open connections (themselves capped overall by the
//! accept semaphore in the server).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::gcra::Key;
use crate::metrics::Reason;

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Connections open at once from one address.
    pub per_address: u32,
    /// Connections open at once from one IPv4 /24 or IPv6 /64.
    pub per_prefix: u32,
}

/// Open connections by address and by prefix.
#[derive(Debug)]
pub struct ConnectionTable {
    caps: ConnectionCaps,
    counts: HashMap<Key, u32, foldhash::fast::RandomState>,
}

impl ConnectionTable {
    /// An empty table enforcing `caps`.
    pub fn new(caps: ConnectionCaps) -> ConnectionTable {
        ConnectionTable { caps, counts: HashMap::default() }
    }

    /// Count a new connection from `address`, or say which cap it would exceed.
    pub fn open(&mut self, address: IpAddr) -> Result<(), Reason> {
        let (one, prefix) = keys(address);
        let one_count = self.counts.get(&one).copied().unwrap_or(0);
        let prefix_count = self.counts.get(&prefix).copied().unwrap_or(0);
        if one_count >= self.caps.per_address {
            return Err(Reason::ConnectionsPerAddress);
        }
        if prefix_count >= self.caps.per_prefix {
            return Err(Reason::ConnectionsPerPrefix);
        }
        *self.counts.entry(one).or_insert(0) += 1;
        *self.counts.entry(prefix).or_insert(0) += 1;
        Ok(())
    }

    /// Forget one connection from `address` that [`open`](Self::open) accepted.
    pub fn close(&mut self, address: IpAddr) {
        let (one, prefix) = keys(address);
        for key in [one, prefix] {
            if let Some(count) = self.counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
    }

    /// Entries held (addresses plus prefixes with open connections).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

fn keys(address: IpAddr) -> (Key, Key) {
    (Key::address(address), Key::prefix(address, 24, 64))
}

/// A connection counted in a shared table; dropping it (also on panic) uncounts it.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<Mutex<ConnectionTable>>,
    address: IpAddr,
}

impl ConnectionSlot {
    /// Count a connection from `address` in `table`, or the cap it hit.
    pub fn acquire(table: &Arc<Mutex<ConnectionTable>>, address: IpAddr) -> Result<ConnectionSlot, Reason> {
        let mut guard = table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.open(address)?;
        Ok(ConnectionSlot { table: Arc::clone(table), address })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.close(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn caps_per_address_and_prefix() {
        let mut table = ConnectionTable::new(ConnectionCaps { per_address: 2, per_prefix: 3 });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(table.open(a), Ok(()));
        assert_eq!(table.open(a), Ok(()));
        assert_eq!(table.open(a), Err(Reason::ConnectionsPerAddress));
        assert_eq!(table.open(b), Ok(()));
        assert_eq!(table.open(b), Err(Reason::ConnectionsPerPrefix));
        assert_eq!(table.open(c), Ok(()));
        table.close(a);
        assert_eq!(table.open(b), Ok(()));
        for address in [a, b, b, c] {
            table.close(address);
        }
        assert!(table.is_empty());
    }

    proptest! {
        /// Any sequence of opens and closes: the table empties when every accepted connection
        /// is closed, and never holds more than two entries per open connection.
        #[test]
        fn balanced(ops in proptest::collection::vec((any::<bool>(), 0u8..8, any::<bool>()), 0..300)) {
            let mut table = ConnectionTable::new(ConnectionCaps { per_address: 3, per_prefix: 5 });
            let mut open: Vec<IpAddr> = Vec::new();
            for (is_open, host, v6) in ops {
                let address: IpAddr = if v6 {
                    format!("2001:db8:0:{}::{}", host % 2, host).parse().unwrap()
                } else {
                    format!("192.0.{}.{}", host % 2, host).parse().unwrap()
                };
                if is_open {
                    if table.open(address).is_ok() {
                        open.push(address);
                    }
                } else if let Some(i) = open.iter().position(|a| *a == address) {
                    table.close(open.swap_remove(i));
                }
                prop_assert!(table.len() <= 2 * open.len());
            }
            for address in open.drain(..) {
                table.close(address);
            }
            prop_assert!(table.is_empty());
        }
    }
}
