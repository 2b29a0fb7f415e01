//! Address families (AFI/SAFI pairs) the speaker announces.

use serde::{Deserialize, Serialize};

/// An AFI/SAFI pair Rampart announces routes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// RTBH for IPv4 (AFI 1, SAFI 1).
    Ipv4Unicast,
    /// RTBH for IPv6 (AFI 2, SAFI 1).
    Ipv6Unicast,
    /// FlowSpec IPv4 (AFI 1, SAFI 133).
    Ipv4Flowspec,
    /// FlowSpec IPv6 (AFI 2, SAFI 133).
    Ipv6Flowspec,
}

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;
pub const SAFI_FLOWSPEC: u8 = 133;

impl Family {
    pub const ALL: [Family; 4] =
        [Family::Ipv4Unicast, Family::Ipv6Unicast, Family::Ipv4Flowspec, Family::Ipv6Flowspec];

    pub const fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (AFI_IPV4, SAFI_UNICAST),
            Family::Ipv6Unicast => (AFI_IPV6, SAFI_UNICAST),
            Family::Ipv4Flowspec => (AFI_IPV4, SAFI_FLOWSPEC),
            Family::Ipv6Flowspec => (AFI_IPV6, SAFI_FLOWSPEC),
        }
    }

    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.afi_safi() == (afi, safi))
    }
}
