//! Batched generation with a KV cache: temperature, top-k, top-p, stop
//! tokens, stop token sequences, stop strings, and a seeded RNG.
//!
//! Two log-probs come back for every sampled token:
//!
//! * `raw_logprobs` — `log softmax(logits)[token]` at temperature 1, with
//!   no top-k/top-p filtering: the model's own probability, which is what
//!   RL objectives compare against (it equals what a teacher-forced
//!   [`Model::token_logprobs`] pass returns for the same sequence);
//! * `sample_logprobs` — the log-probability under the distribution the
//!   token was actually drawn from: logits divided by the temperature,
//!   restricted to the top-k / top-p set and renormalised. Greedy decoding
//!   (temperature 0) draws from a point mass, so it reports 0.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::float::{Float, map_tasks};
use crate::forward::{
    FIRST_PREFIX, MassHistogram, check_tokens, extend_sorted, layer_forward, strided,
};
use crate::ops::{RopeTable, head_attention, rmsnorm};
use crate::weights::Model;

/// A callback turning generated token ids into text (for stop strings).
pub type Decode<'a> = &'a dyn Fn(&[u32]) -> String;

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    /// Most tokens generated per prompt.
    pub max_new_tokens: usize,
    /// Softmax temperature (≥ 0); 0 means greedy (argmax).
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability
    /// reaches `top_p` (nucleus sampling), in (0, 1]; 1 disables.
    pub top_p: f64,
    /// Tokens that end a generation (e.g. `<|im_end|>`); the stop token is
    /// kept as the last generated token.
    pub stop_tokens: Vec<u32>,
    /// Token sequences that end a generation when the output ends with
    /// one of them (kept in the output).
    pub stop_sequences: Vec<Vec<u32>>,
    /// Strings that end a generation when the decoded output contains one
    /// (needs a decode callback; the completing token is kept).
    pub stop_strings: Vec<String>,
    /// Seed of the sampler; prompt `i` uses its own stream derived from it,
    /// so a result does not depend on the other prompts of the batch.
    pub seed: u64,
}

impl Default for GenerateConfig {
    /// 64 tokens, temperature 1, no filtering, no stops, seed 0.
    fn default() -> Self {
        GenerateConfig {
            max_new_tokens: 64,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            stop_tokens: Vec::new(),
            stop_sequences: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
        }
    }
}

impl GenerateConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`ModelError::InvalidSampling`] for a negative or non-finite
    /// temperature or `top_p` outside (0, 1].
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::InvalidSampling {
                field: "temperature",
                reason: format!("{} must be finite and >= 0", self.temperature),
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::InvalidSampling {
                field: "top_p",
                reason: format!("{} must be in (0, 1]", self.top_p),
            });
        }
        Ok(())
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_new_tokens` reached.
    MaxTokens,
    /// A token of `stop_tokens` was generated.
    StopToken,
    /// The output ends with one of `stop_sequences`.
    StopSequence,
    /// The decoded output contains one of `stop_strings`.
    StopString,
}

/// The output for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generated token ids (prompt excluded, stop token included).
    pub tokens: Vec<u32>,
    /// Log-prob of each token under the sampling distribution (after
    /// temperature, top-k, top-p); 0 for greedy decoding.
    pub sample_logprobs: Vec<f32>,
    /// Log-prob of each token under the model at temperature 1, unfiltered.
    pub raw_logprobs: Vec<f32>,
    /// Why generation ended.
    pub stop: StopReason,
}

/// Keys and values of every layer for one sequence, `[len, KV·hd]` each.
#[derive(Debug, Clone, Default)]
pub struct KvCache<T> {
    /// Per layer, rotated keys of all cached positions.
    pub k: Vec<Vec<T>>,
    /// Per layer, values of all cached positions.
    pub v: Vec<Vec<T>>,
    /// Number of cached positions (the next token's RoPE position).
    pub len: usize,
}

impl<T: Float> KvCache<T> {
    /// An empty cache for `model`.
    pub fn new(model: &Model<T>) -> Self {
        let l = model.layers.len();
        KvCache {
            k: vec![Vec::new(); l],
            v: vec![Vec::new(); l],
            len: 0,
        }
    }
}

impl<T: Float> Model<T> {
    /// Feeds `tokens[i]` (one or more new tokens) to the sequence cached in
    /// `caches[i]`, appends their keys and values, and returns the logits of
    /// each sequence's last new token, `[B, V]`.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for mismatched lengths or an empty token
    /// list; [`ModelError::TokenOutOfRange`] for a bad id.
    pub fn decode_step(
        &self,
        caches: &mut [KvCache<T>],
        tokens: &[Vec<u32>],
    ) -> Result<Vec<T>, ModelError> {
        self.validate()?;
        let cfg = &self.config;
        let kvd = cfg.kv_dim();
        if caches.len() != tokens.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} caches for {} sequences",
                caches.len(),
                tokens.len()
            )));
        }
        for (c, t) in caches.iter().zip(tokens) {
            if t.is_empty() {
                return Err(ModelError::InvalidInput(
                    "a sequence has no new token".into(),
                ));
            }
            let consistent = c.k.len() == self.layers.len()
                && c.v.len() == self.layers.len()
                && c.k.iter().chain(&c.v).all(|x| x.len() == c.len * kvd);
            if !consistent {
                return Err(ModelError::InvalidInput(
                    "KV cache of another model or inconsistent lengths".into(),
                ));
            }
            check_tokens(t, cfg.vocab_size)?;
        }
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let mut rows = Vec::with_capacity(tokens.len());
        let mut s = 0;
        let mut positions = Vec::with_capacity(flat.len());
        for (c, t) in caches.iter().zip(tokens) {
            rows.push((s, s + t.len()));
            positions.extend(c.len..c.len + t.len());
            s += t.len();
        }
        let rope = RopeTable::new(positions.into_iter(), cfg.head_dim, cfg.rope_theta);
        let (h, hd) = (cfg.num_attention_heads, cfg.head_dim);
        let qd = cfg.q_dim();
        let group = h / cfg.num_key_value_heads;
        let scale = T::from_f64(1.0 / (hd as f64).sqrt());
        let mut x = self.embed_tokens(&flat);
        for (li, layer) in self.layers.iter().enumerate() {
            let caches_ref = &mut *caches;
            let rows_ref = &rows;
            let (next, _) = layer_forward(layer, cfg, x, &rope, false, move |q, k, v| {
                let mut past = Vec::with_capacity(rows_ref.len());
                for (c, &(s, e)) in caches_ref.iter_mut().zip(rows_ref) {
                    past.push(c.k[li].len() / kvd);
                    c.k[li].extend_from_slice(&k[s * kvd..e * kvd]);
                    c.v[li].extend_from_slice(&v[s * kvd..e * kvd]);
                }
                let caches_ro: &[KvCache<T>] = caches_ref;
                let tasks: Vec<(usize, usize)> = (0..rows_ref.len())
                    .flat_map(|b| (0..h).map(move |head| (b, head)))
                    .collect();
                let work = h
                    * hd
                    * rows_ref
                        .iter()
                        .zip(&past)
                        .map(|(&(s, e), &p)| (e - s) * (p + e - s))
                        .sum::<usize>();
                let outs: Vec<Vec<T>> = map_tasks(&tasks, work, |&(b, head)| {
                    let (s, e) = rows_ref[b];
                    let kvh = head / group;
                    let total = past[b] + (e - s);
                    let qm = strided(q, s, head * hd, e - s, hd, qd);
                    let km = strided(&caches_ro[b].k[li], 0, kvh * hd, total, hd, kvd);
                    let vm = strided(&caches_ro[b].v[li], 0, kvh * hd, total, hd, kvd);
                    head_attention(qm, km, vm, past[b], scale).0
                });
                let mut out = vec![T::ZERO; q.len()];
                for (&(b, head), o) in tasks.iter().zip(&outs) {
                    let s = rows_ref[b].0;
                    for (i, src) in o.chunks_exact(hd).enumerate() {
                        let base = (s + i) * qd + head * hd;
                        out[base..base + hd].copy_from_slice(src);
                    }
                }
                out
            });
            x = next;
        }
        for (c, t) in caches.iter_mut().zip(tokens) {
            c.len += t.len();
        }
        let d = cfg.hidden_size;
        let mut last = Vec::with_capacity(rows.len() * d);
        for &(_, e) in &rows {
            last.extend_from_slice(&x[(e - 1) * d..e * d]);
        }
        let (hidden, _) = rmsnorm(&last, &self.norm.value, T::from_f64(cfg.rms_norm_eps));
        Ok(self.head_logits(&hidden))
    }
}

/// Draws one token from a logits row. Returns (token, sample log-prob, raw
/// log-prob).
///
/// With top-k or top-p, the candidates are ordered by scaled logit
/// descending, ties by lower id, but only as far as the kept set reaches:
/// the result is bit for bit that of sorting every candidate.
fn sample_row<T: Float>(row: &[T], cfg: &GenerateConfig, rng: &mut StdRng) -> (u32, f64, f64) {
    sample_row_from(row, cfg, rng, None)
}

/// The candidates' total order: scaled logit descending, ties by lower id.
fn by_logit(a: &(usize, f64), b: &(usize, f64)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// [`sample_row`], the top-p selection starting from a sorted prefix of
/// `first` candidates instead of the histogram's estimate when `first` is
/// given (the tests use it to drive the growth of the prefix).
fn sample_row_from<T: Float>(
    row: &[T],
    cfg: &GenerateConfig,
    rng: &mut StdRng,
    first: Option<usize>,
) -> (u32, f64, f64) {
    let logits: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
    let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    // exp(logit − max) per token: the raw distribution, and the sampling
    // one too when the temperature is 1 and nothing is filtered.
    let raw: Vec<f64> = logits.iter().map(|&v| (v - m).exp()).collect();
    let lse = m + raw.iter().sum::<f64>().ln();
    if cfg.temperature == 0.0 {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        return (best as u32, 0.0, logits[best] - lse);
    }
    let inv_t = 1.0 / cfg.temperature;
    let mut cand: Vec<(usize, f64)> = logits.iter().map(|&v| v * inv_t).enumerate().collect();
    let filter = (cfg.top_k > 0 && cfg.top_k < cand.len()) || cfg.top_p < 1.0;
    let (probs, total) = if !filter {
        let probs: Vec<f64> = if cfg.temperature == 1.0 {
            raw
        } else {
            let mz = cand.iter().fold(f64::NEG_INFINITY, |a, &(_, z)| a.max(z));
            cand.iter().map(|&(_, z)| (z - mz).exp()).collect()
        };
        let total: f64 = probs.iter().sum();
        (probs, total)
    } else {
        // The top-k set, in no particular order (`top_k ≥ 1` here).
        if cfg.top_k > 0 && cfg.top_k < cand.len() {
            cand.select_nth_unstable_by(cfg.top_k - 1, by_logit);
            cand.truncate(cfg.top_k);
        }
        // The largest scaled logit (as a fold of `max`), the smallest
        // finite one.
        let mut mz = f64::NEG_INFINITY;
        let mut lo = f64::INFINITY;
        for &(_, z) in &cand {
            mz = mz.max(z);
            if z > f64::NEG_INFINITY {
                lo = lo.min(z);
            }
        }
        let keep = if cfg.top_p < 1.0 {
            top_p_prefix(&mut cand, (mz, lo), cfg.top_p, first)
        } else {
            None
        };
        match keep {
            Some(keep) => {
                // `cand[..keep]` is the sorted prefix the full sort keeps.
                cand.truncate(keep);
                let probs: Vec<f64> = cand.iter().map(|&(_, z)| (z - mz).exp()).collect();
                let total: f64 = probs.iter().sum();
                (probs, total)
            }
            None => {
                cand.sort_unstable_by(by_logit);
                let mut probs: Vec<f64> = cand.iter().map(|&(_, z)| (z - mz).exp()).collect();
                let mut total: f64 = probs.iter().sum();
                if cfg.top_p < 1.0 {
                    let mut acc = 0.0;
                    let mut keep = probs.len();
                    for (i, p) in probs.iter().enumerate() {
                        acc += p / total;
                        if acc >= cfg.top_p {
                            keep = i + 1;
                            break;
                        }
                    }
                    probs.truncate(keep);
                    cand.truncate(keep);
                    total = probs.iter().sum();
                }
                (probs, total)
            }
        }
    };
    let u: f64 = rng.random::<f64>() * total;
    let mut acc = 0.0;
    let mut pick = probs.len() - 1;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            pick = i;
            break;
        }
    }
    let token = cand[pick].0;
    (
        token as u32,
        (probs[pick] / total).ln(),
        logits[token] - lse,
    )
}

/// How many candidates top-p keeps, with `cand[..keep]` left as the first
/// `keep` candidates of the full order, sorted; `None` when that cannot be
/// decided without sorting every candidate. `mz` and `lo` are the largest
/// and the smallest finite scaled logits.
///
/// The full sort decides with a running sum of `p / total`, `total` being
/// the sum of every `p = exp(z − mz)` in sorted order. Without that order
/// this sums in another and stops only where the decision is beyond the
/// difference the summation order can make (both sums are within
/// `(n − 1)·u` of the exact one, `u` the unit roundoff, and so is the
/// running sum); a crossing of `top_p` closer than that, or a non-finite
/// or zero total, answers `None`.
fn top_p_prefix(
    cand: &mut [(usize, f64)],
    (mz, lo): (f64, f64),
    top_p: f64,
    first: Option<usize>,
) -> Option<usize> {
    let n = cand.len();
    let mut hist = MassHistogram::new(mz, lo);
    let mut total = 0.0;
    for &(_, z) in cand.iter() {
        let e = (z - mz).exp();
        total += e;
        hist.add(z, e);
    }
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    // About eight times the worst difference, relative to the running sum.
    let tol = 32.0 * (n as f64 + 2.0) * f64::EPSILON;
    let mut sorted = match first {
        Some(f) => extend_sorted(cand, 0, f.max(1), by_logit),
        None => match hist.limit(top_p * total) {
            Some(limit) => hist.sort_front(cand, limit, |c| c.1, by_logit),
            None => {
                cand.sort_unstable_by(by_logit);
                n
            }
        },
    };
    let mut acc = 0.0;
    let mut i = 0;
    loop {
        while i < sorted {
            acc += (cand[i].1 - mz).exp() / total;
            if i + 1 == n {
                // The last candidate is kept whether or not the sum
                // reaches `top_p` there.
                return Some(n);
            }
            let slack = tol * acc.max(1.0);
            if acc + slack < top_p {
                i += 1;
            } else if acc - slack >= top_p {
                return Some(i + 1);
            } else {
                return None;
            }
        }
        if sorted == n {
            return Some(n);
        }
        sorted = extend_sorted(cand, sorted, (2 * sorted).max(FIRST_PREFIX), by_logit);
    }
}

/// A 64-bit mix (SplitMix64) to derive per-prompt seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Generates a continuation of every prompt at once (one batched forward
/// per step, each sequence with its own KV cache).
///
/// `decode` turns generated token ids into text; it is needed only for
/// `stop_strings`.
///
/// # Errors
/// [`ModelError::InvalidSampling`] for bad settings or stop strings without
/// `decode`; [`ModelError::InvalidInput`] for an empty prompt;
/// [`ModelError::TokenOutOfRange`] for a bad prompt id.
pub fn generate<T: Float>(
    model: &Model<T>,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    decode: Option<Decode<'_>>,
) -> Result<Vec<Generation>, ModelError> {
    cfg.validate()?;
    if !cfg.stop_strings.is_empty() && decode.is_none() {
        return Err(ModelError::InvalidSampling {
            field: "stop_strings",
            reason: "stop strings need a decode callback".into(),
        });
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ModelError::InvalidInput(format!("prompt {i} is empty")));
        }
        check_tokens(p, model.config.vocab_size)?;
    }
    let mut out: Vec<Generation> = prompts
        .iter()
        .map(|_| Generation {
            tokens: Vec::new(),
            sample_logprobs: Vec::new(),
            raw_logprobs: Vec::new(),
            stop: StopReason::MaxTokens,
        })
        .collect();
    if cfg.max_new_tokens == 0 {
        return Ok(out);
    }
    let mut rngs: Vec<StdRng> = (0..prompts.len())
        .map(|i| StdRng::seed_from_u64(mix(cfg.seed ^ mix(i as u64))))
        .collect();
    let mut caches: Vec<KvCache<T>> = prompts.iter().map(|_| KvCache::new(model)).collect();
    let mut active: Vec<usize> = (0..prompts.len()).collect();
    let mut feed: Vec<Vec<u32>> = prompts.to_vec();
    let vocab = model.config.vocab_size;
    while !active.is_empty() {
        let mut step_caches: Vec<KvCache<T>> = active
            .iter()
            .map(|&i| std::mem::take(&mut caches[i]))
            .collect();
        let logits = model.decode_step(&mut step_caches, &feed);
        for (&i, c) in active.iter().zip(step_caches) {
            caches[i] = c;
        }
        let logits = logits?;
        let mut still = Vec::with_capacity(active.len());
        let mut next_feed = Vec::with_capacity(active.len());
        for (b, &i) in active.iter().enumerate() {
            let row = &logits[b * vocab..(b + 1) * vocab];
            let (tok, slp, rlp) = sample_row(row, cfg, &mut rngs[i]);
            let g = &mut out[i];
            g.tokens.push(tok);
            g.sample_logprobs.push(slp as f32);
            g.raw_logprobs.push(rlp as f32);
            let stop = if cfg.stop_tokens.contains(&tok) {
                Some(StopReason::StopToken)
            } else if cfg
                .stop_sequences
                .iter()
                .any(|s| !s.is_empty() && g.tokens.ends_with(s))
            {
                Some(StopReason::StopSequence)
            } else if let Some(dec) = decode.filter(|_| !cfg.stop_strings.is_empty()) {
                let text = dec(&g.tokens);
                cfg.stop_strings
                    .iter()
                    .any(|s| !s.is_empty() && text.contains(s.as_str()))
                    .then_some(StopReason::StopString)
            } else {
                None
            };
            match stop {
                Some(reason) => g.stop = reason,
                None if g.tokens.len() >= cfg.max_new_tokens => g.stop = StopReason::MaxTokens,
                None => {
                    still.push(i);
                    next_feed.push(vec![tok]);
                }
            }
        }
        for &i in &active {
            if !still.contains(&i) {
                caches[i] = KvCache::default();
            }
        }
        active = still;
        feed = next_feed;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::gaussian;

    /// `sample_row` as it was before partial selection: every candidate
    /// sorted when filtering.
    fn sample_row_full_sort<T: Float>(
        row: &[T],
        cfg: &GenerateConfig,
        rng: &mut StdRng,
    ) -> (u32, f64, f64) {
        let logits: Vec<f64> = row.iter().map(|v| v.to_f64()).collect();
        let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let raw: Vec<f64> = logits.iter().map(|&v| (v - m).exp()).collect();
        let lse = m + raw.iter().sum::<f64>().ln();
        if cfg.temperature == 0.0 {
            let mut best = 0;
            for (i, &v) in logits.iter().enumerate() {
                if v > logits[best] {
                    best = i;
                }
            }
            return (best as u32, 0.0, logits[best] - lse);
        }
        let inv_t = 1.0 / cfg.temperature;
        let mut cand: Vec<(usize, f64)> = logits.iter().map(|&v| v * inv_t).enumerate().collect();
        let filter = (cfg.top_k > 0 && cfg.top_k < cand.len()) || cfg.top_p < 1.0;
        if filter {
            cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            if cfg.top_k > 0 {
                cand.truncate(cfg.top_k);
            }
        }
        let mut probs: Vec<f64> = if !filter && cfg.temperature == 1.0 {
            raw
        } else {
            let mz = cand.iter().fold(f64::NEG_INFINITY, |a, &(_, z)| a.max(z));
            cand.iter().map(|&(_, z)| (z - mz).exp()).collect()
        };
        let mut total: f64 = probs.iter().sum();
        if cfg.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p / total;
                if acc >= cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            cand.truncate(keep);
            total = probs.iter().sum();
        }
        let u: f64 = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut pick = probs.len() - 1;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if u < acc {
                pick = i;
                break;
            }
        }
        let token = cand[pick].0;
        (
            token as u32,
            (probs[pick] / total).ln(),
            logits[token] - lse,
        )
    }

    fn normal_row(v: usize, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..v).map(|_| sd * gaussian(&mut rng)).collect()
    }

    /// Samples `row` under `cfg` with several seeds through the histogram
    /// start and fixed first prefixes, and compares token, both log-probs
    /// (bit for bit) and the RNG's next draw with the full sort.
    fn check<T: Float>(name: &str, row: &[T], cfg: &GenerateConfig, seeds: u64) {
        for seed in 0..seeds {
            let mut want_rng = StdRng::seed_from_u64(seed);
            let (wt, ws, wr) = sample_row_full_sort(row, cfg, &mut want_rng);
            let want_next = want_rng.random::<u64>();
            for first in [None, Some(1), Some(3), Some(FIRST_PREFIX)] {
                let mut rng = StdRng::seed_from_u64(seed);
                let (t, s, r) = sample_row_from(row, cfg, &mut rng, first);
                let at = format!(
                    "{name}: seed {seed}, first {first:?}, temperature {}, top_k {}, top_p {}",
                    cfg.temperature, cfg.top_k, cfg.top_p
                );
                assert_eq!(t, wt, "{at}: token");
                assert_eq!(s.to_bits(), ws.to_bits(), "{at}: sample log-prob");
                assert_eq!(r.to_bits(), wr.to_bits(), "{at}: raw log-prob");
                assert_eq!(rng.random::<u64>(), want_next, "{at}: RNG stream");
            }
        }
    }

    fn cfg(temperature: f64, top_k: usize, top_p: f64) -> GenerateConfig {
        GenerateConfig {
            temperature,
            top_k,
            top_p,
            ..GenerateConfig::default()
        }
    }

    /// Top-k and top-p sampling with partial selection draw exactly what
    /// sorting every candidate draws, on flat, peaked, quantised, Gaussian
    /// and tiny rows.
    #[test]
    fn filtered_sampling_equals_a_full_sort() {
        let tops = [0.05, 0.5, 0.9, 0.99, 1.0];
        let flat = vec![0.5f32; 1000];
        let mut peaked = normal_row(3000, 1.0, 1);
        peaked[77] = 9.0;
        let quantised: Vec<f64> = normal_row(3000, 1.5, 2)
            .iter()
            .map(|&x| (x * 2.0).round() / 2.0)
            .collect();
        let gaussian_row: Vec<f32> = normal_row(20_000, 3.0, 3)
            .iter()
            .map(|&x| x as f32)
            .collect();
        for &temperature in &[1.0, 0.7, 1.6] {
            for &top_k in &[0, 1, 5, 64, 999, 1000, 2500, 50_000] {
                for &top_p in &tops {
                    let c = cfg(temperature, top_k, top_p);
                    check("flat", &flat, &c, 6);
                    check("peaked", &peaked, &c, 6);
                    check("quantised", &quantised, &c, 6);
                    check("gaussian", &gaussian_row, &c, 3);
                }
            }
        }
        for v in [1, 2, 3, 10, 63, 65] {
            let row = normal_row(v, 2.0, v as u64);
            for &top_k in &[0, 1, 2, 64] {
                for &top_p in &tops {
                    check("small", &row, &cfg(1.0, top_k, top_p), 20);
                    check("small flat", &vec![1.0f64; v], &cfg(0.9, top_k, top_p), 20);
                }
            }
        }
        // Greedy and unfiltered draws are untouched.
        check("greedy", &peaked, &cfg(0.0, 0, 0.9), 2);
        check("unfiltered", &gaussian_row, &cfg(1.3, 0, 1.0), 5);
    }

    /// Rows with masked, infinite or NaN logits, and temperatures that
    /// overflow the scaled logits, still match the full sort.
    #[test]
    fn filtered_sampling_of_unusual_rows_equals_a_full_sort() {
        let mut masked = normal_row(1000, 2.0, 4);
        for i in (0..1000).step_by(2) {
            masked[i] = f64::NEG_INFINITY;
        }
        let mut nan = normal_row(300, 2.0, 5);
        nan[9] = f64::NAN;
        let mut inf = normal_row(300, 2.0, 6);
        inf[4] = f64::INFINITY;
        let big = normal_row(300, 1e300, 7);
        for row in [&masked, &nan, &inf, &big] {
            for &top_k in &[0, 3, 700] {
                for &top_p in &[0.3, 0.9, 1.0] {
                    check("unusual", row, &cfg(1.0, top_k, top_p), 4);
                    check("unusual, cold", row, &cfg(1e-3, top_k, top_p), 4);
                }
            }
        }
    }

    /// `top_p` on (and one ulp either side of) the running sums of the
    /// full sort itself, where a differently rounded total would flip the
    /// decision: still the same draws.
    #[test]
    fn top_p_on_the_running_sums_equals_a_full_sort() {
        for (v, seed) in [(40, 20), (300, 21), (5000, 22)] {
            let row = normal_row(v, 2.0, seed);
            let mut z: Vec<(usize, f64)> = row.iter().copied().enumerate().collect();
            z.sort_unstable_by(by_logit);
            let mz = z[0].1;
            let p: Vec<f64> = z.iter().map(|&(_, x)| (x - mz).exp()).collect();
            let total: f64 = p.iter().sum();
            let mut acc = 0.0;
            let mut sums = Vec::new();
            for q in &p {
                acc += q / total;
                sums.push(acc);
            }
            for j in [0, 1, v / 10, v / 3, v / 2, v - 2] {
                let s = sums[j];
                for top_p in [
                    f64::from_bits(s.to_bits() - 1),
                    s,
                    f64::from_bits(s.to_bits() + 1),
                ] {
                    if top_p > 0.0 && top_p < 1.0 {
                        check("running sum", &row, &cfg(1.0, 0, top_p), 3);
                    }
                }
            }
        }
    }

    /// The decision that the summation order could flip falls back to the
    /// full sort, and the usual one does not.
    #[test]
    fn top_p_prefix_defers_close_calls() {
        let mut flat: Vec<(usize, f64)> = (0..1000).map(|i| (i, 0.0)).collect();
        assert_eq!(top_p_prefix(&mut flat, (0.0, 0.0), 0.5, None), None);
        let row = normal_row(20_000, 3.0, 8);
        let mz = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let lo = row.iter().fold(f64::INFINITY, |a, &b| a.min(b));
        let mut cand: Vec<(usize, f64)> = row.iter().copied().enumerate().collect();
        let keep = top_p_prefix(&mut cand, (mz, lo), 0.9, None);
        assert!(keep.is_some_and(|k| k > 10 && k < 5000), "{keep:?}");
    }
}
