//! The policy losses over a flat token batch, with exact gradients.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Aggregation, Algorithm, KlEstimator, ObjectiveConfig, RatioUnit};
use crate::error::ObjectiveError;
use crate::exec::{map_chunks_mut, map_ranges};
use crate::exp::exp_in_place;
use crate::float::Float;

/// Token-level log-ratios are clamped to ±this before `exp` (as verl does);
/// the gradient is 0 where the clamp is active.
pub const TOKEN_LOG_RATIO_CLAMP: f64 = 20.0;
/// Sequence- and sub-sequence-level log-ratios are clamped from above at this
/// value before `exp` (verl's GSPO); the gradient is 0 where it is active.
pub const UNIT_LOG_RATIO_MAX: f64 = 10.0;
/// k3's argument `x = ref − lp` is clamped to ±this.
pub const K3_ARG_CLAMP: f64 = 20.0;
/// k3's value is clamped to ±this.
pub const K3_VALUE_CLAMP: f64 = 10.0;

/// One flat batch of `n` token positions (the layout of
/// [`flowrl_trajectory::PackedBatch`]), borrowed.
///
/// Every per-token slice has length `n`. Values at masked-out positions
/// (mask = 0) are never read except `mask` and `subseq`, so padding may hold
/// anything there.
#[derive(Debug, Clone, Copy)]
pub struct TokenBatch<'a, F: Float> {
    /// `[n]` log π_θ of each target token (the variable of the gradient).
    pub logprobs: &'a [F],
    /// `[n]` log π_old of each target token (the policy that sampled it).
    pub old_logprobs: &'a [F],
    /// `[n]` log π_ref, needed when `kl_coef > 0`; when given, the KL is also
    /// reported with `kl_coef = 0`.
    pub ref_logprobs: Option<&'a [F]>,
    /// `[n]` per-token entropy of π_θ (nats), needed when `entropy_coef ≠ 0`.
    pub entropy: Option<&'a [F]>,
    /// `[n]` 1 (any non-zero byte) for policy tokens, 0 elsewhere.
    pub mask: &'a [u8],
    /// `[n]` batch-wide sub-sequence id of each policy token: a dense index
    /// `0 ≤ id < n`; negative (−1) on masked-out tokens.
    pub subseq: &'a [i32],
    /// `[n]` trajectory of each token: an index into `advantages` (read only
    /// on policy tokens).
    pub traj: &'a [i32],
    /// `[B]` one advantage per trajectory.
    pub advantages: &'a [F],
}

impl<'a, F: Float> TokenBatch<'a, F> {
    /// A batch without reference log-probs or entropies.
    pub fn new(
        logprobs: &'a [F],
        old_logprobs: &'a [F],
        mask: &'a [u8],
        subseq: &'a [i32],
        traj: &'a [i32],
        advantages: &'a [F],
    ) -> Self {
        Self {
            logprobs,
            old_logprobs,
            ref_logprobs: None,
            entropy: None,
            mask,
            subseq,
            traj,
            advantages,
        }
    }

    /// Adds reference log-probs (`[n]`).
    pub fn with_ref(mut self, ref_logprobs: &'a [F]) -> Self {
        self.ref_logprobs = Some(ref_logprobs);
        self
    }

    /// Adds per-token entropies (`[n]`).
    pub fn with_entropy(mut self, entropy: &'a [F]) -> Self {
        self.entropy = Some(entropy);
        self
    }

    /// A batch over the positions of a packed batch: its `loss_mask`,
    /// `subseq` and `traj`, with the given per-position log-probs and one
    /// advantage per trajectory of the packed batch.
    pub fn from_packed(
        batch: &'a flowrl_trajectory::PackedBatch,
        logprobs: &'a [F],
        old_logprobs: &'a [F],
        advantages: &'a [F],
    ) -> Self {
        Self::new(
            logprobs,
            old_logprobs,
            &batch.loss_mask,
            &batch.subseq,
            &batch.traj,
            advantages,
        )
    }

    /// Number of token positions.
    pub fn len(&self) -> usize {
        self.logprobs.len()
    }

    /// True when there are no positions.
    pub fn is_empty(&self) -> bool {
        self.logprobs.is_empty()
    }
}

/// Diagnostics of one loss evaluation. Means over tokens are over policy
/// tokens; `units` are the ratio units of [`LossStats::ratio_unit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LossStats {
    /// The policy-gradient part of the loss (aggregated).
    pub pg_loss: f64,
    /// Token-mean of the KL estimator against the reference, when reference
    /// log-probs were given.
    pub kl: Option<f64>,
    /// `kl_coef · kl` (0 without reference).
    pub kl_loss: f64,
    /// Token-mean of the given entropies, when given.
    pub entropy: Option<f64>,
    /// `−entropy_coef · entropy` (0 without entropies).
    pub entropy_loss: f64,
    /// Token-mean of `old − lp` (k1 estimate of KL(π_old ‖ π_θ)).
    pub approx_kl: f64,
    /// What one ratio covers.
    pub ratio_unit: RatioUnit,
    /// Mean importance ratio over units (after the log-ratio clamp).
    pub ratio_mean: f64,
    /// Smallest ratio over units.
    pub ratio_min: f64,
    /// Largest ratio over units.
    pub ratio_max: f64,
    /// Fraction of policy tokens whose unit takes the clipped PPO branch
    /// (dual-clip not counted).
    pub clip_frac_token: f64,
    /// Fraction of sub-sequences with at least one token on the clipped branch.
    pub clip_frac_subseq: f64,
    /// Fraction of policy tokens whose unit is capped by the dual clip.
    pub dual_clip_frac_token: f64,
    /// Token positions of the batch (masked-out included).
    pub num_tokens: usize,
    /// Policy tokens (mask = 1).
    pub num_policy_tokens: usize,
    /// Sub-sequences with at least one policy token.
    pub num_subseqs: usize,
    /// Trajectories with at least one policy token.
    pub num_trajectories: usize,
    /// Policy tokens on the clipped branch.
    pub num_clipped_tokens: usize,
    /// Sub-sequences with at least one clipped token.
    pub num_clipped_subseqs: usize,
}

/// The result of [`compute`].
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput<F: Float> {
    /// The objective J to minimise: `pg_loss + kl_loss + entropy_loss`.
    pub loss: f64,
    /// `[n]` ∂J/∂lp_t (0 at masked-out positions). Excludes the entropy
    /// bonus, whose gradient needs the full distribution.
    pub grad: Vec<F>,
    /// Diagnostics.
    pub stats: LossStats,
}

/// Computes the loss, its gradient with respect to `logprobs`, and statistics.
///
/// # Errors
/// See [`compute_into`].
pub fn compute<F: Float>(
    batch: &TokenBatch<'_, F>,
    config: &ObjectiveConfig,
) -> Result<LossOutput<F>, ObjectiveError> {
    let mut grad = vec![F::ZERO; batch.len()];
    let (loss, stats) = compute_into(batch, config, &mut grad)?;
    Ok(LossOutput { loss, grad, stats })
}

/// As [`compute`], writing the gradient into `grad` (`[n]`, fully overwritten).
///
/// # Errors
/// [`ObjectiveError::InvalidConfig`] for a bad config;
/// [`ObjectiveError::LengthMismatch`] when a slice (or `grad`) is not `[n]`;
/// [`ObjectiveError::EmptyBatch`] for no positions or no policy token;
/// [`ObjectiveError::NonFinite`] for a NaN/∞ advantage or a NaN/∞ value at a
/// policy token; [`ObjectiveError::SubseqOnMaskedToken`],
/// [`ObjectiveError::MissingSubseq`], [`ObjectiveError::SubseqOutOfRange`],
/// [`ObjectiveError::SubseqInTwoTrajectories`] for an inconsistent layout;
/// [`ObjectiveError::MissingAdvantage`] when a policy token's trajectory has
/// no advantage; [`ObjectiveError::MissingInput`] when `kl_coef > 0` without
/// reference log-probs or `entropy_coef ≠ 0` without entropies.
pub fn compute_into<F: Float>(
    batch: &TokenBatch<'_, F>,
    config: &ObjectiveConfig,
    grad: &mut [F],
) -> Result<(f64, LossStats), ObjectiveError> {
    config.validate()?;
    check_shapes(batch, config, grad.len())?;
    let scan = scan(batch)?;
    let plan = plan(batch, config, &scan)?;
    let tok = token_pass(batch, config, &plan, grad);

    let t = scan.num_policy_tokens as f64;
    let mut stats = plan.stats;
    stats.pg_loss = plan.pg_loss + tok.pg_loss;
    if batch.ref_logprobs.is_some() {
        let kl = tok.kl_sum / t;
        stats.kl = Some(kl);
        stats.kl_loss = config.kl_coef * kl;
    }
    if batch.entropy.is_some() {
        let e = tok.ent_sum / t;
        stats.entropy = Some(e);
        stats.entropy_loss = -config.entropy_coef * e;
    }
    if stats.ratio_unit == RatioUnit::Token {
        stats.ratio_mean = tok.ratio_sum / t;
        stats.ratio_min = tok.ratio_min;
        stats.ratio_max = tok.ratio_max;
        stats.num_clipped_tokens = tok.clipped as usize;
        stats.dual_clip_frac_token = tok.dual as f64 / t;
        let mut flags = vec![false; scan.sub_count.len()];
        for &k in tok.clipped_subseqs.iter() {
            flags[k as usize] = true;
        }
        stats.num_clipped_subseqs = flags.iter().filter(|&&f| f).count();
    }
    stats.clip_frac_token = stats.num_clipped_tokens as f64 / t;
    stats.clip_frac_subseq = stats.num_clipped_subseqs as f64 / stats.num_subseqs as f64;
    let loss = stats.pg_loss + stats.kl_loss + stats.entropy_loss;
    Ok((loss, stats))
}

fn check_shapes<F: Float>(
    b: &TokenBatch<'_, F>,
    config: &ObjectiveConfig,
    grad_len: usize,
) -> Result<(), ObjectiveError> {
    let mut lens = vec![
        ("old_logprobs", b.old_logprobs.len()),
        ("mask", b.mask.len()),
        ("subseq", b.subseq.len()),
        ("traj", b.traj.len()),
        ("grad", grad_len),
    ];
    if let Some(r) = b.ref_logprobs {
        lens.push(("ref_logprobs", r.len()));
    }
    if let Some(e) = b.entropy {
        lens.push(("entropy", e.len()));
    }
    check_lengths(b.logprobs.len(), &lens)?;
    if let Some((index, a)) = b
        .advantages
        .iter()
        .enumerate()
        .find(|(_, a)| !a.is_finite())
    {
        return Err(ObjectiveError::NonFinite {
            field: "advantages",
            index,
            value: a.to_f64(),
        });
    }
    check_optional_inputs(config, b.ref_logprobs.is_some(), b.entropy.is_some())
}

/// Checks that a batch of `n` token positions is not empty and that every
/// per-token input `(name, length)` has length `n`.
///
/// # Errors
/// [`ObjectiveError::EmptyBatch`] for `n = 0`, else
/// [`ObjectiveError::LengthMismatch`] naming the first input of another length.
pub fn check_lengths(n: usize, lens: &[(&'static str, usize)]) -> Result<(), ObjectiveError> {
    if n == 0 {
        return Err(ObjectiveError::EmptyBatch("no token positions"));
    }
    match lens.iter().find(|(_, got)| *got != n) {
        Some(&(field, got)) => Err(ObjectiveError::LengthMismatch {
            field,
            expected: n,
            got,
        }),
        None => Ok(()),
    }
}

/// Checks that the inputs `config` needs besides the log-probs are present:
/// reference log-probs for a KL term, per-token entropies for an entropy bonus.
///
/// # Errors
/// [`ObjectiveError::MissingInput`] naming the absent input.
pub fn check_optional_inputs(
    config: &ObjectiveConfig,
    has_ref: bool,
    has_entropy: bool,
) -> Result<(), ObjectiveError> {
    if config.kl_coef > 0.0 && !has_ref {
        return Err(ObjectiveError::MissingInput {
            field: "ref_logprobs",
            reason: "kl_coef > 0 needs reference log-probs",
        });
    }
    if config.entropy_coef != 0.0 && !has_entropy {
        return Err(ObjectiveError::MissingInput {
            field: "entropy",
            reason: "entropy_coef ≠ 0 needs per-token entropies",
        });
    }
    Ok(())
}

/// A maximal run of consecutive policy tokens with one (sub-sequence, trajectory).
#[derive(Debug, Clone, Copy)]
struct Run {
    subseq: u32,
    traj: u32,
    count: u32,
    sum_delta: f64,
    sum_lp: f64,
}

/// Per-sub-sequence sums over the whole batch (indexed by sub-sequence id).
struct Scan {
    sub_count: Vec<u32>,
    sub_traj: Vec<u32>,
    sub_delta: Vec<f64>,
    sub_lp: Vec<f64>,
    num_policy_tokens: usize,
    sum_delta: f64,
}

const UNSET: u32 = u32::MAX;

fn scan_chunk<F: Float>(
    b: &TokenBatch<'_, F>,
    range: std::ops::Range<usize>,
) -> Result<Vec<Run>, ObjectiveError> {
    let n = b.logprobs.len();
    let na = b.advantages.len();
    let mut runs: Vec<Run> = Vec::new();
    let non_finite = |field: &'static str, index: usize, v: F| ObjectiveError::NonFinite {
        field,
        index,
        value: v.to_f64(),
    };
    for t in range {
        let s = b.subseq[t];
        if b.mask[t] == 0 {
            if s >= 0 {
                return Err(ObjectiveError::SubseqOnMaskedToken {
                    index: t,
                    subseq: s,
                });
            }
            continue;
        }
        if s < 0 {
            return Err(ObjectiveError::MissingSubseq {
                index: t,
                subseq: s,
            });
        }
        if s as usize >= n {
            return Err(ObjectiveError::SubseqOutOfRange {
                index: t,
                subseq: s,
                len: n,
            });
        }
        let tr = b.traj[t];
        if tr < 0 || tr as usize >= na {
            return Err(ObjectiveError::MissingAdvantage {
                index: t,
                traj: i64::from(tr),
                available: na,
            });
        }
        let (lp, old) = (b.logprobs[t], b.old_logprobs[t]);
        if !lp.is_finite() {
            return Err(non_finite("logprobs", t, lp));
        }
        if !old.is_finite() {
            return Err(non_finite("old_logprobs", t, old));
        }
        if let Some(r) = b.ref_logprobs
            && !r[t].is_finite()
        {
            return Err(non_finite("ref_logprobs", t, r[t]));
        }
        if let Some(e) = b.entropy
            && !e[t].is_finite()
        {
            return Err(non_finite("entropy", t, e[t]));
        }
        let (lp, old) = (lp.to_f64(), old.to_f64());
        let (s, tr) = (s as u32, tr as u32);
        match runs.last_mut() {
            Some(r) if r.subseq == s && r.traj == tr && r.count < u32::MAX => {
                r.count += 1;
                r.sum_delta += lp - old;
                r.sum_lp += lp;
            }
            _ => runs.push(Run {
                subseq: s,
                traj: tr,
                count: 1,
                sum_delta: lp - old,
                sum_lp: lp,
            }),
        }
    }
    Ok(runs)
}

fn scan<F: Float>(b: &TokenBatch<'_, F>) -> Result<Scan, ObjectiveError> {
    let chunks = map_ranges(b.logprobs.len(), |r| scan_chunk(b, r));
    let mut sc = Scan {
        sub_count: Vec::new(),
        sub_traj: Vec::new(),
        sub_delta: Vec::new(),
        sub_lp: Vec::new(),
        num_policy_tokens: 0,
        sum_delta: 0.0,
    };
    for runs in chunks {
        for r in runs? {
            let k = r.subseq as usize;
            if k >= sc.sub_count.len() {
                let len = k + 1;
                sc.sub_count.resize(len, 0);
                sc.sub_traj.resize(len, UNSET);
                sc.sub_delta.resize(len, 0.0);
                sc.sub_lp.resize(len, 0.0);
            }
            match sc.sub_traj[k] {
                UNSET => sc.sub_traj[k] = r.traj,
                first if first != r.traj => {
                    return Err(ObjectiveError::SubseqInTwoTrajectories {
                        subseq: k,
                        first: first as usize,
                        second: r.traj as usize,
                    });
                }
                _ => {}
            }
            sc.sub_count[k] += r.count;
            sc.sub_delta[k] += r.sum_delta;
            sc.sub_lp[k] += r.sum_lp;
            sc.num_policy_tokens += r.count as usize;
            sc.sum_delta += r.sum_delta;
        }
    }
    if sc.num_policy_tokens == 0 {
        return Err(ObjectiveError::EmptyBatch(
            "no policy token (mask is all 0)",
        ));
    }
    Ok(sc)
}

/// Value of `PPO(r, A)` with optional dual clip, its derivative in `r`, and
/// which branch was taken.
#[derive(Debug, Clone, Copy)]
struct Ppo {
    value: f64,
    d_ratio: f64,
    clipped: bool,
    dual: bool,
}

#[inline(always)]
fn ppo(r: f64, a: f64, lo: f64, hi: f64, dual_clip: Option<f64>) -> Ppo {
    let unclipped = -a * r;
    let clipped = -a * r.clamp(lo, hi);
    let mut p = if clipped > unclipped {
        Ppo {
            value: clipped,
            d_ratio: 0.0,
            clipped: true,
            dual: false,
        }
    } else {
        Ppo {
            value: unclipped,
            d_ratio: -a,
            clipped: false,
            dual: false,
        }
    };
    if let Some(c) = dual_clip
        && a < 0.0
    {
        let cap = -a * c;
        if p.value > cap {
            p = Ppo {
                value: cap,
                d_ratio: 0.0,
                clipped: p.clipped,
                dual: true,
            };
        }
    }
    p
}

/// `(value, ∂value/∂lp)` of the k1 or k2 KL estimator term.
#[inline(always)]
fn kl_term_k12(est: KlEstimator, lp: f64, rf: f64) -> (f64, f64) {
    let x = rf - lp;
    match est {
        KlEstimator::K1 => (-x, 1.0),
        _ => (0.5 * x * x, -x),
    }
}

/// `(value, ∂value/∂lp)` of the k3 KL term at `x = ref − lp`, given
/// `e = exp(clamp(x, ±K3_ARG_CLAMP))`.
#[inline(always)]
fn kl_term_k3(x: f64, e: f64) -> (f64, f64) {
    let xc = x.clamp(-K3_ARG_CLAMP, K3_ARG_CLAMP);
    let v = e - xc - 1.0;
    let vc = v.clamp(-K3_VALUE_CLAMP, K3_VALUE_CLAMP);
    // ∂v/∂lp = −(eˣ − 1), zero where either clamp is active.
    let d = if xc != x || vc != v { 0.0 } else { 1.0 - e };
    (vc, d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanUnit {
    /// Per-token PPO; `coef[k] = (weight, advantage)` of sub-sequence k.
    Token,
    /// Per-token gradient `coef[k].0` is constant over the sub-sequence.
    Constant,
}

/// What the token pass needs, per sub-sequence, and the unit-level results.
struct Plan {
    unit: PlanUnit,
    /// Per sub-sequence id: (weight per token, advantage) for `Token`,
    /// (gradient per token, unused) for `Constant`.
    coef: Vec<(f64, f64)>,
    /// Loss already accumulated at unit level.
    pg_loss: f64,
    /// Stats with the unit-level fields filled in.
    stats: LossStats,
    kl_per_token: f64,
}

// Several per-sub-sequence arrays are indexed together by the same id.
#[allow(clippy::needless_range_loop)]
fn plan<F: Float>(
    b: &TokenBatch<'_, F>,
    c: &ObjectiveConfig,
    sc: &Scan,
) -> Result<Plan, ObjectiveError> {
    let nb = b.advantages.len();
    let ns = sc.sub_count.len();
    let mut traj_count = vec![0u64; nb];
    let mut traj_k = vec![0u32; nb];
    let mut traj_delta = vec![0.0f64; nb];
    let mut num_subseqs = 0usize;
    for k in 0..ns {
        if sc.sub_count[k] == 0 {
            continue;
        }
        let i = sc.sub_traj[k] as usize;
        traj_count[i] += u64::from(sc.sub_count[k]);
        traj_k[i] += 1;
        traj_delta[i] += sc.sub_delta[k];
        num_subseqs += 1;
    }
    let num_traj = traj_count.iter().filter(|&&n| n > 0).count();
    let t = sc.num_policy_tokens as f64;
    let horizon = match c.loss_agg_horizon {
        Some(h) => f64::from(h),
        None => traj_count.iter().copied().max().unwrap_or(1) as f64,
    };
    let nf = num_traj as f64;
    // Weight of each token of sub-sequence k in the aggregated sum.
    let weight = |k: usize| -> f64 {
        let i = sc.sub_traj[k] as usize;
        let len = f64::from(sc.sub_count[k]);
        match c.aggregation {
            Aggregation::TokenMean => 1.0 / t,
            Aggregation::SeqMeanTokenMean => 1.0 / (nf * traj_count[i] as f64),
            Aggregation::SeqMeanTokenSum => 1.0 / nf,
            Aggregation::SeqMeanTokenSumNorm => 1.0 / horizon,
            Aggregation::TrajMeanSubseqMean => 1.0 / (nf * f64::from(traj_k[i]) * len),
            Aggregation::SubseqMean => 1.0 / (num_subseqs as f64 * len),
        }
    };
    let adv = |k: usize| b.advantages[sc.sub_traj[k] as usize].to_f64();
    let (lo, hi) = (1.0 - c.clip_low, 1.0 + c.clip_high);
    let mut stats = LossStats {
        pg_loss: 0.0,
        kl: None,
        kl_loss: 0.0,
        entropy: None,
        entropy_loss: 0.0,
        approx_kl: -sc.sum_delta / t,
        ratio_unit: c.algorithm.ratio_unit(),
        ratio_mean: 0.0,
        ratio_min: f64::INFINITY,
        ratio_max: f64::NEG_INFINITY,
        clip_frac_token: 0.0,
        clip_frac_subseq: 0.0,
        dual_clip_frac_token: 0.0,
        num_tokens: b.logprobs.len(),
        num_policy_tokens: sc.num_policy_tokens,
        num_subseqs,
        num_trajectories: num_traj,
        num_clipped_tokens: 0,
        num_clipped_subseqs: 0,
    };
    let mut coef = vec![(0.0, 0.0); ns];
    let mut pg_loss = 0.0;
    let unit = match c.algorithm {
        Algorithm::Grpo | Algorithm::Cwrpo => {
            for (k, slot) in coef.iter_mut().enumerate() {
                if sc.sub_count[k] > 0 {
                    *slot = (weight(k), adv(k));
                }
            }
            PlanUnit::Token
        }
        Algorithm::Reinforce => {
            for (k, slot) in coef.iter_mut().enumerate() {
                if sc.sub_count[k] > 0 {
                    let (w, a) = (weight(k), adv(k));
                    pg_loss += -a * w * sc.sub_lp[k];
                    *slot = (-a * w, 0.0);
                }
            }
            PlanUnit::Constant
        }
        Algorithm::Gsspo => {
            let mut ratio_sum = 0.0;
            let mut dual = 0usize;
            for k in 0..ns {
                let len = sc.sub_count[k];
                if len == 0 {
                    continue;
                }
                let (w, a) = (weight(k), adv(k));
                let log_s = sc.sub_delta[k] / f64::from(len);
                let (r, active) = unit_ratio(log_s);
                let p = ppo(r, a, lo, hi, c.dual_clip);
                // Unit weight W_k = w·|k|; ∂r/∂lp_t = r/|k| ⇒ per-token gradient w·p'·r.
                pg_loss += w * f64::from(len) * p.value;
                coef[k] = (if active { w * p.d_ratio * r } else { 0.0 }, 0.0);
                ratio_sum += r;
                stats.ratio_min = stats.ratio_min.min(r);
                stats.ratio_max = stats.ratio_max.max(r);
                if p.clipped {
                    stats.num_clipped_subseqs += 1;
                    stats.num_clipped_tokens += len as usize;
                }
                if p.dual {
                    dual += len as usize;
                }
            }
            stats.ratio_mean = ratio_sum / num_subseqs as f64;
            stats.dual_clip_frac_token = dual as f64 / t;
            PlanUnit::Constant
        }
        Algorithm::Gspo => {
            // Unit weight of each trajectory: Σ over its tokens of their weights.
            let mut traj_w = vec![0.0f64; nb];
            for k in 0..ns {
                if sc.sub_count[k] > 0 {
                    traj_w[sc.sub_traj[k] as usize] += weight(k) * f64::from(sc.sub_count[k]);
                }
            }
            let mut traj_g = vec![0.0f64; nb];
            let mut traj_clipped = vec![false; nb];
            let mut ratio_sum = 0.0;
            let mut dual = 0usize;
            for i in 0..nb {
                let n_i = traj_count[i];
                if n_i == 0 {
                    continue;
                }
                let a = b.advantages[i].to_f64();
                let (r, active) = unit_ratio(traj_delta[i] / n_i as f64);
                let p = ppo(r, a, lo, hi, c.dual_clip);
                pg_loss += traj_w[i] * p.value;
                traj_g[i] = if active {
                    traj_w[i] * p.d_ratio * r / n_i as f64
                } else {
                    0.0
                };
                ratio_sum += r;
                stats.ratio_min = stats.ratio_min.min(r);
                stats.ratio_max = stats.ratio_max.max(r);
                traj_clipped[i] = p.clipped;
                if p.clipped {
                    stats.num_clipped_tokens += n_i as usize;
                }
                if p.dual {
                    dual += n_i as usize;
                }
            }
            for k in 0..ns {
                if sc.sub_count[k] > 0 {
                    let i = sc.sub_traj[k] as usize;
                    coef[k] = (traj_g[i], 0.0);
                    stats.num_clipped_subseqs += usize::from(traj_clipped[i]);
                }
            }
            stats.ratio_mean = ratio_sum / nf;
            stats.dual_clip_frac_token = dual as f64 / t;
            PlanUnit::Constant
        }
    };
    Ok(Plan {
        unit,
        coef,
        pg_loss,
        stats,
        kl_per_token: c.kl_coef / t,
    })
}

/// `exp(min(log_s, UNIT_LOG_RATIO_MAX))` and whether the clamp is inactive.
#[inline]
fn unit_ratio(log_s: f64) -> (f64, bool) {
    if log_s > UNIT_LOG_RATIO_MAX {
        (UNIT_LOG_RATIO_MAX.exp(), false)
    } else {
        (log_s.exp(), true)
    }
}

/// Per-chunk results of the token pass.
struct TokOut {
    pg_loss: f64,
    kl_sum: f64,
    ent_sum: f64,
    ratio_sum: f64,
    ratio_min: f64,
    ratio_max: f64,
    clipped: u64,
    dual: u64,
    clipped_subseqs: Vec<u32>,
}

/// KL estimator codes of [`token_loop`]'s const parameter.
const KL_NONE: u8 = 0;
const KL_K1: u8 = 1;
const KL_K2: u8 = 2;
const KL_K3: u8 = 3;

fn token_chunk<F: Float>(
    b: &TokenBatch<'_, F>,
    c: &ObjectiveConfig,
    plan: &Plan,
    start: usize,
    grad: &mut [F],
) -> TokOut {
    // One loop per (unit, KL estimator): the per-token branches on the
    // configuration are resolved at compile time.
    let kl = match (b.ref_logprobs.is_some(), c.kl_estimator) {
        (false, _) => KL_NONE,
        (true, KlEstimator::K1) => KL_K1,
        (true, KlEstimator::K2) => KL_K2,
        (true, KlEstimator::K3) => KL_K3,
    };
    match (plan.unit, kl) {
        (PlanUnit::Token, KL_NONE) => token_loop::<F, true, KL_NONE>(b, c, plan, start, grad),
        (PlanUnit::Token, KL_K1) => token_loop::<F, true, KL_K1>(b, c, plan, start, grad),
        (PlanUnit::Token, KL_K2) => token_loop::<F, true, KL_K2>(b, c, plan, start, grad),
        (PlanUnit::Token, _) => token_loop::<F, true, KL_K3>(b, c, plan, start, grad),
        (PlanUnit::Constant, KL_NONE) => token_loop::<F, false, KL_NONE>(b, c, plan, start, grad),
        (PlanUnit::Constant, KL_K1) => token_loop::<F, false, KL_K1>(b, c, plan, start, grad),
        (PlanUnit::Constant, KL_K2) => token_loop::<F, false, KL_K2>(b, c, plan, start, grad),
        (PlanUnit::Constant, _) => token_loop::<F, false, KL_K3>(b, c, plan, start, grad),
    }
}

/// [`token_chunk`] for one unit kind (`TOKEN_UNIT`: per-token PPO) and one
/// KL estimator code (`KL`, [`KL_NONE`] without a reference).
fn token_loop<F: Float, const TOKEN_UNIT: bool, const KL: u8>(
    b: &TokenBatch<'_, F>,
    c: &ObjectiveConfig,
    plan: &Plan,
    start: usize,
    grad: &mut [F],
) -> TokOut {
    let mut o = TokOut {
        pg_loss: 0.0,
        kl_sum: 0.0,
        ent_sum: 0.0,
        ratio_sum: 0.0,
        ratio_min: f64::INFINITY,
        ratio_max: f64::NEG_INFINITY,
        clipped: 0,
        dual: 0,
        clipped_subseqs: Vec::new(),
    };
    let end = start + grad.len();
    let mask = &b.mask[start..end];
    let subseq = &b.subseq[start..end];
    let lp = &b.logprobs[start..end];
    let old = &b.old_logprobs[start..end];
    // Empty when absent; only read when KL ≠ KL_NONE (the reference) or
    // `has_ent` (the entropy), so every read is in range.
    let rf: &[F] = b.ref_logprobs.map_or(&[], |r| &r[start..end]);
    let ent: &[F] = b.entropy.map_or(&[], |e| &e[start..end]);
    let has_ent = !ent.is_empty();
    let est = if KL == KL_K1 {
        KlEstimator::K1
    } else {
        KlEstimator::K2
    };
    let (lo, hi) = (1.0 - c.clip_low, 1.0 + c.clip_high);
    let dual_clip = c.dual_clip;
    let want_ratio = TOKEN_UNIT || matches!(c.algorithm, Algorithm::Reinforce);
    let kl_w = plan.kl_per_token;
    // The exponentials of a block of tokens are computed first, in one
    // vectorisable pass each (token ratios; k3 terms), then used by the
    // per-token loop. Masked-out positions get values that are never read.
    let mut ratio = [0.0f64; EXP_BLOCK];
    let mut k3e = [0.0f64; EXP_BLOCK];
    for b0 in (0..grad.len()).step_by(EXP_BLOCK) {
        let m = EXP_BLOCK.min(grad.len() - b0);
        if want_ratio {
            for (i, r) in ratio[..m].iter_mut().enumerate() {
                let d = lp[b0 + i].to_f64() - old[b0 + i].to_f64();
                *r = d.clamp(-TOKEN_LOG_RATIO_CLAMP, TOKEN_LOG_RATIO_CLAMP);
            }
            exp_in_place(&mut ratio[..m]);
        }
        if KL == KL_K3 {
            for (i, e) in k3e[..m].iter_mut().enumerate() {
                let x = rf[b0 + i].to_f64() - lp[b0 + i].to_f64();
                *e = x.clamp(-K3_ARG_CLAMP, K3_ARG_CLAMP);
            }
            exp_in_place(&mut k3e[..m]);
        }
        for i in 0..m {
            let j = b0 + i;
            if mask[j] == 0 {
                grad[j] = F::ZERO;
                continue;
            }
            let k = subseq[j] as usize;
            let (w, a) = plan.coef[k];
            let l = lp[j].to_f64();
            let r = ratio[i];
            if want_ratio {
                o.ratio_sum += r;
                o.ratio_min = o.ratio_min.min(r);
                o.ratio_max = o.ratio_max.max(r);
            }
            let mut g = if TOKEN_UNIT {
                let d = l - old[j].to_f64();
                let dc = d.clamp(-TOKEN_LOG_RATIO_CLAMP, TOKEN_LOG_RATIO_CLAMP);
                let p = ppo(r, a, lo, hi, dual_clip);
                o.pg_loss += w * p.value;
                if p.clipped {
                    o.clipped += 1;
                    if o.clipped_subseqs.last() != Some(&(k as u32)) {
                        o.clipped_subseqs.push(k as u32);
                    }
                }
                o.dual += u64::from(p.dual);
                if dc == d { w * p.d_ratio * r } else { 0.0 }
            } else {
                w
            };
            if KL != KL_NONE {
                let (v, d) = if KL == KL_K3 {
                    kl_term_k3(rf[j].to_f64() - l, k3e[i])
                } else {
                    kl_term_k12(est, l, rf[j].to_f64())
                };
                o.kl_sum += v;
                g += kl_w * d;
            }
            if has_ent {
                o.ent_sum += ent[j].to_f64();
            }
            grad[j] = F::from_f64(g);
        }
    }
    o
}

/// Tokens per block of [`token_loop`]'s exponentials (two f64 arrays of this
/// length live on the stack).
const EXP_BLOCK: usize = 256;

fn token_pass<F: Float>(
    b: &TokenBatch<'_, F>,
    c: &ObjectiveConfig,
    plan: &Plan,
    grad: &mut [F],
) -> TokOut {
    let parts = map_chunks_mut(grad, |start, g| token_chunk(b, c, plan, start, g));
    let mut acc = TokOut {
        pg_loss: 0.0,
        kl_sum: 0.0,
        ent_sum: 0.0,
        ratio_sum: 0.0,
        ratio_min: f64::INFINITY,
        ratio_max: f64::NEG_INFINITY,
        clipped: 0,
        dual: 0,
        clipped_subseqs: Vec::new(),
    };
    for p in parts {
        acc.pg_loss += p.pg_loss;
        acc.kl_sum += p.kl_sum;
        acc.ent_sum += p.ent_sum;
        acc.ratio_sum += p.ratio_sum;
        acc.ratio_min = acc.ratio_min.min(p.ratio_min);
        acc.ratio_max = acc.ratio_max.max(p.ratio_max);
        acc.clipped += p.clipped;
        acc.dual += p.dual;
        acc.clipped_subseqs.extend(p.clipped_subseqs);
    }
    acc
}
