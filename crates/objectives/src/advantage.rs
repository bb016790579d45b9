//! Advantage estimators: rewards of a group of rollouts → one advantage per
//! trajectory.
//!
//! A_i = (R_i − b_i) / max(σ_g + ε, σ_floor) when std scaling is on, else
//! A_i = R_i − b_i, where g is the group of i, b_i the baseline (group mean,
//! or the mean of the *other* members for RLOO) and σ_g the group's std
//! (unbiased or population). A group of one gets A = 0.

use std::collections::HashMap;
use std::hash::Hash;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ObjectiveError;
use crate::float::Float;

/// The baseline subtracted from each reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The mean reward of the group (GRPO, CWRPO).
    GroupMean,
    /// RLOO: the mean reward of the other members of the group.
    LeaveOneOut,
}

/// Whether and how the centred reward is divided by the group's std.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StdScaling {
    /// No scaling (Dr. GRPO's `scale_by_std = false`, plain RLOO).
    None,
    /// Unbiased std (divides by n − 1), as GRPO.
    Unbiased,
    /// Population std (divides by n), as CWRPO's per-source normalisation.
    Population,
}

/// What defines a group of rollouts whose rewards are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GroupKey {
    /// Rollouts of the same task (prompt) — GRPO's G samples per prompt.
    Task,
    /// Rollouts from the same data source (e.g. gsm8k, hotpotqa) — CWRPO.
    Source,
    /// Rollouts sharing both task and source.
    TaskAndSource,
}

/// Configuration of the advantage estimator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvantageConfig {
    /// The baseline.
    pub baseline: Baseline,
    /// The std scaling.
    pub scaling: StdScaling,
    /// ε added to σ before dividing (GRPO: 1e-6). ≥ 0.
    pub epsilon: f64,
    /// Lower bound of the divisor (CWRPO: 0.01). ≥ 0.
    pub std_floor: f64,
    /// What defines a group.
    pub group_key: GroupKey,
}

impl AdvantageConfig {
    /// GRPO: group mean, unbiased std, ε = 1e-6, groups by task.
    pub fn grpo() -> Self {
        Self {
            baseline: Baseline::GroupMean,
            scaling: StdScaling::Unbiased,
            epsilon: 1e-6,
            std_floor: 0.0,
            group_key: GroupKey::Task,
        }
    }

    /// CWRPO: group mean, population std with σ floor 0.01, groups by source.
    pub fn per_source() -> Self {
        Self {
            baseline: Baseline::GroupMean,
            scaling: StdScaling::Population,
            epsilon: 0.0,
            std_floor: 0.01,
            group_key: GroupKey::Source,
        }
    }

    /// RLOO: leave-one-out mean baseline, no std scaling, groups by task.
    pub fn rloo() -> Self {
        Self {
            baseline: Baseline::LeaveOneOut,
            scaling: StdScaling::None,
            epsilon: 0.0,
            std_floor: 0.0,
            group_key: GroupKey::Task,
        }
    }

    /// Checks `epsilon` and `std_floor`.
    ///
    /// # Errors
    /// [`ObjectiveError::InvalidConfig`] for a negative or non-finite value,
    /// or when std scaling could divide by zero (both are 0 with scaling on
    /// is allowed: a zero std gives A = 0 by convention, see
    /// [`group_advantages`]).
    pub fn validate(&self) -> Result<(), ObjectiveError> {
        for (field, v) in [("epsilon", self.epsilon), ("std_floor", self.std_floor)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ObjectiveError::InvalidConfig {
                    field,
                    value: v.to_string(),
                    reason: "must be finite and ≥ 0",
                });
            }
        }
        Ok(())
    }
}

/// Advantages of rewards grouped by an arbitrary key (`groups[i]` is the
/// group of trajectory `i`; the config's `group_key` is not used here).
///
/// When the divisor `max(σ + ε, floor)` is 0 (scaling on, ε = floor = 0, all
/// rewards of the group equal), the centred reward is 0 and so is A.
///
/// # Errors
/// [`ObjectiveError::EmptyBatch`] for no rewards,
/// [`ObjectiveError::LengthMismatch`] when `groups` differs in length,
/// [`ObjectiveError::NonFinite`] for a NaN/∞ reward,
/// [`ObjectiveError::InvalidConfig`] from [`AdvantageConfig::validate`].
pub fn group_advantages<F: Float, K: Eq + Hash>(
    rewards: &[F],
    groups: &[K],
    config: &AdvantageConfig,
) -> Result<Vec<F>, ObjectiveError> {
    config.validate()?;
    if rewards.is_empty() {
        return Err(ObjectiveError::EmptyBatch("no rewards"));
    }
    if groups.len() != rewards.len() {
        return Err(ObjectiveError::LengthMismatch {
            field: "groups",
            expected: rewards.len(),
            got: groups.len(),
        });
    }
    if let Some((index, r)) = rewards.iter().enumerate().find(|(_, r)| !r.is_finite()) {
        return Err(ObjectiveError::NonFinite {
            field: "rewards",
            index,
            value: r.to_f64(),
        });
    }
    // Dense group index per trajectory, in first-seen order.
    let mut ids: HashMap<&K, usize> = HashMap::new();
    let gid: Vec<usize> = groups
        .iter()
        .map(|k| {
            let next = ids.len();
            *ids.entry(k).or_insert(next)
        })
        .collect();
    let ng = ids.len();
    let mut count = vec![0usize; ng];
    let mut sum = vec![0.0f64; ng];
    for (&g, r) in gid.iter().zip(rewards) {
        count[g] += 1;
        sum[g] += r.to_f64();
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, &n)| s / n as f64).collect();
    let mut sq = vec![0.0f64; ng];
    for (&g, r) in gid.iter().zip(rewards) {
        let d = r.to_f64() - mean[g];
        sq[g] += d * d;
    }
    let divisor: Vec<f64> = (0..ng)
        .map(|g| {
            let n = count[g] as f64;
            let sigma = match config.scaling {
                StdScaling::None => return 1.0,
                StdScaling::Unbiased if count[g] > 1 => (sq[g] / (n - 1.0)).sqrt(),
                StdScaling::Unbiased => 0.0,
                StdScaling::Population => (sq[g] / n).sqrt(),
            };
            (sigma + config.epsilon).max(config.std_floor)
        })
        .collect();
    Ok(gid
        .iter()
        .zip(rewards)
        .map(|(&g, r)| {
            let n = count[g];
            if n < 2 {
                return F::ZERO;
            }
            let r = r.to_f64();
            let centred = match config.baseline {
                Baseline::GroupMean => r - mean[g],
                // Mean of the others: (sum − r)/(n − 1); r − that = n/(n−1)·(r − mean).
                Baseline::LeaveOneOut => r - (sum[g] - r) / (n as f64 - 1.0),
            };
            if centred == 0.0 {
                F::ZERO
            } else {
                F::from_f64(centred / divisor[g])
            }
        })
        .collect())
}

/// Advantages with groups formed from each trajectory's task and source
/// according to `config.group_key`.
///
/// # Errors
/// As [`group_advantages`]; [`ObjectiveError::LengthMismatch`] when `tasks`
/// or `sources` differ in length from `rewards`.
pub fn advantages_by_key<F: Float, S: AsRef<str>>(
    rewards: &[F],
    tasks: &[S],
    sources: &[S],
    config: &AdvantageConfig,
) -> Result<Vec<F>, ObjectiveError> {
    for (field, len) in [("tasks", tasks.len()), ("sources", sources.len())] {
        if len != rewards.len() {
            return Err(ObjectiveError::LengthMismatch {
                field,
                expected: rewards.len(),
                got: len,
            });
        }
    }
    let keys: Vec<(&str, &str)> = tasks
        .iter()
        .zip(sources)
        .map(|(t, s)| match config.group_key {
            GroupKey::Task => (t.as_ref(), ""),
            GroupKey::Source => ("", s.as_ref()),
            GroupKey::TaskAndSource => (t.as_ref(), s.as_ref()),
        })
        .collect();
    group_advantages(rewards, &keys, config)
}
