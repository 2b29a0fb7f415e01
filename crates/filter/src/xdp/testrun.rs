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
