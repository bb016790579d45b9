//! Element-wise update loops and reductions over `f32` slices.
//!
//! Large slices are cut into fixed chunks of [`CHUNK`] elements. With the
//! `parallel` feature the chunks of a slice of at least [`PAR_MIN`] elements
//! run on rayon's pool. Updates are element-wise and reductions combine the
//! per-chunk partial sums in chunk order, so results are bit-identical with
//! and without the feature and for any number of threads.

/// Elements per work unit (128 KiB of `f32` per stream).
pub(crate) const CHUNK: usize = 1 << 15;
/// Slices shorter than this are processed on the calling thread.
#[cfg(feature = "parallel")]
pub(crate) const PAR_MIN: usize = 1 << 17;

/// Per-step scalars of the AdamW update, precomputed in `f64` and rounded
/// once to `f32`. Other implementations of the update (the fused GPU kernel
/// of `flowrl-kernels`) take these same values, so their arithmetic matches
/// [`crate::AdamW`] bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    /// `1 − lr·weight_decay`: the decoupled decay factor.
    pub decay: f32,
    /// β₁.
    pub beta1: f32,
    /// `1 − β₁`.
    pub one_minus_beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// `1 − β₂`.
    pub one_minus_beta2: f32,
    /// `lr / (1 − β₁ᵗ)`.
    pub step_size: f32,
    /// `1 / sqrt(1 − β₂ᵗ)`.
    pub inv_sqrt_bc2: f32,
    /// ε added to the bias-corrected `sqrt(v)`.
    pub eps: f32,
}

impl AdamScalars {
    /// Scalars for the `t`-th update (1-based) of a parameter at learning
    /// rate `lr`.
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64, t: u64) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        AdamScalars {
            decay: (1.0 - lr * weight_decay) as f32,
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            step_size: (lr / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: eps as f32,
        }
    }
}

fn adamw_serial(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let m1 = s.beta1 * *m + s.one_minus_beta1 * g;
        let v1 = s.beta2 * *v + s.one_minus_beta2 * (g * g);
        let denom = v1.sqrt() * s.inv_sqrt_bc2 + s.eps;
        *m = m1;
        *v = v1;
        *p = *p * s.decay - s.step_size * (m1 / denom);
    }
}

/// One AdamW update of `p` in place with the moments `m`, `v` and the
/// gradient `g`; all four slices must have the same length (shorter ones
/// are zipped: the extra elements are left untouched). Splits long slices
/// over rayon's pool with the `parallel` feature.
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamScalars) {
    #[cfg(feature = "parallel")]
    if p.len() >= PAR_MIN {
        use rayon::prelude::*;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| adamw_serial(p, g, m, v, s));
        return;
    }
    for (((p, g), m), v) in p
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .zip(m.chunks_mut(CHUNK))
        .zip(v.chunks_mut(CHUNK))
    {
        adamw_serial(p, g, m, v, s);
    }
}

/// Per-step scalars of the SGD update.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SgdScalars {
    pub lr: f32,
    /// Coupled L2 coefficient added to the gradient.
    pub weight_decay: f32,
    pub momentum: f32,
    /// `1 − dampening`.
    pub one_minus_dampening: f32,
    pub nesterov: bool,
    /// The momentum buffer is empty and is initialised to the gradient.
    pub first: bool,
}

fn sgd_serial(p: &mut [f32], g: &[f32], buf: Option<&mut [f32]>, s: &SgdScalars) {
    match buf {
        None => {
            for (p, &g) in p.iter_mut().zip(g) {
                let d = g + s.weight_decay * *p;
                *p -= s.lr * d;
            }
        }
        Some(buf) => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                let d = g + s.weight_decay * *p;
                let b1 = if s.first {
                    d
                } else {
                    s.momentum * *b + s.one_minus_dampening * d
                };
                *b = b1;
                let step = if s.nesterov { d + s.momentum * b1 } else { b1 };
                *p -= s.lr * step;
            }
        }
    }
}

/// One SGD update of `p` in place; `buf` is the momentum buffer, if any.
pub(crate) fn sgd(p: &mut [f32], g: &[f32], buf: Option<&mut [f32]>, s: &SgdScalars) {
    #[cfg(feature = "parallel")]
    if p.len() >= PAR_MIN {
        use rayon::prelude::*;
        match buf {
            Some(buf) => p
                .par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(buf.par_chunks_mut(CHUNK))
                .for_each(|((p, g), b)| sgd_serial(p, g, Some(b), s)),
            None => p
                .par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .for_each(|(p, g)| sgd_serial(p, g, None, s)),
        }
        return;
    }
    sgd_serial(p, g, buf, s);
}

fn chunk_sum_sq(x: &[f32]) -> f64 {
    // Eight independent lanes: the compiler maps them onto SIMD registers
    // and the adds stay pipelined. Lanes combine in a fixed order, so the
    // result is deterministic.
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let mut blocks = x.chunks_exact(LANES);
    for b in &mut blocks {
        for i in 0..LANES {
            let v = f64::from(b[i]);
            acc[i] += v * v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(blocks.remainder()) {
        let v = f64::from(v);
        *a += v * v;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Sum of squares of `x`, accumulated in `f64`.
pub(crate) fn sum_sq(x: &[f32]) -> f64 {
    #[cfg(feature = "parallel")]
    if x.len() >= PAR_MIN {
        use rayon::prelude::*;
        let partial: Vec<f64> = x.par_chunks(CHUNK).map(chunk_sum_sq).collect();
        return partial.iter().sum();
    }
    x.chunks(CHUNK).map(chunk_sum_sq).sum()
}

/// Multiplies every element of `x` by `c`.
pub(crate) fn scale(x: &mut [f32], c: f32) {
    #[cfg(feature = "parallel")]
    if x.len() >= PAR_MIN {
        use rayon::prelude::*;
        x.par_chunks_mut(CHUNK)
            .for_each(|x| x.iter_mut().for_each(|v| *v *= c));
        return;
    }
    x.iter_mut().for_each(|v| *v *= c);
}

/// Index and value of the first NaN or infinite element of `x`.
pub(crate) fn first_non_finite(x: &[f32]) -> Option<(usize, f32)> {
    #[cfg(feature = "parallel")]
    if x.len() >= PAR_MIN {
        use rayon::prelude::*;
        return x
            .par_iter()
            .position_first(|v| !v.is_finite())
            .map(|i| (i, x[i]));
    }
    x.iter().position(|v| !v.is_finite()).map(|i| (i, x[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_sq_matches_plain_f64_sum() {
        let x: Vec<f32> = (0..300_001)
            .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
            .collect();
        let plain: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let got = sum_sq(&x);
        assert!((got - plain).abs() <= 1e-9 * plain, "{got} vs {plain}");
    }

    #[test]
    fn first_non_finite_finds_the_first() {
        let mut x = vec![1.0f32; 200_000];
        assert_eq!(first_non_finite(&x), None);
        x[150_000] = f32::INFINITY;
        x[190_000] = f32::NAN;
        assert_eq!(first_non_finite(&x), Some((150_000, f32::INFINITY)));
    }
}
