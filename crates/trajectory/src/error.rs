//! Error types of this crate.

use thiserror::Error;

/// Why a [`crate::Trajectory`] is not valid for training.
///
/// Span indices are 0-based positions in [`crate::Trajectory::spans`].
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TrajectoryError {
    /// The trajectory id is the empty string.
    #[error("trajectory id is empty")]
    EmptyId,
    /// The trajectory has no spans at all.
    #[error("trajectory has no spans")]
    NoSpans,
    /// The first span is not a prompt, so the first policy turn would have no context.
    #[error("span 0 has role `{role}`, but a trajectory must start with a prompt span")]
    MissingPrompt {
        /// Role of the first span.
        role: crate::Role,
    },
    /// A policy span has no tokens.
    #[error("policy span {span} has no tokens")]
    EmptyPolicySpan {
        /// Index of the span.
        span: usize,
    },
    /// A policy span would be the first tokens of its context window, so its
    /// first token has nothing to be predicted from.
    #[error("policy span {span} starts a context window: the prompt before it has no tokens")]
    PolicyWithoutContext {
        /// Index of the span.
        span: usize,
    },
    /// A policy span's log-prob vector does not have one entry per token.
    #[error("span {span}: {tokens} tokens but {logprobs} log-probs")]
    LogprobLengthMismatch {
        /// Index of the span.
        span: usize,
        /// Number of token ids.
        tokens: usize,
        /// Number of log-probs.
        logprobs: usize,
    },
    /// A non-policy span carries sampler log-probs.
    #[error("span {span} has role `{role}` but carries log-probs (only policy spans may)")]
    LogprobsOnNonPolicySpan {
        /// Index of the span.
        span: usize,
        /// Its role.
        role: crate::Role,
    },
    /// A log-prob is NaN, infinite or positive (log-probs are ≤ 0).
    #[error("span {span}, token {index}: log-prob {value} is not a finite value ≤ 0")]
    InvalidLogprob {
        /// Index of the span.
        span: usize,
        /// Index of the token inside the span.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// The reward is NaN or infinite.
    #[error("reward {0} is not finite")]
    NonFiniteReward(f64),
    /// A role name that is not `prompt`, `policy` or `environment`.
    #[error("unknown role `{0}` (expected prompt, policy or environment)")]
    UnknownRole(String),
}

/// Errors of batch construction and of the inverse mapping.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A trajectory of the input is invalid.
    #[error("trajectory {index} (`{id}`): {source}")]
    Invalid {
        /// Position of the trajectory in the input slice.
        index: usize,
        /// Its id.
        id: String,
        /// What is wrong with it.
        source: TrajectoryError,
    },
    /// The input slice is empty.
    #[error("no trajectories to flatten")]
    Empty,
    /// A per-position value slice has the wrong length.
    #[error("expected {expected} values (one per batch position), got {got}")]
    LengthMismatch {
        /// Number of positions in the batch.
        expected: usize,
        /// Length of the slice given.
        got: usize,
    },
    /// The padded layout would not fit in memory addressing.
    #[error("padded layout needs {rows} × {width} positions, which overflows usize")]
    TooLarge {
        /// Number of rows.
        rows: usize,
        /// Row width.
        width: usize,
    },
}
