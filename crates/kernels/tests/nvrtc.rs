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

/// The ptxas to assemble with: `$FLOWRL_PTXAS`, else `ptxas` on the `PATH`,
/// else the CUDA toolkit's; `None` when none runs.
#[cfg(feature = "cuda")]
fn ptxas() -> Option<std::path::PathBuf> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("FLOWRL_PTXAS") {
        candidates.push(p.into());
    }
    candidates.push("ptxas".into());
    candidates.push("/usr/local/cuda/bin/ptxas".into());
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// What `ptxas -v` reports for one entry function.
#[derive(Debug, Default, Clone, PartialEq)]
struct Resources {
    registers: u32,
    spill_bytes: u32,
    shared_bytes: u32,
}

/// Parses `ptxas -v` output into each entry function's resources.
fn parse_ptxas(report: &str) -> std::collections::BTreeMap<String, Resources> {
    fn number_before(line: &str, unit: &str) -> Option<u32> {
        let head = &line[..line.find(unit)?];
        head.split(|c: char| !c.is_ascii_digit())
            .rfind(|w| !w.is_empty())?
            .parse()
            .ok()
    }
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            out.insert(name.clone(), Resources::default());
            current = Some(name);
            continue;
        }
        let Some(r) = current.as_ref().and_then(|n| out.get_mut(n)) else {
            continue;
        };
        if line.contains("spill stores") {
            r.spill_bytes += number_before(line, " bytes spill stores").unwrap_or(0)
                + number_before(line, " bytes spill loads").unwrap_or(0);
        }
        if let Some(n) = number_before(line, " registers") {
            r.registers = n;
        }
        if let Some(n) = number_before(line, " bytes smem") {
            r.shared_bytes = n;
        }
    }
    out
}

#[test]
fn ptxas_report_is_parsed() {
    let report = "ptxas info    : 0 bytes gmem\n\
        ptxas info    : Compiling entry function 'logprob_fwd' for 'sm_90'\n\
        ptxas info    : Function properties for logprob_fwd\n    \
        0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
        ptxas info    : Used 32 registers, used 1 barriers, 384 bytes smem\n\
        ptxas info    : Compiling entry function 'copy16' for 'sm_90'\n\
        ptxas info    : Function properties for copy16\n    \
        0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
        ptxas info    : Used 10 registers, used 0 barriers, 376 bytes cmem[0]\n";
    let r = parse_ptxas(report);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r["logprob_fwd"],
        Resources {
            registers: 32,
            spill_bytes: 12,
            shared_bytes: 384
        }
    );
    assert_eq!(
        r["copy16"],
        Resources {
            registers: 10,
            spill_bytes: 0,
            shared_bytes: 0
        }
    );
}

/// Every kernel assembles to machine code for sm_80 and sm_90 and fits the
/// largest block the backend launches: registers × threads within the SM's
/// 64 Ki registers (else the launch fails with "too many resources
/// requested", which no emulation shows), static shared memory within
/// 48 KiB, and no register spills. Needs NVRTC and ptxas (no GPU); skips
/// with a message otherwise. ptxas comes with the CUDA toolkit, or from PyPI:
/// `pip download --no-deps "nvidia-cuda-nvcc>=13"` holds `nvidia/cu13/bin/ptxas`
/// (set `FLOWRL_PTXAS` to it).
#[cfg(feature = "cuda")]
#[test]
fn ptxas_fits_every_kernel_into_the_launch_block() {
    use flowrl_kernels::cuda;
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let Some(ptxas) = ptxas() else {
        eprintln!("skipping: no ptxas (set FLOWRL_PTXAS, or put the CUDA toolkit's on the PATH)");
        return;
    };
    let threads = cuda::MAX_BLOCK_THREADS;
    let dir = std::env::temp_dir().join(format!("flowrl-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (sm, arch) in [(80, "compute_80"), (90, "compute_90")] {
        let ptx = cuda::compile_all(Some(arch)).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for (name, text) in &ptx {
            let file = dir.join(format!("{name}.{sm}.ptx"));
            std::fs::write(&file, text).unwrap();
            let out = std::process::Command::new(&ptxas)
                .args([format!("-arch=sm_{sm}").as_str(), "-v", "-o"])
                .arg(dir.join("out.cubin"))
                .arg(&file)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ptxas sm_{sm} {name}:\n{report}");
            let found = parse_ptxas(&report);
            let (_, functions) = cuda::FUNCTIONS
                .iter()
                .find(|(source, _)| source == name)
                .unwrap_or_else(|| panic!("{name} is not in cuda::FUNCTIONS"));
            for f in *functions {
                let r = found.get(*f).unwrap_or_else(|| {
                    panic!("sm_{sm} {name}: no ptxas report for {f}:\n{report}")
                });
                eprintln!(
                    "sm_{sm} {f}: {} registers, {} bytes shared, {} bytes spilled",
                    r.registers, r.shared_bytes, r.spill_bytes
                );
                assert!(
                    r.registers * threads <= 65_536,
                    "sm_{sm} {f}: {} registers × {threads} threads exceed the SM's 65,536",
                    r.registers
                );
                assert!(r.shared_bytes <= 48 * 1024, "sm_{sm} {f}: {r:?}");
                assert_eq!(r.spill_bytes, 0, "sm_{sm} {f} spills registers: {r:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
