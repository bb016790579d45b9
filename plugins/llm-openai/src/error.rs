//! The errors of the OpenAI-compatible backend.

use std::time::Duration;

use flowrl_plugin_abi::{PluginError, PluginErrorKind};

/// What went wrong talking to an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAiError {
    /// The backend config is malformed or incomplete.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The chat request cannot be sent (e.g. no messages).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No connection could be made to the server (refused, unknown host,
    /// connect timeout), after all attempts.
    #[error("cannot reach {url} after {attempts} attempt(s): {detail}")]
    Unreachable {
        /// URL that was called.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Last transport error.
        detail: String,
    },
    /// One attempt took longer than the configured limit.
    #[error("{url} did not answer within {:.3} s", timeout.as_secs_f64())]
    Timeout {
        /// URL that was called.
        url: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The server refused the request with a 4xx status other than 429
    /// (bad request, wrong key, unknown model…); not retried.
    #[error("{url} answered {status}: {message}")]
    Rejected {
        /// URL that was called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// Every attempt ended in a retryable failure (429, 5xx, dropped
    /// connection).
    #[error("{url} failed after {attempts} attempt(s); last: {last}")]
    RetriesExhausted {
        /// URL that was called.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// HTTP status of the last attempt, when it got one.
        status: Option<u16>,
        /// What the last attempt ended with.
        last: String,
    },
    /// The server answered 2xx but the body is not the expected JSON.
    #[error("malformed response from {url}: {detail}")]
    MalformedResponse {
        /// URL that was called.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Any other transport failure.
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// URL that was called.
        url: String,
        /// The transport error.
        detail: String,
    },
}

impl OpenAiError {
    /// The [`PluginErrorKind`] this error crosses the plugin boundary as:
    /// `INVALID_INPUT` (config, request), `UNAVAILABLE` (unreachable),
    /// `TIMEOUT`, `INVALID_OUTPUT` (malformed response), `EXECUTION`
    /// (rejected, retries exhausted, transport).
    pub fn kind(&self) -> PluginErrorKind {
        match self {
            OpenAiError::InvalidConfig(_) | OpenAiError::InvalidRequest(_) => {
                PluginErrorKind::INVALID_INPUT
            }
            OpenAiError::Unreachable { .. } => PluginErrorKind::UNAVAILABLE,
            OpenAiError::Timeout { .. } => PluginErrorKind::TIMEOUT,
            OpenAiError::MalformedResponse { .. } => PluginErrorKind::INVALID_OUTPUT,
            OpenAiError::Rejected { .. }
            | OpenAiError::RetriesExhausted { .. }
            | OpenAiError::Transport { .. } => PluginErrorKind::EXECUTION,
        }
    }
}

impl From<OpenAiError> for PluginError {
    fn from(e: OpenAiError) -> Self {
        PluginError::new(e.kind(), e.to_string())
    }
}
