//! Element-wise building blocks shared by the forward and backward passes:
//! RMSNorm, RoPE, SiLU, masked softmax attention for one head, and the
//! linear layer with its optional adapter.

use crate::float::{Float, Mat, matmul};
use crate::weights::Linear;

/// RMSNorm over rows of width `w`: `y = x · r · weight` with
/// `r = (mean(x²) + ε)^{-1/2}`. Returns `y` and `r` per row.
pub(crate) fn rmsnorm<T: Float>(x: &[T], weight: &[T], eps: T) -> (Vec<T>, Vec<T>) {
    let w = weight.len();
    let rows = x.len() / w;
    let mut y = vec![T::ZERO; x.len()];
    let mut inv = vec![T::ZERO; rows];
    let wf = T::from_f64(w as f64);
    for ((xr, yr), r) in x.chunks_exact(w).zip(y.chunks_exact_mut(w)).zip(inv.iter_mut()) {
        let ms = xr.iter().map(|&v| v * v).sum::<T>() / wf;
        *r = T::ONE / (ms + eps).sqrt();
        for ((yo, &xi), &gi) in yr.iter_mut().zip(xr).zip(weight) {
            *yo = xi * *r * gi;
        }
    }
    (y, inv)
}

/// Backward of [`rmsnorm`]: adds ∂J/∂x to `dx` and ∂J/∂weight to `dweight`
/// (when given) from `dy`.
pub(crate) fn rmsnorm_backward<T: Float>(
    x: &[T],
    weight: &[T],
    inv: &[T],
    dy: &[T],
    dx: &mut [T],
    mut dweight: Option<&mut [T]>,
) {
    let w = weight.len();
    let wf = T::from_f64(w as f64);
    for (row, r) in inv.iter().enumerate() {
        let xr = &x[row * w..(row + 1) * w];
        let dyr = &dy[row * w..(row + 1) * w];
        let dxr = &mut dx[row * w..(row + 1) * w];
        let r = *r;
        let mut dot = T::ZERO;
        for i in 0..w {
            dot += dyr[i] * weight[i] * xr[i];
        }
        let c = r * r * r * dot / wf;
        for i in 0..w {
            dxr[i] += r * dyr[i] * weight[i] - xr[i] * c;
        }
        if let Some(dw) = dweight.as_deref_mut() {
            for i in 0..w {
                dw[i] += dyr[i] * xr[i] * r;
            }
        }
    }
}

/// cos/sin of RoPE angles `pos · θ^{−2i/hd}` for every token, `[N, hd/2]` each.
pub(crate) struct RopeTable<T> {
    pub cos: Vec<T>,
    pub sin: Vec<T>,
    pub half: usize,
}

impl<T: Float> RopeTable<T> {
    pub fn new(positions: impl Iterator<Item = usize>, head_dim: usize, theta: f64) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| theta.powf(-(2.0 * i as f64) / head_dim as f64))
            .collect();
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for pos in positions {
            for f in &inv_freq {
                let a = pos as f64 * f;
                cos.push(T::from_f64(a.cos()));
                sin.push(T::from_f64(a.sin()));
            }
        }
        RopeTable { cos, sin, half }
    }

    /// Rotates every head of token rows `x` (`[N, heads·hd]`) in place; the
    /// inverse rotation (the transpose, used by backward) when `inverse`.
    pub fn apply(&self, x: &mut [T], heads: usize, inverse: bool) {
        let half = self.half;
        let hd = 2 * half;
        let width = heads * hd;
        for (t, row) in x.chunks_exact_mut(width).enumerate() {
            let c = &self.cos[t * half..(t + 1) * half];
            let s = &self.sin[t * half..(t + 1) * half];
            for head in row.chunks_exact_mut(hd) {
                let (a, b) = head.split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    let si = if inverse { -s[i] } else { s[i] };
                    a[i] = x1 * c[i] - x2 * si;
                    b[i] = x2 * c[i] + x1 * si;
                }
            }
        }
    }
}

/// σ(x) computed without overflow.
#[inline]
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// One attention head over one row: queries `q` `[Lq, hd]`, keys and values
/// `[past + Lq, hd]`; query `i` sees keys `0..=past + i`. Returns the output
/// `[Lq, hd]` and the probabilities `[Lq, past + Lq]` (zero where masked).
pub(crate) fn head_attention<T: Float>(
    q: Mat<'_, T>,
    k: Mat<'_, T>,
    v: Mat<'_, T>,
    past: usize,
    scale: T,
) -> (Vec<T>, Vec<T>) {
    let (lq, hd, lk) = (q.rows, q.cols, k.rows);
    let mut p = vec![T::ZERO; lq * lk];
    matmul(q, k.t(), &mut p, false);
    for (i, row) in p.chunks_exact_mut(lk).enumerate() {
        let visible = (past + i + 1).min(lk);
        let mut m = T::NEG_INFINITY;
        for s in &mut row[..visible] {
            *s *= scale;
            m = m.max(*s);
        }
        let mut sum = T::ZERO;
        for s in &mut row[..visible] {
            *s = (*s - m).exp();
            sum += *s;
        }
        let inv = T::ONE / sum;
        for s in &mut row[..visible] {
            *s *= inv;
        }
        for s in &mut row[visible..] {
            *s = T::ZERO;
        }
    }
    let mut o = vec![T::ZERO; lq * hd];
    matmul(Mat::new(&p, lq, lk), v, &mut o, false);
    (o, p)
}

/// `y = x Wᵀ + b + s·(x Aᵀ) Bᵀ` for `n` rows of `x`.
pub(crate) fn linear_forward<T: Float>(lin: &Linear<T>, x: &[T], n: usize) -> Vec<T> {
    let mut y = vec![T::ZERO; n * lin.out_features];
    matmul(
        Mat::new(x, n, lin.in_features),
        Mat::new(&lin.weight.value, lin.out_features, lin.in_features).t(),
        &mut y,
        false,
    );
    if let Some(b) = &lin.bias {
        for row in y.chunks_exact_mut(lin.out_features) {
            for (yo, &bi) in row.iter_mut().zip(&b.value) {
                *yo += bi;
            }
        }
    }
    if let Some(l) = &lin.lora {
        let mut xa = vec![T::ZERO; n * l.rank];
        matmul(
            Mat::new(x, n, lin.in_features),
            Mat::new(&l.a.value, l.rank, lin.in_features).t(),
            &mut xa,
            false,
        );
        xa.iter_mut().for_each(|v| *v *= l.scale);
        matmul(
            Mat::new(&xa, n, l.rank),
            Mat::new(&l.b.value, lin.out_features, l.rank).t(),
            &mut y,
            true,
        );
    }
    y
}

/// Backward of [`linear_forward`]: adds ∂J/∂x to `dx` (`[n, in]`) and, when
/// `base` / an adapter is present and `adapters`, the weight gradients.
pub(crate) fn linear_backward<T: Float>(
    lin: &mut Linear<T>,
    x: &[T],
    dy: &[T],
    n: usize,
    dx: &mut [T],
    base: bool,
) {
    let (o, i) = (lin.out_features, lin.in_features);
    matmul(
        Mat::new(dy, n, o),
        Mat::new(&lin.weight.value, o, i),
        dx,
        true,
    );
    if base {
        lin.weight.ensure_grad();
        matmul(Mat::new(dy, n, o).t(), Mat::new(x, n, i), &mut lin.weight.grad, true);
        if let Some(b) = &mut lin.bias {
            b.ensure_grad();
            for row in dy.chunks_exact(o) {
                for (g, &d) in b.grad.iter_mut().zip(row) {
                    *g += d;
                }
            }
        }
    }
    if let Some(l) = &mut lin.lora {
        let r = l.rank;
        // u = s · dy B, [n, r]; dx += u A; dA += uᵀ x; dB += s · dyᵀ (x Aᵀ).
        let mut u = vec![T::ZERO; n * r];
        matmul(Mat::new(dy, n, o), Mat::new(&l.b.value, o, r), &mut u, false);
        u.iter_mut().for_each(|v| *v *= l.scale);
        matmul(Mat::new(&u, n, r), Mat::new(&l.a.value, r, i), dx, true);
        l.a.ensure_grad();
        matmul(Mat::new(&u, n, r).t(), Mat::new(x, n, i), &mut l.a.grad, true);
        let mut xa = vec![T::ZERO; n * r];
        matmul(Mat::new(x, n, i), Mat::new(&l.a.value, r, i).t(), &mut xa, false);
        xa.iter_mut().for_each(|v| *v *= l.scale);
        l.b.ensure_grad();
        matmul(Mat::new(dy, n, o).t(), Mat::new(&xa, n, r), &mut l.b.grad, true);
    }
}

/// log Σ exp over a slice, stable.
pub(crate) fn log_sum_exp<T: Float>(row: &[T]) -> T {
    let m = row.iter().fold(T::NEG_INFINITY, |a, &b| a.max(b));
    if !m.is_finite() {
        return m;
    }
    let s: T = row.iter().map(|&v| (v - m).exp()).sum();
    m + s.ln()
}
