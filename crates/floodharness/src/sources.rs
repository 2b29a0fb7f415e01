//! Source and target addresses: every connection binds its own 127.0.0.0/8 source before
//! connecting, and targets are loopback only.
//!
//! Address plan (one /16 per population, so a test can tell them apart by prefix):
//! legitimate browsers 127.10.x.y (one /24 each), the GET flood 127.66.0.y, the login flood 127.67.x.y, the
//! cache-busting flood 127.68.x.y, the distributed flood 127.128.0.0/9 (one /24 per bot group).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::HarnessError;

/// Refuses any target that is not loopback.
pub fn ensure_loopback(target: SocketAddr) -> Result<(), HarnessError> {
    if target.ip().is_loopback() { Ok(()) } else { Err(HarnessError::NotLoopback(target)) }
}

/// The `index`th address of a /16 population `127.second.x.y`, skipping .0 and .255 in the
/// last octet (254 hosts a /24).
pub fn population_address(second: u8, index: u32) -> Ipv4Addr {
    let third = (index / 254) % 256;
    let fourth = index % 254 + 1;
    Ipv4Addr::new(127, second, third as u8, fourth as u8)
}

/// Legitimate browser `index`: 127.10.x.y, each browser in its own /24 (up to 256 browsers;
/// more share /24s), the way a public site's visitors come from many networks.
pub fn legit_address(index: u32) -> IpAddr {
    let third = (index % 256) as u8;
    let fourth = ((index / 256) % 254 + 1) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 10, third, fourth))
}

/// A distributed-flood bot: `prefix` picks one of 32,768 /24s in 127.128.0.0/9, `host` one of
/// 254 addresses in it.
pub fn distributed_address(prefix: u32, host: u32) -> IpAddr {
    let prefix = prefix % (1 << 15);
    let second = 128 + (prefix >> 8) as u8;
    let third = (prefix & 0xff) as u8;
    let fourth = (host % 254 + 1) as u8;
    IpAddr::V4(Ipv4Addr::new(127, second, third, fourth))
}

/// Connects to `target` from `source` (port chosen by the kernel).
pub async fn connect_from(source: IpAddr, target: SocketAddr) -> Result<TcpStream, HarnessError> {
    ensure_loopback(target)?;
    if !source.is_loopback() {
        return Err(HarnessError::SourceNotLoopback(source));
    }
    let io = |context: String| move |source| HarnessError::Io { context, source };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(io(format!("socket for {source}")))?;
    socket.bind(SocketAddr::new(source, 0)).map_err(io(format!("bind {source}")))?;
    let stream = socket.connect(target).await.map_err(io(format!("connect {source} -> {target}")))?;
    // Small requests: send each at once.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populations_stay_in_their_prefixes() {
        for index in [0, 1, 253, 254, 10_000, 64_515] {
            let IpAddr::V4(a) = legit_address(index) else { unreachable!() };
            assert_eq!(a.octets()[..2], [127, 10]);
            assert!((1..=254).contains(&a.octets()[3]), "{a}");
        }
        assert_eq!(legit_address(0), IpAddr::V4(Ipv4Addr::new(127, 10, 0, 1)));
        assert_eq!(legit_address(1), IpAddr::V4(Ipv4Addr::new(127, 10, 1, 1)));
        assert_eq!(legit_address(256), IpAddr::V4(Ipv4Addr::new(127, 10, 0, 2)));
        let IpAddr::V4(a) = distributed_address(0, 0) else { unreachable!() };
        assert_eq!(a, Ipv4Addr::new(127, 128, 0, 1));
        let IpAddr::V4(a) = distributed_address(32_767, 253) else { unreachable!() };
        assert_eq!(a, Ipv4Addr::new(127, 255, 255, 254));
        assert!(distributed_address(u32::MAX, u32::MAX).is_loopback());
    }

    #[test]
    fn only_loopback_targets() {
        assert!(ensure_loopback("127.0.0.1:80".parse().unwrap()).is_ok());
        assert!(ensure_loopback("[::1]:80".parse().unwrap()).is_ok());
        assert!(ensure_loopback("192.0.2.1:80".parse().unwrap()).is_err());
        assert!(ensure_loopback("[2001:db8::1]:80".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn refuses_foreign_targets_before_connecting() {
        let result = connect_from(legit_address(0), "198.51.100.7:80".parse().unwrap()).await;
        assert!(matches!(result, Err(HarnessError::NotLoopback(_))));
        let result = connect_from("192.0.2.1".parse().unwrap(), "127.0.0.1:9".parse().unwrap()).await;
        assert!(matches!(result, Err(HarnessError::SourceNotLoopback(_))));
    }
}
