//! TCP-MD5 signatures (RFC 2385) on a socket: the one socket option BGP sessions need that
//! neither the standard library, socket2, nix nor tokio offers. `setsockopt(IPPROTO_TCP,
//! TCP_MD5SIG, struct tcp_md5sig)` installs a key for one peer address; from then on the kernel
//! signs every segment to that peer and drops every segment from it that is unsigned or signed
//! with another key. Set it before `connect` (active) or on the listening socket before the
//! peer's SYN arrives (passive: accepted sockets inherit the listener's keys).

use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

/// The longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// `struct sockaddr_storage`: 128 bytes, aligned as the kernel's.
#[repr(C, align(8))]
struct SockaddrStorage([u8; 128]);

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: SockaddrStorage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: i32,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

// The layout the kernel reads: a mismatch here would be a silent misconfiguration.
const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// The kernel's `sockaddr_in` / `sockaddr_in6` for `peer` (port 0: the key is per address),
/// written byte by byte into a zeroed storage. An IPv4 peer of an IPv6 socket is written as
/// its IPv4-mapped address, which the kernel files under IPv4.
fn sockaddr(peer: IpAddr, ipv6_socket: bool) -> SockaddrStorage {
    let mut s = [0u8; 128];
    let v6 = match peer {
        IpAddr::V4(v4) if !ipv6_socket => {
            s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            s[4..8].copy_from_slice(&v4.octets());
            return SockaddrStorage(s);
        }
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    s[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    // sin6_port (2..4) and sin6_flowinfo (4..8) stay zero; sin6_addr is at 8..24.
    s[8..24].copy_from_slice(&v6.octets());
    SockaddrStorage(s)
}

/// Installs `key` as the TCP-MD5 key for segments to and from `peer` on `socket` (a TCP
/// socket, IPv4 or IPv6; an IPv4 peer of an IPv6 socket is keyed by its mapped address).
/// A key longer than [`TCP_MD5SIG_MAXKEYLEN`] or empty (which the kernel would take as
/// "delete the key") is refused with `InvalidInput`; the kernel's refusal is returned as is.
pub fn set_tcp_md5sig(socket: BorrowedFd<'_>, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.is_empty() || key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP-MD5 key holds 1 to {TCP_MD5SIG_MAXKEYLEN} bytes, not {}", key.len()),
        ));
    }
    let ipv6_socket = socket2::SockRef::from(&socket).local_addr()?.is_ipv6();
    let mut sig = TcpMd5Sig {
        addr: sockaddr(peer, ipv6_socket),
        flags: 0,
        prefix_len: 0,
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; TCP_MD5SIG_MAXKEYLEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: `fd` is a descriptor borrowed for this call, and the pointer and length describe
    // `sig`, a live, initialized `struct tcp_md5sig` the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::fd::AsFd;
    use std::time::Duration;

    use socket2::{Domain, Socket, Type};

    #[test]
    fn addresses_are_laid_out_as_the_kernel_reads_them() {
        let v4 = sockaddr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), false);
        assert_eq!(u16::from_ne_bytes([v4.0[0], v4.0[1]]), libc::AF_INET as u16);
        assert_eq!(&v4.0[2..8], &[0, 0, 192, 0, 2, 7]);
        assert!(v4.0[8..].iter().all(|b| *b == 0));
        let mapped = sockaddr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), true);
        assert_eq!(u16::from_ne_bytes([mapped.0[0], mapped.0[1]]), libc::AF_INET6 as u16);
        assert_eq!(&mapped.0[8..24], &Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets());
        let v6: Ipv6Addr = "2001:db8::9".parse().unwrap();
        assert_eq!(&sockaddr(IpAddr::V6(v6), true).0[8..24], &v6.octets());
    }

    #[test]
    fn keys_outside_one_to_eighty_bytes_are_refused() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for bad in [&[][..], &[b'k'; 81][..]] {
            let e = set_tcp_md5sig(socket.as_fd(), peer, bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        set_tcp_md5sig(socket.as_fd(), peer, &[b'k'; 80]).unwrap();
        // A UDP socket is the kernel's to refuse.
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        assert!(set_tcp_md5sig(udp.as_fd(), peer, b"key").is_err());
    }

    /// Tries a connection to `to` from a socket keyed with `key` (or none), for at most `wait`.
    fn connects(to: SocketAddr, key: Option<&[u8]>, wait: Duration) -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
        if let Some(key) = key {
            set_tcp_md5sig(socket.as_fd(), to.ip(), key)?;
        }
        socket.connect_timeout(&to.into(), wait)
    }

    /// On loopback both ends are this kernel: a listener keyed for 127.0.0.1 accepts only
    /// signed SYNs with its key; others are dropped unanswered, so the connect times out.
    #[test]
    fn only_the_right_key_connects() {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
        set_tcp_md5sig(listener.as_fd(), IpAddr::V4(Ipv4Addr::LOCALHOST), b"right key").unwrap();
        listener.listen(8).unwrap();
        let to = listener.local_addr().unwrap().as_socket().unwrap();
        connects(to, Some(b"right key"), Duration::from_secs(5)).unwrap();
        let wait = Duration::from_millis(700);
        for key in [None, Some(&b"wrong key"[..])] {
            let e = connects(to, key, wait).unwrap_err();
            // Timed out, not refused: the SYN got no answer at all.
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{key:?}: {e}");
        }
        // An IPv6 listener keyed for an IPv4 peer (the mapped address) accepts it too.
        let Ok(dual) = Socket::new(Domain::IPV6, Type::STREAM, None) else { return };
        dual.set_only_v6(false).unwrap();
        if dual.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into()).is_err() {
            return;
        }
        set_tcp_md5sig(dual.as_fd(), IpAddr::V4(Ipv4Addr::LOCALHOST), b"mapped").unwrap();
        dual.listen(8).unwrap();
        let port = dual.local_addr().unwrap().as_socket().unwrap().port();
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        connects(to, Some(b"mapped"), Duration::from_secs(5)).unwrap();
        assert!(connects(to, None, wait).is_err());
    }
}
