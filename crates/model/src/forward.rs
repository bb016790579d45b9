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
    /// logits at every evaluation. Costs a few passes over each row and a
    /// sort of its nucleus.
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

/// Size of the first sorted prefix when a nucleus outgrows its estimate;
/// each later step doubles the prefix.
pub(crate) const FIRST_PREFIX: usize = 64;

/// Extends the sorted prefix `items[..sorted]` to `items[..want]` (capped
/// at `items.len()`): selects the next `want − sorted` items of `cmp`'s
/// order from `items[sorted..]` and sorts them. Returns the new length of
/// the sorted prefix.
///
/// When `cmp` is a total order and `items[..sorted]` already holds the
/// first `sorted` items of the fully sorted slice, sorted, then so does the
/// longer prefix afterwards: it equals that of a full sort.
pub(crate) fn extend_sorted<E>(
    items: &mut [E],
    sorted: usize,
    want: usize,
    mut cmp: impl FnMut(&E, &E) -> std::cmp::Ordering,
) -> usize {
    let sorted = sorted.min(items.len());
    let want = want.min(items.len());
    if want <= sorted {
        return sorted;
    }
    let tail = &mut items[sorted..];
    let n = want - sorted;
    if n < tail.len() {
        tail.select_nth_unstable_by(n - 1, &mut cmp);
    }
    tail[..n].sort_unstable_by(&mut cmp);
    want
}

/// Buckets of a [`MassHistogram`].
const MASS_BUCKETS: usize = 2048;

/// The mass of keys bucketed by their distance below the largest key,
/// `top`, the mass of a key `k` being `exp(k − top)`: it tells how far down
/// the order of keys (descending) a nucleus of given mass reaches.
pub(crate) struct MassHistogram {
    top: f64,
    inv: f64,
    /// A NaN or `+∞` key was added, or `top` is not finite: no estimate.
    unusable: bool,
    mass: [f64; MASS_BUCKETS],
}

impl MassHistogram {
    /// An empty histogram for keys in `[lo, top]`, `top` being the largest
    /// key (`−∞` keys, or a `lo` below the smallest key, only coarsen the
    /// buckets).
    pub(crate) fn new(top: f64, lo: f64) -> Self {
        let width = (top - lo) / MASS_BUCKETS as f64;
        let inv = if width > 0.0 { 1.0 / width } else { 0.0 };
        MassHistogram {
            top,
            inv: if inv.is_finite() { inv } else { 0.0 },
            unusable: !top.is_finite(),
            mass: [0.0; MASS_BUCKETS],
        }
    }

    /// Where `k` falls, in buckets below `top`: non-decreasing as `k`
    /// decreases; NaN for a `−∞` key when all finite keys are equal.
    #[inline]
    fn position(&self, k: f64) -> f64 {
        (self.top - k) * self.inv
    }

    /// Adds key `k` of mass `e`.
    #[inline]
    pub(crate) fn add(&mut self, k: f64, e: f64) {
        self.unusable |= k.is_nan() | (k == f64::INFINITY);
        // `min` sends a NaN position to the last bucket.
        let b = self.position(k).min((MASS_BUCKETS - 1) as f64) as usize;
        if let Some(m) = self.mass.get_mut(b) {
            *m += e;
        }
    }

    /// The front of the keys whose mass reaches `need` (a millionth more,
    /// for rounding), whole buckets from the top: `Some(limit)`, a key `k`
    /// then being in it when [`Self::in_front`]`(k, limit)`; `None` when it
    /// takes every key, or no estimate can be made.
    ///
    /// The front is closed upwards: a key larger than one in the front is
    /// in the front too, and equal keys are on the same side. So under an
    /// order of keys descending (ties broken any way), the front's items
    /// come before all the others, and sorting them gives the first items
    /// of the fully sorted order.
    pub(crate) fn limit(&self, need: f64) -> Option<f64> {
        if self.unusable {
            return None;
        }
        let need = need * (1.0 + 1e-6);
        let mut acc = 0.0;
        for (b, &m) in self.mass[..MASS_BUCKETS - 1].iter().enumerate() {
            acc += m;
            if acc >= need {
                return Some((b + 1) as f64);
            }
        }
        None
    }

    /// Whether key `k` is in the front of [`Self::limit`]'s `limit`.
    #[inline]
    pub(crate) fn in_front(&self, k: f64, limit: f64) -> bool {
        // A NaN position (a `−∞` key) is not below the limit.
        self.position(k) < limit
    }

    /// Moves the items whose `key` is in the front of `limit` to the start
    /// of `items` and sorts them by `cmp`; returns how many there are. With
    /// `cmp` ordering keys descending (ties any way), `items[..count]` is
    /// then the start of the fully sorted order (see [`Self::limit`]).
    pub(crate) fn sort_front<E>(
        &self,
        items: &mut [E],
        limit: f64,
        key: impl Fn(&E) -> f64,
        cmp: impl FnMut(&E, &E) -> std::cmp::Ordering,
    ) -> usize {
        let mut count = 0;
        for i in 0..items.len() {
            if self.in_front(key(&items[i]), limit) {
                items.swap(count, i);
                count += 1;
            }
        }
        items[..count].sort_unstable_by(cmp);
        count
    }
}

/// The nucleus of `top_p` (plus `target`) of one row of logits: leaves
/// its token ids in `order[..k]` and returns `(max logit, k, Σ exp(z − max)
/// over the nucleus)`. `order` is scratch space for the selection.
///
/// The result is that of sorting the whole row (logit descending, ties by
/// lower id) and accumulating down it, bit for bit, but only the nucleus is
/// sorted: a histogram of the logits picks a front of the order that should
/// hold it, and the sorted prefix grows if the mass falls short.
pub(crate) fn nucleus<T: Float>(
    row: &[T],
    target: usize,
    top_p: f64,
    order: &mut Vec<usize>,
) -> (T, usize, T) {
    nucleus_from(row, target, top_p, order, None)
}

/// [`nucleus`] starting from a sorted prefix of `first` ids instead of the
/// histogram's estimate when `first` is given (the tests use it to drive
/// the growth of the prefix).
fn nucleus_from<T: Float>(
    row: &[T],
    target: usize,
    top_p: f64,
    order: &mut Vec<usize>,
    first: Option<usize>,
) -> (T, usize, T) {
    let m = row.iter().fold(T::NEG_INFINITY, |a, &b| a.max(b));
    // A total order: logit descending, ties by lower id.
    let cmp = |&a: &usize, &b: &usize| row[b].to_f64().total_cmp(&row[a].to_f64()).then(a.cmp(&b));
    let (total, mut sorted) = if let Some(n) = first {
        let total: f64 = row.iter().map(|&v| (v - m).exp().to_f64()).sum();
        order.clear();
        order.extend(0..row.len());
        (total, extend_sorted(order, 0, n.max(1), cmp))
    } else {
        // The smallest finite logit, for the histogram's range.
        let mut lo = row.iter().fold(f64::INFINITY, |a, &b| a.min(b.to_f64()));
        if lo == f64::NEG_INFINITY {
            lo = row
                .iter()
                .map(|&v| v.to_f64())
                .filter(|&x| x > f64::NEG_INFINITY)
                .fold(f64::INFINITY, f64::min);
        }
        let mut hist = MassHistogram::new(m.to_f64(), lo);
        // Σ exp(z − m) in id order: the same as `.sum()` (whose -0.0 start
        // changes nothing for terms that are never -0.0).
        let mut total = 0.0f64;
        for &v in row {
            let e = (v - m).exp().to_f64();
            total += e;
            hist.add(v.to_f64(), e);
        }
        order.clear();
        order.extend(0..row.len());
        // A finite positive total rules out NaN and +∞ logits.
        let limit = (total.is_finite() && total > 0.0)
            .then(|| hist.limit(top_p * total))
            .flatten();
        let sorted = match limit {
            Some(limit) => hist.sort_front(order, limit, |&i| row[i].to_f64(), cmp),
            None => extend_sorted(order, 0, row.len(), cmp),
        };
        (total, sorted)
    };
    // `order[..sorted]` is the first `sorted` ids of the full order, sorted,
    // and `order` a permutation of the ids.
    let mut acc = 0.0;
    let mut sum = T::ZERO;
    let mut k = 0;
    let mut has_target = false;
    'grow: loop {
        while k < sorted {
            let e = (row[order[k]] - m).exp();
            sum += e;
            has_target |= order[k] == target;
            k += 1;
            acc += e.to_f64() / total;
            if acc >= top_p {
                break 'grow;
            }
        }
        if sorted == order.len() {
            break;
        }
        sorted = extend_sorted(order, sorted, (2 * sorted).max(FIRST_PREFIX), cmp);
    }
    // `order[k..]` holds every id outside the nucleus (in no particular
    // order); a target past the vocabulary has nothing to add.
    if !has_target && target < row.len() {
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::weights::gaussian;

    /// The nucleus as computed before partial selection: a full sort of the
    /// row, then the same accumulation.
    fn nucleus_full_sort<T: Float>(
        row: &[T],
        target: usize,
        top_p: f64,
        order: &mut Vec<usize>,
    ) -> (T, usize, T) {
        let m = row.iter().fold(T::NEG_INFINITY, |a, &b| a.max(b));
        let total: f64 = row.iter().map(|&v| (v - m).exp().to_f64()).sum();
        order.clear();
        order.extend(0..row.len());
        order
            .sort_unstable_by(|&a, &b| row[b].to_f64().total_cmp(&row[a].to_f64()).then(a.cmp(&b)));
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

    /// Checks the histogram start and several fixed first prefixes (which
    /// drive the growth path) against the full sort, bit for bit. Returns
    /// the nucleus size.
    fn check<T: Float>(name: &str, row: &[T], target: usize, top_p: f64) -> usize {
        let mut want_order = Vec::new();
        let (wm, wk, wsum) = nucleus_full_sort(row, target, top_p, &mut want_order);
        let mut order = vec![7; 3];
        for first in [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(5),
            Some(FIRST_PREFIX),
            Some(1 << 20),
        ] {
            let (m, k, sum) = nucleus_from(row, target, top_p, &mut order, first);
            let at = format!("{name}, target {target}, top_p {top_p}, first {first:?}");
            assert_eq!(m.to_f64().to_bits(), wm.to_f64().to_bits(), "{at}: max");
            assert_eq!(k, wk, "{at}: size");
            assert_eq!(order[..k], want_order[..wk], "{at}: ids");
            assert_eq!(sum.to_f64().to_bits(), wsum.to_f64().to_bits(), "{at}: sum");
            // Still a permutation of the ids.
            let mut ids = order.clone();
            ids.sort_unstable();
            assert!(ids.iter().copied().eq(0..row.len()), "{at}: permutation");
        }
        let (_, k, _) = nucleus(row, target, top_p, &mut order);
        assert_eq!(k, wk, "{name}: nucleus()");
        wk
    }

    fn normal_row(v: usize, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..v).map(|_| sd * gaussian(&mut rng)).collect()
    }

    fn as_f32(row: &[f64]) -> Vec<f32> {
        row.iter().map(|&x| x as f32).collect()
    }

    /// Rows that stress the selection: flat (the nucleus is most of the
    /// row and ties are broken by id), peaked, quantised (ties at the
    /// boundary), Gaussian, tiny vocabularies, `top_p = 1`, targets inside
    /// and outside the nucleus.
    #[test]
    fn nucleus_selection_equals_a_full_sort() {
        let tops = [1e-9, 0.3, 0.5, 0.9, 0.95, 0.999, 1.0];
        // Flat, V = 1000: about 900 ids at 0.9, ordered by id.
        let flat = vec![0.25f64; 1000];
        for &p in &tops {
            for target in [0, 3, 450, 899, 900, 999] {
                check("flat f64", &flat, target, p);
                check("flat f32", &as_f32(&flat), target, p);
            }
        }
        let (_, k, _) = nucleus(&flat, 0, 0.9, &mut Vec::new());
        assert!((899..=901).contains(&k), "flat nucleus of {k}");
        // Peaked: one dominant logit over noise.
        let mut peaked = normal_row(5000, 1.0, 1);
        peaked[1234] = 12.0;
        for &p in &tops {
            for target in [1234, 0, 4999] {
                check("peaked", &peaked, target, p);
                check("peaked f32", &as_f32(&peaked), target, p);
            }
        }
        // Many ties at the boundary: logits on a coarse grid.
        for seed in 0..4 {
            let q: Vec<f64> = normal_row(3000, 1.5, 10 + seed)
                .iter()
                .map(|&x| (x * 2.0).round() / 2.0)
                .collect();
            for &p in &tops {
                for target in [0, 1, 2999] {
                    let k = check("quantised", &q, target, p);
                    assert!(k >= 1);
                    check("quantised f32", &as_f32(&q), target, p);
                }
            }
        }
        // Gaussian rows of several spreads, Qwen-sized once.
        for (v, sd, seed) in [
            (20_000, 3.0, 2),
            (4096, 0.5, 3),
            (4096, 8.0, 4),
            (151_936, 3.0, 5),
        ] {
            let row = normal_row(v, sd, seed);
            for &p in &[0.5, 0.9, 1.0] {
                for target in [0, v / 2, v - 1] {
                    check("gaussian f32", &as_f32(&row), target, p);
                }
            }
            check("gaussian f64", &row, v / 3, 0.9);
        }
        // Vocabularies smaller than the first prefix, and of one token.
        for v in [1, 2, 3, 10, 63, 64, 65] {
            let row = normal_row(v, 2.0, v as u64);
            for &p in &tops {
                for target in [0, v - 1, v / 2] {
                    check("small", &row, target, p);
                    check("small flat", &vec![1.0f32; v], target, p);
                }
            }
        }
    }

    /// `top_p` on (and one ulp either side of) the running sums of the full
    /// sort: the same nuclei.
    #[test]
    fn nucleus_with_top_p_on_the_running_sums_equals_a_full_sort() {
        for (v, seed) in [(40, 20), (300, 21), (5000, 22)] {
            let row = as_f32(&normal_row(v, 2.0, seed));
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let total: f64 = row.iter().map(|&x| (x - m).exp() as f64).sum();
            let mut order = Vec::new();
            nucleus_full_sort(&row, 0, 1.0, &mut order);
            let mut acc = 0.0;
            let sums: Vec<f64> = order
                .iter()
                .map(|&i| {
                    acc += (row[i] - m).exp() as f64 / total;
                    acc
                })
                .collect();
            for j in [0, 1, v / 10, v / 3, v / 2, v - 2] {
                let s = sums[j];
                for top_p in [
                    f64::from_bits(s.to_bits() - 1),
                    s,
                    f64::from_bits(s.to_bits() + 1),
                ] {
                    check("running sum", &row, 0, top_p);
                    check("running sum", &row, v - 1, top_p);
                }
            }
        }
    }

    /// Infinite and NaN logits go through the fallback, with the same
    /// result as the full sort; a target past the row adds nothing.
    #[test]
    fn nucleus_of_unusual_rows_equals_a_full_sort() {
        let mut masked = normal_row(1000, 2.0, 7);
        for i in (0..1000).step_by(3) {
            masked[i] = f64::NEG_INFINITY;
        }
        for &p in &[0.2, 0.9, 1.0] {
            for target in [0, 1, 999] {
                check("masked", &masked, target, p);
                check("masked f32", &as_f32(&masked), target, p);
            }
        }
        let all_masked = vec![f64::NEG_INFINITY; 50];
        let mut nan = normal_row(200, 2.0, 8);
        nan[17] = f64::NAN;
        let mut inf = normal_row(200, 2.0, 9);
        inf[5] = f64::INFINITY;
        for (name, row) in [("all -inf", &all_masked), ("NaN", &nan), ("+inf", &inf)] {
            for &p in &[0.5, 1.0] {
                let (m, k, sum) = nucleus(row, 3, p, &mut Vec::new());
                let (wm, wk, wsum) = nucleus_full_sort(row, 3, p, &mut Vec::new());
                assert_eq!(
                    (m.to_bits(), k, sum.to_bits()),
                    (wm.to_bits(), wk, wsum.to_bits()),
                    "{name}"
                );
            }
        }
        let row = normal_row(100, 2.0, 10);
        let mut order = Vec::new();
        let (_, k, _) = nucleus(&row, 1000, 0.5, &mut order);
        let (_, wk, _) = nucleus_full_sort(&row, 0, 0.5, &mut Vec::new());
        assert!(k == wk || k + 1 == wk);
        assert!(order[..k].iter().all(|&i| i < 100));
        assert_eq!(nucleus::<f32>(&[], 0, 0.5, &mut order).1, 0);
    }

    /// The histogram's front is closed upwards, holds the nucleus, and is
    /// hardly larger for Gaussian logits.
    #[test]
    fn mass_histogram_front_holds_the_nucleus_and_little_else() {
        let row = as_f32(&normal_row(151_936, 3.0, 12));
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lo = row.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        let mut hist = MassHistogram::new(m as f64, lo as f64);
        let mut total = 0.0;
        for &v in &row {
            let e = (v - m).exp() as f64;
            total += e;
            hist.add(v as f64, e);
        }
        let (_, k, _) = nucleus_full_sort(&row, 0, 0.9, &mut Vec::new());
        let limit = hist.limit(0.9 * total).unwrap_or(f64::INFINITY);
        let (front, back): (Vec<f32>, Vec<f32>) =
            row.iter().partition(|&&v| hist.in_front(v as f64, limit));
        let c = front.len();
        assert!(k <= c && c < k + k / 20, "nucleus {k}, front {c}");
        let low = front.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        let high = back.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        assert!(high < low);
        // No estimate past a NaN key, nor for the whole mass.
        assert_eq!(hist.limit(2.0 * total), None);
        hist.add(f64::NAN, 1.0);
        assert_eq!(hist.limit(0.5 * total), None);
    }

    #[test]
    fn extend_sorted_grows_a_sorted_prefix() {
        let row = normal_row(500, 1.0, 11);
        let cmp = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
        let mut full: Vec<usize> = (0..500).collect();
        full.sort_unstable_by(cmp);
        let mut order: Vec<usize> = (0..500).rev().collect();
        let mut sorted = 0;
        for want in [0, 1, 1, 7, 100, 99, 499, 500, 600] {
            sorted = extend_sorted(&mut order, sorted, want, cmp);
            assert_eq!(sorted, want.clamp(sorted, 500).max(sorted));
            assert_eq!(order[..sorted], full[..sorted]);
        }
        let mut empty: Vec<usize> = Vec::new();
        assert_eq!(extend_sorted(&mut empty, 0, 5, cmp), 0);
    }
}
