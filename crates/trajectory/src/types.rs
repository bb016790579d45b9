//! The trajectory data model: [`Role`], [`Span`] and [`Trajectory`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::TrajectoryError;

/// Who produced a span, and how it enters the training batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Context that starts a new context window (loss mask 0).
    Prompt,
    /// One policy turn, one sub-sequence (loss mask 1).
    Policy,
    /// Environment text appended to the current context window (loss mask 0).
    Environment,
}

impl Role {
    /// The name used in JSON (`prompt`, `policy`, `environment`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Prompt => "prompt",
            Role::Policy => "policy",
            Role::Environment => "environment",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TrajectoryError;

    /// Parses `prompt`, `policy` or `environment`.
    ///
    /// # Errors
    /// [`TrajectoryError::UnknownRole`] for any other string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "prompt" => Ok(Role::Prompt),
            "policy" => Ok(Role::Policy),
            "environment" => Ok(Role::Environment),
            other => Err(TrajectoryError::UnknownRole(other.to_string())),
        }
    }
}

/// A contiguous piece of a trajectory produced by one party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// Who produced the span.
    pub role: Role,
    /// The span's text (informational; training uses `tokens`).
    #[serde(default)]
    pub text: String,
    /// Token ids of the span, in order.
    #[serde(default)]
    pub tokens: Vec<u32>,
    /// For policy spans: the sampler's log-prob (natural log) of each token,
    /// one per entry of `tokens`. Absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
}

impl Span {
    /// A prompt span (starts a new context window).
    pub fn prompt(text: impl Into<String>, tokens: Vec<u32>) -> Self {
        Span {
            role: Role::Prompt,
            text: text.into(),
            tokens,
            logprobs: None,
        }
    }

    /// A policy span (one turn) with optional sampler log-probs.
    pub fn policy(text: impl Into<String>, tokens: Vec<u32>, logprobs: Option<Vec<f32>>) -> Self {
        Span {
            role: Role::Policy,
            text: text.into(),
            tokens,
            logprobs,
        }
    }

    /// An environment span (appended to the current context window).
    pub fn environment(text: impl Into<String>, tokens: Vec<u32>) -> Self {
        Span {
            role: Role::Environment,
            text: text.into(),
            tokens,
            logprobs: None,
        }
    }
}

/// One rollout: an episode of a policy in an environment, with its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trajectory {
    /// Unique id of the rollout.
    pub id: String,
    /// Id of the task (problem) the rollout attempted.
    pub task_id: String,
    /// Data source of the task (for example `gsm8k`, `hotpotqa`).
    #[serde(default)]
    pub data_source: String,
    /// Explicit group key for advantage estimation; defaults to `task_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// The spans, in order.
    pub spans: Vec<Span>,
    /// Scalar episode reward.
    pub reward: f64,
    /// Free-form metadata (operator usage, answers, timings…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl Trajectory {
    /// The key this rollout is grouped by: `group_key` when set, else `task_id`.
    pub fn group(&self) -> &str {
        self.group_key.as_deref().unwrap_or(&self.task_id)
    }

    /// Number of policy turns (= number of sub-sequences).
    pub fn num_turns(&self) -> usize {
        self.spans.iter().filter(|s| s.role == Role::Policy).count()
    }

    /// Total number of tokens over all spans.
    pub fn num_tokens(&self) -> usize {
        self.spans.iter().map(|s| s.tokens.len()).sum()
    }

    /// Number of tokens in spans of the given role.
    pub fn tokens_of(&self, role: Role) -> usize {
        self.spans
            .iter()
            .filter(|s| s.role == role)
            .map(|s| s.tokens.len())
            .sum()
    }

    /// Checks that the trajectory can be trained on.
    ///
    /// # Errors
    /// The first problem found, as a [`TrajectoryError`]: empty id, no spans, a
    /// first span that is not a prompt, an empty policy span, a policy span
    /// with no context before it, log-probs of the wrong length, on a
    /// non-policy span, or not finite and ≤ 0, or a non-finite reward.
    pub fn validate(&self) -> Result<(), TrajectoryError> {
        if self.id.is_empty() {
            return Err(TrajectoryError::EmptyId);
        }
        let first = self.spans.first().ok_or(TrajectoryError::NoSpans)?;
        if first.role != Role::Prompt {
            return Err(TrajectoryError::MissingPrompt { role: first.role });
        }
        if !self.reward.is_finite() {
            return Err(TrajectoryError::NonFiniteReward(self.reward));
        }
        // Tokens seen so far in the current context window.
        let mut context = 0usize;
        for (i, span) in self.spans.iter().enumerate() {
            if span.role == Role::Prompt {
                context = 0;
            }
            if span.role == Role::Policy {
                if span.tokens.is_empty() {
                    return Err(TrajectoryError::EmptyPolicySpan { span: i });
                }
                if context == 0 {
                    return Err(TrajectoryError::PolicyWithoutContext { span: i });
                }
            }
            if let Some(lp) = &span.logprobs {
                if span.role != Role::Policy {
                    return Err(TrajectoryError::LogprobsOnNonPolicySpan {
                        span: i,
                        role: span.role,
                    });
                }
                if lp.len() != span.tokens.len() {
                    return Err(TrajectoryError::LogprobLengthMismatch {
                        span: i,
                        tokens: span.tokens.len(),
                        logprobs: lp.len(),
                    });
                }
                if let Some((index, &value)) = lp
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !(v.is_finite() && **v <= 0.0))
                {
                    return Err(TrajectoryError::InvalidLogprob {
                        span: i,
                        index,
                        value,
                    });
                }
            }
            context += span.tokens.len();
        }
        Ok(())
    }
}
