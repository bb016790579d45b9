//! Error types of operator calls.
//!
//! The layering follows who is at fault:
//! * [`ArgumentError`] — the policy wrote a malformed operator argument; the
//!   environment shows its explanation as an observation and the episode goes on;
//! * [`ExecutorError`] — the executor LLM could not answer;
//! * [`OperatorError`] — running an operator failed (executor, unparseable
//!   output after every retry, sandbox start-up, missing corpus);
//! * [`CallError`] — what [`crate::Registry::call_text`] returns: either an
//!   argument problem (including an unknown operator) or an operator failure;
//! * [`OperatorsError`] — building a registry (configuration, corpus files).

use thiserror::Error;

/// A malformed operator argument, with an explanation meant for the policy.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{explanation}")]
pub struct ArgumentError {
    /// What is wrong and how to write it correctly (one or two sentences).
    pub explanation: String,
}

impl ArgumentError {
    /// An argument error with `explanation`.
    pub fn new(explanation: impl Into<String>) -> Self {
        Self {
            explanation: explanation.into(),
        }
    }
}

/// The executor LLM failed to answer a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// No executor is configured.
    #[error("no executor LLM is available: {0}")]
    Unavailable(String),
    /// The executor did not answer in time.
    #[error("the executor timed out: {0}")]
    Timeout(String),
    /// Any other failure (transport, malformed response, backend error).
    #[error("the executor failed: {0}")]
    Failed(String),
}

impl From<flowrl_plugin_abi::PluginError> for ExecutorError {
    fn from(e: flowrl_plugin_abi::PluginError) -> Self {
        use flowrl_plugin_abi::PluginErrorKind as K;
        match e.kind {
            K::UNAVAILABLE => ExecutorError::Unavailable(e.message().to_string()),
            K::TIMEOUT => ExecutorError::Timeout(e.message().to_string()),
            _ => ExecutorError::Failed(e.to_string()),
        }
    }
}

/// Running an operator failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The executor LLM failed.
    #[error("operator `{operator}`: {source}")]
    Executor {
        /// Operator name.
        operator: String,
        /// The executor's error.
        #[source]
        source: ExecutorError,
    },
    /// The executor's output never had the required format, even after the retries.
    #[error(
        "operator `{operator}`: the executor's output could not be parsed after {attempts} attempts ({reason})"
    )]
    Unparseable {
        /// Operator name.
        operator: String,
        /// Number of executor calls made.
        attempts: u32,
        /// What was wrong with the last output.
        reason: String,
    },
    /// The code sandbox could not be started (bubblewrap missing, I/O error).
    #[error("operator `{operator}`: the code sandbox is unavailable: {reason}")]
    Sandbox {
        /// Operator name.
        operator: String,
        /// Why.
        reason: String,
    },
    /// The operator needs something the task or configuration does not provide
    /// (e.g. Search without a corpus).
    #[error("operator `{operator}`: {reason}")]
    Unavailable {
        /// Operator name.
        operator: String,
        /// What is missing.
        reason: String,
    },
    /// The structured input is unusable (e.g. an ensemble of fewer than two
    /// solutions); the message explains it.
    #[error("operator `{operator}`: {}", .source.explanation)]
    Input {
        /// Operator name.
        operator: String,
        /// The explanation.
        source: ArgumentError,
    },
}

impl OperatorError {
    /// Wraps an [`ArgumentError`] raised while checking structured input.
    pub fn input(operator: &str, source: ArgumentError) -> Self {
        OperatorError::Input {
            operator: operator.to_string(),
            source,
        }
    }
}

/// What [`crate::Registry::call_text`] and [`crate::Registry::call`] return on failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallError {
    /// Unknown operator or malformed argument: the explanation is meant to be
    /// shown to the policy as an observation.
    #[error("{0}")]
    Argument(String),
    /// The operator ran and failed.
    #[error(transparent)]
    Operator(#[from] OperatorError),
}

impl From<ArgumentError> for CallError {
    fn from(e: ArgumentError) -> Self {
        CallError::Argument(e.explanation)
    }
}

/// Building a registry failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OperatorsError {
    /// A configuration value is out of range.
    #[error("invalid operator configuration: {0}")]
    InvalidConfig(String),
    /// The search corpus could not be read.
    #[error("cannot read the search corpus {path}: {source}")]
    CorpusIo {
        /// The corpus path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A corpus line is not a `{ "title", "text" }` JSON object.
    #[error("search corpus {path}, line {line}: {reason}")]
    CorpusLine {
        /// The corpus path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        reason: String,
    },
}
