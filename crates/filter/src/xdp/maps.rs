//! Batched map writes: one `BPF_MAP_*_BATCH` system call per chunk instead of one per element.

use std::os::fd::AsRawFd;

use libbpf_rs::{MapCore, MapFlags};

use super::XdpError;

/// Elements per batch system call (bounded so one call never holds the map for long).
pub const BATCH: usize = 16_384;

pub fn bpf_error(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> XdpError {
    let what = what.into();
    move |e| XdpError::Bpf { what, source: Box::new(e) }
}

/// Writes `(key, value)` pairs in batches.
pub fn update_all<M: MapCore>(map: &M, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<usize, XdpError> {
    for chunk in entries.chunks(BATCH) {
        let keys: Vec<u8> = chunk.iter().flat_map(|(k, _)| k.iter().copied()).collect();
        let values: Vec<u8> = chunk.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        map.update_batch(&keys, &values, chunk.len() as u32, MapFlags::ANY, MapFlags::ANY).map_err(
            bpf_error(format!("writing {} elements to map {}", chunk.len(), map.name().to_string_lossy())),
        )?;
    }
    Ok(entries.len())
}

/// Deletes `keys` in batches (keys already absent are an error for the kernel, so callers
/// delete only what they wrote).
pub fn delete_all<M: MapCore>(map: &M, keys: &[Vec<u8>]) -> Result<usize, XdpError> {
    for chunk in keys.chunks(BATCH) {
        let flat: Vec<u8> = chunk.iter().flat_map(|k| k.iter().copied()).collect();
        map.delete_batch(&flat, chunk.len() as u32, MapFlags::ANY, MapFlags::ANY).map_err(bpf_error(
            format!("deleting {} elements from map {}", chunk.len(), map.name().to_string_lossy()),
        ))?;
    }
    Ok(keys.len())
}

/// Zeroes the values of `keys` (u32 indexes) of per-CPU map `map` (values of `value_size`
/// bytes, `cpus` of them each) in batches: one system call per chunk where a per-element
/// update is one per key. libbpf-rs's `update_batch` takes one value per key, not a per-CPU
/// set, so this calls libbpf directly.
pub fn zero_percpu<M: MapCore>(
    map: &M,
    keys: &[u32],
    value_size: usize,
    cpus: usize,
) -> Result<usize, XdpError> {
    // The kernel lays out per-CPU values rounded up to 8 bytes, one after another.
    let per_key = value_size.div_ceil(8) * 8 * cpus;
    let zeros = vec![0u8; per_key * BATCH.min(keys.len())];
    for chunk in keys.chunks(BATCH) {
        let flat: Vec<u8> = chunk.iter().flat_map(|k| k.to_ne_bytes()).collect();
        let mut count = chunk.len() as u32;
        let opts = libbpf_sys::bpf_map_batch_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as libbpf_sys::size_t,
            elem_flags: MapFlags::ANY.bits(),
            // `flags` 0, and any padding fields of other platforms zeroed.
            ..Default::default()
        };
        // SAFETY: `flat` holds `count` keys of 4 bytes (the map's key size) and `zeros` at
        // least `count` per-CPU values laid out as the kernel reads them (`per_key` bytes
        // each); both outlive the call, which reads them and writes only `count`.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_batch(
                map.as_fd().as_raw_fd(),
                flat.as_ptr().cast(),
                zeros.as_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        if rc != 0 {
            return Err(bpf_error(format!(
                "resetting the counters of {} rules in map {}",
                chunk.len(),
                map.name().to_string_lossy()
            ))(libbpf_rs::Error::from_raw_os_error(-rc)));
        }
    }
    Ok(keys.len())
}
