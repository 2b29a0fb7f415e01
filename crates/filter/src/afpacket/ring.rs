//! The AF_PACKET socket and its memory-mapped TPACKET_V3 receive ring: the kernel writes
//! frames into fixed-size blocks and hands each block over whole (`TP_STATUS_USER` in its
//! descriptor) when it is full or its timer expires; we read it and give it back
//! (`TP_STATUS_KERNEL`). One socket per core joins a fanout group, so the kernel spreads the
//! interface's traffic over them by flow hash.
//!
//! Every `unsafe` block is a system call or the access to the shared mapping, each with the
//! reason it is sound. Parsing the block's bytes is safe code in [`super::block`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::block::{self, BlockError, Frames};

/// `block_status` values (`linux/if_packet.h`).
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Offset of `block_status` in a block (`tpacket_block_desc.hdr.bh1.block_status`).
const BLOCK_STATUS_OFFSET: usize = 8;
/// Interface names are at most IFNAMSIZ - 1 bytes.
const MAX_NAME: usize = 15;

/// How the kernel spreads packets over the sockets of a fanout group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FanoutMode {
    /// By flow hash: one flow always reaches the same socket (the default).
    #[default]
    Hash,
    /// By the CPU that received the packet.
    Cpu,
    /// Round robin.
    LoadBalance,
}

impl FanoutMode {
    fn kernel(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            FanoutMode::LoadBalance => libc::PACKET_FANOUT_LB,
        }
    }
}

/// What to capture and how big the ring is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfig {
    pub interface: String,
    /// Bytes per block: a power of two, at least a page (4096).
    pub block_size: u32,
    /// Blocks per ring (per socket).
    pub block_count: u32,
    /// Nominal frame size the kernel sizes its frame count by (TPACKET_V3 packs frames of any
    /// length into a block; this only has to be a multiple of 16 dividing the block).
    pub frame_size: u32,
    /// A block that is not full is handed over after this long.
    pub block_timeout: Duration,
    /// Put the interface in promiscuous mode while the socket is open (a mirror port sees
    /// frames addressed to others).
    pub promiscuous: bool,
    /// The fanout group to join: `None` asks the kernel for a group id no one else uses.
    pub fanout_group: Option<u16>,
    pub fanout_mode: FanoutMode,
}

impl RingConfig {
    /// 32 blocks of 1 MiB (32 MiB per socket), blocks handed over after 10 ms, promiscuous.
    pub fn new(interface: impl Into<String>) -> Self {
        RingConfig {
            interface: interface.into(),
            block_size: 1 << 20,
            block_count: 32,
            frame_size: 2048,
            block_timeout: Duration::from_millis(10),
            promiscuous: true,
            fanout_group: None,
            fanout_mode: FanoutMode::Hash,
        }
    }
}

/// Opening or reading a ring failed.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The name cannot be an interface name (empty, longer than 15 bytes, or with a NUL).
    #[error("{interface:?} is not an interface name (1 to 15 bytes)")]
    BadName {
        /// The name given.
        interface: String,
    },
    /// No interface of that name exists (in this network namespace).
    #[error("no interface named {interface} (`ip link` lists them)")]
    NoSuchInterface {
        /// The name given.
        interface: String,
    },
    /// The process may not open packet sockets.
    #[error("cannot capture on {interface} (capture needs root or CAP_NET_RAW)")]
    Permission {
        /// The interface.
        interface: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// The ring's sizes are not usable.
    #[error("ring for {interface}: {message}")]
    BadRing {
        /// The interface.
        interface: String,
        /// Which size is wrong.
        message: String,
    },
    /// A step of the setup or of reading was refused by the kernel.
    #[error("capture on {interface}: {step}")]
    Os {
        /// The interface.
        interface: String,
        /// What was being done (e.g. "mmap the ring").
        step: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Kernel counters of one socket, summed since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames the kernel put in the ring.
    pub delivered: u64,
    /// Frames the kernel dropped: the ring was full.
    pub drops: u64,
    /// Times the ring was full and the kernel froze it until a block came back.
    pub freezes: u64,
}

/// One AF_PACKET socket with its mapped TPACKET_V3 ring.
#[derive(Debug)]
pub struct Ring {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    block_size: usize,
    block_count: usize,
    /// The block the kernel fills next, in ring order.
    next: usize,
    interface: String,
    ifindex: u32,
    fanout_group: Option<u16>,
    totals: RingStats,
}

/// Which fanout group a new socket joins.
#[derive(Debug, Clone, Copy)]
enum Fanout {
    /// None: the socket alone gets every packet.
    None,
    /// This group.
    Join(u16),
    /// A new group, with an id the kernel allocates.
    New,
}

// SAFETY: the mapping belongs to this value alone (blocks are lent out only through `&mut
// self`), and the socket is a plain file descriptor: moving both to another thread is sound.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly what mmap returned, and no borrow of the mapping
        // outlives `&mut self`; the socket closes after, with `fd`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// setsockopt with a value of type `T`.
fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` points to a live `T` of `len` bytes for the duration of the call; the
    // kernel only reads it.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 { Ok(()) } else { Err(last_error()) }
}

/// getsockopt into a `T` (only plain integer structs: any bit pattern is valid).
fn get_option<T: Copy + Default>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = T::default();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` is a live, writable `T` of `len` bytes, and `len` a live socklen_t; the
    // kernel writes at most `len` bytes, and every bit pattern is a valid `T` for the integer
    // structs this is used with.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut T).cast(), &mut len) };
    if rc == 0 { Ok(value) } else { Err(last_error()) }
}

/// The index of `interface` in this network namespace.
pub fn interface_index(interface: &str) -> Result<u32, RingError> {
    let bad = || RingError::BadName { interface: interface.to_owned() };
    if interface.is_empty() || interface.len() > MAX_NAME {
        return Err(bad());
    }
    let name = CString::new(interface).map_err(|_| bad())?;
    // SAFETY: `name` is a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(RingError::NoSuchInterface { interface: interface.to_owned() });
    }
    Ok(index)
}

impl Ring {
    /// Opens `count` sockets on the interface in one fanout group (the group of
    /// `config.fanout_group`, else one the kernel makes up): one per capture thread.
    ///
    /// One socket alone joins no group unless `config.fanout_group` names one: the kernel
    /// would hash every packet (flow dissection, in softirq) for nothing.
    pub fn open_group(config: &RingConfig, count: usize) -> Result<Vec<Ring>, RingError> {
        if count <= 1 && config.fanout_group.is_none() {
            return Ok(vec![Ring::open_joining(config, Fanout::None)?]);
        }
        let mut rings: Vec<Ring> = Vec::with_capacity(count);
        let mut group = config.fanout_group;
        for _ in 0..count {
            let fanout = match group {
                Some(id) => Fanout::Join(id),
                None => Fanout::New,
            };
            let ring = Ring::open_joining(config, fanout)?;
            group = ring.fanout_group;
            rings.push(ring);
        }
        Ok(rings)
    }

    /// Opens one socket with its ring, bound to the interface, in the configured fanout group
    /// (or a new one of its own).
    pub fn open(config: &RingConfig) -> Result<Ring, RingError> {
        let fanout = match config.fanout_group {
            Some(id) => Fanout::Join(id),
            None => Fanout::New,
        };
        Ring::open_joining(config, fanout)
    }

    fn open_joining(config: &RingConfig, fanout: Fanout) -> Result<Ring, RingError> {
        let interface = config.interface.clone();
        let os = |step: &'static str| {
            let interface = interface.clone();
            move |source: io::Error| RingError::Os { interface, step, source }
        };
        let bad_ring = |message: String| RingError::BadRing { interface: interface.clone(), message };
        let block_size = config.block_size;
        if !block_size.is_power_of_two() || block_size < 4096 {
            return Err(bad_ring(format!("block size {block_size} is not a power of two of at least 4096")));
        }
        if config.frame_size < 64 || !config.frame_size.is_multiple_of(16) || config.frame_size > block_size {
            return Err(bad_ring(format!(
                "frame size {} is not a multiple of 16 in 64..=block size",
                config.frame_size
            )));
        }
        if config.block_count == 0 {
            return Err(bad_ring("the ring needs at least one block".into()));
        }
        let map_len = usize::try_from(u64::from(block_size) * u64::from(config.block_count))
            .map_err(|_| bad_ring("ring larger than the address space".into()))?;
        let ifindex = interface_index(&interface)?;

        // Protocol 0: the socket receives nothing until it is bound, after the ring is ready.
        // SAFETY: a plain system call with integer arguments.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let source = last_error();
            return Err(match source.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => RingError::Permission { interface, source },
                _ => os("open a packet socket")(source),
            });
        }
        // SAFETY: `raw` is a descriptor we just opened and own alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version).map_err(os("select TPACKET_V3"))?;
        let request = libc::tpacket_req3 {
            tp_block_size: block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: config.frame_size,
            tp_frame_nr: (block_size / config.frame_size) * config.block_count,
            tp_retire_blk_tov: u32::try_from(config.block_timeout.as_millis()).unwrap_or(u32::MAX).max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &request)
            .map_err(os("set up the receive ring"))?;
        // SAFETY: a new shared mapping of the ring the kernel just allocated for `fd`, exactly
        // `map_len` bytes (block size × block count), at an address the kernel picks.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os("map the ring")(last_error()));
        }
        let Some(map) = NonNull::new(map.cast::<u8>()) else {
            return Err(os("map the ring")(io::Error::other("mmap returned null")));
        };
        // From here on `Drop` unmaps.
        let mut ring = Ring {
            fd,
            map,
            map_len,
            block_size: block_size as usize,
            block_count: config.block_count as usize,
            next: 0,
            interface: interface.clone(),
            ifindex,
            fanout_group: None,
            totals: RingStats::default(),
        };

        let all = (libc::ETH_P_ALL as u16).to_be();
        let address = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: all,
            sll_ifindex: ifindex as libc::c_int,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let address_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `address` is a live sockaddr_ll and `address_len` its size.
        let rc = unsafe {
            libc::bind(ring.fd.as_raw_fd(), (&address as *const libc::sockaddr_ll).cast(), address_len)
        };
        if rc != 0 {
            let source = last_error();
            return Err(match source.raw_os_error() {
                Some(libc::ENODEV) => RingError::NoSuchInterface { interface },
                _ => os("bind to the interface")(source),
            });
        }
        if config.promiscuous {
            let membership = libc::packet_mreq {
                mr_ifindex: ifindex as libc::c_int,
                mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            set_option(&ring.fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &membership)
                .map_err(os("enter promiscuous mode"))?;
        }
        let mode = config.fanout_mode.kernel();
        let value = match fanout {
            Fanout::None => return Ok(ring),
            Fanout::Join(id) => u32::from(id) | (mode << 16),
            Fanout::New => (mode | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        };
        set_option(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &value)
            .map_err(os("join the fanout group"))?;
        let joined: u32 = get_option(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT)
            .map_err(os("read the fanout group"))?;
        ring.fanout_group = Some((joined & 0xffff) as u16);
        Ok(ring)
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn interface_index(&self) -> u32 {
        self.ifindex
    }

    /// The fanout group this socket is in, if any.
    pub fn fanout_group(&self) -> Option<u16> {
        self.fanout_group
    }

    /// The status word of block `index`, shared with the kernel.
    fn status(&self, index: usize) -> &AtomicU32 {
        // In bounds: index < block_count, and the offset is inside the block.
        let word = self.map.as_ptr().wrapping_add(index * self.block_size + BLOCK_STATUS_OFFSET);
        // SAFETY: `word` is inside the live mapping (block `index` < block_count, offset 8 of a
        // block of ≥ 4096 bytes), 4-byte aligned (blocks are page-aligned), and the kernel only
        // ever accesses it atomically as a u32 as well; the reference lives no longer than
        // `&self`, which keeps the mapping.
        unsafe { AtomicU32::from_ptr(word.cast::<u32>()) }
    }

    fn ready(&self) -> bool {
        // Acquire: the block's frames, written before the kernel set the status, are visible.
        self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// The next block the kernel handed over, waiting up to `timeout` for it; `None` when
    /// none came (or a signal interrupted the wait). The block goes back to the kernel when
    /// the returned value is dropped.
    pub fn next_block(&mut self, timeout: Duration) -> Result<Option<Block<'_>>, RingError> {
        if !self.ready() {
            let mut poll =
                libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 };
            let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: `poll` is one live pollfd, and we pass a count of 1.
            let rc = unsafe { libc::poll(&mut poll, 1, millis) };
            if rc < 0 {
                let source = last_error();
                if source.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(RingError::Os {
                    interface: self.interface.clone(),
                    step: "wait for packets",
                    source,
                });
            }
            if poll.revents & libc::POLLERR != 0 {
                // E.g. ENETDOWN when the interface went down; reading SO_ERROR clears it.
                let error: libc::c_int =
                    get_option(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR).map_err(|source| {
                        RingError::Os {
                            interface: self.interface.clone(),
                            step: "read the socket error",
                            source,
                        }
                    })?;
                if error != 0 {
                    return Err(RingError::Os {
                        interface: self.interface.clone(),
                        step: "capture",
                        source: io::Error::from_raw_os_error(error),
                    });
                }
            }
            if !self.ready() {
                return Ok(None);
            }
        }
        let index = self.next;
        Ok(Some(Block { ring: self, index }))
    }

    /// The kernel's counters, summed since the socket opened (the kernel resets its own on
    /// every read; this adds them up).
    pub fn stats(&mut self) -> Result<RingStats, RingError> {
        let read: StatsV3 =
            get_option(&self.fd, libc::SOL_PACKET, libc::PACKET_STATISTICS).map_err(|source| {
                RingError::Os { interface: self.interface.clone(), step: "read the drop counters", source }
            })?;
        // For TPACKET_V3 the kernel's tp_packets includes the drops.
        let drops = u64::from(read.tp_drops);
        self.totals.delivered += u64::from(read.tp_packets).saturating_sub(drops);
        self.totals.drops += drops;
        self.totals.freezes += u64::from(read.tp_freeze_q_cnt);
        Ok(self.totals)
    }
}

/// `struct tpacket_stats_v3`, with `Default` for [`get_option`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct StatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

/// A block the kernel handed over; given back when dropped.
#[derive(Debug)]
pub struct Block<'a> {
    ring: &'a mut Ring,
    index: usize,
}

impl Block<'_> {
    /// The block's bytes.
    pub fn bytes(&self) -> &[u8] {
        let start = self.ring.map.as_ptr().wrapping_add(self.index * self.ring.block_size);
        // SAFETY: block `index` lies inside the live mapping (`index` < block_count), and while
        // its status is TP_STATUS_USER the kernel does not write it: the bytes are ours until
        // `Drop` hands the block back, which needs `&mut self`, so no slice outlives that.
        unsafe { std::slice::from_raw_parts(start, self.ring.block_size) }
    }

    /// The block's frames.
    pub fn frames(&self) -> Result<Frames<'_>, BlockError> {
        block::frames(self.bytes())
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // Release: our reads of the block happen before the kernel may reuse it.
        self.ring.status(self.index).store(TP_STATUS_KERNEL, Ordering::Release);
        self.ring.next = (self.index + 1) % self.ring.block_count;
    }
}
