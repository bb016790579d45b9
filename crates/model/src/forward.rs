//! The forward pass over a packed token batch: hidden states, logits, and
//! per-token log-probs of given targets, optionally keeping the activations
//! that [`Model::backward`](crate::Model::backward) needs.

use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::float::{Float, Mat, map_tasks, matmul};
use crate::ops::{RopeTable, head_attention, linear_forward, log_sum_exp, rmsnorm, sigmoid};
use crate::weights::{Layer, Model};

/// A packed token batch: rows of tokens laid end to end, as in
/// `flowrl_trajectory::PackedBatch` (`input_ids`, `position_ids`,
/// `offsets`). Attention is causal inside each row and never crosses rows.
#[derive(Debug, Clone, Copy)]
pub struct Packed<'a> {
    /// Token id per position, `N` entries, each `< vocab_size`.
    pub tokens: &'a [u32],
    /// RoPE position per token, `N` entries (usually 0, 1, … inside a row).
    pub positions: &'a [u32],
    /// `R + 1` cumulative row boundaries: row `r` is `offsets[r]..offsets[r+1]`;
    /// `offsets[0] = 0`, non-decreasing, last `= N`.
    pub offsets: &'a [usize],
}

impl<'a> Packed<'a> {
    /// Bundles the three slices (checked when the model uses them).
    pub fn new(tokens: &'a [u32], positions: &'a [u32], offsets: &'a [usize]) -> Self {
        Packed {
            tokens,
            positions,
            offsets,
        }
    }

    /// Number of tokens `N`.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the batch has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks lengths, offsets and token ids against `vocab`.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for inconsistent lengths or offsets;
    /// [`ModelError::TokenOutOfRange`] for an id `≥ vocab`.
    pub fn validate(&self, vocab: usize) -> Result<(), ModelError> {
        let n = self.tokens.len();
        if self.positions.len() != n {
            return Err(ModelError::InvalidInput(format!(
                "{} positions for {n} tokens",
                self.positions.len()
            )));
        }
        match (self.offsets.first(), self.offsets.last()) {
            (Some(0), Some(&last)) if last == n => {}
            _ => {
                return Err(ModelError::InvalidInput(format!(
                    "offsets must start at 0 and end at N = {n}, got {:?}…{:?}",
                    self.offsets.first(),
                    self.offsets.last()
                )));
            }
        }
        if self.offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(ModelError::InvalidInput("offsets decrease".into()));
        }
        check_tokens(self.tokens, vocab)
    }

    pub(crate) fn rows(&self) -> Vec<(usize, usize)> {
        self.offsets.windows(2).map(|w| (w[0], w[1])).collect()
    }
}

/// Checks that every id is below `vocab`.
pub(crate) fn check_tokens(tokens: &[u32], vocab: usize) -> Result<(), ModelError> {
    match tokens.iter().position(|&t| t as usize >= vocab) {
        Some(position) => Err(ModelError::TokenOutOfRange {
            token: tokens[position],
            position,
            vocab,
        }),
        None => Ok(()),
    }
}

/// What one decoder layer keeps for its backward pass (`N` tokens).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerActs<T> {
    pub x_in: Vec<T>,
    pub inv1: Vec<T>,
    pub h1: Vec<T>,
    /// q and k projections before the per-head norm (Qwen3 only; else empty).
    pub q_pre: Vec<T>,
    pub q_inv: Vec<T>,
    pub k_pre: Vec<T>,
    pub k_inv: Vec<T>,
    /// q and k after norm and RoPE.
    pub q: Vec<T>,
    pub k: Vec<T>,
    pub v: Vec<T>,
    pub attn: Vec<T>,
    pub x_mid: Vec<T>,
    pub inv2: Vec<T>,
    pub h2: Vec<T>,
    pub g: Vec<T>,
    pub u: Vec<T>,
    pub act: Vec<T>,
}

/// The tokens a log-prob's softmax is normalised over.
///
/// A policy sampled with nucleus (top-p) sampling draws from the softmax
/// renormalised over the nucleus; [`Support::Nucleus`] gives the log-probs
/// of that distribution, so that a policy-gradient update differentiates the
/// policy that produced the samples. Its gradient leaves the logits outside
/// the nucleus untouched (the full softmax's gradient would raise them each
/// time a sampled token is pushed down).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Support {
    /// Every token (the plain softmax).
    #[default]
    Full,
    /// The smallest set of most likely tokens whose probability reaches
    /// `top_p` (ties broken by lower id, as in
    /// [`generate`](crate::generate())), plus the target token when it
    /// falls outside; temperature 1. The set is recomputed from the current
    /// logits at every evaluation. Costs a sort of each row (`V log V`).
    Nucleus {
        /// Probability mass of the nucleus, in (0, 1].
        top_p: f64,
    },
}

impl Support {
    /// Checks `top_p ∈ (0, 1]`.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] naming the value.
    pub fn validate(self) -> Result<(), ModelError> {
        match self {
            Support::Full => Ok(()),
            Support::Nucleus { top_p } if top_p > 0.0 && top_p <= 1.0 => Ok(()),
            Support::Nucleus { top_p } => Err(ModelError::InvalidInput(format!(
                "nucleus top_p {top_p} is not in (0, 1]"
            ))),
        }
    }
}

/// The nucleus of `top_p` (plus `target`) of one row of logits: leaves
/// its token ids in `order[..k]` and returns `(max logit, k, Σ exp(z − max)
/// over the nucleus)`. `order` is scratch space for the sort.
pub(crate) fn nucleus<T: Float>(
    row: &[T],
    target: usize,
    top_p: f64,
    order: &mut Vec<usize>,
) -> (T, usize, T) {
    let m = row.iter().fold(T::NEG_INFINITY, |a, &b| a.max(b));
    let total: f64 = row.iter().map(|&v| (v - m).exp().to_f64()).sum();
    order.clear();
    order.extend(0..row.len());
    order.sort_unstable_by(|&a, &b| row[b].to_f64().total_cmp(&row[a].to_f64()).then(a.cmp(&b)));
    let mut acc = 0.0;
    let mut sum = T::ZERO;
    let mut k = 0;
    let mut has_target = false;
    while k < order.len() {
        let e = (row[order[k]] - m).exp();
        sum += e;
        has_target |= order[k] == target;
        k += 1;
        acc += e.to_f64() / total;
        if acc >= top_p {
            break;
        }
    }
    if !has_target {
        let at = order[k..]
            .iter()
            .position(|&i| i == target)
            .map_or(k, |p| k + p);
        order.swap(k, at);
        sum += (row[target] - m).exp();
        k += 1;
    }
    (m, k, sum)
}

/// The activations of one forward pass, consumed by
/// [`Model::backward`](crate::Model::backward).
#[derive(Debug, Clone)]
pub struct Activations<T> {
    pub(crate) tokens: Vec<u32>,
    pub(crate) targets: Vec<u32>,
    pub(crate) rows: Vec<(usize, usize)>,
    pub(crate) rope: RopeTable<T>,
    pub(crate) layers: Vec<LayerActs<T>>,
    pub(crate) x_last: Vec<T>,
    pub(crate) inv_final: Vec<T>,
    pub(crate) hidden: Vec<T>,
    pub(crate) support: Support,
}

impl<T> Activations<T> {
    /// Number of token positions `N`.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The final hidden states after the last RMSNorm, `[N, d]` (the input
    /// of the LM head, for a fused head elsewhere).
    pub fn hidden(&self) -> &[T] {
        &self.hidden
    }
}

impl<T: Clone> Clone for RopeTable<T> {
    fn clone(&self) -> Self {
        RopeTable {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            half: self.half,
        }
    }
}

impl<T> std::fmt::Debug for RopeTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RopeTable {{ tokens: {} }}",
            self.cos.len() / self.half.max(1)
        )
    }
}

/// Causal attention inside each row of a packed batch: `q` `[N, H·hd]`,
/// `k`, `v` `[N, KV·hd]` → `[N, H·hd]`.
pub(crate) fn attend_rows<T: Float>(
    cfg: &ModelConfig,
    q: &[T],
    k: &[T],
    v: &[T],
    rows: &[(usize, usize)],
) -> Vec<T> {
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
    let work = h * hd * rows.iter().map(|(s, e)| (e - s) * (e - s)).sum::<usize>();
    let outs: Vec<Vec<T>> = map_tasks(&tasks, work, |&(r, head)| {
        let (s, e) = rows[r];
        let len = e - s;
        let kvh = head / group;
        let qm = strided(q, s, head * hd, len, hd, qd);
        let km = strided(k, s, kvh * hd, len, hd, kvd);
        let vm = strided(v, s, kvh * hd, len, hd, kvd);
        head_attention(qm, km, vm, 0, scale).0
    });
    let mut out = vec![T::ZERO; q.len()];
    for (&(r, head), o) in tasks.iter().zip(&outs) {
        let s = rows[r].0;
        for (i, src) in o.chunks_exact(hd).enumerate() {
            let base = (s + i) * qd + head * hd;
            out[base..base + hd].copy_from_slice(src);
        }
    }
    out
}

/// The `len × hd` block starting at token `row0`, column `col0` of a
/// row-major matrix of width `width`.
pub(crate) fn strided<T>(
    data: &[T],
    row0: usize,
    col0: usize,
    len: usize,
    hd: usize,
    width: usize,
) -> Mat<'_, T> {
    Mat {
        data: &data[row0 * width + col0..],
        rows: len,
        cols: hd,
        rs: width,
        cs: 1,
    }
}

/// One decoder layer. `attend(q, k, v)` computes the attention output
/// `[n, H·hd]` from rotated queries and keys; returns the new residual
/// stream and, when `keep`, the activations.
pub(crate) fn layer_forward<T: Float>(
    layer: &Layer<T>,
    cfg: &ModelConfig,
    x: Vec<T>,
    rope: &RopeTable<T>,
    keep: bool,
    attend: impl FnOnce(&[T], &[T], &[T]) -> Vec<T>,
) -> (Vec<T>, Option<LayerActs<T>>) {
    let d = cfg.hidden_size;
    let n = x.len() / d;
    let eps = T::from_f64(cfg.rms_norm_eps);
    let (h1, inv1) = rmsnorm(&x, &layer.input_norm.value, eps);
    let mut q = linear_forward(&layer.q_proj, &h1, n);
    let mut k = linear_forward(&layer.k_proj, &h1, n);
    let v = linear_forward(&layer.v_proj, &h1, n);
    let (mut q_pre, mut q_inv, mut k_pre, mut k_inv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
        let (qq, qi) = rmsnorm(&q, &qn.value, eps);
        let (kk, ki) = rmsnorm(&k, &kn.value, eps);
        if keep {
            q_pre = std::mem::replace(&mut q, qq);
            k_pre = std::mem::replace(&mut k, kk);
        } else {
            q = qq;
            k = kk;
        }
        q_inv = qi;
        k_inv = ki;
    }
    rope.apply(&mut q, cfg.num_attention_heads, false);
    rope.apply(&mut k, cfg.num_key_value_heads, false);
    let attn = attend(&q, &k, &v);
    let o = linear_forward(&layer.o_proj, &attn, n);
    let mut x_mid = x;
    let x_in = if keep { x_mid.clone() } else { Vec::new() };
    x_mid.iter_mut().zip(&o).for_each(|(a, &b)| *a += b);
    let (h2, inv2) = rmsnorm(&x_mid, &layer.post_norm.value, eps);
    let g = linear_forward(&layer.gate_proj, &h2, n);
    let u = linear_forward(&layer.up_proj, &h2, n);
    let act: Vec<T> = g
        .iter()
        .zip(&u)
        .map(|(&gi, &ui)| gi * sigmoid(gi) * ui)
        .collect();
    let m = linear_forward(&layer.down_proj, &act, n);
    let mut x_out = x_mid.clone();
    x_out.iter_mut().zip(&m).for_each(|(a, &b)| *a += b);
    let acts = keep.then_some(LayerActs {
        x_in,
        inv1,
        h1,
        q_pre,
        q_inv,
        k_pre,
        k_inv,
        q,
        k,
        v,
        attn,
        x_mid,
        inv2,
        h2,
        g,
        u,
        act,
    });
    (x_out, acts)
}

/// Rows of the LM head processed at once: bounds the logits buffer to
/// about 4 M values.
pub(crate) fn head_chunk_rows(vocab: usize) -> usize {
    ((1usize << 22) / vocab.max(1)).clamp(1, 4096)
}

impl<T: Float> Model<T> {
    /// Embedding lookup for validated tokens, `[N, d]`.
    pub(crate) fn embed_tokens(&self, tokens: &[u32]) -> Vec<T> {
        let d = self.config.hidden_size;
        let mut x = Vec::with_capacity(tokens.len() * d);
        for &t in tokens {
            let t = t as usize;
            x.extend_from_slice(&self.embed.value[t * d..(t + 1) * d]);
        }
        x
    }

    fn run(
        &self,
        input: &Packed<'_>,
        keep: bool,
    ) -> Result<(Vec<T>, Option<Activations<T>>), ModelError> {
        self.validate()?;
        input.validate(self.config.vocab_size)?;
        let cfg = &self.config;
        let rows = input.rows();
        let rope = RopeTable::new(
            input.positions.iter().map(|&p| p as usize),
            cfg.head_dim,
            cfg.rope_theta,
        );
        let mut x = self.embed_tokens(input.tokens);
        let mut layer_acts = Vec::new();
        for layer in &self.layers {
            let (next, acts) = layer_forward(layer, cfg, x, &rope, keep, |q, k, v| {
                attend_rows(cfg, q, k, v, &rows)
            });
            x = next;
            layer_acts.extend(acts);
        }
        let (hidden, inv_final) = rmsnorm(&x, &self.norm.value, T::from_f64(cfg.rms_norm_eps));
        let acts = keep.then(|| Activations {
            tokens: input.tokens.to_vec(),
            targets: Vec::new(),
            rows,
            rope,
            layers: layer_acts,
            x_last: x,
            inv_final,
            hidden: hidden.clone(),
            support: Support::Full,
        });
        Ok((hidden, acts))
    }

    /// Final hidden states (after the last RMSNorm), `[N, d]` row-major —
    /// the input of the LM head, for a fused head elsewhere.
    ///
    /// # Errors
    /// As [`Packed::validate`].
    pub fn forward_hidden(&self, input: &Packed<'_>) -> Result<Vec<T>, ModelError> {
        Ok(self.run(input, false)?.0)
    }

    /// Logits `[N, V]` row-major.
    ///
    /// # Errors
    /// As [`Packed::validate`].
    pub fn forward_logits(&self, input: &Packed<'_>) -> Result<Vec<T>, ModelError> {
        let hidden = self.forward_hidden(input)?;
        Ok(self.head_logits(&hidden))
    }

    /// The LM head applied to hidden rows `[n, d]` → logits `[n, V]`.
    pub fn head_logits(&self, hidden: &[T]) -> Vec<T> {
        let (d, vocab) = (self.config.hidden_size, self.config.vocab_size);
        let n = hidden.len() / d;
        let mut logits = vec![T::ZERO; n * vocab];
        matmul(
            Mat::new(hidden, n, d),
            Mat::new(&self.head().value, vocab, d).t(),
            &mut logits,
            false,
        );
        logits
    }

    /// `log softmax(logits)[target]` per row of `hidden` over `support`,
    /// computing the logits chunk by chunk so that `[N, V]` is never held
    /// at once.
    pub(crate) fn head_logprobs(&self, hidden: &[T], targets: &[u32], support: Support) -> Vec<T> {
        let (d, vocab) = (self.config.hidden_size, self.config.vocab_size);
        let chunk = head_chunk_rows(vocab);
        let mut out = Vec::with_capacity(targets.len());
        for (hc, tc) in hidden.chunks(chunk * d).zip(targets.chunks(chunk)) {
            let logits = self.head_logits(hc);
            let lps: Vec<T> = logits
                .par_chunks(vocab)
                .zip(tc.par_iter())
                .map_init(Vec::new, |order, (row, &t)| match support {
                    Support::Full => row[t as usize] - log_sum_exp(row),
                    Support::Nucleus { top_p } => {
                        let (m, _, sum) = nucleus(row, t as usize, top_p, order);
                        row[t as usize] - m - sum.ln()
                    }
                })
                .collect();
            out.extend(lps);
        }
        out
    }

    /// Log-probability of each target under the model, `[N]`:
    /// `log softmax(logits_t)[targets_t]` (temperature 1). The logits are
    /// produced in chunks and never held whole.
    ///
    /// # Errors
    /// As [`Packed::validate`]; [`ModelError::InvalidInput`] when `targets`
    /// has another length; [`ModelError::TokenOutOfRange`] for a target id.
    pub fn token_logprobs(
        &self,
        input: &Packed<'_>,
        targets: &[u32],
    ) -> Result<Vec<T>, ModelError> {
        self.token_logprobs_over(input, targets, Support::Full)
    }

    /// [`Self::token_logprobs`] with the softmax normalised over `support`
    /// (see [`Support`]).
    ///
    /// # Errors
    /// As [`Self::token_logprobs`]; [`ModelError::InvalidInput`] for a
    /// `top_p` outside (0, 1].
    pub fn token_logprobs_over(
        &self,
        input: &Packed<'_>,
        targets: &[u32],
        support: Support,
    ) -> Result<Vec<T>, ModelError> {
        support.validate()?;
        self.check_targets(input, targets)?;
        let hidden = self.forward_hidden(input)?;
        Ok(self.head_logprobs(&hidden, targets, support))
    }

    fn check_targets(&self, input: &Packed<'_>, targets: &[u32]) -> Result<(), ModelError> {
        if targets.len() != input.tokens.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} targets for {} tokens",
                targets.len(),
                input.tokens.len()
            )));
        }
        check_tokens(targets, self.config.vocab_size)
    }

    /// [`Self::token_logprobs`] that also keeps the activations for
    /// [`Self::backward`](crate::Model::backward).
    ///
    /// # Errors
    /// As [`Self::token_logprobs`].
    pub fn forward_train(
        &self,
        input: &Packed<'_>,
        targets: &[u32],
    ) -> Result<(Vec<T>, Activations<T>), ModelError> {
        self.forward_train_over(input, targets, Support::Full)
    }

    /// [`Self::forward_train`] over `support`; the backward pass then
    /// differentiates the same normalisation.
    ///
    /// # Errors
    /// As [`Self::token_logprobs_over`].
    pub fn forward_train_over(
        &self,
        input: &Packed<'_>,
        targets: &[u32],
        support: Support,
    ) -> Result<(Vec<T>, Activations<T>), ModelError> {
        support.validate()?;
        self.check_targets(input, targets)?;
        let (hidden, acts) = self.run(input, true)?;
        let mut acts = acts.ok_or_else(|| ModelError::InvalidInput("no activations".into()))?;
        acts.targets = targets.to_vec();
        acts.support = support;
        Ok((self.head_logprobs(&hidden, targets, support), acts))
    }
}
