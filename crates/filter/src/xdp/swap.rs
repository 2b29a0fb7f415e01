//! The source tables' generations (map-in-map): each of the seven source tables is an outer
//! `BPF_MAP_TYPE_ARRAY_OF_MAPS` of two slots, and `source_gen` names the live one. Both slots'
//! inner maps are created once, when a loader starts (or found again through the pinned outer
//! maps), and stay for as long as the filter runs: small changes go into the live generation
//! in place; a full reload brings the standby one to the new set (deleting what it held that
//! the new set lacks, in batches), flips `source_gen` in one update, and keeps the old live one
//! as the next standby. No map is created or freed during a reload: creating one zeroes its
//! whole area in the kernel without a break (the 64 MiB /24 table stalled a CPU for 116–169 ms
//! in the benchmark, `clear_page_erms` under `__bpf_map_area_alloc` per `perf`). A packet sees
//! one whole generation (see `source_rule` in `bpf/rampart.bpf.c` for the reader's side).

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, Object};

use super::driver::find_map;
use crate::dir248::BLOCKS;
use crate::layout::{self, BLOCK_SIZE, GROUP_SIZE, LENGTHS_SIZE, PREFIX_KEY_SIZE};
use crate::xdp::maps::bpf_error;
use crate::xdp::{Capacity, SwapTimes, XdpError};

/// Slots of each outer map (`SOURCE_GENS` in `bpf/rampart.h`).
pub const GENS: u32 = 2;

/// One source table: the outer map's name, and its inner maps' layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tbl24,
    Tbl8,
    Hosts,
    V6Prefixes,
    V6Lengths,
    V6Filter,
    V6Masks,
}

pub const TABLES: [Table; 7] = [
    Table::Tbl24,
    Table::Tbl8,
    Table::Hosts,
    Table::V6Prefixes,
    Table::V6Lengths,
    Table::V6Filter,
    Table::V6Masks,
];

impl Table {
    /// The outer map's name in the object (and its pin file).
    pub fn name(self) -> &'static str {
        match self {
            Table::Tbl24 => "v4_tbl24",
            Table::Tbl8 => "v4_tbl8",
            Table::Hosts => "v4_hosts",
            Table::V6Prefixes => "v6_prefixes",
            Table::V6Lengths => "v6_lengths",
            Table::V6Filter => "v6_filter",
            Table::V6Masks => "v6_len_masks",
        }
    }

    /// Type, key size, value size and entries of the inner maps, as the program's templates
    /// declare them (sized by `caps`).
    fn layout(self, caps: &Capacity) -> (MapType, u32, u32, u32) {
        match self {
            Table::Tbl24 => (MapType::Array, 4, BLOCK_SIZE as u32, BLOCKS as u32),
            Table::Tbl8 => (MapType::Array, 4, GROUP_SIZE as u32, caps.v4_groups.max(1)),
            Table::Hosts => (MapType::Hash, 4, 4, caps.v4_hosts.max(1)),
            Table::V6Prefixes => (MapType::Hash, PREFIX_KEY_SIZE as u32, 4, caps.v6_prefixes.max(1)),
            Table::V6Lengths => (MapType::Array, 4, LENGTHS_SIZE as u32, 2),
            Table::V6Filter => (MapType::Array, 4, 8, layout::V6_FILTER_WORDS as u32),
            Table::V6Masks => (MapType::Array, 4, 16, layout::V6_MASK_SLOTS as u32),
        }
    }

    /// A new, empty inner map (arrays zeroed, hashes empty). Only at load: the kernel zeroes
    /// a large map's whole area in one go, a stall of the CPU doing it.
    pub fn create(self, caps: &Capacity) -> Result<MapHandle, XdpError> {
        self.create_sized(self.layout(caps))
    }

    /// The outer map's inner map template, handed to libbpf at load and closed after it. The
    /// kernel holds an inner hash to the template's type, key and value sizes and flags but
    /// not its size, so a hash's template is one entry (a full-size one would zero its whole
    /// area once more); an array's must be full size (the verifier bounds its lookups by the
    /// template's entries).
    pub fn template(self, caps: &Capacity) -> Result<MapHandle, XdpError> {
        let (ty, key, value, entries) = self.layout(caps);
        self.create_sized((ty, key, value, if ty == MapType::Hash { 1 } else { entries }))
    }

    fn create_sized(
        self,
        (ty, key, value, entries): (MapType, u32, u32, u32),
    ) -> Result<MapHandle, XdpError> {
        // Hashes preallocated (the kernel's default): a hash that allocates its elements as
        // they are written is freed by one kernel loop over them that does not yield (a
        // million elements stalled a CPU for 122 ms in the benchmark's probe); a preallocated
        // one is freed in one piece.
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
            ..Default::default()
        };
        MapHandle::create(ty, Some(self.name()), key, value, entries, &opts)
            .map_err(bpf_error(format!("creating a {} table ({entries} entries)", self.name())))
    }
}

/// The inner maps of one generation, in [`TABLES`] order.
#[derive(Debug)]
pub struct Generation {
    pub slot: u32,
    maps: Vec<MapHandle>,
}

impl Generation {
    /// A new empty generation in slot `slot` (not yet in the outer maps: see [`place`]).
    pub fn create(caps: &Capacity, slot: u32) -> Result<Self, XdpError> {
        let maps = TABLES.iter().map(|t| t.create(caps)).collect::<Result<Vec<_>, _>>()?;
        Ok(Generation { slot, maps })
    }

    /// The generation the pinned outer maps hold in `slot`, if it is whole. Maps of other
    /// sizes than `caps` (pinned by a loader configured otherwise) are an error.
    pub fn open(object: &Object, slot: u32, caps: &Capacity) -> Result<Option<Self>, XdpError> {
        let mut maps = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let outer = find_map(object, t.name())?;
            let Some(id) = outer
                .lookup(&slot.to_ne_bytes(), MapFlags::ANY)
                .map_err(bpf_error(format!("reading {}", t.name())))?
                .and_then(|v| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
            else {
                return Ok(None);
            };
            let map = MapHandle::from_map_id(id)
                .map_err(bpf_error(format!("opening {} (map id {id})", t.name())))?;
            let (_, key, value, entries) = t.layout(caps);
            if (map.key_size(), map.value_size(), map.max_entries()) != (key, value, entries) {
                return Err(XdpError::Bpf {
                    what: format!("reusing the pinned {} table of slot {slot}", t.name()),
                    source: format!(
                        "it holds {} entries of {} bytes, this configuration wants {entries} of \
                         {value}: `rampart filter detach --purge` removes the pinned maps",
                        map.max_entries(),
                        map.value_size()
                    )
                    .into(),
                });
            }
            maps.push(map);
        }
        Ok(Some(Generation { slot, maps }))
    }

    pub fn map(&self, t: Table) -> &MapHandle {
        &self.maps[t as usize]
    }

    /// The kernel's ids of this generation's maps (in [`TABLES`] order).
    pub fn ids(&self) -> Vec<u32> {
        self.maps.iter().map(|m| m.info().map_or(0, |i| i.info.id)).collect()
    }
}

/// The live generation's slot (0 when never written).
pub fn read_gen(object: &Object) -> Result<u32, XdpError> {
    let v = find_map(object, "source_gen")?
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(bpf_error("reading source_gen"))?
        .unwrap_or_default();
    Ok(v.get(..4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_ne_bytes) % GENS)
}

/// Puts `generation`'s maps in its slots of the outer maps (at load, for a slot found empty).
pub fn place(object: &Object, generation: &Generation) -> Result<(), XdpError> {
    let key = generation.slot.to_ne_bytes();
    for tbl in TABLES {
        let fd = generation.map(tbl).as_fd().as_raw_fd() as u32;
        find_map(object, tbl.name())?.update(&key, &fd.to_ne_bytes(), MapFlags::ANY).map_err(bpf_error(
            format!(
                "putting the {} table in place (a pinned map of another size cannot take it: \
                 `rampart filter detach --purge` removes them)",
                tbl.name()
            ),
        ))?;
    }
    Ok(())
}

/// Makes `new` live by flipping `source_gen` to its slot (one update: a packet reads the slot
/// once and sees one whole generation), then waits until no program still reads `old`, so the
/// next reload can write into it: the kernel answers an update of a map-in-map outer map only
/// after a grace period (`maybe_wait_bpf_programs`), and re-putting `old`'s first map in its
/// own slot is such an update that changes nothing.
pub fn flip(object: &Object, new: &Generation, old: &Generation) -> Result<SwapTimes, XdpError> {
    let t = Instant::now();
    find_map(object, "source_gen")?
        .update(&0u32.to_ne_bytes(), &new.slot.to_ne_bytes(), MapFlags::ANY)
        .map_err(bpf_error("flipping source_gen"))?;
    let flip = t.elapsed();
    let t = Instant::now();
    // Past the flip `new` is live whatever happens here, so this is never an error that would
    // have the caller think `old` still is: should the wait fail, the next reload comes far
    // later than any program run over `old` (well under a millisecond) anyway.
    let first = TABLES[0];
    if let Ok(outer) = find_map(object, first.name()) {
        let fd = old.map(first).as_fd().as_raw_fd() as u32;
        let _ = outer.update(&old.slot.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY);
    }
    Ok(SwapTimes { flip, release: t.elapsed(), ..SwapTimes::default() })
}

/// Whether the kernel still has a map of id `id` (it goes with the map's last reference).
pub fn map_id_exists(id: u32) -> bool {
    MapHandle::from_map_id(id).is_ok()
}

/// Whether going from `old` to `new` prefixes by `changes` is a full reload.
pub fn large_change(changes: usize, old: usize, new: usize, min_changes: usize) -> bool {
    changes >= min_changes && changes.saturating_mul(4) >= old.max(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::SWAP_MIN_CHANGES;

    #[test]
    fn only_a_large_share_of_the_set_is_a_full_reload() {
        assert!(!large_change(1000, 1_000_000, 1_000_000, SWAP_MIN_CHANGES));
        assert!(!large_change(100_000, 1_000_000, 1_000_000, SWAP_MIN_CHANGES));
        assert!(large_change(250_000, 1_000_000, 900_000, SWAP_MIN_CHANGES));
        assert!(!large_change(10, 10, 10, SWAP_MIN_CHANGES), "small sets always go in place");
        assert!(large_change(10, 10, 10, 1));
        assert_eq!(TABLES.iter().enumerate().filter(|(i, t)| **t as usize != *i).count(), 0);
    }
}
