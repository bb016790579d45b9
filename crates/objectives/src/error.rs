//! The error type of this crate.

use thiserror::Error;

/// Why an advantage or loss computation refused its input.
///
/// Token indices are 0-based positions in the flat token slices; trajectory
/// indices are positions in the advantages (or rewards) slice.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ObjectiveError {
    /// A slice does not have the length of the others.
    #[error("`{field}` has {got} values, expected {expected}")]
    LengthMismatch {
        /// Name of the offending slice.
        field: &'static str,
        /// Length required (the length of `logprobs`, or of `rewards`).
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("`{field}`[{index}] is not finite ({value})")]
    NonFinite {
        /// Name of the slice.
        field: &'static str,
        /// Index in that slice.
        index: usize,
        /// The value, widened to f64.
        value: f64,
    },
    /// No values at all, or no policy token (mask = 1) in the batch.
    #[error("empty batch: {0}")]
    EmptyBatch(&'static str),
    /// A masked-out token (mask = 0) carries a sub-sequence id ≥ 0.
    #[error("token {index} is masked out but has sub-sequence id {subseq} (must be negative)")]
    SubseqOnMaskedToken {
        /// Token index.
        index: usize,
        /// The sub-sequence id found.
        subseq: i32,
    },
    /// A policy token (mask = 1) has a negative sub-sequence id.
    #[error("token {index} is a policy token but has no sub-sequence id ({subseq})")]
    MissingSubseq {
        /// Token index.
        index: usize,
        /// The (negative) id found.
        subseq: i32,
    },
    /// A sub-sequence id is not below the number of tokens (ids are dense
    /// batch-wide indices, so there can be at most one per token).
    #[error("token {index}: sub-sequence id {subseq} is out of range (batch has {len} tokens)")]
    SubseqOutOfRange {
        /// Token index.
        index: usize,
        /// The id found.
        subseq: i32,
        /// Number of tokens of the batch.
        len: usize,
    },
    /// One sub-sequence id is used by tokens of two trajectories.
    #[error("sub-sequence {subseq} has tokens of trajectories {first} and {second}")]
    SubseqInTwoTrajectories {
        /// The sub-sequence id.
        subseq: usize,
        /// The trajectory seen first.
        first: usize,
        /// The other trajectory.
        second: usize,
    },
    /// A policy token names a trajectory that has no advantage.
    #[error(
        "token {index} belongs to trajectory {traj}, but there are advantages for {available} trajectories"
    )]
    MissingAdvantage {
        /// Token index.
        index: usize,
        /// The trajectory index found.
        traj: i64,
        /// Length of the advantages slice.
        available: usize,
    },
    /// The configuration needs an input that was not given.
    #[error("missing input `{field}`: {reason}")]
    MissingInput {
        /// Name of the input.
        field: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// A configuration value is out of its domain.
    #[error("invalid config `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// Name of the field.
        field: &'static str,
        /// The value, as text.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A name (algorithm, aggregation, estimator…) that is not known.
    #[error("`{field}`: unknown value `{value}`, expected one of: {allowed}")]
    UnknownName {
        /// Name of the field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted values, comma-separated.
        allowed: &'static str,
    },
}
