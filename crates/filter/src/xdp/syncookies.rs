//! The SYN cookie mode's kernel side: whether the kernel has the raw cookie helpers, and
//! telling the program so before it is loaded.

use super::XdpError;

/// Whether XDP programs may call the kernel's raw SYN cookie helpers (all four came in the
/// same release, 6.0, so one probe stands for them).
pub(super) fn syncookie_helpers() -> bool {
    // SAFETY: libbpf_probe_bpf_helper only reads its scalar arguments and takes a null
    // options pointer; it loads and frees a probe program of its own.
    let r = unsafe {
        libbpf_sys::libbpf_probe_bpf_helper(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            libbpf_sys::BPF_FUNC_tcp_raw_gen_syncookie_ipv4,
            std::ptr::null(),
        )
    };
    r == 1
}

/// Sets the program's one constant (`have_syncookies`, the whole .rodata section).
pub(super) fn set_rodata_u32(map: &mut libbpf_rs::OpenMapMut<'_>, value: u32) -> Result<(), XdpError> {
    let name = map.name().to_string_lossy().into_owned();
    let data = map.initial_value_mut().filter(|d| d.len() >= 4).ok_or_else(|| XdpError::Bpf {
        what: format!("map {name}"),
        source: "the program's constants are missing".into(),
    })?;
    data[..4].copy_from_slice(&value.to_ne_bytes());
    Ok(())
}
