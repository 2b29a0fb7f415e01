//! What is attached where and what each rule dropped, read from the pinned maps (so it works
//! from any process, while the daemon runs or after it died), and detaching.

use std::os::fd::AsFd;
use std::path::Path;

use libbpf_rs::query::{ProgInfoIter, ProgInfoQueryOptions};
use libbpf_rs::{MapCore, MapFlags, MapHandle, Xdp, XdpFlags};

use super::maps::bpf_error;
use super::{Attachment, RuleStatus, Status, XdpError};
use crate::layout::{Counters, RuleValue};
use crate::plan::RuleAction;

/// The interface's index, from sysfs.
pub fn interface_index(name: &str) -> Result<u32, XdpError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(XdpError::NoInterface(name.to_owned()));
    }
    let path = Path::new("/sys/class/net").join(name).join("ifindex");
    let text = std::fs::read_to_string(&path).map_err(|_| XdpError::NoInterface(name.to_owned()))?;
    text.trim().parse().map_err(|_| XdpError::NoInterface(name.to_owned()))
}

/// The name of program `id`, if it exists.
pub fn program_name(id: u32) -> Option<String> {
    ProgInfoIter::default().find(|p| p.id == id).map(|p| p.name.to_string_lossy().into_owned())
}

fn program_uses_map(prog_id: u32, map_id: u32) -> bool {
    let opts = ProgInfoQueryOptions::default().include_map_ids(true);
    ProgInfoIter::with_query_opts(opts).any(|p| p.id == prog_id && p.map_ids.contains(&map_id))
}

/// The mode our program (the one using map `rules_map_id`) runs in on `ifindex`, if it does.
pub fn attached_here(ifindex: u32, rules_map_id: u32) -> Result<Option<&'static str>, XdpError> {
    let Ok(rules) = MapHandle::from_map_id(rules_map_id) else { return Ok(None) };
    let xdp = Xdp::new(rules.as_fd());
    let Ok(q) = xdp.query(ifindex as i32, XdpFlags::NONE) else { return Ok(None) };
    for (id, mode) in [(q.drv_prog_id, "native"), (q.skb_prog_id, "generic"), (q.hw_prog_id, "offload")] {
        if id != 0 && program_uses_map(id, rules_map_id) {
            return Ok(Some(mode));
        }
    }
    Ok(None)
}

fn open_pinned(pin_dir: &Path, name: &str) -> Result<MapHandle, XdpError> {
    let path = pin_dir.join(name);
    if !path.exists() {
        return Err(XdpError::NotPinned(pin_dir.to_owned()));
    }
    MapHandle::from_pinned_path(&path).map_err(bpf_error(format!("opening {}", path.display())))
}

fn interfaces() -> Vec<(String, u32)> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
    let mut out: Vec<(String, u32)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            interface_index(&name).ok().map(|i| (name, i))
        })
        .collect();
    out.sort_by_key(|(_, i)| *i);
    out
}

fn attachments(rules: &MapHandle) -> Result<Vec<Attachment>, XdpError> {
    let map_id = rules.info().map_err(bpf_error("map info"))?.info.id;
    let xdp = Xdp::new(rules.as_fd());
    let mut out = Vec::new();
    for (interface, ifindex) in interfaces() {
        let Ok(q) = xdp.query(ifindex as i32, XdpFlags::NONE) else { continue };
        for (id, mode) in [(q.drv_prog_id, "native"), (q.skb_prog_id, "generic"), (q.hw_prog_id, "offload")] {
            if id != 0 && program_uses_map(id, map_id) {
                out.push(Attachment { interface: interface.clone(), ifindex, mode, program_id: id });
            }
        }
    }
    Ok(out)
}

/// The filter pinned at `pin_dir`: where it is attached, its rules in force at boot time
/// `boot_now_ns` with their counters, and its packet totals.
pub fn status(pin_dir: &Path, boot_now_ns: u64) -> Result<Status, XdpError> {
    let rules = open_pinned(pin_dir, "rules")?;
    let rule_stats = open_pinned(pin_dir, "rule_stats")?;
    let stats = open_pinned(pin_dir, "stats")?;
    let mut status =
        Status { pin_dir: pin_dir.to_owned(), attached: attachments(&rules)?, ..Status::default() };
    let high = super::driver::read_high_water(&open_pinned(pin_dir, "meta")?)?;
    for (slot, value) in super::driver::read_rules(&rules, high)? {
        let key = slot.to_ne_bytes();
        let Some(rule) = RuleValue::decode(&value) else { continue };
        let Some(action) = rule.action() else { continue };
        if rule.expires_ns != 0 && rule.expires_ns <= boot_now_ns {
            continue;
        }
        let per_cpu = rule_stats
            .lookup_percpu(&key, MapFlags::ANY)
            .map_err(bpf_error("reading rule counters"))?
            .unwrap_or_default();
        let c = Counters::sum(&per_cpu);
        let (name, rate) = match action {
            RuleAction::Drop => ("drop", 0),
            RuleAction::RatePackets(r) => ("rate_packets", r),
            RuleAction::RateBytes(r) => ("rate_bytes", r),
        };
        status.rules.push(RuleStatus {
            rule: slot,
            decision: rule.decision,
            action: name,
            rate,
            expires_in_secs: (rule.expires_ns != 0).then(|| (rule.expires_ns - boot_now_ns) / 1_000_000_000),
            dropped_packets: c.packets,
            dropped_bytes: c.bytes,
        });
    }
    let total = |i: u32| -> Result<u64, XdpError> {
        let per_cpu = stats
            .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_error("reading stats"))?
            .unwrap_or_default();
        Ok(per_cpu.iter().filter_map(|v| v.get(..8)?.try_into().ok()).map(u64::from_ne_bytes).sum())
    };
    status.packets_seen = total(0)?;
    status.packets_passed = total(1)?;
    status.packets_dropped = total(2)?;
    Ok(status)
}

/// Detaches the filter pinned at `pin_dir` from every interface of this network namespace;
/// with `purge`, also removes the pins (the rules then go with the last program using them).
pub fn detach(pin_dir: &Path, purge: bool) -> Result<Vec<Attachment>, XdpError> {
    let rules = open_pinned(pin_dir, "rules")?;
    let attached = attachments(&rules)?;
    let xdp = Xdp::new(rules.as_fd());
    for a in &attached {
        let flags = match a.mode {
            "native" => XdpFlags::DRV_MODE,
            "generic" => XdpFlags::SKB_MODE,
            _ => XdpFlags::HW_MODE,
        };
        xdp.detach(a.ifindex as i32, flags).map_err(bpf_error(format!("detaching from {}", a.interface)))?;
    }
    if purge {
        std::fs::remove_dir_all(pin_dir)
            .map_err(|source| XdpError::Io { path: pin_dir.to_owned(), source })?;
    }
    Ok(attached)
}
