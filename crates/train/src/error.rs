//! The trainer's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Why a run cannot start or had to stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A configuration value is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The field (dotted path).
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The model failed.
    #[error("model: {0}")]
    Model(#[from] flowrl_model::ModelError),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] flowrl_tokenizer::TokenizerError),
    /// An environment failed (executor down, sandbox missing).
    #[error("environment: {0}")]
    Env(#[from] flowrl_envs::EnvError),
    /// The objective rejected its input.
    #[error("objective: {0}")]
    Objective(#[from] flowrl_objectives::ObjectiveError),
    /// The optimizer failed.
    #[error("optimizer: {0}")]
    Optim(#[from] flowrl_optim::OptimError),
    /// A batch could not be built.
    #[error("batch: {0}")]
    Batch(#[from] flowrl_trajectory::BatchError),
    /// Data could not be loaded.
    #[error("data: {0}")]
    Data(#[from] flowrl_data::DataError),
    /// A checkpoint is unreadable or does not fit the run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Too many consecutive updates (mini-batch optimizer steps) had a
    /// non-finite loss or log-prob.
    #[error(
        "{0} consecutive updates had a non-finite loss or log-prob; stopping (the last checkpoint is intact)"
    )]
    Diverged(usize),
    /// The run was interrupted (Ctrl-C) after saving a checkpoint.
    #[error("interrupted")]
    Interrupted,
}

impl TrainError {
    /// A configuration error.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TrainError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
