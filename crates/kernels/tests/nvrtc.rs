//! Every kernel source compiles with NVRTC (no GPU or driver needed, only
//! libnvrtc). Skips with a message when libnvrtc cannot be loaded, or when
//! the one loaded is the emulated NVRTC of `crates/kernels/emu`, which passes
//! the CUDA source through instead of emitting PTX.

/// Whether the loaded libnvrtc is the emulated one (its output starts with
/// the emulator's marker line).
#[cfg(feature = "cuda")]
fn emulated_nvrtc() -> bool {
    let (name, src) = flowrl_kernels::sources::SOURCES[2];
    flowrl_kernels::cuda::compile_source(name, src, None)
        .is_ok_and(|p| p.to_src().starts_with("// flowrl-cuda-emu source"))
}

/// `Some(reason)` when the PTX checks cannot run here.
#[cfg(feature = "cuda")]
fn skip_reason() -> Option<&'static str> {
    if !flowrl_kernels::cuda::nvrtc_present() {
        Some("libnvrtc not found (set LD_LIBRARY_PATH to a CUDA lib folder)")
    } else if emulated_nvrtc() {
        Some("the loaded libnvrtc is the emulated one, which emits no PTX")
    } else {
        None
    }
}

#[cfg(feature = "cuda")]
#[test]
fn nvrtc_compiles_every_kernel() {
    use flowrl_kernels::cuda;
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    for arch in [None, Some("compute_80"), Some("compute_90")] {
        let ptx = match cuda::compile_all(arch) {
            Ok(p) => p,
            Err(e) => panic!("arch {arch:?}: {e}"),
        };
        for (name, text) in &ptx {
            assert!(
                text.contains(".entry"),
                "{name}: no kernel entry in the PTX"
            );
        }
        eprintln!(
            "arch {arch:?}: compiled {} sources, {} PTX bytes",
            ptx.len(),
            ptx.iter().map(|p| p.1.len()).sum::<usize>()
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn nvrtc_compiles_every_kernel() {
    eprintln!("skipping: built without the `cuda` feature");
}

#[cfg(feature = "cuda")]
#[test]
fn ptx_cache_round_trip() {
    use flowrl_kernels::{cuda, sources::SOURCES};
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("flowrl-ptx-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (name, src) = SOURCES[2];
    let (a, cached) = cuda::compile_cached(name, src, Some("compute_90"), Some(&dir)).unwrap();
    assert!(!cached);
    let (b, cached) = cuda::compile_cached(name, src, Some("compute_90"), Some(&dir)).unwrap();
    assert!(cached, "second call reads the cache");
    assert_eq!(a.to_src(), b.to_src());
    // Another architecture is another file.
    let (_, cached) = cuda::compile_cached(name, src, Some("compute_80"), Some(&dir)).unwrap();
    assert!(!cached);
    let _ = std::fs::remove_dir_all(&dir);
}
