//! Every kernel source compiles with NVRTC (no GPU or driver needed, only
//! libnvrtc). Skips with a message when libnvrtc cannot be loaded.

#[cfg(feature = "cuda")]
#[test]
fn nvrtc_compiles_every_kernel() {
    use flowrl_kernels::cuda;
    if !cuda::nvrtc_present() {
        eprintln!("skipping: libnvrtc not found (set LD_LIBRARY_PATH to a CUDA lib folder)");
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
