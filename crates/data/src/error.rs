//! The error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

/// Errors of dataset loading and scoring.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a JSON object.
    #[error("{path}:{line}: not a JSON object: {message}")]
    Json {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A required field is missing or has the wrong type or content.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Field {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Two records of one file share an id.
    #[error("{path}:{line}: duplicate id `{id}`")]
    DuplicateId {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The repeated id.
        id: String,
    },
    /// A format name that this crate does not know.
    #[error(
        "unknown dataset format `{0}` (expected qa, squad_v2, gsm8k, math, mathqa, humaneval or mbpp)"
    )]
    UnknownFormat(String),
    /// A suite configuration value is out of range.
    #[error("invalid suite configuration: {0}")]
    InvalidSuite(String),
    /// The code sandbox could not be created or started.
    #[error("sandbox: {0}")]
    Sandbox(#[from] flowrl_rewards::RewardsError),
}
