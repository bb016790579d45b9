//! flowrl LLM backend for OpenAI-compatible inference servers: vLLM,
//! SGLang, llama.cpp's `llama-server`, Ollama, or OpenAI itself.
//!
//! The plugin library (`openai-llm`) provides one [`LlmBackend`] component,
//! `openai`, built from an [`OpenAiConfig`] JSON text. It calls
//! `POST {base_url}/chat/completions` (or `{base_url}/completions` with
//! [`Endpoint::Completions`]) over plain HTTP/1.1 with keep-alive, through
//! the blocking [`ureq`] client:
//!
//! * **timeouts** — connect (`connect_timeout_s`) and whole attempt
//!   (`timeout_s`); a timed-out attempt fails at once with
//!   [`OpenAiError::Timeout`] (it is not retried, so no call outlives its
//!   limit by more than the backoff of earlier attempts);
//! * **retries** — on 429 (waiting `Retry-After` seconds when the server
//!   sends it), on 5xx and on dropped or refused connections, at most
//!   `max_retries` times, with exponential backoff and jitter
//!   ([`backoff_delay`]);
//! * **typed errors** — [`OpenAiError`]: 4xx → [`OpenAiError::Rejected`]
//!   with the status and the server's message, unparseable 2xx bodies →
//!   [`OpenAiError::MalformedResponse`], no connection →
//!   [`OpenAiError::Unreachable`] naming the URL;
//! * **batches** — [`OpenAiClient::chat_batch`] keeps at most
//!   `max_concurrency` requests in flight on a small pool of scoped threads;
//! * **log-probs** — with `logprobs: true` in the [`ChatRequest`], one
//!   natural-log probability per generated token
//!   (`choices[0].logprobs.content[].logprob` for chat,
//!   `choices[0].logprobs.token_logprobs` for completions).
//!
//! Unset config fields come from the environment ([`ENV_BASE_URL`],
//! [`ENV_MODEL`], [`ENV_API_KEY`], [`ENV_OPENAI_API_KEY`], …).
//! `https://` URLs need the `tls` feature. See `docs/backends.md` for
//! pointing it at each server.
//!
//! [`LlmBackend`]: flowrl_plugin_abi::LlmBackend

mod client;
mod config;
mod error;
mod wire;

use flowrl_plugin_abi::{
    ChatRequest, ChatResponse, ComponentKind, LlmBackendImpl, Metadata, Plugin, PluginError,
};

pub use client::{OpenAiClient, backoff_delay, parse_retry_after};
pub use config::{
    DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, ENV_OPENAI_API_KEY,
    ENV_OPENAI_BASE_URL, Endpoint, OpenAiConfig, ResolvedConfig,
};
pub use error::OpenAiError;
pub use wire::{error_message, parse_response, render_prompt, request_body};

/// Name of the plugin library.
pub const PLUGIN_NAME: &str = "openai-llm";
/// Name of the LLM backend component.
pub const BACKEND_NAME: &str = "openai";

/// The plugin: one LLM backend named [`BACKEND_NAME`].
pub struct OpenAiPlugin;

impl LlmBackendImpl for OpenAiClient {
    fn describe(&self) -> String {
        OpenAiClient::describe(self).to_string()
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        OpenAiClient::chat(self, request).map_err(PluginError::from)
    }

    fn chat_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, PluginError>> {
        OpenAiClient::chat_batch(self, requests)
            .into_iter()
            .map(|r| r.map_err(PluginError::from))
            .collect()
    }
}

impl Plugin for OpenAiPlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: PLUGIN_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "LLM backend for OpenAI-compatible servers (vLLM, SGLang, llama.cpp, Ollama, OpenAI)".into(),
            provides: vec![(
                ComponentKind::LLM_BACKEND,
                BACKEND_NAME.into(),
                "chat or text completions over HTTP with retries, timeouts, bounded concurrency and log-probs".into(),
            )],
        }
    }

    fn llm_backend(name: &str, config: &str) -> Result<Box<dyn LlmBackendImpl>, PluginError> {
        if name != BACKEND_NAME {
            return Err(PluginError::not_found(format!(
                "plugin `{PLUGIN_NAME}` has no LLM backend `{name}` (it provides `{BACKEND_NAME}`)"
            )));
        }
        let config = OpenAiConfig::from_json(config)?;
        Ok(Box::new(OpenAiClient::new(&config)?))
    }
}

flowrl_plugin_abi::export_plugin!(OpenAiPlugin);
