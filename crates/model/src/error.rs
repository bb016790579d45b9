//! The error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in `flowrl-model`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid model config `{field}`: {reason}")]
    InvalidConfig {
        /// Offending field (e.g. `num_key_value_heads`).
        field: &'static str,
        /// What is wrong, including the value.
        reason: String,
    },
    /// A token id is not below the vocabulary size.
    #[error("token id {token} at position {position} is out of range (vocabulary size {vocab})")]
    TokenOutOfRange {
        /// The bad id.
        token: u32,
        /// Index of the token in the input slice.
        position: usize,
        /// Vocabulary size of the model.
        vocab: usize,
    },
    /// Inputs of a call do not fit together (lengths, offsets, shapes).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A weight the architecture needs is absent from the source.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has another shape than the config implies.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape found.
        got: Vec<usize>,
    },
    /// A tensor's element type cannot be converted to `f32`.
    #[error("tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// The dtype as the file names it.
        dtype: String,
    },
    /// A safetensors file is malformed.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// A GGUF file could not be read or holds an unusable value.
    #[error("gguf: {0}")]
    Gguf(#[from] flowrl_gguf::GgufError),
    /// A JSON config could not be parsed.
    #[error("config JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A sampling setting is out of range.
    #[error("invalid sampling setting `{field}`: {reason}")]
    InvalidSampling {
        /// Offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A backward pass was asked for a part of the model that has no
    /// trainable parameters (e.g. LoRA mode without adapters).
    #[error("nothing to train: {0}")]
    NothingToTrain(String),
}

impl ModelError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
