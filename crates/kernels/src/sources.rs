//! The CUDA C sources of the kernels, embedded at build time.

/// Helpers prepended to every source (bf16/f16 bit conversions, block
/// reductions, the online log-sum-exp state).
pub const COMMON: &str = include_str!("../kernels/common.cuh");

/// `(name, source)` of every kernel file under `kernels/`.
pub const SOURCES: &[(&str, &str)] = &[
    ("logprob.cu", include_str!("../kernels/logprob.cu")),
    ("loss.cu", include_str!("../kernels/loss.cu")),
    ("adamw.cu", include_str!("../kernels/adamw.cu")),
];

/// The full text NVRTC compiles for one source: [`COMMON`] then the file.
pub fn full_source(src: &str) -> String {
    let mut s = String::with_capacity(COMMON.len() + src.len() + 1);
    s.push_str(COMMON);
    s.push('\n');
    s.push_str(src);
    s
}
