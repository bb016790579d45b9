//! The error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in `flowrl-optim`.
///
/// Errors raised by [`crate::Optimizer::step`] are detected before any
/// parameter or optimizer buffer is modified, so a failed step leaves the
/// model and the optimizer exactly as they were.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum OptimError {
    /// A hyper-parameter or schedule setting is out of its valid range.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the offending field (e.g. `betas[1]`, `warmup_steps`).
        field: &'static str,
        /// What is wrong, including the value.
        reason: String,
    },
    /// A parameter's value and gradient slices have different lengths.
    #[error("parameter `{param}`: {values} values but {grads} gradient entries")]
    LengthMismatch {
        /// Parameter name.
        param: String,
        /// Length of the value slice.
        values: usize,
        /// Length of the gradient slice.
        grads: usize,
    },
    /// The optimizer holds state for a parameter of a different length.
    #[error(
        "parameter `{param}` has {got} elements, but the optimizer state was built for {expected}"
    )]
    StateLengthMismatch {
        /// Parameter name.
        param: String,
        /// Length recorded in the optimizer state.
        expected: usize,
        /// Length of the slice passed now.
        got: usize,
    },
    /// The same parameter name appears twice in one call.
    #[error("parameter `{0}` is passed more than once")]
    DuplicateParam(String),
    /// A value is NaN or infinite. `param` is the parameter name, or
    /// `grads[i]` for unnamed gradient slices; `index` is the element.
    #[error("parameter `{param}`, element {index}: non-finite value {value}")]
    NonFinite {
        /// Parameter name (or `grads[i]`).
        param: String,
        /// Element index inside the slice.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// Two parameter groups share a name.
    #[error("parameter group `{0}` is defined more than once")]
    DuplicateGroup(String),
    /// An explicit assignment names a group that does not exist.
    #[error("no parameter group named `{0}`")]
    UnknownGroup(String),
    /// A state file of one optimizer kind was loaded into another.
    #[error("state is for optimizer `{found}`, but this optimizer is `{expected}`")]
    KindMismatch {
        /// Kind of the optimizer being restored.
        expected: String,
        /// Kind recorded in the state.
        found: String,
    },
    /// A parameter's buffers in a state do not fit the optimizer (missing,
    /// unexpected or of the wrong length).
    #[error("state of parameter `{param}`: {reason}")]
    BadBuffers {
        /// Parameter name.
        param: String,
        /// What is wrong.
        reason: String,
    },
    /// The parameters a state describes differ from the model's.
    #[error("state does not match the model: {reason}")]
    ParamsMismatch {
        /// Missing, extra or resized parameters, listed.
        reason: String,
    },
    /// Reading or writing a state file failed.
    #[error("I/O error ({kind:?}): {message}")]
    Io {
        /// The kind of the underlying error.
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
    /// The file does not start with the state-file magic bytes.
    #[error("not an optimizer state file (magic bytes {found:02x?})")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// The file was written by a newer, unknown format version.
    #[error(
        "state file format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The file ends before the section its header announces is complete.
    #[error("state file truncated in the {section}: expected {expected} bytes, found {got}")]
    Truncated {
        /// `magic`, `header length`, `header` or `data`.
        section: &'static str,
        /// Bytes the section should have.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },
    /// Bytes follow the data section of a state file.
    #[error("state file has {extra} unexpected bytes after the data section")]
    TrailingData {
        /// Number of extra bytes (at least 1; [`crate::OptimizerState::load`]
        /// counts at most 1 MiB of them).
        extra: u64,
    },
    /// The JSON header is malformed or inconsistent.
    #[error("state file header: {0}")]
    Header(String),
    /// The data section does not hash to the value in the header.
    #[error(
        "state file data checksum mismatch: header says {expected:016x}, data hashes to {found:016x}"
    )]
    ChecksumMismatch {
        /// Checksum recorded in the header.
        expected: u64,
        /// Checksum of the bytes read.
        found: u64,
    },
}

impl From<std::io::Error> for OptimError {
    fn from(e: std::io::Error) -> Self {
        OptimError::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Shorthand for an [`OptimError::InvalidConfig`].
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> OptimError {
    OptimError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}
