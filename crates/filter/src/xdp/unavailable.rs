//! The XDP layer of a build without the program: opening says why it is missing, so no
//! filter value can exist and its methods are unreachable (`Infallible`).

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use rampart_contract::{DecisionId, EventTime};

use super::ids::RuleKey;
use super::{AttachMode, Attachment, Options, ReconcileReport, Status, XdpError, unavailable_reason};
use crate::layout::Counters;
use crate::plan::FilterPlan;

fn unavailable() -> XdpError {
    XdpError::Unavailable(unavailable_reason().unwrap_or("no XDP program in this build"))
}

/// Stands in for the loaded filter; it cannot be constructed.
#[derive(Debug)]
pub struct XdpFilter {
    never: Infallible,
}

impl XdpFilter {
    /// Always [`XdpError::Unavailable`].
    pub fn open(_options: Options) -> Result<Self, XdpError> {
        Err(unavailable())
    }

    pub fn attach(&self, _interface: &str, _mode: AttachMode) -> Result<&'static str, XdpError> {
        match self.never {}
    }

    pub fn attached_to(&self, _interface: &str) -> Result<Option<&'static str>, XdpError> {
        match self.never {}
    }

    pub fn reconcile(
        &mut self,
        _plan: &FilterPlan,
        _now: EventTime,
        _boot_now_ns: u64,
    ) -> Result<ReconcileReport, XdpError> {
        match self.never {}
    }

    pub fn reload(
        &mut self,
        _plan: &FilterPlan,
        _now: EventTime,
        _boot_now_ns: u64,
    ) -> Result<ReconcileReport, XdpError> {
        match self.never {}
    }

    pub fn source_generation(&self) -> Option<(u32, Vec<u32>)> {
        match self.never {}
    }

    pub fn standby_generation(&self) -> Option<(u32, Vec<u32>)> {
        match self.never {}
    }

    pub fn test_runner(&self) -> Result<TestRunner, XdpError> {
        match self.never {}
    }

    pub fn counters(&self) -> Result<Vec<(RuleKey, Counters)>, XdpError> {
        match self.never {}
    }

    pub fn decision_counters(&self, _decision: DecisionId) -> Result<Counters, XdpError> {
        match self.never {}
    }

    pub fn slot_of(&self, _decision: DecisionId) -> Option<u32> {
        match self.never {}
    }

    pub fn test_run(&self, _packet: &[u8], _repeat: u32) -> Result<(u32, Duration), XdpError> {
        match self.never {}
    }

    pub fn test_run_lpm(&self, _packet: &[u8], _repeat: u32) -> Result<(u32, Duration), XdpError> {
        match self.never {}
    }

    pub fn test_run_noop(&self, _packet: &[u8], _repeat: u32) -> Result<(u32, Duration), XdpError> {
        match self.never {}
    }

    pub fn load_lpm(&self, _prefixes: &[(ipnet::IpNet, u32)]) -> Result<(), XdpError> {
        match self.never {}
    }

    pub fn write_rules(&mut self, _rules: &[(u32, crate::layout::RuleValue)]) -> Result<usize, XdpError> {
        match self.never {}
    }

    pub fn pin_dir(&self) -> Option<&Path> {
        match self.never {}
    }

    pub fn syn_cookies(&self) -> Result<(), &'static str> {
        match self.never {}
    }

    pub fn test_run_output(&self, _packet: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        match self.never {}
    }
}

/// Stands in for the program's test runner; it cannot be constructed.
#[derive(Debug)]
pub struct TestRunner {
    never: Infallible,
}

impl TestRunner {
    pub fn program_id(&self) -> Result<u32, XdpError> {
        match self.never {}
    }

    /// Always [`XdpError::Unavailable`].
    pub fn from_program_id(_id: u32) -> Result<Self, XdpError> {
        Err(unavailable())
    }

    pub fn run(&self, _packet: &[u8], _repeat: u32) -> Result<(u32, Duration), XdpError> {
        match self.never {}
    }
}

/// Stands in for the benchmark's LPM tries.
#[derive(Debug)]
pub struct LpmTries {
    never: Infallible,
}

impl LpmTries {
    /// Always [`XdpError::Unavailable`].
    pub fn fill(_prefixes: &[(ipnet::IpNet, u32)]) -> Result<Self, XdpError> {
        Err(unavailable())
    }

    pub fn max_entries(&self) -> Vec<u32> {
        match self.never {}
    }
}

/// Always `false`: no maps without the program.
pub fn map_id_exists(_id: u32) -> bool {
    false
}

/// Always [`XdpError::Unavailable`].
pub fn status(_pin_dir: &Path, _boot_now_ns: u64) -> Result<Status, XdpError> {
    Err(unavailable())
}

/// Always [`XdpError::Unavailable`].
pub fn detach(_pin_dir: &Path, _purge: bool) -> Result<Vec<Attachment>, XdpError> {
    Err(unavailable())
}
