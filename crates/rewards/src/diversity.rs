//! FlowSteer's diversity-constrained reward with conditional release (CWRPO).
//!
//! R_div = min(1, 0.2·[a checker is used] + 0.2·[Format is used] +
//! 0.2·[#operators ≥ k] + 0.4·[parallel or conditional or loop]), and
//! R = −1 + R_div + [R_div = 1]·R_answer: a workflow that misses any part of
//! the structure scores in [−1, 0) whatever its answer; a complete one scores
//! R_answer ∈ [0, 1].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The structural facts of a workflow graph that the reward needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSummary {
    /// Operator name of every node, in graph order (repeats allowed).
    pub operators: Vec<String>,
    /// The graph has a parallel structure.
    #[serde(default)]
    pub has_parallel: bool,
    /// The graph has a conditional structure.
    #[serde(default)]
    pub has_conditional: bool,
    /// The graph has a loop structure.
    #[serde(default)]
    pub has_loop: bool,
}

/// Parameters of the diversity-constrained reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DiversityConfig {
    /// k: the operator count that earns the size term (FlowSteer: 5 or 6).
    pub min_operators: usize,
    /// Operator names that count as checkers.
    pub checkers: Vec<String>,
    /// Operator names that count as formatters.
    pub formatters: Vec<String>,
}

impl Default for DiversityConfig {
    fn default() -> Self {
        Self {
            min_operators: 5,
            checkers: vec!["Verify".into(), "Test".into(), "Review".into()],
            formatters: vec!["Format".into()],
        }
    }
}

/// The reward of one workflow, with its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CwrpoReward {
    /// R_div ∈ [0, 1] (multiples of 0.2).
    pub diversity: f64,
    /// Whether R_div = 1, so the answer reward was released.
    pub released: bool,
    /// R_answer as given, clamped to [0, 1].
    pub answer: f64,
    /// R = −1 + R_div + [released]·R_answer.
    pub reward: f64,
}

/// R_div of a summary, computed in integer tenths so that R_div = 1 is exact.
pub fn diversity_tenths(summary: &WorkflowSummary, config: &DiversityConfig) -> u32 {
    let has = |names: &[String]| {
        summary
            .operators
            .iter()
            .any(|op| names.iter().any(|n| n == op))
    };
    let mut t = 0u32;
    if has(&config.checkers) {
        t += 2;
    }
    if has(&config.formatters) {
        t += 2;
    }
    if summary.operators.len() >= config.min_operators {
        t += 2;
    }
    if summary.has_parallel || summary.has_conditional || summary.has_loop {
        t += 4;
    }
    t.min(10)
}

/// CWRPO's reward of a workflow given its answer reward (NaN counts as 0).
pub fn cwrpo_reward(
    summary: &WorkflowSummary,
    answer_reward: f64,
    config: &DiversityConfig,
) -> CwrpoReward {
    let tenths = diversity_tenths(summary, config);
    let diversity = f64::from(tenths) / 10.0;
    let released = tenths == 10;
    let answer = if answer_reward.is_nan() {
        0.0
    } else {
        answer_reward.clamp(0.0, 1.0)
    };
    let reward = -1.0 + diversity + if released { answer } else { 0.0 };
    CwrpoReward {
        diversity,
        released,
        answer,
        reward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ops: &[&str], structure: bool) -> WorkflowSummary {
        WorkflowSummary {
            operators: ops.iter().map(|s| s.to_string()).collect(),
            has_loop: structure,
            ..Default::default()
        }
    }

    #[test]
    fn conditional_release() {
        let cfg = DiversityConfig::default();
        let full = summary(&["Plan", "Programmer", "Test", "Revise", "Format"], true);
        let r = cwrpo_reward(&full, 0.7, &cfg);
        assert!(r.released);
        assert!((r.reward - 0.7).abs() < 1e-12);
        let no_format = summary(&["Plan", "Programmer", "Test", "Revise", "Custom"], true);
        let r = cwrpo_reward(&no_format, 1.0, &cfg);
        assert!(!r.released);
        assert!((r.reward - (-0.2)).abs() < 1e-12);
        let tiny = summary(&["AnswerGenerate"], false);
        assert_eq!(cwrpo_reward(&tiny, 1.0, &cfg).reward, -1.0);
        let four = summary(&["Review", "Format", "A", "B"], true);
        let r = cwrpo_reward(&four, 1.0, &cfg);
        assert!((r.diversity - 0.8).abs() < 1e-12 && !r.released);
        let k4 = DiversityConfig {
            min_operators: 4,
            ..cfg
        };
        assert!(cwrpo_reward(&four, 1.0, &k4).released);
    }
}
