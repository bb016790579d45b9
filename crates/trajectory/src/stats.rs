//! Summary statistics over a set of trajectories.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::types::{Role, Trajectory};

/// Min / mean / max (and population std) of a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Summary {
    /// Number of values.
    pub count: usize,
    /// Smallest value (0 when empty).
    pub min: f64,
    /// Arithmetic mean (0 when empty).
    pub mean: f64,
    /// Largest value (0 when empty).
    pub max: f64,
    /// Population standard deviation (0 when empty).
    pub std: f64,
}

impl Summary {
    /// Summarises the values of an iterator.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Summary::default();
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        Summary {
            count: v.len(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            mean,
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            std: var.sqrt(),
        }
    }
}

/// What `flowrl trajectory stats` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryStats {
    /// Number of trajectories.
    pub trajectories: usize,
    /// Number of distinct group keys.
    pub groups: usize,
    /// Trajectories per data source.
    pub per_source: BTreeMap<String, usize>,
    /// Policy turns (sub-sequences) per trajectory.
    pub turns: Summary,
    /// Total tokens per trajectory.
    pub tokens: Summary,
    /// Prompt tokens over all trajectories.
    pub prompt_tokens: usize,
    /// Policy tokens over all trajectories.
    pub policy_tokens: usize,
    /// Environment tokens over all trajectories.
    pub environment_tokens: usize,
    /// Tokens per policy turn.
    pub tokens_per_turn: Summary,
    /// Rewards.
    pub reward: Summary,
}

impl TrajectoryStats {
    /// Computes the statistics of a set of trajectories.
    pub fn of(ts: &[Trajectory]) -> Self {
        let mut per_source = BTreeMap::new();
        for t in ts {
            *per_source.entry(t.data_source.clone()).or_insert(0) += 1;
        }
        let groups: std::collections::BTreeSet<&str> = ts.iter().map(Trajectory::group).collect();
        TrajectoryStats {
            trajectories: ts.len(),
            groups: groups.len(),
            per_source,
            turns: Summary::of(ts.iter().map(|t| t.num_turns() as f64)),
            tokens: Summary::of(ts.iter().map(|t| t.num_tokens() as f64)),
            prompt_tokens: ts.iter().map(|t| t.tokens_of(Role::Prompt)).sum(),
            policy_tokens: ts.iter().map(|t| t.tokens_of(Role::Policy)).sum(),
            environment_tokens: ts.iter().map(|t| t.tokens_of(Role::Environment)).sum(),
            tokens_per_turn: Summary::of(
                ts.iter()
                    .flat_map(|t| t.spans.iter())
                    .filter(|s| s.role == Role::Policy)
                    .map(|s| s.tokens.len() as f64),
            ),
            reward: Summary::of(ts.iter().map(|t| t.reward)),
        }
    }
}
