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
    for ((xr, yr), r) in x
        .chunks_exact(w)
        .zip(y.chunks_exact_mut(w))
        .zip(inv.iter_mut())
    {
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
        matmul(
            Mat::new(dy, n, o).t(),
            Mat::new(x, n, i),
            &mut lin.weight.grad,
            true,
        );
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
        matmul(
            Mat::new(dy, n, o),
            Mat::new(&l.b.value, o, r),
            &mut u,
            false,
        );
        u.iter_mut().for_each(|v| *v *= l.scale);
        matmul(Mat::new(&u, n, r), Mat::new(&l.a.value, r, i), dx, true);
        l.a.ensure_grad();
        matmul(
            Mat::new(&u, n, r).t(),
            Mat::new(x, n, i),
            &mut l.a.grad,
            true,
        );
        let mut xa = vec![T::ZERO; n * r];
        matmul(
            Mat::new(x, n, i),
            Mat::new(&l.a.value, r, i).t(),
            &mut xa,
            false,
        );
        xa.iter_mut().for_each(|v| *v *= l.scale);
        l.b.ensure_grad();
        matmul(
            Mat::new(dy, n, o).t(),
            Mat::new(&xa, n, r),
            &mut l.b.grad,
            true,
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{LoraAdapter, Param};

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut z = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                z = z
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((z >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    /// Central differences of `f` at `x`, compared with `grad`.
    fn fd_check(x: &mut [f64], grad: &[f64], f: &dyn Fn(&[f64]) -> f64) {
        let h = 1e-6;
        for i in 0..x.len() {
            let o = x[i];
            x[i] = o + h;
            let up = f(x);
            x[i] = o - h;
            let down = f(x);
            x[i] = o;
            let fd = (up - down) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() <= 1e-8 + 1e-6 * fd.abs(),
                "[{i}]: {} vs {fd}",
                grad[i]
            );
        }
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn rmsnorm_backward_matches_finite_differences() {
        let (rows, w) = (3, 5);
        let mut x = noise(rows * w, 1);
        let mut weight: Vec<f64> = noise(w, 2).iter().map(|v| 1.0 + v).collect();
        let c = noise(rows * w, 3);
        let (_, inv) = rmsnorm(&x, &weight, 1e-6);
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w];
        rmsnorm_backward(&x, &weight, &inv, &c, &mut dx, Some(&mut dw));
        let wc = weight.clone();
        fd_check(&mut x, &dx, &|x| dot(&rmsnorm(x, &wc, 1e-6).0, &c));
        let xc = x.clone();
        fd_check(&mut weight, &dw, &|w| dot(&rmsnorm(&xc, w, 1e-6).0, &c));
    }

    #[test]
    fn rope_backward_is_the_inverse_rotation() {
        let (heads, hd) = (2, 6);
        let rope = RopeTable::<f64>::new([0usize, 3, 17].into_iter(), hd, 100.0);
        let mut x = noise(3 * heads * hd, 4);
        let c = noise(x.len(), 5);
        let mut g = c.clone();
        rope.apply(&mut g, heads, true);
        let f = |x: &[f64]| {
            let mut y = x.to_vec();
            rope.apply(&mut y, heads, false);
            dot(&y, &c)
        };
        fd_check(&mut x, &g, &f);
        // Position 0 is the identity; the rotation keeps norms.
        let mut y = x.clone();
        rope.apply(&mut y, heads, false);
        assert_eq!(&y[..heads * hd], &x[..heads * hd]);
        assert!((dot(&y, &y) - dot(&x, &x)).abs() < 1e-12);
    }

    #[test]
    fn linear_with_adapter_backward_matches_finite_differences() {
        let (n, i, o, r) = (3, 4, 5, 2);
        let mk = |name: &str, shape: Vec<usize>, seed| Param {
            name: name.into(),
            value: noise(shape.iter().product(), seed),
            shape,
            grad: Vec::new(),
        };
        let mut lin = Linear {
            weight: mk("w", vec![o, i], 6),
            bias: Some(mk("b", vec![o], 7)),
            lora: Some(LoraAdapter {
                a: mk("a", vec![r, i], 8),
                b: mk("bb", vec![o, r], 9),
                rank: r,
                scale: 1.5,
            }),
            out_features: o,
            in_features: i,
        };
        let mut x = noise(n * i, 10);
        let c = noise(n * o, 11);
        let mut dx = vec![0.0; n * i];
        linear_backward(&mut lin, &x, &c, n, &mut dx, true);
        let l0 = lin.clone();
        fd_check(&mut x, &dx, &|x| dot(&linear_forward(&l0, x, n), &c));
        let grads = [
            lin.weight.grad.clone(),
            lin.bias
                .as_ref()
                .map(|b| b.grad.clone())
                .unwrap_or_default(),
            lin.lora
                .as_ref()
                .map(|l| l.a.grad.clone())
                .unwrap_or_default(),
            lin.lora
                .as_ref()
                .map(|l| l.b.grad.clone())
                .unwrap_or_default(),
        ];
        for (which, g) in grads.iter().enumerate() {
            let base = lin.clone();
            let mut vals = field(&mut base.clone(), which).clone();
            fd_check(&mut vals, g, &|v| {
                let mut l = base.clone();
                field(&mut l, which).copy_from_slice(v);
                dot(&linear_forward(&l, &x, n), &c)
            });
        }
    }

    fn field(l: &mut Linear<f64>, which: usize) -> &mut Vec<f64> {
        match (which, &mut l.bias, &mut l.lora) {
            (1, Some(b), _) => &mut b.value,
            (2, _, Some(a)) => &mut a.a.value,
            (3, _, Some(a)) => &mut a.b.value,
            _ => &mut l.weight.value,
        }
    }

    #[test]
    fn head_attention_is_causal_and_normalised() {
        let (lq, hd, past) = (3, 4, 2);
        let q = noise(lq * hd, 12);
        let k = noise((past + lq) * hd, 13);
        let v = noise((past + lq) * hd, 14);
        let (_, p) = head_attention(
            Mat::new(&q, lq, hd),
            Mat::new(&k, past + lq, hd),
            Mat::new(&v, past + lq, hd),
            past,
            0.5,
        );
        for (i, row) in p.chunks(past + lq).enumerate() {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(row[past + i + 1..].iter().all(|&x| x == 0.0));
            assert!(row[..=past + i].iter().all(|&x| x > 0.0));
        }
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
