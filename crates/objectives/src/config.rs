//! Algorithm configurations and their presets.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::advantage::AdvantageConfig;
use crate::error::ObjectiveError;

/// Implements `as_str`, `ALLOWED`, `Display` and `FromStr` (whose error names
/// the field and lists the allowed values) for a kebab-case name enum.
macro_rules! named_enum {
    ($ty:ident, $field:literal, [$($var:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];
            /// The accepted names, comma-separated (for messages).
            pub const ALLOWED: &'static str = concat!($($name, ", "),+);

            /// The serialised name of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$var => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ObjectiveError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$var),)+
                    _ => Err(ObjectiveError::UnknownName {
                        field: $field,
                        value: s.to_string(),
                        allowed: Self::ALLOWED.trim_end_matches(", "),
                    }),
                }
            }
        }
    };
}

/// The policy objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Token-level PPO/GRPO: one ratio and one clip per token.
    Grpo,
    /// GSPO: one length-normalised ratio per trajectory (sequence).
    Gspo,
    /// GSsPO (Workflow-R1): one length-normalised ratio per sub-sequence (policy turn).
    Gsspo,
    /// CWRPO (FlowSteer): token-level PPO over the action-token mask; its
    /// difference from GRPO lies in the advantages (per-source) and defaults.
    Cwrpo,
    /// REINFORCE form of FlowSteer's public code: `−A_i · lp_t`, no ratio, no clip.
    Reinforce,
}

named_enum!(Algorithm, "algorithm", [
    Grpo => "grpo",
    Gspo => "gspo",
    Gsspo => "gsspo",
    Cwrpo => "cwrpo",
    Reinforce => "reinforce",
]);

/// Which tokens share one importance ratio (and one clip decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RatioUnit {
    /// Every policy token has its own ratio `exp(lp_t − old_t)`.
    Token,
    /// One ratio per sub-sequence: `exp(mean over the sub-sequence of lp − old)`.
    Subseq,
    /// One ratio per trajectory: `exp(mean over its policy tokens of lp − old)`.
    Traj,
}

impl Algorithm {
    /// The ratio unit of this objective (REINFORCE reports token ratios).
    pub fn ratio_unit(self) -> RatioUnit {
        match self {
            Algorithm::Grpo | Algorithm::Cwrpo | Algorithm::Reinforce => RatioUnit::Token,
            Algorithm::Gspo => RatioUnit::Traj,
            Algorithm::Gsspo => RatioUnit::Subseq,
        }
    }

    /// The preset used when only the algorithm is named.
    pub fn default_preset(self) -> Preset {
        match self {
            Algorithm::Grpo => Preset::Grpo,
            Algorithm::Gspo => Preset::Gspo,
            Algorithm::Gsspo => Preset::WorkflowR1,
            Algorithm::Cwrpo | Algorithm::Reinforce => Preset::Flowsteer,
        }
    }

    /// The preset configuration of this algorithm: [`Self::default_preset`]'s
    /// config with `algorithm` set to `self` (so `reinforce` gets FlowSteer's
    /// settings with the REINFORCE loss).
    pub fn default_config(self) -> AlgorithmConfig {
        let mut c = self.default_preset().config();
        c.objective.algorithm = self;
        c
    }
}

/// How per-token losses are reduced to one scalar (verl's `loss_agg_mode`
/// names, plus the two sub-sequence modes of GSsPO).
///
/// With `L_t` the per-token loss, `T` the number of policy tokens, `N` the
/// number of trajectories with at least one policy token, `n_i` the policy
/// tokens of trajectory `i`, `K_i` its sub-sequences, `|y_{i,k}|` the tokens
/// of sub-sequence `k`, `S` the sub-sequences of the batch and `H` the horizon:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// `(1/T) Σ_t L_t`.
    TokenMean,
    /// `(1/N) Σ_i (1/n_i) Σ_{t∈i} L_t`.
    SeqMeanTokenMean,
    /// `(1/N) Σ_i Σ_{t∈i} L_t`.
    SeqMeanTokenSum,
    /// `(1/H) Σ_i Σ_{t∈i} L_t` — verl divides the token sum by a constant
    /// horizon, not by `N`; `H` is `loss_agg_horizon`, by default the largest
    /// `n_i` of the batch.
    SeqMeanTokenSumNorm,
    /// `(1/N) Σ_i (1/K_i) Σ_k (1/|y_{i,k}|) Σ_{t∈y_{i,k}} L_t` (GSsPO's default).
    TrajMeanSubseqMean,
    /// `(1/S) Σ_{i,k} (1/|y_{i,k}|) Σ_{t∈y_{i,k}} L_t`: every sub-sequence of
    /// the batch weighs the same.
    SubseqMean,
}

named_enum!(Aggregation, "aggregation", [
    TokenMean => "token-mean",
    SeqMeanTokenMean => "seq-mean-token-mean",
    SeqMeanTokenSum => "seq-mean-token-sum",
    SeqMeanTokenSumNorm => "seq-mean-token-sum-norm",
    TrajMeanSubseqMean => "traj-mean-subseq-mean",
    SubseqMean => "subseq-mean",
]);

/// Per-token estimators of KL(π_θ ‖ π_ref), with `x = ref_t − lp_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KlEstimator {
    /// `k1 = −x` (unbiased, high variance, can be negative).
    K1,
    /// `k2 = x² / 2`.
    K2,
    /// `k3 = eˣ − x − 1` (verl's `low_var_kl`), `x` clamped to [−20, 20] and
    /// the value to [−10, 10]; the gradient is 0 where a clamp is active.
    K3,
}

named_enum!(KlEstimator, "kl_estimator", [
    K1 => "k1",
    K2 => "k2",
    K3 => "k3",
]);

/// Configuration of one policy objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// The loss.
    pub algorithm: Algorithm,
    /// ε_low: the ratio is clipped from below at `1 − clip_low`. In [0, 1).
    pub clip_low: f64,
    /// ε_high: the ratio is clipped from above at `1 + clip_high`. ≥ 0.
    pub clip_high: f64,
    /// Dual-clip constant `c > 1`: for `A < 0` the unit loss is capped at
    /// `−A·c`. `None` disables it. Ignored by REINFORCE.
    pub dual_clip: Option<f64>,
    /// β: weight of the KL penalty (token-mean over the batch's policy
    /// tokens). Needs reference log-probs when > 0.
    pub kl_coef: f64,
    /// The KL estimator.
    pub kl_estimator: KlEstimator,
    /// Weight of the entropy bonus (`loss −= entropy_coef · token-mean(H_t)`).
    /// Needs per-token entropies when > 0. Its gradient is not part of
    /// [`crate::LossOutput::grad`] (see the crate docs).
    pub entropy_coef: f64,
    /// How per-token losses are reduced.
    pub aggregation: Aggregation,
    /// Horizon `H` of `seq-mean-token-sum-norm`, in tokens; `None` = the
    /// largest number of policy tokens of one trajectory in the batch.
    pub loss_agg_horizon: Option<u32>,
}

/// Configuration of the advantage estimator and of the objective, together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// How rewards become per-trajectory advantages.
    pub advantage: AdvantageConfig,
    /// The policy loss.
    pub objective: ObjectiveConfig,
}

/// Named configurations with the published defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Workflow-R1: GSsPO, verl's clip 0.2 / 0.2, k3 KL with β = 0.001, no
    /// entropy bonus, `traj-mean-subseq-mean`, GRPO group advantages by task.
    WorkflowR1,
    /// FlowSteer: CWRPO, clip 0.2 / 0.2, β = 0.005 (k3), no entropy bonus
    /// (0.005 is the optional value), `seq-mean-token-mean`, per-source
    /// advantages (population std, σ floor 0.01).
    Flowsteer,
    /// GSPO: clip 3e-4 / 4e-4, no KL, `seq-mean-token-mean`, GRPO group advantages.
    Gspo,
    /// GRPO as verl runs it by default: clip 0.2 / 0.2 with dual-clip c = 3,
    /// k3 KL β = 0.001, `token-mean`, GRPO group advantages.
    Grpo,
}

named_enum!(Preset, "preset", [
    WorkflowR1 => "workflow-r1",
    Flowsteer => "flowsteer",
    Gspo => "gspo",
    Grpo => "grpo",
]);

impl Preset {
    /// The configuration of this preset.
    pub fn config(self) -> AlgorithmConfig {
        let base = ObjectiveConfig {
            algorithm: Algorithm::Grpo,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: None,
            kl_coef: 0.001,
            kl_estimator: KlEstimator::K3,
            entropy_coef: 0.0,
            aggregation: Aggregation::TokenMean,
            loss_agg_horizon: None,
        };
        match self {
            Preset::WorkflowR1 => AlgorithmConfig {
                advantage: AdvantageConfig::grpo(),
                objective: ObjectiveConfig {
                    algorithm: Algorithm::Gsspo,
                    aggregation: Aggregation::TrajMeanSubseqMean,
                    ..base
                },
            },
            Preset::Flowsteer => AlgorithmConfig {
                advantage: AdvantageConfig::per_source(),
                objective: ObjectiveConfig {
                    algorithm: Algorithm::Cwrpo,
                    kl_coef: 0.005,
                    aggregation: Aggregation::SeqMeanTokenMean,
                    ..base
                },
            },
            Preset::Gspo => AlgorithmConfig {
                advantage: AdvantageConfig::grpo(),
                objective: ObjectiveConfig {
                    algorithm: Algorithm::Gspo,
                    clip_low: 3e-4,
                    clip_high: 4e-4,
                    kl_coef: 0.0,
                    aggregation: Aggregation::SeqMeanTokenMean,
                    ..base
                },
            },
            Preset::Grpo => AlgorithmConfig {
                advantage: AdvantageConfig::grpo(),
                objective: ObjectiveConfig {
                    dual_clip: Some(3.0),
                    ..base
                },
            },
        }
    }
}

impl ObjectiveConfig {
    /// Checks every field's domain.
    ///
    /// # Errors
    /// [`ObjectiveError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ObjectiveError> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(ObjectiveError::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        if !(self.clip_low.is_finite() && (0.0..1.0).contains(&self.clip_low)) {
            return bad("clip_low", self.clip_low.to_string(), "must be in [0, 1)");
        }
        if !(self.clip_high.is_finite() && self.clip_high >= 0.0) {
            return bad(
                "clip_high",
                self.clip_high.to_string(),
                "must be finite and ≥ 0",
            );
        }
        if let Some(c) = self.dual_clip
            && !(c.is_finite() && c > 1.0)
        {
            return bad("dual_clip", c.to_string(), "must be finite and > 1");
        }
        if !(self.kl_coef.is_finite() && self.kl_coef >= 0.0) {
            return bad(
                "kl_coef",
                self.kl_coef.to_string(),
                "must be finite and ≥ 0",
            );
        }
        if !self.entropy_coef.is_finite() {
            return bad(
                "entropy_coef",
                self.entropy_coef.to_string(),
                "must be finite",
            );
        }
        if self.loss_agg_horizon == Some(0) {
            return bad("loss_agg_horizon", "0".into(), "must be ≥ 1 when given");
        }
        Ok(())
    }
}

impl Default for ObjectiveConfig {
    /// The `workflow-r1` preset's objective (GSsPO).
    fn default() -> Self {
        Preset::WorkflowR1.config().objective
    }
}
