//! A handle that runs the filter program with BPF_PROG_TEST_RUN from any thread (the loaded
//! object is not `Send`): the benchmark's stall measurement and the swap tests run packets
//! through the program while another thread reconciles.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use super::{PROGRAM, XdpFilter, find_program};
use crate::xdp::XdpError;
use crate::xdp::maps::bpf_error;

/// The filter program, by a file descriptor of its own.
#[derive(Debug)]
pub struct TestRunner {
    prog: OwnedFd,
}

impl XdpFilter {
    /// A [`TestRunner`] for this filter's program.
    pub fn test_runner(&self) -> Result<TestRunner, XdpError> {
        let prog = find_program(&self.object, PROGRAM)?;
        let fd = prog.as_fd().try_clone_to_owned().map_err(|e| XdpError::Bpf {
            what: "duplicating the program's fd".into(),
            source: Box::new(e),
        })?;
        Ok(TestRunner { prog: fd })
    }
}

impl TestRunner {
    /// The kernel's id of the program (another process with the rights can run it by id).
    pub fn program_id(&self) -> Result<u32, XdpError> {
        libbpf_rs::Program::id_from_fd(self.prog.as_fd()).map_err(bpf_error("the program's id"))
    }

    /// A runner for the program of id `id` (loaded by another process).
    pub fn from_program_id(id: u32) -> Result<Self, XdpError> {
        let prog = libbpf_rs::Program::fd_from_id(id).map_err(bpf_error(format!("program {id}")))?;
        Ok(TestRunner { prog })
    }

    /// Runs the program `repeat` times over `packet`: its verdict and the kernel's average
    /// time per run.
    pub fn run(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration), XdpError> {
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as libbpf_sys::size_t,
            data_in: packet.as_ptr().cast(),
            data_size_in: packet.len() as u32,
            repeat: repeat.min(i32::MAX as u32) as i32,
            ..Default::default()
        };
        // SAFETY: `opts` is a valid, fully initialised bpf_test_run_opts whose data_in points at
        // `packet`, alive and unchanged for the call; no output buffers are given, so the
        // kernel writes only the retval and duration fields of `opts`.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &mut opts) };
        if rc != 0 {
            return Err(bpf_error("BPF_PROG_TEST_RUN")(libbpf_rs::Error::from_raw_os_error(-rc)));
        }
        Ok((opts.retval, Duration::from_nanos(u64::from(opts.duration))))
    }
}

/// Kernel LPM tries filled apart from the program (the benchmark's anchor for filling and
/// freeing a large table): the kernel frees them when this is dropped.
#[derive(Debug)]
pub struct LpmTries {
    maps: Vec<libbpf_rs::MapHandle>,
}

impl LpmTries {
    /// Two tries (IPv4, IPv6) sized for and filled with `prefixes`, in batches.
    pub fn fill(prefixes: &[(ipnet::IpNet, u32)]) -> Result<Self, XdpError> {
        use crate::layout::{LPM_V4_KEY_SIZE, LPM_V6_KEY_SIZE, lpm_key};
        let (v4, v6): (Vec<_>, Vec<_>) = prefixes.iter().partition(|(n, _)| n.addr().is_ipv4());
        let mut maps = Vec::new();
        for (name, key_size, list) in
            [("lpm_anchor_v4", LPM_V4_KEY_SIZE, v4), ("lpm_anchor_v6", LPM_V6_KEY_SIZE, v6)]
        {
            let opts = libbpf_sys::bpf_map_create_opts {
                sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
                map_flags: libbpf_sys::BPF_F_NO_PREALLOC,
                ..Default::default()
            };
            let map = libbpf_rs::MapHandle::create(
                libbpf_rs::MapType::LpmTrie,
                Some(name),
                key_size as u32,
                4,
                (list.len() as u32).max(1),
                &opts,
            )
            .map_err(bpf_error(format!("creating {name}")))?;
            let entries: Vec<(Vec<u8>, Vec<u8>)> =
                list.iter().map(|(n, r)| (lpm_key(*n), r.to_ne_bytes().to_vec())).collect();
            crate::xdp::maps::update_all(&map, &entries)?;
            maps.push(map);
        }
        Ok(LpmTries { maps })
    }

    /// Entries held (IPv4, IPv6), as the kernel's map info says.
    pub fn max_entries(&self) -> Vec<u32> {
        use libbpf_rs::MapCore;
        self.maps.iter().map(|m| m.max_entries()).collect()
    }
}
