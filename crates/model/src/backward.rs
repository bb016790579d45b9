//! The hand-written backward pass: from ∂J/∂lp per position (what
//! `flowrl-objectives` returns) to gradients of every trainable weight.

use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::float::{Float, Mat, map_tasks, matmul};
use crate::forward::{
    Activations, LayerActs, Support, check_tokens, head_chunk_rows, nucleus, strided,
};
use crate::ops::{RopeTable, head_attention, linear_backward, rmsnorm_backward, sigmoid};
use crate::weights::{GradMode, Layer, Model, Param};

/// RMSNorm backward into `dx`, with the weight gradient when `full`.
fn norm_backward<T: Float>(
    p: &mut Param<T>,
    x: &[T],
    inv: &[T],
    dy: &[T],
    dx: &mut [T],
    full: bool,
) {
    if full {
        p.ensure_grad();
        let Param { value, grad, .. } = p;
        rmsnorm_backward(x, value, inv, dy, dx, Some(grad));
    } else {
        rmsnorm_backward(x, &p.value, inv, dy, dx, None);
    }
}

/// Gradients of causal row attention with respect to rotated `q`, `k` and
/// `v`, recomputing the probabilities.
fn attention_backward<T: Float>(
    cfg: &ModelConfig,
    a: &LayerActs<T>,
    dattn: &[T],
    rows: &[(usize, usize)],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (h, hd) = (cfg.num_attention_heads, cfg.head_dim);
    let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
    let group = h / cfg.num_key_value_heads;
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    let tasks: Vec<(usize, usize)> = rows
        .iter()
        .enumerate()
        .filter(|(_, (s, e))| e > s)
        .flat_map(|(r, _)| (0..h).map(move |head| (r, head)))
        .collect();
    let work = 4 * h * hd * rows.iter().map(|(s, e)| (e - s) * (e - s)).sum::<usize>();
    let parts: Vec<(Vec<T>, Vec<T>, Vec<T>)> = map_tasks(&tasks, work, |&(r, head)| {
        let (s, e) = rows[r];
        let len = e - s;
        let kvh = head / group;
        let qm = strided(&a.q, s, head * hd, len, hd, qd);
        let km = strided(&a.k, s, kvh * hd, len, hd, kvd);
        let vm = strided(&a.v, s, kvh * hd, len, hd, kvd);
        let dom = strided(dattn, s, head * hd, len, hd, qd);
        let (_, p) = head_attention(qm, km, vm, 0, scale);
        let pm = Mat::new(&p, len, len);
        let mut dv = vec![T::ZERO; len * hd];
        matmul(pm.t(), dom, &mut dv, false);
        let mut ds = vec![T::ZERO; len * len];
        matmul(dom, vm.t(), &mut ds, false);
        for (dsr, pr) in ds.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
            let dot: T = dsr.iter().zip(pr).map(|(&x, &y)| x * y).sum();
            for (x, &y) in dsr.iter_mut().zip(pr) {
                *x = y * (*x - dot) * scale;
            }
        }
        let dsm = Mat::new(&ds, len, len);
        let mut dq = vec![T::ZERO; len * hd];
        matmul(dsm, km, &mut dq, false);
        let mut dk = vec![T::ZERO; len * hd];
        matmul(dsm.t(), qm, &mut dk, false);
        (dq, dk, dv)
    });
    let n = a.q.len() / qd;
    let mut dq = vec![T::ZERO; n * qd];
    let mut dk = vec![T::ZERO; n * kvd];
    let mut dv = vec![T::ZERO; n * kvd];
    for (&(r, head), (pq, pk, pv)) in tasks.iter().zip(&parts) {
        let s = rows[r].0;
        let kvh = head / group;
        for i in 0..pq.len() / hd {
            let src = i * hd..(i + 1) * hd;
            let qb = (s + i) * qd + head * hd;
            dq[qb..qb + hd].copy_from_slice(&pq[src.clone()]);
            let kb = (s + i) * kvd + kvh * hd;
            for j in 0..hd {
                dk[kb + j] += pk[i * hd + j];
                dv[kb + j] += pv[i * hd + j];
            }
        }
    }
    (dq, dk, dv)
}

/// Backward through one decoder layer: `dx` is ∂J/∂(layer output); returns
/// ∂J/∂(layer input) and accumulates weight gradients.
fn layer_backward<T: Float>(
    layer: &mut Layer<T>,
    cfg: &ModelConfig,
    a: &LayerActs<T>,
    rope: &RopeTable<T>,
    rows: &[(usize, usize)],
    dx: Vec<T>,
    full: bool,
) -> Vec<T> {
    let d = cfg.hidden_size;
    let n = dx.len() / d;
    let inter = cfg.intermediate_size;
    // MLP.
    let mut dact = vec![T::ZERO; n * inter];
    linear_backward(&mut layer.down_proj, &a.act, &dx, n, &mut dact, full);
    let mut dg = vec![T::ZERO; n * inter];
    let mut du = vec![T::ZERO; n * inter];
    for i in 0..n * inter {
        let g = a.g[i];
        let s = sigmoid(g);
        du[i] = dact[i] * g * s;
        dg[i] = dact[i] * a.u[i] * s * (T::ONE + g * (T::ONE - s));
    }
    let mut dh2 = vec![T::ZERO; n * d];
    linear_backward(&mut layer.gate_proj, &a.h2, &dg, n, &mut dh2, full);
    linear_backward(&mut layer.up_proj, &a.h2, &du, n, &mut dh2, full);
    let mut dx_mid = dx;
    norm_backward(
        &mut layer.post_norm,
        &a.x_mid,
        &a.inv2,
        &dh2,
        &mut dx_mid,
        full,
    );
    // Attention.
    let mut dattn = vec![T::ZERO; n * cfg.q_dim()];
    linear_backward(&mut layer.o_proj, &a.attn, &dx_mid, n, &mut dattn, full);
    let (mut dq, mut dk, dv) = attention_backward(cfg, a, &dattn, rows);
    rope.apply(&mut dq, cfg.num_attention_heads, true);
    rope.apply(&mut dk, cfg.num_key_value_heads, true);
    if let (Some(qn), Some(kn)) = (&mut layer.q_norm, &mut layer.k_norm) {
        let mut dq_pre = vec![T::ZERO; dq.len()];
        norm_backward(qn, &a.q_pre, &a.q_inv, &dq, &mut dq_pre, full);
        let mut dk_pre = vec![T::ZERO; dk.len()];
        norm_backward(kn, &a.k_pre, &a.k_inv, &dk, &mut dk_pre, full);
        dq = dq_pre;
        dk = dk_pre;
    }
    let mut dh1 = vec![T::ZERO; n * d];
    linear_backward(&mut layer.q_proj, &a.h1, &dq, n, &mut dh1, full);
    linear_backward(&mut layer.k_proj, &a.h1, &dk, n, &mut dh1, full);
    linear_backward(&mut layer.v_proj, &a.h1, &dv, n, &mut dh1, full);
    let mut dx_in = dx_mid;
    norm_backward(
        &mut layer.input_norm,
        &a.x_in,
        &a.inv1,
        &dh1,
        &mut dx_in,
        full,
    );
    dx_in
}

impl<T: Float> Model<T> {
    /// Accumulates into the gradients of `mode`'s parameters the gradient
    /// of `J` given `dlp[t] = ∂J/∂lp_t` for the log-probs returned by the
    /// [`forward_train`](Model::forward_train) call that produced `acts`.
    ///
    /// Gradients add up over calls (zero them with [`Model::zero_grad`]);
    /// positions with `dlp = 0` cost nothing in the LM head. In
    /// [`GradMode::Lora`] only adapter gradients are written.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] when `dlp` or `acts` does not fit this
    /// model; [`ModelError::NothingToTrain`] for [`GradMode::Lora`] without
    /// adapters.
    pub fn backward(
        &mut self,
        acts: &Activations<T>,
        dlp: &[T],
        mode: GradMode,
    ) -> Result<(), ModelError> {
        self.validate()?;
        let cfg = self.config.clone();
        let (d, vocab) = (cfg.hidden_size, cfg.vocab_size);
        let n = acts.tokens.len();
        if dlp.len() != n || acts.targets.len() != n {
            return Err(ModelError::InvalidInput(format!(
                "{} upstream gradients for {n} positions",
                dlp.len()
            )));
        }
        let q_len = n * cfg.q_dim();
        if acts.layers.len() != self.layers.len()
            || acts.hidden.len() != n * d
            || acts
                .layers
                .iter()
                .any(|a| a.q.len() != q_len || a.x_in.len() != n * d)
            || acts.rope.cos.len() != n * cfg.head_dim / 2
        {
            return Err(ModelError::InvalidInput(
                "activations come from a model of another shape".into(),
            ));
        }
        check_tokens(&acts.tokens, vocab)?;
        check_tokens(&acts.targets, vocab)?;
        let full = mode == GradMode::Full;
        if !full
            && !self
                .layers
                .iter()
                .any(|l| l.linears().iter().any(|(_, lin)| lin.lora.is_some()))
        {
            return Err(ModelError::NothingToTrain(
                "LoRA mode but no adapter is attached".into(),
            ));
        }
        // LM head, over the positions that carry a gradient.
        let active: Vec<usize> = (0..n).filter(|&t| dlp[t] != T::ZERO).collect();
        let mut dhidden = vec![T::ZERO; n * d];
        for idx in active.chunks(head_chunk_rows(vocab)) {
            let c = idx.len();
            let mut hc = Vec::with_capacity(c * d);
            for &t in idx {
                hc.extend_from_slice(&acts.hidden[t * d..(t + 1) * d]);
            }
            let mut dlogits = self.head_logits(&hc);
            dlogits
                .par_chunks_mut(vocab)
                .zip(idx.par_iter())
                .for_each_init(
                    || (Vec::new(), Vec::new()),
                    |(order, kept), (row, &t)| {
                        let sum = match acts.support {
                            Support::Full => {
                                let m = row.iter().fold(T::NEG_INFINITY, |a, &b| a.max(b));
                                let mut sum = T::ZERO;
                                for v in row.iter_mut() {
                                    *v = (*v - m).exp();
                                    sum += *v;
                                }
                                sum
                            }
                            Support::Nucleus { top_p } => {
                                // Only the nucleus's logits get a gradient.
                                let target = acts.targets[t] as usize;
                                let (m, k, sum) = nucleus(row, target, top_p, order);
                                kept.clear();
                                kept.extend(order[..k].iter().map(|&i| (i, (row[i] - m).exp())));
                                row.fill(T::ZERO);
                                for &(i, e) in kept.iter() {
                                    row[i] = e;
                                }
                                sum
                            }
                        };
                        let g = dlp[t];
                        let f = -g / sum;
                        for v in row.iter_mut() {
                            *v *= f;
                        }
                        row[acts.targets[t] as usize] += g;
                    },
                );
            let head = match &mut self.lm_head {
                Some(p) => p,
                None => &mut self.embed,
            };
            let mut dhc = vec![T::ZERO; c * d];
            matmul(
                Mat::new(&dlogits, c, vocab),
                Mat::new(&head.value, vocab, d),
                &mut dhc,
                false,
            );
            for (k, &t) in idx.iter().enumerate() {
                dhidden[t * d..(t + 1) * d].copy_from_slice(&dhc[k * d..(k + 1) * d]);
            }
            if full {
                head.ensure_grad();
                matmul(
                    Mat::new(&dlogits, c, vocab).t(),
                    Mat::new(&hc, c, d),
                    &mut head.grad,
                    true,
                );
            }
        }
        let mut dx = vec![T::ZERO; n * d];
        norm_backward(
            &mut self.norm,
            &acts.x_last,
            &acts.inv_final,
            &dhidden,
            &mut dx,
            full,
        );
        for (layer, a) in self.layers.iter_mut().zip(&acts.layers).rev() {
            dx = layer_backward(layer, &cfg, a, &acts.rope, &acts.rows, dx, full);
        }
        if full {
            self.embed.ensure_grad();
            for (t, &tok) in acts.tokens.iter().enumerate() {
                let row = &mut self.embed.grad[tok as usize * d..(tok as usize + 1) * d];
                for (g, &v) in row.iter_mut().zip(&dx[t * d..(t + 1) * d]) {
                    *g += v;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::attend_rows;

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (0..n)
            .map(|_| {
                z = z
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((z >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    fn slot(a: &mut LayerActs<f64>, which: usize, i: usize) -> &mut f64 {
        match which {
            0 => &mut a.q[i],
            1 => &mut a.k[i],
            _ => &mut a.v[i],
        }
    }

    #[test]
    fn attention_backward_matches_finite_differences() {
        let mut cfg = ModelConfig::tiny();
        cfg.num_attention_heads = 4;
        cfg.num_key_value_heads = 2;
        cfg.head_dim = 4;
        let rows = [(0usize, 3usize), (3, 3), (3, 7)];
        let n = 7;
        let mut a = LayerActs::<f64> {
            q: noise(n * cfg.q_dim(), 1).iter().map(|v| 3.0 * v).collect(),
            k: noise(n * cfg.kv_dim(), 2).iter().map(|v| 3.0 * v).collect(),
            v: noise(n * cfg.kv_dim(), 3),
            ..LayerActs::default()
        };
        let c = noise(n * cfg.q_dim(), 4);
        let (dq, dk, dv) = attention_backward(&cfg, &a, &c, &rows);
        let obj = |a: &LayerActs<f64>| -> f64 {
            attend_rows(&cfg, &a.q, &a.k, &a.v, &rows)
                .iter()
                .zip(&c)
                .map(|(x, y)| x * y)
                .sum()
        };
        let h = 1e-6;
        for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
            for (i, &g) in grad.iter().enumerate() {
                let o = *slot(&mut a, which, i);
                *slot(&mut a, which, i) = o + h;
                let up = obj(&a);
                *slot(&mut a, which, i) = o - h;
                let down = obj(&a);
                *slot(&mut a, which, i) = o;
                let fd = (up - down) / (2.0 * h);
                assert!(
                    (fd - g).abs() <= 1e-8 + 1e-6 * fd.abs(),
                    "tensor {which} [{i}]: {g} vs {fd}"
                );
            }
        }
    }
}
