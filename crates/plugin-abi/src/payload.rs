//! JSON payloads of LLM backends, shared by plugins and hosts.
//!
//! These are serialized with serde and cross the boundary as text, so fields
//! may be added (with `#[serde(default)]`) without any layout change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Sampling parameters of a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature (≥ 0; 0 means greedy).
    pub temperature: f64,
    /// Nucleus sampling mass in (0, 1].
    pub top_p: f64,
    /// Random seed, when the backend supports seeding.
    pub seed: Option<u64>,
    /// Sample only among the `k` most likely tokens, when the backend supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            top_k: None,
        }
    }
}

/// One chat-completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatRequest {
    /// Conversation so far, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    #[serde(default)]
    pub sampling: SamplingParams,
    /// Generation stops before the first occurrence of any of these strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Maximum number of generated tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Whether to return one log-prob per generated token.
    #[serde(default)]
    pub logprobs: bool,
    /// Free request metadata that real backends ignore: the calling operator's
    /// name and, for the simulated executor, its side channel (task family,
    /// gold answer, structured inputs).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn default_max_tokens() -> u32 {
    512
}

impl ChatRequest {
    /// A request with one user message and default parameters.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            messages: vec![ChatMessage::new("user", content)],
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            max_tokens: default_max_tokens(),
            logprobs: false,
            metadata: serde_json::Map::new(),
        }
    }
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// The answer to a [`ChatRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatResponse {
    /// Generated text (without the stop string).
    pub text: String,
    /// Natural-log probability of each generated token, when requested and supported.
    #[serde(default)]
    pub logprobs: Option<Vec<f32>>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
    /// Why generation ended: `stop`, `length`, …
    #[serde(default)]
    pub finish_reason: String,
}

/// JSON Schema text of [`ChatRequest`].
pub fn chat_request_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(ChatRequest)).unwrap_or_default()
}

/// JSON Schema text of [`ChatResponse`].
pub fn chat_response_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(ChatResponse)).unwrap_or_default()
}
