//! The driver's side of the source tables' generations (see [`crate::xdp::swap`]): the
//! empty generation a fresh loader starts from, in-place writes to the live one, and full
//! reloads into a new one swapped in.

use std::time::Instant;

use foldhash::HashMap;
use libbpf_rs::MapHandle;

use super::{Ipv4Rule, SourceWritten, XdpFilter, find_map};
use crate::dir248::Dir248;
use crate::plan::FilterPlan;
use crate::xdp::maps::bpf_error;
use crate::xdp::swap::{self, Generation, TABLES};
use crate::xdp::{ReconcileReport, SwapTimes, XdpError};

impl XdpFilter {
    /// Puts an empty generation of source tables in place at load, known to be empty, so the
    /// first decisions go into it in place instead of waiting for a new generation's maps to
    /// be created (a first reconcile with a large set still fills a new one).
    pub(super) fn install_empty(&mut self) -> Result<(), XdpError> {
        let slot = (swap::read_gen(&self.object)? + 1) % swap::GENS;
        let fresh = Generation::create(&self.options.capacity, slot)?;
        swap::install(&self.object, &fresh)?;
        self.live = Some(fresh);
        self.written.src = SourceWritten {
            dir: Some(Dir248::build(&[], self.options.capacity.v4_groups as usize, None)?),
            ..SourceWritten::empty()
        };
        self.last_plan = Some(FilterPlan::default());
        Ok(())
    }

    /// Brings the live source tables to `hosts`, `v4` and `plan`'s IPv6 prefixes in place.
    pub(super) fn write_sources(
        &mut self,
        hosts: &HashMap<[u8; 4], u32>,
        v4: &[Ipv4Rule],
        plan: &FilterPlan,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        report.elements_written += self.sync_hosts(hosts)?;
        if self.written.src.dir.is_none() || self.written.src.tbl24_unknown || v4 != self.written.src.v4_input
        {
            self.write_v4(v4, report)?;
        }
        self.write_v6(plan, report)
    }

    /// Fills a new generation of source tables off to the side with the same writes (into
    /// empty maps), then makes it live and releases the old one. On a failure the live
    /// generation is left as it was, still dropping.
    pub(super) fn swap_sources(
        &mut self,
        hosts: &HashMap<[u8; 4], u32>,
        v4: &[Ipv4Rule],
        plan: &FilterPlan,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let started = Instant::now();
        let slot = (swap::read_gen(&self.object)? + 1) % swap::GENS;
        let fresh = Generation::create(&self.options.capacity, slot)?;
        let old_live = self.live.replace(fresh);
        let old_written = std::mem::replace(&mut self.written.src, SourceWritten::empty());
        let filled = self.write_sources(hosts, v4, plan, report);
        let fill = started.elapsed();
        let installed = filled.and_then(|()| match &self.live {
            Some(new) => swap::install(&self.object, new),
            None => Ok(SwapTimes::default()),
        });
        match installed {
            Ok(times) => {
                // The old generation's handles close here, after its slots were deleted.
                let closing = Instant::now();
                drop(old_live);
                report.swap = Some(SwapTimes { fill, release: times.release + closing.elapsed(), ..times });
                Ok(())
            }
            Err(e) => {
                self.live = old_live;
                self.written.src = old_written;
                Err(e)
            }
        }
    }

    /// Map `name` as a handle of its own: a source table's inner map of the live generation,
    /// or one of the object's maps.
    pub(super) fn map_named(&self, name: &str) -> Result<MapHandle, XdpError> {
        if let Some(t) = TABLES.iter().find(|t| t.name() == name) {
            let live = self.live.as_ref().ok_or_else(|| XdpError::Bpf {
                what: format!("map {name}"),
                source: "no source tables in place yet".into(),
            })?;
            return MapHandle::try_from(live.map(*t)).map_err(bpf_error(format!("map {name}")));
        }
        MapHandle::try_from(&find_map(&self.object, name)?).map_err(bpf_error(format!("map {name}")))
    }

    /// The slot and the kernel's map ids of the live generation of source tables (`None`:
    /// none in place yet).
    pub fn source_generation(&self) -> Option<(u32, Vec<u32>)> {
        self.live.as_ref().map(|g| (g.slot, g.ids()))
    }
}
