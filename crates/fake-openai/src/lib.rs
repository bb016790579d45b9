//! A small, protocol-faithful fake of an OpenAI-compatible inference server,
//! for tests of LLM backends.
//!
//! [`FakeServer`] listens on `127.0.0.1` only (port chosen by the system)
//! and speaks plain HTTP/1.1 with keep-alive, one thread per connection. It
//! implements:
//!
//! * `POST /v1/chat/completions` — answers `echo: <last user message>` (or
//!   the next scripted reply), honours `max_tokens` (finish reason
//!   `length`) and `stop`, reports `usage`, and returns per-token
//!   `logprobs.content[].logprob` when `logprobs: true`;
//! * `POST /v1/completions` — the same for a `prompt`, with
//!   `logprobs.tokens` / `token_logprobs` / `top_logprobs` / `text_offset`
//!   when `logprobs` is an integer;
//! * `GET /v1/models` — the configured model list.
//!
//! Errors use OpenAI's body shape `{"error": {"message", "type", "param",
//! "code"}}`. Answers are deterministic: tokens and log-probs are defined in
//! [`openai`] ([`tokenize`], [`fake_logprob`]) so tests can compute the
//! expected values.
//!
//! Faults are scripted per request sequence with [`FakeServer::push_fault`]:
//! each completion request takes the next [`Fault`] in arrival order.
//! Every request is logged ([`FakeServer::requests`]) and the largest number
//! of requests handled at once is recorded ([`FakeServer::max_concurrent`]).
//! Dropping the server closes every connection and joins all its threads.
//!
//! ```
//! use flowrl_fake_openai::{FakeServer, Fault};
//! let server = FakeServer::start()?;
//! server.push_fault(Fault::ServerError); // the first completion gets a 500
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! # Ok::<(), flowrl_fake_openai::FakeError>(())
//! ```

pub mod http;
pub mod openai;
mod server;

use std::time::Duration;

pub use openai::{count_tokens, fake_logprob, tokenize};
pub use server::{FakeConfig, FakeServer, RecordedRequest};

/// A fault applied to one completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally, after waiting this long (a slow server).
    Delay(Duration),
    /// Answer with this status and an OpenAI-style error body carrying
    /// `message` (e.g. 400, 401, 404, 503).
    Status {
        /// HTTP status code.
        status: u16,
        /// The error message in the body.
        message: String,
    },
    /// Answer 429 with an OpenAI rate-limit body and, when set, this
    /// `Retry-After` header value (seconds, e.g. `"1"` or `"0.2"`).
    RateLimited {
        /// `Retry-After` header value.
        retry_after: Option<String>,
    },
    /// Answer 500 with an OpenAI server-error body.
    ServerError,
    /// Answer 200 with a truncated, unparseable JSON body.
    MalformedJson,
    /// Send the status line, headers and half the body of a normal answer,
    /// then close the socket.
    DropConnection,
    /// Close the socket without sending anything.
    CloseWithoutResponse,
}

/// Why the fake server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FakeError {
    /// Binding `127.0.0.1:0` failed.
    #[error("cannot bind a loopback port: {0}")]
    Bind(#[source] std::io::Error),
    /// The listener thread could not be spawned.
    #[error("cannot spawn the listener thread: {0}")]
    Spawn(#[source] std::io::Error),
}
