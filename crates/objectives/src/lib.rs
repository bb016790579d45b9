//! CPU reference of the policy objectives of flowrl, with exact gradients.
//!
//! * [`advantage`]: rewards → one advantage per trajectory (GRPO group
//!   normalisation, CWRPO per-source normalisation, RLOO; group key task,
//!   source or both).
//! * [`compute`] / [`compute_into`]: one entry point over a flat token batch
//!   ([`TokenBatch`], the per-position layout of
//!   [`flowrl_trajectory::PackedBatch`]) returning the loss J, the gradient
//!   ∂J/∂lp per token and [`LossStats`], for token-level PPO/GRPO (optional
//!   dual clip), GSPO, GSsPO, CWRPO and REINFORCE, with the KL estimators
//!   k1/k2/k3 and every [`Aggregation`] mode.
//! * [`config`]: serde + JSON Schema configs and the [`Preset`]s
//!   `workflow-r1`, `flowsteer`, `gspo`, `grpo`.
//! * [`request`]: the JSON exchange format of `flowrl loss`.
//!
//! Conventions: every objective is *minimised*. The gradient is the exact
//! derivative of the returned loss with respect to `logprobs` (for GSPO and
//! GSsPO it coincides with the stop-gradient "token form" whenever the
//! aggregation weights are uniform inside a ratio unit, which holds for every
//! pairing except GSPO with a sub-sequence aggregation). Where a clamp or the
//! clipped PPO branch is active the gradient is 0. The KL penalty is
//! `kl_coef · token-mean` over the batch's policy tokens whatever the
//! aggregation mode. The entropy bonus is `−entropy_coef · token-mean(H_t)`;
//! its value is part of the loss, but its gradient is not in
//! [`LossOutput::grad`]: `H_t` is a function of the whole distribution at `t`,
//! not of `lp_t`, so the trainer (or the fused kernel, from the logits) adds
//! `−entropy_coef / T · ∂H_t/∂logits` itself.
//!
//! With the default feature `parallel` the two token passes run over rayon in
//! fixed-size chunks; results do not depend on the number of threads.

pub mod advantage;
pub mod config;
pub mod error;
mod exec;
mod exp;
pub mod float;
pub mod loss;
pub mod request;

pub use advantage::{
    AdvantageConfig, Baseline, GroupKey, StdScaling, advantages_by_key, group_advantages,
};
pub use config::{
    Aggregation, Algorithm, AlgorithmConfig, KlEstimator, ObjectiveConfig, Preset, RatioUnit,
};
pub use error::ObjectiveError;
pub use float::Float;
pub use loss::{
    LossOutput, LossStats, TokenBatch, check_lengths, check_optional_inputs, compute, compute_into,
};
pub use request::{LossRequest, LossResponse};
