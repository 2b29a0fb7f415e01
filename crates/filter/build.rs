//! Builds the XDP program and its libbpf skeleton when the `xdp` feature is on and clang is
//! present; otherwise sets `rampart_no_bpf`, and the XDP layer reports itself unavailable at
//! run time instead of failing the build.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rampart_no_bpf)");
    println!("cargo::rerun-if-changed=bpf/rampart.bpf.c");
    println!("cargo::rerun-if-changed=bpf/rampart.h");
    println!("cargo::rerun-if-env-changed=CLANG");
    #[cfg(feature = "xdp")]
    build_bpf();
}

#[cfg(feature = "xdp")]
fn build_bpf() {
    use std::path::PathBuf;
    use std::process::Command;

    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let clang_works = Command::new(&clang).arg("--version").output().is_ok_and(|o| o.status.success());
    if !clang_works {
        println!("cargo::warning=clang not found ({clang}): building without the XDP program");
        println!("cargo::rustc-cfg=rampart_no_bpf");
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch_include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let result = libbpf_cargo::SkeletonBuilder::new()
        .source("bpf/rampart.bpf.c")
        .clang(&clang)
        .clang_args(["-O2", "-g", "-Wall", "-Werror", "-Ibpf", arch_include.as_str()])
        .obj(out.join("rampart.bpf.o"))
        .build();
    if let Err(error) = result {
        panic!("building bpf/rampart.bpf.c failed: {error:#}");
    }
}
