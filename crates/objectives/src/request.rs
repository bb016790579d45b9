//! The JSON exchange format of `flowrl loss`: one request in, one response
//! out, so that any other implementation of these objectives (a GPU kernel,
//! a Python trainer) can be checked against this one.
//!
//! The types only derive serde traits; reading and writing JSON text is left
//! to the caller (the `flowrl` binary uses `serde_json`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::advantage::group_advantages;
use crate::config::{Aggregation, Algorithm, KlEstimator, ObjectiveConfig};
use crate::error::ObjectiveError;
use crate::loss::{LossStats, TokenBatch, compute};

/// Optional overrides of the algorithm's preset objective config. Names of
/// enums are strings here so that a bad value can be reported with its field
/// and the allowed values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigOverrides {
    /// ε_low.
    pub clip_low: Option<f64>,
    /// ε_high.
    pub clip_high: Option<f64>,
    /// Dual-clip constant c > 1; `null` keeps the preset (use
    /// `"dual_clip": 0` to switch it off).
    pub dual_clip: Option<f64>,
    /// β of the KL penalty.
    pub kl_coef: Option<f64>,
    /// `k1`, `k2` or `k3`.
    pub kl_estimator: Option<String>,
    /// Weight of the entropy bonus.
    pub entropy_coef: Option<f64>,
    /// One of the [`Aggregation`] names.
    pub aggregation: Option<String>,
    /// Horizon of `seq-mean-token-sum-norm`, in tokens.
    pub loss_agg_horizon: Option<u32>,
}

/// A group label: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GroupLabel {
    /// An integer label.
    Int(i64),
    /// A string label.
    Text(String),
}

/// One loss evaluation request. Per-token arrays have one value per token
/// position; `advantages` (or `rewards` and `groups`) one per trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LossRequest {
    /// `grpo`, `gspo`, `gsspo`, `cwrpo` or `reinforce`.
    pub algorithm: String,
    /// Overrides of the algorithm's preset.
    #[serde(default)]
    pub config: ConfigOverrides,
    /// log π_θ per token.
    pub logprobs: Vec<f64>,
    /// log π_old per token.
    pub old_logprobs: Vec<f64>,
    /// log π_ref per token (needed when `kl_coef > 0`).
    #[serde(default)]
    pub ref_logprobs: Option<Vec<f64>>,
    /// Entropy per token (needed when `entropy_coef ≠ 0`).
    #[serde(default)]
    pub entropy: Option<Vec<f64>>,
    /// 0/1 per token.
    pub mask: Vec<u8>,
    /// Sub-sequence id per token, −1 outside policy spans.
    pub subseq: Vec<i32>,
    /// Trajectory index per token.
    pub traj: Vec<i32>,
    /// One advantage per trajectory.
    #[serde(default)]
    pub advantages: Option<Vec<f64>>,
    /// One reward per trajectory (instead of `advantages`).
    #[serde(default)]
    pub rewards: Option<Vec<f64>>,
    /// One group label per trajectory (with `rewards`).
    #[serde(default)]
    pub groups: Option<Vec<GroupLabel>>,
}

/// The answer to a [`LossRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LossResponse {
    /// The objective J.
    pub loss: f64,
    /// ∂J/∂lp per token.
    pub grad: Vec<f64>,
    /// Diagnostics.
    pub stats: LossStats,
    /// The advantages used (given, or computed from rewards).
    pub advantages: Vec<f64>,
    /// The full objective config used.
    pub config: ObjectiveConfig,
}

impl LossRequest {
    /// The objective config: the algorithm's preset with the overrides applied.
    ///
    /// # Errors
    /// [`ObjectiveError::UnknownName`] for an unknown algorithm, aggregation
    /// or KL estimator (naming the field and the allowed values);
    /// [`ObjectiveError::InvalidConfig`] for a value out of its domain.
    pub fn objective_config(&self) -> Result<ObjectiveConfig, ObjectiveError> {
        let algorithm: Algorithm = self.algorithm.parse()?;
        let mut c = algorithm.default_config().objective;
        let o = &self.config;
        if let Some(v) = o.clip_low {
            c.clip_low = v;
        }
        if let Some(v) = o.clip_high {
            c.clip_high = v;
        }
        if let Some(v) = o.dual_clip {
            c.dual_clip = (v != 0.0).then_some(v);
        }
        if let Some(v) = o.kl_coef {
            c.kl_coef = v;
        }
        if let Some(v) = &o.kl_estimator {
            c.kl_estimator = v.parse::<KlEstimator>()?;
        }
        if let Some(v) = o.entropy_coef {
            c.entropy_coef = v;
        }
        if let Some(v) = &o.aggregation {
            c.aggregation = v.parse::<Aggregation>()?;
        }
        if o.loss_agg_horizon.is_some() {
            c.loss_agg_horizon = o.loss_agg_horizon;
        }
        c.validate()?;
        Ok(c)
    }

    /// The per-trajectory advantages: given, or computed from `rewards` and
    /// `groups` with the algorithm's preset estimator.
    ///
    /// # Errors
    /// [`ObjectiveError::MissingInput`] when neither form (or only half of
    /// the second) is given, or both are; errors of
    /// [`crate::advantage::group_advantages`].
    pub fn advantages(&self) -> Result<Vec<f64>, ObjectiveError> {
        match (&self.advantages, &self.rewards, &self.groups) {
            (Some(a), None, None) => Ok(a.clone()),
            (None, Some(r), Some(g)) => {
                let algorithm: Algorithm = self.algorithm.parse()?;
                group_advantages(r, g, &algorithm.default_config().advantage)
            }
            (None, Some(_), None) => Err(ObjectiveError::MissingInput {
                field: "groups",
                reason: "`rewards` needs one group label per trajectory",
            }),
            (None, None, Some(_)) => Err(ObjectiveError::MissingInput {
                field: "rewards",
                reason: "`groups` needs one reward per trajectory",
            }),
            (None, None, None) => Err(ObjectiveError::MissingInput {
                field: "advantages",
                reason: "give `advantages`, or `rewards` and `groups`",
            }),
            (Some(_), _, _) => Err(ObjectiveError::InvalidConfig {
                field: "advantages",
                value: "given with rewards/groups".into(),
                reason: "give either `advantages` or `rewards` + `groups`, not both",
            }),
        }
    }

    /// Evaluates the request in f64.
    ///
    /// # Errors
    /// As [`Self::objective_config`], [`Self::advantages`] and
    /// [`crate::compute`].
    pub fn evaluate(&self) -> Result<LossResponse, ObjectiveError> {
        let config = self.objective_config()?;
        let advantages = self.advantages()?;
        let mut batch = TokenBatch::new(
            &self.logprobs,
            &self.old_logprobs,
            &self.mask,
            &self.subseq,
            &self.traj,
            &advantages,
        );
        batch.ref_logprobs = self.ref_logprobs.as_deref();
        batch.entropy = self.entropy.as_deref();
        let out = compute(&batch, &config)?;
        Ok(LossResponse {
            loss: out.loss,
            grad: out.grad,
            stats: out.stats,
            advantages,
            config,
        })
    }
}
