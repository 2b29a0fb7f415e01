//! The driver's side of the source tables' generations (see [`crate::xdp::swap`]): both
//! generations found or created at load, in-place writes to the live one, and full reloads
//! into the standby one, flipped live, the old live one kept as the next standby.

use std::collections::BTreeSet;
use std::time::Instant;

use foldhash::HashMap;
use libbpf_rs::{MapCore, MapFlags, MapHandle, Object};

use super::{Ipv4Rule, SourceWritten, XdpFilter, find_map};
use crate::dir248::Dir248;
use crate::layout::{self, PREFIX_KEY_SIZE};
use crate::plan::FilterPlan;
use crate::xdp::maps::{BATCH, bpf_error};
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
