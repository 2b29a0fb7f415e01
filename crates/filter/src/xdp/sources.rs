//! The driver's side of the source tables' generations (see [`crate::xdp::swap`]): both
//! generations found or created at load, in-place writes to the live one (the IPv4 hosts and
//! table here, the IPv6 tables in `v6.rs`), and full reloads into the standby one, flipped
//! live, the old live one kept as the next standby.

use std::collections::BTreeSet;
use std::time::Instant;

use foldhash::HashMap;
use ipnet::Ipv4Net;
use libbpf_rs::{MapCore, MapFlags, MapHandle, Object};

use super::delta::sorted_diff;
use super::{Ipv4Rule, SourceWritten, XdpFilter, find_map};
use crate::dir248::{BLOCKS, Dir248};
use crate::layout::{self, PREFIX_KEY_SIZE};
use crate::plan::FilterPlan;
use crate::xdp::maps::{BATCH, bpf_error, delete_all, update_all};
use crate::xdp::swap::{self, GENS, Generation, TABLES};
use crate::xdp::{Capacity, ReconcileReport, SwapTimes, XdpError};

/// A rule slot no rule ever has: what a read-back entry is held as, so the next write
/// rewrites it if it is wanted (and deletes it if not).
const UNKNOWN_SLOT: u32 = u32::MAX;

/// The live and the standby generation, from the pinned outer maps where they hold them, else
/// created now and put in their slots (the only time a loader creates source tables).
pub(super) fn generations(object: &Object, caps: &Capacity) -> Result<(Generation, Generation), XdpError> {
    let live_slot = swap::read_gen(object)?;
    let open_or_create = |slot: u32| -> Result<Generation, XdpError> {
        if let Some(g) = Generation::open(object, slot, caps)? {
            return Ok(g);
        }
        let g = Generation::create(caps, slot)?;
        swap::place(object, &g)?;
        Ok(g)
    };
    let live = open_or_create(live_slot)?;
    let standby = open_or_create((live_slot + 1) % GENS)?;
    Ok((live, standby))
}

impl XdpFilter {
    /// What a fresh loader's generations hold: nothing, known (the first decisions go into
    /// the live one in place).
    pub(super) fn start_empty(&mut self) -> Result<(), XdpError> {
        self.written.src = SourceWritten {
            dir: Some(Dir248::build(&[], self.options.capacity.v4_groups as usize, None)?),
            ..SourceWritten::empty()
        };
        self.written.standby = SourceWritten::empty();
        self.last_plan = Some(FilterPlan::default());
        Ok(())
    }

    /// Brings the live source tables to `hosts`, `v4` and `plan`'s IPv6 prefixes: the IPv4
    /// table by a delta of its image, or (`rebuild`) rebuilt and compared with what it held.
    pub(super) fn write_sources(
        &mut self,
        hosts: &HashMap<[u8; 4], u32>,
        v4: &[Ipv4Rule],
        plan: &FilterPlan,
        rebuild: bool,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        report.elements_written += self.sync_hosts(hosts)?;
        if self.written.src.dir.is_none() || self.written.src.tbl24_unknown || v4 != self.written.src.v4_input
        {
            self.write_v4(v4, rebuild, report)?;
        }
        self.write_v6(plan, report)
    }

    /// A full reload: the standby generation brought to the new set (what it held and the new
    /// set lacks deleted, the rest written, in batches; read back first when what it holds
    /// is unknown), made live, and the old live one kept as the standby. On a failure the live
    /// generation is left as it was, still dropping, and the standby is read back before its
    /// next fill.
    pub(super) fn swap_sources(
        &mut self,
        hosts: &HashMap<[u8; 4], u32>,
        v4: &[Ipv4Rule],
        plan: &FilterPlan,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let started = Instant::now();
        // The standby's maps and record in the live one's place, so the writes go to it.
        std::mem::swap(&mut self.live, &mut self.standby);
        std::mem::swap(&mut self.written.src, &mut self.written.standby);
        let filled =
            self.read_back_sources().and_then(|()| self.write_sources(hosts, v4, plan, true, report));
        let fill = started.elapsed();
        match filled.and_then(|()| swap::flip(&self.object, &self.live, &self.standby)) {
            Ok(times) => {
                report.swap = Some(SwapTimes { fill, ..times });
                Ok(())
            }
            Err(e) => {
                std::mem::swap(&mut self.live, &mut self.standby);
                std::mem::swap(&mut self.written.src, &mut self.written.standby);
                // Written in part: what it holds is known again only once read back.
                self.written.standby = SourceWritten::unknown();
                Err(e)
            }
        }
    }

    /// When what the generation in the live place holds is unknown (found pinned, or a write
    /// to it failed), reads its hashes' keys back (held as [`UNKNOWN_SLOT`], so the fill
    /// deletes the ones not wanted) and marks its arrays as to be rewritten whole.
    fn read_back_sources(&mut self) -> Result<(), XdpError> {
        if !self.written.src.unknown {
            return Ok(());
        }
        let mut held =
            SourceWritten { tbl24_unknown: true, v6_filter: None, v6_masks: None, ..Default::default() };
        for key in read_keys(&self.map_named("v4_hosts")?)? {
            if let Ok(k) = <[u8; 4]>::try_from(key.as_slice()) {
                held.v4_hosts.insert(k, UNKNOWN_SLOT);
            }
        }
        for key in read_keys(&self.map_named("v6_prefixes")?)? {
            if let Ok(k) = <[u8; PREFIX_KEY_SIZE]>::try_from(key.as_slice()) {
                held.v6[usize::from(k[1] >= layout::V6_LONG_FROM)].insert(k, UNKNOWN_SLOT);
            }
        }
        // Every length held, and one no prefix has (so never the set wanted): the fill's last
        // write of each lengths entry then says only the new ones.
        let all: BTreeSet<u8> = (0..=128).chain([u8::MAX]).collect();
        held.v6_lengths = [all.clone(), all];
        self.written.src = held;
        Ok(())
    }

    /// Brings the IPv4 host hash to `wanted`.
    fn sync_hosts(&mut self, wanted: &HashMap<[u8; 4], u32>) -> Result<usize, XdpError> {
        let held = &self.written.src.v4_hosts;
        let upserts: Vec<(Vec<u8>, Vec<u8>)> = wanted
            .iter()
            .filter(|(k, v)| held.get(*k) != Some(v))
            .map(|(k, v)| (k.to_vec(), v.to_ne_bytes().to_vec()))
            .collect();
        let stale: Vec<Vec<u8>> =
            held.keys().filter(|k| !wanted.contains_key(*k)).map(|k| k.to_vec()).collect();
        let map = self.map_named("v4_hosts")?;
        // Stale ones first: a full hash has room for the new ones only then (a standby holding
        // a whole other set), and a key deleted is never one wanted.
        let written = delete_all(&map, &stale)? + update_all(&map, &upserts)?;
        self.written.src.v4_hosts = wanted.clone();
        Ok(written)
    }

    /// Brings the IPv4 table to `v4` and writes what changed: groups before the /24 slots that
    /// point at them. `rebuild`: the image built anew and compared with the one held (a full
    /// reload, where a delta would walk two whole sets' ranges).
    fn write_v4(
        &mut self,
        v4: &[(Ipv4Net, u32)],
        rebuild: bool,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let mut v4 = v4.to_vec();
        v4.sort_unstable_by_key(|(n, _)| *n);
        let (groups, blocks) = match (self.written.src.dir.as_mut(), self.written.src.tbl24_unknown) {
            // A delta: only the ranges of the changed prefixes are recomputed and written.
            (Some(dir), false) if !rebuild => {
                let (removed, added) = sorted_diff(&self.written.src.v4_input, &v4);
                let changes = dir.update(&removed, &added)?;
                (changes.groups, changes.blocks)
            }
            _ => {
                let dir = Dir248::build(
                    &v4,
                    self.options.capacity.v4_groups as usize,
                    self.written.src.dir.as_ref(),
                )?;
                let previous =
                    if self.written.src.tbl24_unknown { None } else { self.written.src.dir.as_ref() };
                let groups = dir.changed_groups(previous);
                let blocks = if self.written.src.tbl24_unknown {
                    (0..BLOCKS).collect()
                } else {
                    dir.changed_blocks(previous)
                };
                self.written.src.dir = Some(dir);
                (groups, blocks)
            }
        };
        self.written.src.v4_input = v4;
        self.write_v4_changes(groups, blocks, report)
    }

    /// Writes the table image's `groups`, then its `blocks`; a failure leaves the table
    /// unknown (rewritten whole by the next reconcile).
    pub(super) fn write_v4_changes(
        &mut self,
        groups: Vec<usize>,
        blocks: Vec<usize>,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let Some(dir) = self.written.src.dir.as_ref() else { return Ok(()) };
        let groups: Vec<(Vec<u8>, Vec<u8>)> = groups
            .into_iter()
            .map(|g| ((g as u32).to_ne_bytes().to_vec(), layout::slots(dir.group(g))))
            .collect();
        let blocks: Vec<(Vec<u8>, Vec<u8>)> = blocks
            .into_iter()
            .map(|b| ((b as u32).to_ne_bytes().to_vec(), layout::slots(dir.block(b))))
            .collect();
        let written = self
            .map_named("v4_tbl8")
            .and_then(|map| update_all(&map, &groups))
            .and_then(|n| Ok(n + update_all(&self.map_named("v4_tbl24")?, &blocks)?));
        match written {
            Ok(n) => report.elements_written += n,
            Err(e) => {
                // The image is ahead of the maps now: the next reconcile rewrites them whole.
                self.written.src.tbl24_unknown = true;
                return Err(e);
            }
        }
        self.written.src.tbl24_unknown = false;
        Ok(())
    }

    /// Map `name` as a handle of its own: a source table's inner map of the live generation,
    /// or one of the object's maps.
    pub(super) fn map_named(&self, name: &str) -> Result<MapHandle, XdpError> {
        if let Some(t) = TABLES.iter().find(|t| t.name() == name) {
            return MapHandle::try_from(self.live.map(*t)).map_err(bpf_error(format!("map {name}")));
        }
        MapHandle::try_from(&find_map(&self.object, name)?).map_err(bpf_error(format!("map {name}")))
    }

    /// The slot and the kernel's map ids of the live generation of source tables.
    pub fn source_generation(&self) -> Option<(u32, Vec<u32>)> {
        Some((self.live.slot, self.live.ids()))
    }

    /// The slot and the kernel's map ids of the standby generation (the next full reload
    /// fills it).
    pub fn standby_generation(&self) -> Option<(u32, Vec<u32>)> {
        Some((self.standby.slot, self.standby.ids()))
    }
}

/// The keys of hash `map`, in batches.
fn read_keys(map: &MapHandle) -> Result<Vec<Vec<u8>>, XdpError> {
    let what = format!("reading back map {}", map.name().to_string_lossy());
    Ok(map
        .lookup_batch(BATCH as u32, MapFlags::ANY, MapFlags::ANY)
        .map_err(bpf_error(what))?
        .map(|(k, _)| k)
        .collect())
}
