//! The error type of this crate.

use flowrl_objectives::ObjectiveError;
use thiserror::Error;

use crate::tensor::DType;

/// Why a kernel call (on either device) refused its input or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The objective's own checks (config, lengths, layout, non-finite
    /// values), with the same variants and indices as flowrl-objectives.
    #[error(transparent)]
    Objective(#[from] ObjectiveError),
    /// A tensor has the wrong element type.
    #[error("`{name}` has dtype {got}, expected {expected}")]
    DType {
        /// Argument name.
        name: &'static str,
        /// Accepted type(s), as text.
        expected: &'static str,
        /// Type given.
        got: DType,
    },
    /// A tensor has the wrong shape.
    #[error("`{name}` has shape {got:?}, expected {expected}")]
    Shape {
        /// Argument name.
        name: &'static str,
        /// What is required, as text.
        expected: String,
        /// Shape given.
        got: Vec<usize>,
    },
    /// A data slice does not hold as many elements as the shape says.
    #[error("data has {got} elements, shape {shape:?} needs {expected}")]
    DataLength {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A tensor lives on another device than the one asked to run the op.
    #[error("`{name}` is on {got}, the op runs on {expected}")]
    DeviceMismatch {
        /// Argument name.
        name: &'static str,
        /// The op's device.
        expected: String,
        /// The tensor's device.
        got: String,
    },
    /// A target token id is outside `[0, V)`.
    #[error("target of row {row} is {target}, outside the vocabulary [0, {vocab})")]
    TargetOutOfRange {
        /// Row (token position).
        row: usize,
        /// The id found.
        target: i64,
        /// Vocabulary size V.
        vocab: usize,
    },
    /// A size does not fit the kernels' index types.
    #[error("`{name}` = {value} is too large for the kernels (limit {limit})")]
    TooLarge {
        /// What is too large.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The largest accepted value.
        limit: usize,
    },
    /// No CUDA driver library could be loaded, or it reports no device.
    #[error("no CUDA device: {0}")]
    NoCuda(String),
    /// The NVRTC library could not be loaded.
    #[error("NVRTC is not available: {0}")]
    NoNvrtc(String),
    /// NVRTC refused a kernel source (the message holds its log).
    #[error("NVRTC could not compile `{source_name}`: {log}")]
    Compile {
        /// Name of the `.cu` source.
        source_name: &'static str,
        /// The compiler's log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {context}: {message}")]
    Driver {
        /// What was being done.
        context: &'static str,
        /// The driver's message.
        message: String,
    },
    /// A CUDA tensor was asked for while the crate was built without the
    /// `cuda` feature.
    #[error("this build of flowrl-kernels has no CUDA support (feature `cuda` is off)")]
    CudaDisabled,
}

/// Shorthand for results of this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
