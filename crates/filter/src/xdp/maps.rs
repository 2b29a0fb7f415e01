//! Batched map writes: one `BPF_MAP_*_BATCH` system call per chunk instead of one per element.

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
